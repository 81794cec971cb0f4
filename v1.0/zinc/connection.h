/*
 * connection -- one client connection as an object.
 *
 * A zn_conn carries an id, its remote address, a closed flag and the
 * message handler that routes what the client sends. From v0.7 it has two
 * threads: the reader reads one TLV message at a time (datapack.h), builds
 * a request and submits it to the message handler, whose worker (v0.8)
 * picks the router for its id; replies go out with zn_conn_send_msg(),
 * which writes them at once when the socket has room and nothing else
 * waits, and otherwise queues them on the connection's outgoing channel
 * (chan.h) for the writer thread.
 *
 * Several threads now touch one connection, so it is reference counted:
 * the reader holds a reference, the writer holds one, and so may any other
 * thread that keeps the pointer (zn_conn_hold()). The last
 * zn_conn_release() closes the socket and frees the connection; nobody
 * frees it under a thread that may still use it. Every request waiting in
 * a worker's queue holds a reference too.
 *
 * A connection ends one of two ways. Gracefully, when the client closes
 * its side: every request already read is handled, every reply already
 * queued is written, then the socket closes. By abort, when a read or a
 * write fails, a message is too large or someone calls zn_conn_stop():
 * the socket is shut down both ways at once, queued replies are dropped,
 * and both threads wake up and end. Requests still waiting for a worker
 * count as read: a graceful end waits for them.
 *
 * From v1.0 a connection carries properties (Go: SetProperty and friends):
 * string keys, byte-string values, for the routers and hooks to remember
 * things about a client (a name, a session, what it asked for). Routers
 * run on workers and hooks on the reader, so the properties sit behind a
 * read-write lock, and no pointer into them ever leaves it: get hands out
 * a copy.
 */
#ifndef ZN_CONNECTION_H
#define ZN_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "zinc/msghandler.h"

struct zn_conn;
struct zn_server;

/*
 * Wrap the connected socket fd as connection `id` of `server`, peer
 * `addr`, served by the message handler `handler`, of which it holds a
 * reference until it is freed. Its outgoing channel holds MaxMsgChanLen
 * replies (config.h). The connection owns fd from now on, and the caller
 * holds the one reference. Returns NULL with errno set when out of memory
 * (fd is then still the caller's).
 *
 * The server's hooks run on the reader thread: on_conn_start before the
 * first message is read, on_conn_stop once the connection has ended and
 * before its socket is closed (server.h). A connection made without a
 * server (NULL, as tests do) has no hooks and nobody to join its reader.
 */
struct zn_conn *zn_conn_new(struct zn_server *server, int fd, uint32_t id,
                            const struct sockaddr *addr, socklen_t addrlen,
                            struct zn_msghandler *handler);

/*
 * Start the connection's reader thread, which starts its writer thread.
 * The caller's reference passes to the reader: the caller must not use
 * conn afterwards unless it took a reference of its own first. The reader
 * of a server's connection is joinable: when it ends it hands its
 * reference to the server (zn_server_conn_ended()), which joins it with
 * zn_conn_join() and then drops that reference. Without a server it is
 * detached. Returns 0, or a negative errno when no thread could be started
 * (the caller still holds its reference then and drops it with
 * zn_conn_release()).
 */
int zn_conn_start(struct zn_conn *conn);

/*
 * Wait for the reader thread of a server's connection to end. Only the
 * server calls it, once, after the reader handed the connection over.
 */
void zn_conn_join(struct zn_conn *conn);

/*
 * Stop the connection (abort): mark it closed, shut the socket down both
 * ways (which wakes the reader blocked in read() and the writer blocked in
 * write()), close the outgoing channel (which wakes the writer waiting for
 * a reply and any thread waiting for room in it), and log "conn N
 * closed". Replies still queued are dropped. Idempotent: only the first
 * call has an effect, so a router, the reader and the writer may all call
 * it. Safe from any thread that holds a reference.
 */
void zn_conn_stop(struct zn_conn *conn);

/*
 * Send one message: pack the header and len bytes of data into one
 * buffer. When no earlier reply waits for the writer, write it at once
 * without blocking; what the socket does not take is queued for the writer
 * thread, which writes it whole, in order. When MaxMsgChanLen replies
 * already wait, wait at most ZN_SEND_WAIT_MS (100 ms) for room, then stop
 * the connection as too slow (one WARN line) and return -ETIMEDOUT: a
 * worker serves many clients and must not wait for one that does not read.
 * (The reader reads no more requests while half the channel is taken, so
 * only a request answered with many replies can fill it. A client that
 * takes no byte of its replies for ZN_WRITE_TIMEOUT_MS, 500 ms, is stopped
 * by its writer as too slow.)
 * Returns 0 once written or queued, -EPIPE when the connection is closed
 * or its replies have ended, -ENOMEM or -EMSGSIZE when the message cannot
 * be packed, or the negative errno of a direct write that failed (the
 * connection is then stopped). A write by the writer that fails later
 * stops the connection and is logged. Safe from any thread that holds a
 * reference.
 */
int zn_conn_send_msg(struct zn_conn *conn, uint32_t id, const void *data,
                     uint32_t len);

/*
 * End the replies (graceful): no more messages can be sent, the writer
 * writes what is queued and ends. The worker that handles a connection's
 * last request calls it (msghandler.h).
 */
void zn_conn_end_replies(struct zn_conn *conn);

/*
 * One request of this connection has been handled, or dropped: the reader,
 * which counted it in flight before it submitted it, may read another.
 * Called by zn_request_free().
 */
void zn_conn_request_done(struct zn_conn *conn);

/* Take one more reference to conn, to use it from another thread. */
void zn_conn_hold(struct zn_conn *conn);

/*
 * Drop a reference. The last one frees the outgoing channel with the
 * replies still in it, closes the socket and frees the connection. NULL is
 * a no-op.
 */
void zn_conn_release(struct zn_conn *conn);

/*
 * The socket (Go: GetTCPConnection). Only zn_conn_send_msg() and the
 * writer thread write to it: a write of your own could land in the middle
 * of a queued reply.
 */
int zn_conn_fd(const struct zn_conn *conn);

/* The connection id, unique per server, counting from 0. */
uint32_t zn_conn_id(const struct zn_conn *conn);

/* The peer as "IP:PORT"; valid as long as the connection. */
const char *zn_conn_remote_addr(const struct zn_conn *conn);

/* True once zn_conn_stop() has run. */
bool zn_conn_is_closed(const struct zn_conn *conn);

/*
 * The limits on properties, per connection: they are set from what
 * clients send, and a client must not grow its connection without bound.
 */
#define ZN_MAX_PROPERTIES 64
#define ZN_MAX_PROPERTY_KEY 64 /* bytes, without the NUL */

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
int zn_conn_foreach_property(struct zn_conn *conn,
                             int (*fn)(const char *key, const void *value,
                                       size_t len, void *arg),
                             void *arg);

#endif
