/*
 * testconn.h -- a connection without a server, for the programs in
 * tests/api that test the connection itself (from v0.5, the first stage
 * they are built against).
 *
 *     conn = test_conn_new(fd, id, addr, addrlen, handler);
 *     ... test_conn_start(conn) ...
 *     test_handler_done(handler);
 *
 * The connection's messages go to the routers of `handler` (a message
 * handler, v0.6+; NULL for none); its reader is detached, since no server
 * is there to join it. From v1.1 a connection has no reader: it is
 * started on an event loop, one for the whole program, whose thread
 * test_conn_start() starts the first time.
 *
 * How a connection is made changed with the stages: v0.5 takes a router,
 * and from v0.6 the connection takes the callbacks through which it
 * reports to its maker (connection.h), which is what the server plays
 * here. ZN_STAGE_MINOR comes from build_api() in
 * tests/support/build.py.
 */
#ifndef ZN_TESTCONN_H
#define ZN_TESTCONN_H

#include "zinc/connection_internal.h"

#include <errno.h>
#include <pthread.h>

#if ZN_STAGE_MINOR < 6

static inline struct zn_conn *test_conn_new(int fd, uint32_t id,
                                            const struct sockaddr *addr,
                                            socklen_t addrlen, void *handler)
{
    (void)handler;
    return zn__conn_new(fd, id, addr, addrlen, NULL);
}

#else
#include "zinc/msghandler.h"

/* What the server does with a message: route it by its id (from v0.8
 * on a worker, when there are workers). */
static inline void test_on_msg(struct zn_conn *conn, struct zn_msg *msg,
                               void *data)
{
#if ZN_STAGE_MINOR >= 11
    if (data == NULL)
        zn_msg_free(msg);
    else if (zn_msghandler_submit(data, conn, msg) < 0)
        zn_conn_stop(conn);
#elif ZN_STAGE_MINOR >= 8
    if (data == NULL) {
        zn_msg_free(msg);
        zn__conn_request_done(conn);
    } else if (zn_msghandler_submit(data, conn, msg) < 0) {
        zn_conn_stop(conn);
    }
#else
    struct zn_request req = {.conn = conn, .msg = msg};

    if (data != NULL)
        zn_msghandler_do(data, &req);
#endif
}

#if ZN_STAGE_MINOR >= 9
/*
 * From v0.9 the reader is joinable and nothing counts references to the
 * message handler: the server joins every reader before it frees it.
 * Here nobody joins, so the reader detaches itself, and the handler
 * lives as long as the process (test_handler_done() keeps it reachable).
 */
static inline void test_on_exit(struct zn_conn *conn, void *data)
{
    (void)conn;
    (void)data;
#if ZN_STAGE_MINOR < 11
    pthread_detach(pthread_self());
#endif
}

/* volatile: a store the program never reads back would be optimized
 * away, and LeakSanitizer would then find the handler unreachable. */
static struct zn_msghandler *volatile test_kept_handler;

static inline void test_handler_done(struct zn_msghandler *handler)
{
    test_kept_handler = handler;
}
#else
/* The reader's last call: drop the handler reference test_conn_new()
 * took for it. */
static inline void test_on_exit(struct zn_conn *conn, void *data)
{
    (void)conn;
    zn_msghandler_release(data);
}

/* The caller is done with handler; readers may still hold it. */
static inline void test_handler_done(struct zn_msghandler *handler)
{
    zn_msghandler_release(handler);
}
#endif

static inline struct zn_conn *test_conn_new(int fd, uint32_t id,
                                            const struct sockaddr *addr,
                                            socklen_t addrlen,
                                            struct zn_msghandler *handler)
{
    static const struct zn_conn_ops ops = {
        .on_msg = test_on_msg,
        .on_exit = test_on_exit,
    };
    struct zn_conn *conn = zn__conn_new(fd, id, addr, addrlen, &ops, handler);

#if ZN_STAGE_MINOR < 9
    if (conn != NULL)
        zn_msghandler_hold(handler);
#endif
    return conn;
}
#endif

#if ZN_STAGE_MINOR >= 11
/* The program's one loop, run by a detached thread for as long as the
 * program; a static keeps it reachable for LeakSanitizer. */
static struct zn_loop *test_loop;
static pthread_once_t test_loop_once = PTHREAD_ONCE_INIT;

static void *test_loop_thread(void *arg)
{
    zn_loop_run(arg);
    return NULL;
}

static void test_loop_start(void)
{
    pthread_t tid;

    test_loop = zn_loop_new();
    if (test_loop != NULL &&
        pthread_create(&tid, NULL, test_loop_thread, test_loop) == 0)
        pthread_detach(tid);
}
#endif

/*
 * Start the connection: its reader thread until v1.0, the program's loop
 * from v1.1. Returns 0 or a negative errno, as zn__conn_start().
 */
static inline int test_conn_start(struct zn_conn *conn)
{
#if ZN_STAGE_MINOR >= 11
    pthread_once(&test_loop_once, test_loop_start);
    if (test_loop == NULL)
        return -ENOMEM;
    return zn__conn_start(conn, test_loop);
#else
    return zn__conn_start(conn);
#endif
}

#endif
