/*
 * msghandler -- message id -> router: one server, many kinds of message.
 *
 * Until v0.5 the server had one router for everything. The message handler
 * keeps a table from message id to router (Go: map[uint32]IRouter) and
 * sends each request to the router registered for its id.
 *
 * From v0.8 it also runs the worker pool: WorkerPoolSize threads
 * (zn-worker-N). In v1.1 each worker is an event loop (loop.h) that owns
 * the connections conn_id % WorkerPoolSize for their whole life: it reads
 * their requests, runs the routers and writes the replies, all on its own
 * thread, so a request no longer travels from one thread to another. One
 * connection always lands on the same worker, so its requests are handled
 * in the order they arrived. WorkerPoolSize 0 means: no workers, the
 * server's own loop on the main thread does everything (redis).
 * MaxWorkerTaskLen is still read, and no longer used: there is no queue.
 */
#ifndef ZN_MSGHANDLER_H
#define ZN_MSGHANDLER_H

#include <stdint.h>

#include "zinc/loop.h"
#include "zinc/request.h"
#include "zinc/router.h"

struct zn_msghandler;

/* A new, empty table. Returns NULL with errno ENOMEM. */
struct zn_msghandler *zn_msghandler_new(void);

/*
 * Free the table (the routers are the caller's), once the workers have
 * been stopped and nothing submits any more: from v0.9 the server joins
 * every reader first. NULL is a no-op.
 */
void zn_msghandler_free(struct zn_msghandler *h);

/*
 * Register router for message id. Returns 0, -EEXIST when id already has a
 * router (the first one stays), or -ENOMEM. The router must outlive the
 * table. Not thread-safe: add every router before the server starts; after
 * that the table is only read, so readers need no lock.
 */
int zn_msghandler_add_router(struct zn_msghandler *h, uint32_t id,
                             struct zn_router *router);

/*
 * Run req through the router registered for its message id. An id with no
 * router is logged and dropped: the client gets no reply and its connection
 * stays open.
 */
void zn_msghandler_do(struct zn_msghandler *h, struct zn_request *req);

/*
 * Start WorkerPoolSize workers (config.h), each an event loop on its own
 * thread; none when WorkerPoolSize is 0. Call once, from the thread that
 * will call zn_msghandler_stop_workers(), before any connection is
 * started. Returns 0, or a negative errno when a loop or a thread could
 * not be had (those already started are stopped again).
 */
int zn_msghandler_start_workers(struct zn_msghandler *h);

/*
 * The loop of the worker that owns connection conn_id: worker conn_id %
 * WorkerPoolSize. NULL without workers: the caller's own loop serves
 * everyone then.
 */
struct zn_loop *zn_msghandler_loop(struct zn_msghandler *h, uint32_t conn_id);

/*
 * Handle msg, which arrived on conn, at once on the calling thread (the
 * connection's loop): wrap it in a request and run it through its router
 * (zn_msghandler_do()). msg is taken over in every case. Returns 0, or
 * -ENOMEM when no request could be made (msg is dropped).
 */
int zn_msghandler_submit(struct zn_msghandler *h, struct zn_conn *conn,
                         struct zn_msg *msg);

/*
 * Stop the workers: every loop is asked to stop, then joined. Call once
 * every connection has ended. Does nothing the second time.
 */
void zn_msghandler_stop_workers(struct zn_msghandler *h);

#endif
