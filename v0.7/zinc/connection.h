/*
 * connection -- one client connection as an object.
 *
 * A zn_conn carries an id, its remote address and a closed flag. The
 * connection's reader thread reads one TLV message at a time (datapack.h)
 * and hands it to the code that made the connection, through a callback;
 * the server's callback gives it to the message handler, which picks the
 * router for its id. From v0.7 replies go out through the connection's
 * writer (writer.h): zn_conn_send_msg() writes a reply at once when the
 * socket has room and nothing else waits, and otherwise queues it on the
 * outgoing channel for the writer thread.
 *
 * The connection knows nothing of the server, the message handler or the
 * request type: it calls down (the socket, the message, the writer) and
 * reports up only through the callbacks it is given when it is made, each
 * passed the `data` pointer given with them, as libuv's handles do. So it
 * can be read, and tested, on its own.
 *
 * Several threads now touch one connection, so it is reference counted: the
 * reader holds a reference, and so may any other thread that keeps the
 * pointer (zn_conn_hold()); the reader joins the writer thread before it
 * drops its own. The last zn_conn_release() closes the socket and frees the
 * connection; nobody frees it under a thread that may still use it.
 *
 * A connection ends one of two ways. Gracefully, when the client closes
 * its side: every request already read is handled, every reply already
 * queued is written, then the socket closes. By abort, when a read or a
 * write fails, a message is too large or someone calls zn_conn_stop():
 * the socket is shut down both ways at once, queued replies are dropped,
 * and both threads wake up and end.
 */
#ifndef ZN_CONNECTION_H
#define ZN_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct zn_conn;

/*
 * Stop the connection (abort): mark it closed, shut the socket down both
 * ways (which wakes the reader blocked in read() and the writer blocked in
 * write()), abort the writer (which wakes its thread waiting for a reply
 * and any thread waiting for room in the channel), and log "conn N
 * stopped". Replies still queued are dropped. Idempotent: only the first
 * call has an effect, so a router, the reader and the writer may all call
 * it. Safe from any thread that holds a reference.
 */
void zn_conn_stop(struct zn_conn *conn);

/*
 * Send one message: pack the header and len bytes of data into one buffer
 * and hand it to the writer (writer.h), which writes it at once or queues
 * it, whole and in order. Waits while MaxMsgChanLen replies are already
 * queued (a client that does not read its replies slows down only the
 * thread that sends to it). Returns 0 once written or queued, -EPIPE when
 * the connection is closed or its replies have ended, -ENOMEM or
 * -EMSGSIZE when the message cannot be packed, or the negative errno of a
 * direct write that failed (the connection is then stopped). A write by
 * the writer thread that fails later stops the connection and is logged;
 * the sender is not told. Safe from any thread that holds a reference.
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

#endif
