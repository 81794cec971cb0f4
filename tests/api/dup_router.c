/*
 * Registering a second router for a message id is an error the caller gets
 * back (-EEXIST), not a crash, and the first router stays registered.
 * Built by tests/test_routing.py against a stage's build/libzinc.a.
 */
#include "zinc/server.h"

#include <errno.h>
#include <stdio.h>

int main(void)
{
    static const struct zn_router_ops ops = {0};
    struct zn_router first = {.ops = &ops}, second = {.ops = &ops};
    struct zn_server *s = zn_server_new();
    int a, b, c;

    if (s == NULL)
        return 1;
    a = zn_server_add_router(s, 7, &first);
    b = zn_server_add_router(s, 7, &second);
    c = zn_server_add_router(s, 8, &second);
    printf("first %d, second %d, other id %d\n", a, b, c);
    zn_server_free(s);
    return a == 0 && b == -EEXIST && c == 0 ? 0 : 1;
}
