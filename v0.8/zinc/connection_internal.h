/*
 * connection_internal -- what the framework does with a connection and a
 * user never does: make one, start its reader, and the callbacks through
 * which it reports to the code that made it (the server). Internal calls
 * are named zn__, as libuv's are uv__; a user's code includes connection.h
 * only.
 */
#ifndef ZN_CONNECTION_INTERNAL_H
#define ZN_CONNECTION_INTERNAL_H

#include "zinc/connection.h"
#include "zinc/message.h"

/*
 * What a connection reports to the code that made it. Both run on the
 * connection's reader thread.
 */
struct zn_conn_ops {
    /* A message arrived: handle it, now or later on another thread. It
     * takes msg over, and must call zn__conn_request_done() once it has
     * been handled or dropped. */
    void (*on_msg)(struct zn_conn *conn, struct zn_msg *msg, void *data);
    /* The reader is done: the last time data is used. The reader drops
     * its reference to the connection after this call. */
    void (*on_exit)(struct zn_conn *conn, void *data);
};

/*
 * Wrap the connected socket fd as connection `id`, peer `addr`, reporting
 * to ops (which must outlive it), each call passed `data`. Its outgoing
 * channel holds MaxMsgChanLen replies (config.h). The connection owns fd
 * from now on, and the caller holds the one reference. Returns NULL with
 * errno set when out of memory (fd is then still the caller's).
 */
struct zn_conn *zn__conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                             socklen_t addrlen, const struct zn_conn_ops *ops,
                             void *data);

/*
 * Start the connection's reader thread, which starts its writer thread.
 * The caller's reference passes to the reader: the caller must not use
 * conn afterwards unless it took a reference of its own first. Returns 0,
 * or a negative errno when no thread could be started (the caller still
 * holds its reference then and drops it with zn_conn_release()).
 */
int zn__conn_start(struct zn_conn *conn);

/*
 * One request that on_msg took over has been handled, or dropped: its
 * reply can no longer come, and the reader may read another.
 */
void zn__conn_request_done(struct zn_conn *conn);

#endif
