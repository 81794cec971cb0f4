/*
 * connection_internal -- what the framework does with a connection and a
 * user never does: make one, start it on an event loop, and the callbacks
 * through which it reports to the code that made it (the server).
 * Internal calls are named zn__, as libuv's are uv__; a user's code
 * includes connection.h only.
 */
#ifndef ZN_CONNECTION_INTERNAL_H
#define ZN_CONNECTION_INTERNAL_H

#include "zinc/connection.h"
#include "zinc/loop.h"
#include "zinc/message.h"

/*
 * What a connection reports to the code that made it. All run on the
 * connection's loop thread, in this order; on_start and on_stop may be
 * NULL.
 */
struct zn_conn_ops {
    /* Before the first message is read. It may send. */
    void (*on_start)(struct zn_conn *conn, void *data);
    /* A message arrived: handle it now, on this thread; the next one is
     * not read before this returns. It takes msg over. */
    void (*on_msg)(struct zn_conn *conn, struct zn_msg *msg, void *data);
    /* Once, when the connection has ended, whatever ended it; the socket
     * is still open, but no reply goes out any more. Not called when
     * on_start was not. */
    void (*on_stop)(struct zn_conn *conn, void *data);
    /* The connection is done with its loop: the last time data is used.
     * The loop drops its reference to the connection after this call. */
    void (*on_exit)(struct zn_conn *conn, void *data);
};

/*
 * Wrap the connected socket fd as connection `id`, peer `addr`, reporting
 * to ops (which must outlive it), each call passed `data`. Its output
 * queue makes the client wait at MaxMsgChanLen replies (config.h,
 * writer.h). The connection owns fd from now on, and makes it
 * non-blocking; the caller holds the one reference. Returns NULL with
 * errno set when out of memory (fd is then still the caller's).
 */
struct zn_conn *zn__conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                             socklen_t addrlen, const struct zn_conn_ops *ops,
                             void *data);

/*
 * Hand the connection to loop, which owns it from now on: it runs
 * on_start, then reads, handles and writes for it, until the end. From
 * the loop's own thread this happens at once; from another, through the
 * loop's inbox. The caller's reference passes to the loop: the caller
 * must not use conn afterwards unless it took a reference of its own
 * first. Returns 0, or -EPIPE when the loop has ended (the caller still
 * holds its reference then and drops it with zn_conn_release()).
 */
int zn__conn_start(struct zn_conn *conn, struct zn_loop *loop);

#endif
