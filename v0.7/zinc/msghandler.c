#include "zinc/msghandler.h"

#include "zinc/connection.h"

#include "zn_log.h"
#include "zn_map.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

struct zn_msghandler {
    atomic_int refs; /* the server's and one per running reader */
    struct zn_map *apis; /* uint32_t msg id -> struct zn_router * */
};

struct zn_msghandler *zn_msghandler_new(void)
{
    struct zn_msghandler *h = malloc(sizeof(*h));

    if (h == NULL)
        return NULL;
    atomic_init(&h->refs, 1);
    h->apis = zn_map_new();
    if (h->apis == NULL) {
        free(h);
        errno = ENOMEM;
        return NULL;
    }
    return h;
}

void zn_msghandler_hold(struct zn_msghandler *h)
{
    if (h != NULL)
        atomic_fetch_add(&h->refs, 1);
}

void zn_msghandler_release(struct zn_msghandler *h)
{
    /*
     * The atomic decrement also orders memory: whatever a reader thread did
     * with the table happens before the free by whoever drops the last
     * reference.
     */
    if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    zn_map_free(h->apis, NULL); /* the routers are not ours */
    free(h);
}

int zn_msghandler_add_router(struct zn_msghandler *h, uint32_t id,
                             struct zn_router *router)
{
    int rc = zn_map_add_u32(h->apis, id, router);

    if (rc == -EEXIST)
        zn_error("msg id %u already has a router", id);
    else if (rc == 0)
        zn_info("router added for msg id %u", id);
    return rc;
}

void zn_msghandler_do(struct zn_msghandler *h, struct zn_request *req)
{
    uint32_t id = zn_request_msg_id(req);
    struct zn_router *router = zn_map_get_u32(h->apis, id);

    if (router == NULL) {
        zn_warn("conn %u: no router for msg id %u, message dropped",
                zn_conn_id(zn_request_conn(req)), id);
        return;
    }
    zn_router_dispatch(router, req);
}
