/*
 * Registering a second router for a message id is an error the caller gets
 * back (-EEXIST), not a crash, and the first router stays registered: a
 * message with that id still goes to the first router.
 * Built by tests/test_routing_by_id.py against a stage's build/libzinc.a.
 */
#include "zinc/msghandler.h"
#include "zinc/server.h"
#if ZN_STAGE_MINOR >= 8
#include "zinc/request_internal.h"
#endif

#include <errno.h>
#include <stdio.h>

static int handled_by; /* which router's handle ran: 1 or 2 */

/* A router with a known id never touches req->conn: NULL is fine here. */
static void first_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    (void)req;
    handled_by = 1;
}

static void second_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    (void)req;
    handled_by = 2;
}

int main(void)
{
    static const struct zn_router_ops first_ops = {.handle = first_handle};
    static const struct zn_router_ops second_ops = {.handle = second_handle};
    struct zn_router first = {.ops = &first_ops}, second = {.ops = &second_ops};
    struct zn_server *s = zn_server_new();
    struct zn_msghandler *h = zn_msghandler_new();
#if ZN_STAGE_MINOR >= 8
    /* From v0.8 a request lives on the heap and its struct is opaque. */
    struct zn_request *req = zn__request_new(NULL, zn_msg_new(7, "x", 1));
#else
    struct zn_request stack_req = {.conn = NULL, .msg = zn_msg_new(7, "x", 1)};
    struct zn_request *req = stack_req.msg != NULL ? &stack_req : NULL;
#endif
    int a, b, c, d, e;

    if (s == NULL || h == NULL || req == NULL)
        return 1;
    a = zn_server_add_router(s, 7, &first);
    b = zn_server_add_router(s, 7, &second);
    c = zn_server_add_router(s, 8, &second);
    printf("server: first %d, second %d, other id %d\n", a, b, c);
    zn_server_free(s);

    d = zn_msghandler_add_router(h, 7, &first);
    e = zn_msghandler_add_router(h, 7, &second);
    zn_msghandler_do(h, req);
    printf("handler: first %d, second %d, msg id 7 handled by router %d\n", d,
           e, handled_by);
#if ZN_STAGE_MINOR >= 8
    zn__request_free(req);
#else
    zn_msg_free(stack_req.msg);
#endif
#if ZN_STAGE_MINOR >= 9
    zn_msghandler_free(h); /* no references from v0.9 */
#else
    zn_msghandler_release(h);
#endif
    if (a != 0 || b != -EEXIST || c != 0)
        return 1; /* zn_server_add_router */
    if (d != 0 || e != -EEXIST || handled_by != 1)
        return 1; /* zn_msghandler_add_router */
    return 0;
}
