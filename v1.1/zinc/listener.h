/*
 * listener -- the listening socket: bind a numeric address and listen,
 * then take the clients that wait, whatever accept() says.
 *
 * The server polls zn_listener_fd() beside its wake-up pipe and calls
 * zn_listener_accept() when it is readable; the listener hands every
 * accepted socket to the callback it is given. What it does when
 * descriptors run out, and which accept() errors concern one client only,
 * stays in here (redis keeps the same in anet.c), so the server reads as
 * what the server does with a client.
 */
#ifndef ZN_LISTENER_H
#define ZN_LISTENER_H

#include <stdint.h>
#include <sys/socket.h>

/*
 * How long the server waits, watching only its wake-up pipe, when accept()
 * cannot get what it needs (memory, a descriptor).
 */
#define ZN_ACCEPT_PAUSE_MS 100

struct zn_listener;

/*
 * A client was accepted from peer sa (len bytes). fd is a blocking socket,
 * the callee's from now on. data is zn_listener_accept()'s.
 */
typedef void (*zn_accept_fn)(int fd, const struct sockaddr *sa, socklen_t len,
                             void *data);

/*
 * Resolve ip:port (numeric only; port 0 lets the system choose), bind and
 * listen. name is used in log lines and must outlive the listener. Returns
 * NULL with errno set, the reason logged ("[name] cannot listen on ..."):
 * EINVAL when ip is not a numeric address, the errno of socket(), bind()
 * or listen() (EADDRINUSE, for instance), or ENOMEM.
 */
struct zn_listener *zn_listener_new(const char *name, const char *ip,
                                    uint16_t port);

/* The listening socket, for poll(): readable when a client waits. */
int zn_listener_fd(const struct zn_listener *l);

/* The port bound (the one the system chose for port 0). */
uint16_t zn_listener_port(const struct zn_listener *l);

/* The address bound, as "IP:PORT" ("[IP]:PORT" for IPv6). */
const char *zn_listener_addr(const struct zn_listener *l);

/*
 * Accept the clients waiting, a bounded batch, and hand each to fn.
 * Returns the timeout for the server's next poll(): -1 to wait for the
 * next client, or ZN_ACCEPT_PAUSE_MS when accept() must wait for memory or
 * descriptors (the server then polls without the listening socket). Out
 * of descriptors, clients are closed at once rather than left waiting.
 * One log line when accept() starts failing, one when it works again.
 */
int zn_listener_accept(struct zn_listener *l, zn_accept_fn fn, void *data);

/* Close the listening socket and free the listener. NULL is a no-op. */
void zn_listener_free(struct zn_listener *l);

#endif
