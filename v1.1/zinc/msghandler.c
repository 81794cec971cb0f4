#include "zinc/msghandler.h"

#include "zinc/config.h"
#include "zinc/connection_internal.h"
#include "zinc/request_internal.h"

#include "zn_log.h"
#include "zn_map.h"
#include "zn_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* One worker: an event loop and the thread that runs it. */
struct zn_worker {
    pthread_t tid; /* joined by zn_msghandler_stop_workers() */
    struct zn_loop *loop; /* its connections' sockets */
};

struct zn_msghandler {
    struct zn_map *apis; /* uint32_t msg id -> struct zn_router * */
    uint32_t nworkers; /* started; 0: the server's own loop does it all */
    struct zn_worker *workers; /* nworkers of them */
    bool stopped; /* the workers have been stopped and joined */
};

struct zn_msghandler *zn_msghandler_new(void)
{
    struct zn_msghandler *h = malloc(sizeof(*h));

    if (h == NULL)
        return NULL;
    h->nworkers = 0;
    h->workers = NULL;
    h->stopped = false;
    h->apis = zn_map_new();
    if (h->apis == NULL) {
        free(h);
        errno = ENOMEM;
        return NULL;
    }
    return h;
}

void zn_msghandler_free(struct zn_msghandler *h)
{
    if (h == NULL)
        return;
    for (uint32_t i = 0; i < h->nworkers; i++)
        zn_loop_free(h->workers[i].loop);
    free(h->workers);
    zn_map_free(h->apis, NULL); /* the routers are not ours */
    free(h);
}

int zn_msghandler_add_router(struct zn_msghandler *h, uint32_t id,
                             struct zn_router *router)
{
    int rc = zn_map_add_u32(h->apis, id, router);

    if (rc == -EEXIST)
        zn_error("msg id %u already has a router", id);
    else if (rc == 0)
        zn_info("router added for msg id %u", id);
    return rc;
}

void zn_msghandler_do(struct zn_msghandler *h, struct zn_request *req)
{
    uint32_t id = zn_request_msg_id(req);
    struct zn_router *router = zn_map_get_u32(h->apis, id);

    if (router == NULL) {
        zn_warn("conn %u: no router for msg id %u, message dropped",
                zn_conn_id(zn_request_conn(req)), id);
        return;
    }
    zn_router_dispatch(router, req);
}

/* A worker: run its loop until it is stopped. */
static void *worker_thread(void *arg)
{
    struct zn_worker *w = arg;

    zn_loop_run(w->loop);
    return NULL;
}

int zn_msghandler_start_workers(struct zn_msghandler *h)
{
    uint32_t n = zn_global.worker_pool_size;
    int rc = -ENOMEM;

    if (n == 0) {
        zn_info("no workers: the main thread's event loop (%s) serves "
                "every connection",
                zn_poller_name());
        return 0;
    }
    h->workers = calloc(n, sizeof(*h->workers));
    if (h->workers == NULL)
        goto err;
    for (uint32_t i = 0; i < n; i++) {
        struct zn_worker *w = &h->workers[i];
        char name[24]; /* "zn-worker-" and an id; the kernel keeps 15 */

        w->loop = zn_loop_new();
        if (w->loop == NULL) {
            rc = -errno;
            goto err;
        }
        snprintf(name, sizeof(name), "zn-worker-%u", i);
        rc = zn_thread_start(&w->tid, worker_thread, w, false, name);
        if (rc < 0) {
            zn_loop_free(w->loop);
            goto err;
        }
        h->nworkers++;
    }
    zn_info("%u worker%s started, each an event loop (%s)", n,
            n == 1 ? "" : "s", zn_poller_name());
    return 0;
err:
    zn_error("cannot start %u workers: %s", n, zn_strerror(-rc));
    /* Those already started: stop every loop, then join and free. */
    for (uint32_t i = 0; i < h->nworkers; i++)
        zn_loop_stop(h->workers[i].loop);
    for (uint32_t i = 0; i < h->nworkers; i++) {
        pthread_join(h->workers[i].tid, NULL);
        zn_loop_free(h->workers[i].loop);
    }
    free(h->workers);
    h->workers = NULL;
    h->nworkers = 0;
    return rc;
}

struct zn_loop *zn_msghandler_loop(struct zn_msghandler *h, uint32_t conn_id)
{
    if (h->nworkers == 0)
        return NULL;
    return h->workers[conn_id % h->nworkers].loop;
}

int zn_msghandler_submit(struct zn_msghandler *h, struct zn_conn *conn,
                         struct zn_msg *msg)
{
    struct zn_request *req = zn__request_new(conn, msg);

    if (req == NULL) {
        zn_error("conn %u: no memory for a request", zn_conn_id(conn));
        zn_msg_free(msg);
        return -ENOMEM;
    }
    zn_msghandler_do(h, req);
    zn__request_free(req);
    return 0;
}

void zn_msghandler_stop_workers(struct zn_msghandler *h)
{
    if (h->stopped)
        return;
    h->stopped = true;
    /* Ask every loop first, so that all of them end at once. */
    for (uint32_t i = 0; i < h->nworkers; i++)
        zn_loop_stop(h->workers[i].loop);
    for (uint32_t i = 0; i < h->nworkers; i++)
        pthread_join(h->workers[i].tid, NULL);
}
