/*
 * msghandler -- message id -> router: one server, many kinds of message.
 *
 * Until v0.5 the server had one router for everything. The message handler
 * keeps a table from message id to router (Go: map[uint32]IRouter) and
 * sends each request to the router registered for its id.
 *
 * From v0.8 it also runs the worker pool: WorkerPoolSize threads
 * (zn-worker-N), each with its own queue, a zn_chan of MaxWorkerTaskLen
 * requests. A reader no longer runs the routers itself: it submits each
 * request to worker conn_id % WorkerPoolSize and reads on. One connection
 * always lands on the same worker, so its requests are handled in the
 * order they arrived. zinx starts a goroutine per message when it has no
 * pool; a thread per message would cost C tens of microseconds and a
 * stack each, so WorkerPoolSize 0 means: the reader handles every request
 * itself, as in v0.7.
 */
#ifndef ZN_MSGHANDLER_H
#define ZN_MSGHANDLER_H

#include <stdint.h>

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
 * Start WorkerPoolSize workers (config.h), each with a queue of
 * MaxWorkerTaskLen requests; none when WorkerPoolSize is 0. Call once,
 * from the thread that will call zn_msghandler_stop_workers(), before any
 * request is submitted. Returns 0, or a negative errno when a queue or a
 * thread could not be had (those already started are stopped again).
 */
int zn_msghandler_start_workers(struct zn_msghandler *h);

/*
 * Hand over msg, which arrived on conn (Go: SendMsgToTaskQueue): wrap it
 * in a request, which holds a reference to conn, and queue it for worker
 * conn_id % WorkerPoolSize, waiting while that worker's queue is full (the
 * reader that submits stops reading its client: backpressure on that
 * client only). Without workers, handle it at once on the calling thread.
 * A request whose connection has been stopped is dropped unhandled.
 * Either way, once it has been handled or dropped, the request is freed
 * and the connection told (zn__conn_request_done()).
 *
 * msg is taken over in every case. Returns 0, -EPIPE when the workers
 * have been stopped, or -ENOMEM; the connection has then been told too.
 */
int zn_msghandler_submit(struct zn_msghandler *h, struct zn_conn *conn,
                         struct zn_msg *msg);

/*
 * Stop the workers: close their queues, let each empty its own, stopping
 * (aborting) the connections of the requests it finds there instead of
 * handling them, and join them. Later submits fail with -EPIPE. Without
 * workers, readers that still handle a request from then on stop its
 * connection instead. Does nothing the second time.
 */
void zn_msghandler_stop_workers(struct zn_msghandler *h);

#endif
