/*
 * server -- the zinc server: resolve an address, listen, accept clients.
 *
 * v0.1 is the whole framework in two modules: the listener (listener.h)
 * takes clients off the listening socket, and the server gives each one a
 * thread of its own that echoes back whatever it reads. The main thread
 * accepts.
 */
#ifndef ZN_SERVER_H
#define ZN_SERVER_H

#include <stdint.h>

struct zn_server;

/*
 * Create a server that will listen on ip:port (port 0 lets the system
 * choose). Nothing is opened yet. `name` is used in log lines. Returns NULL
 * with errno set when out of memory. Free with zn_server_free().
 */
struct zn_server *zn_server_new(const char *name, const char *ip,
                                uint16_t port);

/*
 * Resolve the address, bind and listen, then log "listening on IP:PORT" with
 * the port actually bound, whatever the log level. Returns 0 or a negative
 * errno (the reason is logged too), for instance -EADDRINUSE.
 */
int zn_server_start(struct zn_server *s);

/*
 * Ask a serving server to stop. Safe from any thread and from a signal
 * handler: it only writes one byte to the server's wake-up pipe.
 */
void zn_server_stop(struct zn_server *s);

/*
 * Start the server, then accept clients until SIGINT, SIGTERM or
 * zn_server_stop(). This is Go's `select {}`: the calling thread stays here.
 * Returns 0 after a clean stop, or a negative errno: that of
 * zn_server_start(), or of poll() if the loop fails.
 *
 * Signals: call it from the main thread. It installs handlers for SIGINT
 * and SIGTERM before the "listening on" line, and every thread the server
 * starts blocks both, so they always reach this thread's loop. The
 * handlers stay installed after it returns (doing nothing once the server
 * is freed), so a second Ctrl-C cannot kill the process half-way through
 * its clean-up. One server per process may serve at a time.
 */
int zn_server_serve(struct zn_server *s);

/* The port the server is bound to (useful with port 0), 0 before start. */
uint16_t zn_server_port(const struct zn_server *s);

/* Close the listening socket and free the server. NULL is a no-op. */
void zn_server_free(struct zn_server *s);

#endif
