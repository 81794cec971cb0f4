/*
 * The v0.9 demo server, plus a router that stops its own connection, a
 * router for large replies, and hooks that check where and when they run
 * (tests/test_connmgr.py).
 *
 *     conn_hooks [-c FILE]     default conf/zinc.json
 *
 * As demo/server.c: the configuration comes from FILE, the library prints
 * `listening on IP:PORT`, SIGINT or SIGTERM stops it with exit status 0,
 * every client first gets msg id 2 "DoConnection BEGIN..." and the end of
 * every connection logs `conn N stopped`, and
 *
 *     msg id 0   -> reply id 0, "ping...ping...ping"
 *     msg id 1   -> reply id 1, "Hello Zinc Router " and the version
 *
 * Two more routers:
 *
 *     msg id 6   -> the router calls zn_conn_stop() on its own connection;
 *                   a send right after must return -EPIPE; no reply.
 *     msg id 10, body <u32 size> (little-endian, 4 bytes)
 *                -> reply id 10 with `size` bytes of 'z' (at most 16 MiB):
 *                   a reply that piles up for a client that does not read.
 *
 * The hooks check the promises of server.h and log a line with the word
 * HOOKFAIL when one is broken (the test fails on that word):
 *
 *   on_conn_start runs on the connection's reader thread (zn-reader-N;
 *   from v1.1 its loop's thread: zn-worker-<N % WorkerPoolSize>, or the
 *   main thread without workers), on a connection not yet stopped;
 *   on_conn_stop runs on that thread too, exactly once (a second
 *   call for the same connection is a failure), after the connection has
 *   ended (zn_conn_is_closed()), before its socket is closed (the
 *   descriptor is still open), and a send from it returns -EPIPE: no
 *   reply goes out any more.
 *
 * With CONN_HOOKS_STOP_MS=N in the environment, on_conn_stop of
 * connection 0 logs `conn 0 stopping` and then sleeps N ms before it
 * checks anything: a connection whose reader is still in its hook is still
 * a connection (it counts against MaxConn until its reader has finished).
 *
 * Built by tests/support/build.py's build_api() against the stage's
 * libzinc.a; it cannot see ZN_VERSION (the stage's Makefile defines it for
 * the demo only), so the hello reply takes the version from zn_global.
 */
#include "zinc/config.h"
#include "zinc/connection.h"
#include "zinc/router.h"
#include "zinc/server.h"

#include "testserver.h"
#include "zn_frame.h"
#include "zn_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BIG_MAX (16u << 20) /* the largest reply msg id 10 makes: 16 MiB */
#define MAX_IDS 65536 /* connection ids whose stop hook calls are counted */

/* How many times on_conn_stop ran for each id (ids below MAX_IDS). */
static atomic_uchar stops[MAX_IDS];
static long stop_ms; /* CONN_HOOKS_STOP_MS: conn 0's on_conn_stop sleeps */

#if ZN_STAGE_MINOR >= 11
static pthread_t main_thread; /* runs the only loop without workers */
#endif

/*
 * True when the calling thread is conn's reader: its name (Linux:
 * /proc/thread-self/comm) is zn-reader-<id>, cut to 15 characters like the
 * kernel cuts it; from v1.1 the thread of its loop. Elsewhere, or when
 * /proc cannot be read, true.
 */
static int on_reader_thread(struct zn_conn *conn, char *name, size_t size)
{
    char want[32];
    ssize_t n;
    int fd;

    snprintf(name, size, "?");
#if defined(__linux__)
    fd = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    n = read(fd, name, size - 1);
    close(fd);
    if (n <= 0)
        return 1;
    name[n] = '\0';
    name[strcspn(name, "\n")] = '\0';
#if ZN_STAGE_MINOR >= 11
    if (zn_global.worker_pool_size == 0)
        return pthread_equal(pthread_self(), main_thread);
    snprintf(want, sizeof(want), "zn-worker-%u",
             zn_conn_id(conn) % zn_global.worker_pool_size);
#else
    snprintf(want, sizeof(want), "zn-reader-%u", zn_conn_id(conn));
#endif
    want[15] = '\0';
    return strcmp(name, want) == 0;
#else
    (void)conn;
    (void)want;
    (void)n;
    (void)fd;
    return 1;
#endif
}

static void ping_handle(struct zn_router *r, struct zn_request *req)
{
    static const char pong[] = "ping...ping...ping";
    (void)r;

    zn_conn_send_msg(zn_request_conn(req), 0, pong, sizeof(pong) - 1);
}

static void hello_handle(struct zn_router *r, struct zn_request *req)
{
    char hello[64];
    int n = snprintf(hello, sizeof(hello), "Hello Zinc Router %s",
                     zn_global.version);
    (void)r;

    zn_conn_send_msg(zn_request_conn(req), 1, hello, (uint32_t)n);
}

/* msg id 6: abort the caller's own connection from within handle. */
static void stop_handle(struct zn_router *r, struct zn_request *req)
{
    struct zn_conn *conn = zn_request_conn(req);
    int rc;
    (void)r;

    zn_info("conn %u: router stops its connection", zn_conn_id(conn));
    zn_conn_stop(conn);
    rc = zn_conn_send_msg(conn, 6, "too late", 8);
    if (rc != -EPIPE)
        zn_error("HOOKFAIL conn %u: send after zn_conn_stop() returned %d, "
                 "not -EPIPE",
                 zn_conn_id(conn), rc);
}

