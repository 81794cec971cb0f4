/*
 * connection -- one client connection as an object.
 *
 * v0.1 kept a bare socket in a thread. v0.2 wraps it in a zn_conn that
 * carries an id, its remote address, a closed flag and the function that
 * handles what the client sends. The server binds the handle function; the
 * connection's reader thread calls it for every chunk it reads.
 */
#ifndef ZN_CONNECTION_H
#define ZN_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct zn_conn;

/*
 * Handle len bytes that arrived on conn. Called on the connection's reader
 * thread; data is only valid during the call. Return 0 to go on reading, or
 * a negative errno to close the connection.
 */
typedef int (*zn_handle_fn)(struct zn_conn *conn, const char *data, size_t len);

/*
 * Wrap the connected socket fd as connection `id`, peer `addr`, bound to
 * `handle`. The connection owns fd from now on. Returns NULL with errno set
 * when out of memory (fd is then still the caller's).
 */
struct zn_conn *zn_conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                            socklen_t addrlen, zn_handle_fn handle);

/*
 * Start the connection's reader thread. From then on the reader thread owns
 * the connection: when the client leaves or zn_conn_stop() is called, it
 * closes the socket and frees the connection. Returns 0, or a negative errno
 * when no thread could be started (the caller still owns conn then and
 * releases it with zn_conn_free()).
 */
int zn_conn_start(struct zn_conn *conn);

/*
 * Stop the connection: mark it closed, shut the socket down (which wakes the
 * reader thread so it can clean up) and log "conn N stopped". Idempotent: only
 * the first call has an effect, so the handle function and the reader may both
 * call it.
 *
 * Who may call it: the reader thread frees the connection when it ends, so only
 * code that knows the reader is still inside its loop has a valid pointer: the
 * handle function while it runs (it runs on the reader thread), or the owner of
 * a connection that was never started. Another thread cannot know that; v0.7
 * counts references so that it can.
 */
void zn_conn_stop(struct zn_conn *conn);

/* Close the socket and free a connection that was never started. */
void zn_conn_free(struct zn_conn *conn);

/* The socket, for writing replies (Go: GetTCPConnection). */
int zn_conn_fd(const struct zn_conn *conn);

/* The connection id, unique per server, counting from 0. */
uint32_t zn_conn_id(const struct zn_conn *conn);

/* The peer as "IP:PORT"; valid as long as the connection. */
const char *zn_conn_remote_addr(const struct zn_conn *conn);

/* True once zn_conn_stop() has run. */
bool zn_conn_is_closed(const struct zn_conn *conn);

#endif
