#include "zinc/msghandler.h"

#include "zinc/chan.h"
#include "zinc/config.h"
#include "zinc/connection_internal.h"
#include "zinc/request_internal.h"

#include "zn_log.h"
#include "zn_map.h"
#include "zn_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* One worker thread and its queue (memcached's LIBEVENT_THREAD). */
struct zn_worker {
    pthread_t tid; /* joined by zn_msghandler_stop_workers() */
    uint32_t id; /* its index: zn-worker-<id> */
    struct zn_chan *tasks; /* requests waiting for this worker */
    struct zn_msghandler *h; /* whose routers it runs */
};

struct zn_msghandler {
    atomic_int refs; /* the server's and one per running reader */
    struct zn_map *apis; /* uint32_t msg id -> struct zn_router * */
    uint32_t nworkers; /* started; 0: requests are handled by readers */
    struct zn_worker *workers; /* nworkers of them */
    bool stopped; /* the workers have been stopped and joined */
    atomic_bool draining; /* stopping: queued requests are dropped */
};

struct zn_msghandler *zn_msghandler_new(void)
{
    struct zn_msghandler *h = malloc(sizeof(*h));

    if (h == NULL)
        return NULL;
    atomic_init(&h->refs, 1);
    h->nworkers = 0;
    h->workers = NULL;
    h->stopped = false;
    atomic_init(&h->draining, false);
    h->apis = zn_map_new();
    if (h->apis == NULL) {
        free(h);
        errno = ENOMEM;
        return NULL;
    }
    return h;
}

void zn_msghandler_hold(struct zn_msghandler *h)
{
    if (h != NULL)
        atomic_fetch_add(&h->refs, 1);
}

void zn_msghandler_release(struct zn_msghandler *h)
{
    /*
     * The atomic decrement also orders memory: whatever a reader thread did
     * with the table happens before the free by whoever drops the last
     * reference.
     */
    if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    /*
     * The queues are empty: the workers drained them before they were
     * joined, which the server waits for before it drops its reference,
     * and a submit after that fails instead of queueing.
     */
    for (uint32_t i = 0; i < h->nworkers; i++)
        zn_chan_free(h->workers[i].tasks, NULL);
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

/*
 * The end of a request, handled or not: free it, tell its connection (the
 * reader may read another) and drop the request's reference.
 */
static void finish(struct zn_request *req)
{
    struct zn_conn *conn = zn_request_conn(req);

    zn__request_free(req);
    zn__conn_request_done(conn);
    zn_conn_release(conn);
}

/*
 * Handle one request and finish it. A request of a stopped connection is
 * dropped: nobody would get its reply. So is every request still queued
 * when the server stops: a stop aborts the connections (DESIGN §8), and
 * handling what is queued could keep the stop waiting on clients that do
 * not read.
 */
static void handle(struct zn_msghandler *h, struct zn_request *req)
{
    struct zn_conn *conn = zn_request_conn(req);

    if (atomic_load(&h->draining))
        zn_conn_stop(conn);
    else if (!zn_conn_is_closed(conn))
        zn_msghandler_do(h, req);
    finish(req);
}

/* A worker: handle the requests of its queue until it is closed and
 * empty. */
static void *worker_thread(void *arg)
{
    struct zn_worker *w = arg;
    void *req;

    while (zn_chan_recv(w->tasks, &req) == 0)
        handle(w->h, req);
    return NULL;
}

int zn_msghandler_start_workers(struct zn_msghandler *h)
{
    uint32_t n = zn_global.worker_pool_size;
    int rc = -ENOMEM;

    if (n == 0)
        return 0;
    h->workers = calloc(n, sizeof(*h->workers));
    if (h->workers == NULL)
        goto err;
    for (uint32_t i = 0; i < n; i++) {
        struct zn_worker *w = &h->workers[i];
        char name[24]; /* "zn-worker-" and an id; the kernel keeps 15 */

        w->id = i;
        w->h = h;
        w->tasks = zn_chan_new(zn_global.max_worker_task_len);
        if (w->tasks == NULL) {
            rc = -ENOMEM;
            goto err;
        }
        snprintf(name, sizeof(name), "zn-worker-%u", i);
        rc = zn_thread_start(&w->tid, worker_thread, w, false, name);
        if (rc < 0) {
            zn_chan_free(w->tasks, NULL);
            goto err;
        }
        h->nworkers++;
    }
    zn_info("%u worker%s started, %u requests each", n, n == 1 ? "" : "s",
            (unsigned)zn_global.max_worker_task_len);
    return 0;
err:
    zn_error("cannot start %u workers: %s", n, zn_strerror(-rc));
    /* Those already started: close every queue, then join and free. */
    for (uint32_t i = 0; i < h->nworkers; i++)
        zn_chan_close(h->workers[i].tasks);
    for (uint32_t i = 0; i < h->nworkers; i++) {
        pthread_join(h->workers[i].tid, NULL);
        zn_chan_free(h->workers[i].tasks, NULL);
    }
    free(h->workers);
    h->workers = NULL;
    h->nworkers = 0;
    return rc;
}

int zn_msghandler_submit(struct zn_msghandler *h, struct zn_conn *conn,
                         struct zn_msg *msg)
{
    struct zn_request *req = zn__request_new(conn, msg);
    int rc;

    if (req == NULL) {
        zn_error("conn %u: no memory for a request", zn_conn_id(conn));
        zn_msg_free(msg);
        zn__conn_request_done(conn);
        return -ENOMEM;
    }
    zn_conn_hold(conn); /* the request's, until finish() */
    if (h->nworkers == 0) {
        handle(h, req);
        return 0;
    }
    /* One connection, one worker: its requests stay in order. */
    rc = zn_chan_send(h->workers[zn_conn_id(conn) % h->nworkers].tasks, req);
    if (rc < 0)
        finish(req); /* the workers have been stopped */
    return rc;
}

void zn_msghandler_stop_workers(struct zn_msghandler *h)
{
    if (h->stopped)
        return;
    h->stopped = true;
    atomic_store(&h->draining, true);
    /* Close every queue first, so all the workers drain at once. */
    for (uint32_t i = 0; i < h->nworkers; i++)
        zn_chan_close(h->workers[i].tasks);
    for (uint32_t i = 0; i < h->nworkers; i++)
        pthread_join(h->workers[i].tid, NULL);
}
