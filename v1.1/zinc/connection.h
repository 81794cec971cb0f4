/*
 * connection -- one client connection as an object.
 *
 * A zn_conn carries an id, its remote address and a closed flag. In v1.1
 * it has no thread of its own: it belongs to one event loop (loop.h), a
 * worker's, for its whole life. When the loop's poller says its socket is
 * readable, it reads what has arrived into an input buffer, cuts out every
 * whole TLV message (datapack.h) and hands each to the code that made the
 * connection, through a callback, which routes it at once on the loop's
 * thread. Replies go out through the connection's writer (writer.h):
 * zn_conn_send_msg() writes a reply at once when the socket has room and
 * nothing else waits; otherwise it waits in the output queue, and the loop
 * writes it when the socket is writable again.
 *
 * The connection knows nothing of the server, the message handler or the
 * request type: it calls down (the socket, the message, the writer) and
 * reports up only through the callbacks it is given when it is made, each
 * passed the `data` pointer given with them, as libuv's handles do. So it
 * can be read, and tested, on its own.
 *
 * Other threads may still touch a connection (a router that keeps it, a
 * thread of the user's), so it is reference counted: its loop holds a
 * reference, and so may any other thread that keeps the pointer
 * (zn_conn_hold()). The last zn_conn_release() closes the socket and frees
 * the connection; nobody frees it under a thread that may still use it.
 *
 * A connection ends one of two ways. Gracefully, when the client closes
 * its side: every request already read has been handled, every reply
 * still waiting is written, then the socket is shut down. By abort, when
 * a read or a write fails, a message is too large, the client is too slow
 * or someone calls zn_conn_stop(): the socket is shut down both ways at
 * once and the replies waiting are dropped. Either way the loop then runs
 * on_conn_stop and lets the connection go.
 *
 * From v1.0 a connection carries properties (properties.h): string keys,
 * byte-string values, for the routers and hooks to remember things about
 * a client. Any thread that holds a reference may use them at once.
 */
#ifndef ZN_CONNECTION_H
#define ZN_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "zinc/properties.h"

struct zn_conn;

/*
 * Stop the connection (abort): mark it closed, shut the socket down both
 * ways, drop the replies still waiting, log "conn N closed", and have its
 * loop end it (at once on the loop's thread, or woken from another).
 * Idempotent: only the first call has an effect. Safe from any thread
 * that holds a reference.
 */
void zn_conn_stop(struct zn_conn *conn);

/*
 * Send one message: pack the header and len bytes of data into one buffer
 * and hand it to the writer (writer.h). On the connection's loop thread it
 * is written at once when nothing waits; from any other thread it is
 * queued and the loop is woken to write it: whole and in order either
 * way. A loop serves many clients and must not wait for one that does not
 * read: on a loop's thread the send never waits, and when
 * ZN_WRITER_LIMIT(MaxMsgChanLen) replies already wait, the connection is
 * stopped as too slow (one WARN line) and the send returns -ENOBUFS. On any
 * other thread it waits while MaxMsgChanLen replies wait, as in v1.0, at
 * most ZN_SEND_WAIT_MS, then stops the connection as too slow and returns
 * -ETIMEDOUT. Returns 0 once written or queued, -EPIPE when the
 * connection is closed or its replies have ended, -ENOMEM or -EMSGSIZE
 * when the message cannot be packed, or the negative errno of a write
 * that failed (the connection is then stopped). A later write that fails
 * stops the connection and is logged; the sender is not told. Safe from
 * any thread that holds a reference.
 */
int zn_conn_send_msg(struct zn_conn *conn, uint32_t id, const void *data,
                     uint32_t len);

/* Take one more reference to conn, to use it from another thread. */
void zn_conn_hold(struct zn_conn *conn);

/*
 * Drop a reference. The last one frees the output queue with the replies
 * still in it, closes the socket and frees the connection. NULL is a
 * no-op.
 */
void zn_conn_release(struct zn_conn *conn);

/*
 * The socket (Go: GetTCPConnection), non-blocking in v1.1. Only the writer
 * writes to it: a write of your own could land in the middle of a queued
 * reply.
 */
int zn_conn_fd(const struct zn_conn *conn);

/* The connection id, unique per server, counting from 0. */
uint32_t zn_conn_id(const struct zn_conn *conn);

/* The peer as "IP:PORT"; valid as long as the connection. */
const char *zn_conn_remote_addr(const struct zn_conn *conn);

/* True once zn_conn_stop() has run. */
bool zn_conn_is_closed(const struct zn_conn *conn);

/*
 * Set property key (a non-empty string of at most ZN_MAX_PROPERTY_KEY
 * bytes) to a copy of the len bytes at value (any bytes, NUL included),
 * replacing any value it had. Returns 0, -EINVAL for an empty or too long
 * key, -ENOSPC when the connection has ZN_MAX_PROPERTIES others already,
 * or -ENOMEM. Safe from any thread that holds a reference, even after the
 * connection ended: properties live until the last release, so
 * on_conn_stop can still read them.
 */
int zn_conn_set_property(struct zn_conn *conn, const char *key,
                         const void *value, size_t len);

/*
 * A copy of property key's value, which the caller frees with free(), with
 * its length in *len and a NUL after its last byte (not counted), so that
 * a text value can be used as a string. Returns NULL with errno ENOENT
 * when there is no such property, or ENOMEM.
 */
void *zn_conn_get_property(struct zn_conn *conn, const char *key, size_t *len);

/* Remove property key. Returns 0, or -ENOENT when there is none. */
int zn_conn_remove_property(struct zn_conn *conn, const char *key);

/*
 * Call fn(key, value, len, arg) for every property, in no particular
 * order, under the read lock: the pointers are valid only during the call,
 * and fn must not set or remove properties of this connection (that would
 * wait for the lock it is called under). Returns what the last fn
 * returned: non-zero stops the walk.
 */
int zn_conn_foreach_property(struct zn_conn *conn, zn_property_fn fn,
                             void *arg);

#endif
