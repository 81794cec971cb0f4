/*
 * server -- the zinc server: resolve an address, listen, accept clients.
 *
 * The main thread accepts; every client becomes a zn_conn (connection.h)
 * served by one of the workers' event loops (msghandler.h, loop.h), and
 * every connection hands each message it reads to the router added for
 * that message's id with zn_server_add_router(). No thread belongs to a
 * connection: the server runs WorkerPoolSize + 1 threads, however many
 * clients it has.
 *
 * From v0.9 the server keeps its connections in a manager (connmgr.h),
 * turns away clients over MaxConn, runs the on_conn_start and
 * on_conn_stop hooks, and stops with clients connected: every connection
 * closed, every hook run once, every thread joined.
 */
#ifndef ZN_SERVER_H
#define ZN_SERVER_H

#include <stdint.h>

#include "zinc/router.h"

struct zn_conn;
struct zn_server;

/*
 * A connection hook: called with the connection and the data pointer
 * given when it was set (libuv style: C has no closures).
 */
typedef void (*zn_conn_hook)(struct zn_conn *conn, void *data);

/*
 * Create a server from the global configuration (config.h): it will listen
 * on Host:TcpPort (port 0 lets the system choose) and call itself Name in
 * log lines. Nothing is opened yet. Returns NULL with errno set when out of
 * memory. Free with zn_server_free().
 */
struct zn_server *zn_server_new(void);

/*
 * Route messages with id `msg_id` to `router`. Returns 0, -EEXIST when that
 * id already has a router (the first one stays), or -ENOMEM. The server
 * does not own the router; it must outlive every connection (a static
 * object does). Call before zn_server_serve().
 */
int zn_server_add_router(struct zn_server *s, uint32_t msg_id,
                         struct zn_router *router);

/*
 * Set the hook run on every new connection's loop thread before it reads
 * the first message (Go: SetOnConnStart), or NULL for none. It may send
 * (zn_conn_send_msg()): nothing else can have been sent yet. Call before
 * zn_server_serve().
 */
void zn_server_set_on_conn_start(struct zn_server *s, zn_conn_hook hook,
                                 void *data);

/*
 * Set the hook run exactly once for every connection whose on_conn_start
 * ran, on its loop thread, once it has ended, whatever ended it (the
 * client left, an error, a router's zn_conn_stop(), the server stopping),
 * before its socket is closed (Go: SetOnConnStop), or NULL for none. The
 * connection can still be read, but no reply will go out any more. Call
 * before zn_server_serve().
 */
void zn_server_set_on_conn_stop(struct zn_server *s, zn_conn_hook hook,
                                void *data);

/*
 * Resolve the address, bind and listen, then log the server's Name and Version
 * and "listening on IP:PORT" with the port actually bound, whatever the log
 * level. Returns 0 or a negative errno (the reason is logged too), for instance
 * -EADDRINUSE.
 */
int zn_server_start(struct zn_server *s);

/*
 * Ask a serving server to stop. Safe from any thread and from a signal
 * handler: it only writes one byte to the server's wake-up pipe.
 */
void zn_server_stop(struct zn_server *s);

/*
 * Start the server, then accept clients until SIGINT, SIGTERM or
 * zn_server_stop(). This is Go's `select {}`: the calling thread stays here,
 * running the main loop, which accepts (and, with WorkerPoolSize 0, serves
 * every connection too). Meanwhile it admits at most MaxConn connections
 * at a time. Then it stops: it closes the listening socket, stops every
 * connection, waits until every on_conn_stop has run, and stops and joins
 * every worker. Returns 0 after a clean stop, or a negative errno: that of
 * zn_server_start(), or of the poller if the main loop fails.
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
