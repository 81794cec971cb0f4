#include "zinc/router.h"

/* The base router's steps: deliberately empty. */
static void base_step(struct zn_router *router, struct zn_request *req)
{
    (void)router;
    (void)req;
}

const struct zn_router_ops zn_base_router_ops = {
    .pre_handle = base_step,
    .handle = base_step,
    .post_handle = base_step,
};

void zn_router_dispatch(struct zn_router *router, struct zn_request *req)
{
    const struct zn_router_ops *ops = router->ops;
    const struct zn_router_ops *base = &zn_base_router_ops;

    (ops->pre_handle ? ops->pre_handle : base->pre_handle)(router, req);
    (ops->handle ? ops->handle : base->handle)(router, req);
    (ops->post_handle ? ops->post_handle : base->post_handle)(router, req);
}
