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

/* A new, empty table. Returns NULL with errno ENOMEM. */
struct zn_msghandler *zn_msghandler_new(void);

/* Free the table; the routers are the caller's. NULL is a no-op. */
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

#endif
