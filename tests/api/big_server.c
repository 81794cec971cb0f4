/*
 * The demo server plus a router for large replies, to test clients that
 * read slowly or not at all (tests/test_slow_clients.py, v0.8+).
 *
 *     big_server [-c FILE]     default conf/zinc.json
 *
 * As the stage's demo/server.c (from v0.9 without its greeting, but with
 * its `conn N stopped` line): the configuration comes from FILE, the
 * library prints `listening on IP:PORT`, SIGINT or SIGTERM stops it with
 * exit status 0, and
 *
 *     msg id 0   -> reply id 0, "ping...ping...ping"
 *     msg id 1   -> reply id 1, "Hello Zinc Router " and the version
 *
 * and one more router:
 *
 *     msg id 10, body <u32 seq><u32 size> (little-endian, 8 bytes)
 *                -> reply id 10 with `size` bytes, byte i being
 *                   (seq * 31 + i) % 256, so the client can check every
 *                   byte and tell one reply from the next,
 *                -> then reply id 11 with the 4 bytes of seq.
 *
 * Two replies for one request: the second shows that the first, however
 * big, went out whole and in its place. A body that is not 8 bytes, or a
 * size above BIG_MAX, gets a log line and no reply.
 *
 * Built by tests/support/build.py's build_api() against the stage's
 * libzinc.a, so it cannot see ZN_VERSION (the stage's Makefile defines it
 * for the demo only): the hello reply takes the version from zn_global
 * instead.
 */
#include "zinc/config.h"
#include "zinc/connection.h"
#include "zinc/router.h"
#include "zinc/server.h"

#include "testserver.h"
#include "zn_frame.h"
#include "zn_log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BIG_MAX (64u << 20) /* the largest reply asked for: 64 MiB */

static void ping_handle(struct zn_router *r, struct zn_request *req)
{
    static const char pong[] = "ping...ping...ping";
    (void)r;

    zn_conn_send_msg(zn_request_conn(req), 0, pong, sizeof(pong) - 1);
}

static void hello_handle(struct zn_router *r, struct zn_request *req)
{
    char hello[64];
    int n = snprintf(hello, sizeof(hello), "Hello Zinc Router %s",
                     zn_global.version);
    (void)r;

    zn_conn_send_msg(zn_request_conn(req), 1, hello, (uint32_t)n);
}

/* msg id 10: `size` checkable bytes as id 10, then seq as id 11. */
static void big_handle(struct zn_router *r, struct zn_request *req)
{
    const unsigned char *body = (const unsigned char *)zn_request_data(req);
    struct zn_conn *conn = zn_request_conn(req);
    uint32_t seq, size;
    unsigned char *data;
    (void)r;

    if (zn_request_len(req) != 8) {
        zn_warn("conn %u: msg id 10 wants 8 bytes, got %u", zn_conn_id(conn),
                zn_request_len(req));
        return;
    }
    seq = zn_get_le32(body);
    size = zn_get_le32(body + 4);
    if (size > BIG_MAX) {
        zn_warn("conn %u: msg id 10: %u bytes is too big", zn_conn_id(conn),
                size);
        return;
    }
    data = malloc(size > 0 ? size : 1);
    if (data == NULL) {
        zn_error("conn %u: no memory for %u bytes", zn_conn_id(conn), size);
        return;
    }
    /* The pattern repeats every 256 bytes: write the first 256, then copy
     * what is written after itself, doubling. A few memcpy() calls instead
     * of a byte loop: under ThreadSanitizer, which checks every store, a
     * loop over 1 MiB would make this router, not the library, the slow
     * part of the test. */
    for (uint32_t i = 0; i < size && i < 256; i++)
        data[i] = (unsigned char)(seq * 31 + i);
    for (uint32_t done = 256; done < size; done *= 2)
        memcpy(data + done, data, size - done < done ? size - done : done);
    /* The send packs a copy: the buffer is ours to free right after. A
     * send that fails (the connection stopped) makes the second one fail
     * too, which is fine: nobody would read either. */
    zn_conn_send_msg(conn, 10, data, size);
    free(data);
    zn_conn_send_msg(conn, 11, body, 4);
}

#if ZN_STAGE_MINOR >= 9
/* The demo's on_conn_stop hook: from v0.9 `conn N stopped` comes from it. */
static void goodbye(struct zn_conn *conn, void *data)
{
    (void)data;
    zn_info("conn %u stopped", zn_conn_id(conn));
}
#endif

static const struct zn_router_ops ping_ops = {.handle = ping_handle};
static const struct zn_router_ops hello_ops = {.handle = hello_handle};
static const struct zn_router_ops big_ops = {.handle = big_handle};

/* Static, as in demo/server.c: a thread may still use a router for a
 * moment after main() returns. */
static struct zn_router ping = {.ops = &ping_ops};
static struct zn_router hello = {.ops = &hello_ops};
static struct zn_router big = {.ops = &big_ops};

/* The demo's routers, the big one, and from v0.9 its goodbye hook. */
static int setup(struct zn_server *s)
{
    if (zn_server_add_router(s, 0, &ping) < 0 ||
        zn_server_add_router(s, 1, &hello) < 0 ||
        zn_server_add_router(s, 10, &big) < 0)
        return -1;
#if ZN_STAGE_MINOR >= 9
    zn_server_set_on_conn_stop(s, goodbye, NULL);
#endif
    return 0;
}

int main(int argc, char **argv)
{
    return test_serve(argc, argv, setup);
}
