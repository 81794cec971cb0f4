/*
 * connection -- one client connection as an object.
 *
 * A zn_conn carries an id, its remote address and a closed flag. The
 * connection's reader thread reads one TLV message at a time (datapack.h)
 * and hands it to the code that made the connection, through a callback;
 * the server's callback submits it to the message handler, whose worker
 * (v0.8) picks the router for its id. From v0.7 replies go out through the
 * connection's writer (writer.h): zn_conn_send_msg() writes a reply at once
 * when the socket has room and nothing else waits, and otherwise queues it
 * on the outgoing channel for the writer thread.
 *
 * The connection knows nothing of the server, the message handler or the
 * request type: it calls down (the socket, the message, the writer) and
 * reports up only through the callbacks it is given when it is made, each
 * passed the `data` pointer given with them, as libuv's handles do. So it
 * can be read, and tested, on its own.
 *
 * Several threads now touch one connection, so it is reference counted: the
 * reader holds a reference, and so may any other thread that keeps the
 * pointer (zn_conn_hold()), such as a request waiting in a worker's queue;
 * the reader joins the writer thread before it drops its own. The last
 * zn_conn_release() closes the socket and frees the connection; nobody
 * frees it under a thread that may still use it.
 *
 * A connection ends one of two ways. Gracefully, when the client closes
 * its side: every request already read is handled, every reply already
 * queued is written, then the socket closes. By abort, when a read or a
 * write fails, a message is too large or someone calls zn_conn_stop():
 * the socket is shut down both ways at once, queued replies are dropped,
 * and both threads wake up and end. Requests still waiting for a worker
 * count as read: a graceful end waits for them.
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
 * ways (which wakes the reader blocked in read() and the writer blocked in
 * write()), abort the writer (which wakes its thread waiting for a reply
 * and any thread waiting for room in the channel), and log "conn N
 * closed". Replies still queued are dropped. Idempotent: only the first
 * call has an effect, so a router, the reader and the writer may all call
 * it. Safe from any thread that holds a reference.
 */
void zn_conn_stop(struct zn_conn *conn);

/*
 * Send one message: pack the header and len bytes of data into one buffer
 * and hand it to the writer (writer.h), which writes it at once or queues
 * it, whole and in order. A worker serves many clients and must not wait
 * for one that does not read: when MaxMsgChanLen replies already wait,
 * the send waits at most ZN_SEND_WAIT_MS, then stops the connection as too
 * slow (one WARN line) and returns -ETIMEDOUT (writer.h says how rarely
 * that can happen). Returns 0 once written or queued, -EPIPE when the
 * connection is closed or its replies have ended, -ENOMEM or -EMSGSIZE
 * when the message cannot be packed, or the negative errno of a direct
 * write that failed (the connection is then stopped). A write by the
 * writer thread that fails later stops the connection and is logged; the
 * sender is not told. Safe from any thread that holds a reference.
 */
int zn_conn_send_msg(struct zn_conn *conn, uint32_t id, const void *data,
                     uint32_t len);

/* Take one more reference to conn, to use it from another thread. */
void zn_conn_hold(struct zn_conn *conn);

/*
 * Drop a reference. The last one frees the outgoing channel with the
 * replies still in it, closes the socket and frees the connection. NULL is
 * a no-op.
 */
void zn_conn_release(struct zn_conn *conn);

/*
 * The socket (Go: GetTCPConnection). Only the writer writes to it: a
 * write of your own could land in the middle of a queued reply.
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
