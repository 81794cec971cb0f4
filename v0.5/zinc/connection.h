/*
 * connection -- one client connection as an object.
 *
 * A zn_conn carries an id, its remote address, a closed flag and the router
 * that handles what the client sends. The connection's reader thread reads
 * one TLV message at a time (datapack.h), builds a request and hands it to
 * the router; replies go out with zn_conn_send_msg().
 */
#ifndef ZN_CONNECTION_H
#define ZN_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "zinc/router.h"

struct zn_conn;

/*
 * Stop the connection: mark it closed, shut the socket down (which wakes
 * the reader thread so it can clean up) and log "conn N stopped".
 * Idempotent: only the first call has an effect, so a router and the
 * reader may both call it.
 *
 * Who may call it: the reader thread frees the connection when it ends, so only
 * code that knows the reader is still inside its loop has a valid pointer: a
 * router while it handles a request (it runs on the reader thread), or the
 * owner of a connection that was never started. Another thread cannot know
 * that; v0.7 counts references so that it can.
 */
void zn_conn_stop(struct zn_conn *conn);

/*
 * Send one message: the header and len bytes of data, packed into one
 * buffer and written whole. A lock keeps two messages from interleaving on
 * the socket when several threads send at once, but the pointer must be
 * valid: the same callers as zn_conn_stop(). Returns 0, -EPIPE when the
 * connection is closed, -ENOMEM or -EMSGSIZE when the message cannot be
 * packed, or the negative errno of the write (the connection is then
 * stopped).
 */
int zn_conn_send_msg(struct zn_conn *conn, uint32_t id, const void *data,
                     uint32_t len);

/* The socket, for writing replies (Go: GetTCPConnection). */
int zn_conn_fd(const struct zn_conn *conn);

/* The connection id, unique per server, counting from 0. */
uint32_t zn_conn_id(const struct zn_conn *conn);

/* The peer as "IP:PORT"; valid as long as the connection. */
const char *zn_conn_remote_addr(const struct zn_conn *conn);

/* True once zn_conn_stop() has run. */
bool zn_conn_is_closed(const struct zn_conn *conn);

#endif
