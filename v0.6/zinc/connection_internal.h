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
    /* A message arrived: handle it. msg is valid during the call only. */
    void (*on_msg)(struct zn_conn *conn, struct zn_msg *msg, void *data);
    /* The reader is done and frees the connection after this call: the
     * last time data is used. */
    void (*on_exit)(struct zn_conn *conn, void *data);
};

/*
 * Wrap the connected socket fd as connection `id`, peer `addr`, reporting
 * to ops (which must outlive it), each call passed `data`. The connection
 * owns fd from now on. Returns NULL with errno set when out of memory (fd
 * is then still the caller's).
 */
struct zn_conn *zn__conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                             socklen_t addrlen, const struct zn_conn_ops *ops,
                             void *data);

/*
 * Start the connection's reader thread. From then on the reader thread owns
 * the connection: when the client leaves or zn_conn_stop() is called, it
 * calls on_exit, closes the socket and frees the connection. Returns 0, or
 * a negative errno when no thread could be started (the caller still owns
 * conn then and releases it with zn__conn_free()).
 */
int zn__conn_start(struct zn_conn *conn);

/* Close the socket and free a connection that was never started. */
void zn__conn_free(struct zn_conn *conn);

#endif
