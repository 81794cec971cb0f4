/*
 * Exercise v0.3-3 (docs/v0.3-router.md, "Exercises"): the framework runs
 * handle and post_handle only while the request's connection is open.
 * Built against the stage's build/libzinc.a and run, like the demo, as
 * `ex_v0_3_3 [PORT]` by tests/exercises/test_ex_v0_3.py.
 *
 * Its router's pre_handle stops the connection when a chunk starts with
 * "quit", and otherwise writes "ok\n". handle and post_handle do not look
 * at the connection: they only log "conn N: handle ran" and
 * "conn N: post_handle ran", so the log shows every call the framework
 * makes.
 */
#include "zinc/connection.h"
#include "zinc/router.h"
#include "zinc/server.h"

#include "zn_addr.h"
#include "zn_io.h"
#include "zn_log.h"

#include <stdio.h>
#include <string.h>

static void quit_pre_handle(struct zn_router *r, struct zn_request *req)
{
    struct zn_conn *conn = zn_request_conn(req);

    (void)r;
    if (zn_request_len(req) >= 4 &&
        memcmp(zn_request_data(req), "quit", 4) == 0)
        zn_conn_stop(conn);
    else if (zn_writen(zn_conn_fd(conn), "ok\n", 3) < 0)
        zn_conn_stop(conn);
}

static void log_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    zn_info("conn %u: handle ran", zn_conn_id(zn_request_conn(req)));
}

static void log_post_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    zn_info("conn %u: post_handle ran", zn_conn_id(zn_request_conn(req)));
}

static const struct zn_router_ops quit_ops = {
    .pre_handle = quit_pre_handle,
    .handle = log_handle,
    .post_handle = log_post_handle,
};

static struct zn_router quit_router = {.ops = &quit_ops};

int main(int argc, char **argv)
{
    struct zn_server *s;
    uint16_t port = 8999;
    int rc;

    if (argc > 2 || (argc == 2 && zn_addr_parse_port(argv[1], &port) < 0)) {
        fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
        return 2;
    }
    s = zn_server_new("ex_v0_3_3", "127.0.0.1", port);
    if (s == NULL) {
        perror("zn_server_new");
        return 1;
    }
    zn_server_add_router(s, &quit_router);
    rc = zn_server_serve(s);
    zn_server_free(s);
    return rc < 0 ? 1 : 0;
}