/* msg id 10: `size` bytes of 'z' in one reply. */
static void big_handle(struct zn_router *r, struct zn_request *req)
{
    struct zn_conn *conn = zn_request_conn(req);
    uint32_t size;
    char *data;
    (void)r;

    if (zn_request_len(req) != 4) {
        zn_warn("conn %u: msg id 10 wants 4 bytes, got %u", zn_conn_id(conn),
                zn_request_len(req));
        return;
    }
    size = zn_get_le32((const unsigned char *)zn_request_data(req));
    if (size > BIG_MAX) {
        zn_warn("conn %u: msg id 10: %u bytes is too big", zn_conn_id(conn),
                size);
        return;
    }
    data = malloc(size > 0 ? size : 1);
    if (data == NULL) {
        zn_error("conn %u: no memory for %u bytes", zn_conn_id(conn), size);
        return;
    }
    memset(data, 'z', size);
    zn_conn_send_msg(conn, 10, data, size); /* packs a copy */
    free(data);
}

/* on_conn_start: check where it runs, then greet as the demo does. */
static void greet(struct zn_conn *conn, void *data)
{
    static const char hi[] = "DoConnection BEGIN...";
    char name[32];

    if (data != &stops)
        zn_error("HOOKFAIL conn %u: on_conn_start got data %p, not %p",
                 zn_conn_id(conn), data, (void *)&stops);
    if (!on_reader_thread(conn, name, sizeof(name)))
        zn_error("HOOKFAIL conn %u: on_conn_start runs on thread %s, not "
                 "its reader",
                 zn_conn_id(conn), name);
    if (zn_conn_is_closed(conn))
        zn_error("HOOKFAIL conn %u: on_conn_start on a stopped connection",
                 zn_conn_id(conn));
    zn_conn_send_msg(conn, 2, hi, sizeof(hi) - 1);
}

/* on_conn_stop: check when and where it runs, then say goodbye. */
static void goodbye(struct zn_conn *conn, void *data)
{
    uint32_t id = zn_conn_id(conn);
    char name[32];
    int rc;

    if (stop_ms > 0 && id == 0) {
        struct timespec t = {stop_ms / 1000, stop_ms % 1000 * 1000000L};

        zn_info("conn %u stopping", id);
        nanosleep(&t, NULL);
    }
    if (data != &stops)
        zn_error("HOOKFAIL conn %u: on_conn_stop got data %p, not %p", id, data,
                 (void *)&stops);
    if (id < MAX_IDS && atomic_fetch_add(&stops[id], 1) != 0)
        zn_error("HOOKFAIL conn %u: on_conn_stop runs again", id);
    if (!on_reader_thread(conn, name, sizeof(name)))
        zn_error("HOOKFAIL conn %u: on_conn_stop runs on thread %s, not its "
                 "reader",
                 id, name);
    if (!zn_conn_is_closed(conn))
        zn_error("HOOKFAIL conn %u: on_conn_stop before the connection "
                 "ended",
                 id);
    if (fcntl(zn_conn_fd(conn), F_GETFD) < 0)
        zn_error("HOOKFAIL conn %u: on_conn_stop after the socket was "
                 "closed",
                 id);
    rc = zn_conn_send_msg(conn, 2, "bye", 3);
    if (rc != -EPIPE)
        zn_error("HOOKFAIL conn %u: a send from on_conn_stop returned %d, "
                 "not -EPIPE",
                 id, rc);
    zn_info("conn %u stopped", id);
}

static const struct zn_router_ops ping_ops = {.handle = ping_handle};
static const struct zn_router_ops hello_ops = {.handle = hello_handle};
static const struct zn_router_ops stop_ops = {.handle = stop_handle};
static const struct zn_router_ops big_ops = {.handle = big_handle};

static struct zn_router ping = {.ops = &ping_ops};
static struct zn_router hello = {.ops = &hello_ops};
static struct zn_router stopper = {.ops = &stop_ops};
static struct zn_router big = {.ops = &big_ops};

/* The routers and both hooks; CONN_HOOKS_STOP_MS slows conn 0's stop. */
static int setup(struct zn_server *s)
{
    if (getenv("CONN_HOOKS_STOP_MS") != NULL)
        stop_ms = atol(getenv("CONN_HOOKS_STOP_MS"));
    if (zn_server_add_router(s, 0, &ping) < 0 ||
        zn_server_add_router(s, 1, &hello) < 0 ||
        zn_server_add_router(s, 6, &stopper) < 0 ||
        zn_server_add_router(s, 10, &big) < 0)
        return -1;
    zn_server_set_on_conn_start(s, greet, &stops);
    zn_server_set_on_conn_stop(s, goodbye, &stops);
    return 0;
}

int main(int argc, char **argv)
{
#if ZN_STAGE_MINOR >= 11
    main_thread = pthread_self();
#endif
    return test_serve(argc, argv, setup);
}
