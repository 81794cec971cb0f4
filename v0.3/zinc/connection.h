/*
 * connection -- one client connection as an object.
 *
 * A zn_conn carries an id, its remote address, a closed flag and the router
 * that handles what the client sends. For every chunk it reads, the
 * connection's reader thread builds a request and hands it to the router.
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

/* The socket, for writing replies (Go: GetTCPConnection). */
int zn_conn_fd(const struct zn_conn *conn);

/* The connection id, unique per server, counting from 0. */
uint32_t zn_conn_id(const struct zn_conn *conn);

/* The peer as "IP:PORT"; valid as long as the connection. */
const char *zn_conn_remote_addr(const struct zn_conn *conn);

/* True once zn_conn_stop() has run. */
bool zn_conn_is_closed(const struct zn_conn *conn);

#endif
