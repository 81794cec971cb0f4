/*
 * msghandler -- message id -> router: one server, many kinds of message.
 *
 * Until v0.5 the server had one router for everything. The message handler
 * keeps a table from message id to router (Go: map[uint32]IRouter) and
 * sends each request to the router registered for its id.
 */
#ifndef ZN_MSGHANDLER_H
#define ZN_MSGHANDLER_H

#include <stdint.h>

#include "zinc/request.h"
#include "zinc/router.h"

struct zn_msghandler;

/*
 * A new, empty table, with one reference held by the caller. Returns NULL
 * with errno ENOMEM.
 */
struct zn_msghandler *zn_msghandler_new(void);

/*
 * Take one more reference to the table. The server takes one for every
 * connection's reader, which drops it when it ends: a detached reader may
 * still be finishing a message when the server that created the table is
 * freed at shutdown. NULL is a no-op.
 */
void zn_msghandler_hold(struct zn_msghandler *h);

/*
 * Drop a reference; the last one frees the table (the routers are the
 * caller's). Safe from any thread. NULL is a no-op.
 */
void zn_msghandler_release(struct zn_msghandler *h);

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

#endif
