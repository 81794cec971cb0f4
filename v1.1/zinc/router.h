/*
 * router -- what the server does with a request, as an interface.
 *
 * Go's IRouter interface becomes an ops struct: a table of function
 * pointers. A router is a pointer to its ops plus a `data` slot for the
 * user's context:
 *
 *     static void ping(struct zn_router *r, struct zn_request *req) { ... }
 *     static const struct zn_router_ops ping_ops = { .handle = ping };
 *     static struct zn_router ping_router = { .ops = &ping_ops };
 *
 * Every request goes through pre_handle, handle and post_handle, in that
 * order (the template method). Go gets defaults by embedding BaseRouter; C
 * has no embedding, so a slot left NULL in the ops means "the base router's
 * default", which does nothing. A router overrides only what it needs.
 *
 * A router that needs more state than `data` embeds struct zn_router as its
 * first member and gets back to itself with zn_container_of().
 */
#ifndef ZN_ROUTER_H
#define ZN_ROUTER_H

#include <stddef.h>

#include "zinc/request.h"

/*
 * From a pointer to a member back to the struct that contains it. Prefixed
 * like every public zinc name: Linux and other libraries define their own
 * container_of, and two definitions in one file would clash.
 */
/* clang-format off */
#define zn_container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

struct zn_router;

/* One step of handling a request. */
typedef void (*zn_router_fn)(struct zn_router *router, struct zn_request *req);

struct zn_router_ops {
    zn_router_fn pre_handle; /* before handle; NULL: nothing */
    zn_router_fn handle; /* the work itself; NULL: nothing */
    zn_router_fn post_handle; /* after handle; NULL: nothing */
};

struct zn_router {
    const struct zn_router_ops *ops; /* the methods */
    void *data; /* user context, free for any use */
};

/* The base router: three steps that do nothing (Go's BaseRouter). */
extern const struct zn_router_ops zn_base_router_ops;

/*
 * Run req through router: pre_handle, handle, post_handle, each taken from
 * router->ops or, when NULL there, from zn_base_router_ops. Called on the
 * connection's loop thread: a worker, or the main thread when
 * WorkerPoolSize is 0. A router that blocks stalls every connection of
 * that loop.
 */
void zn_router_dispatch(struct zn_router *router, struct zn_request *req);

#endif
