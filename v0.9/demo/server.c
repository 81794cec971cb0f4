/*
 * zinc demo server: two routers, chosen by message id, and two hooks.
 *
 *     build/server [-c FILE]     default conf/zinc.json
 *
 * Reads its configuration from FILE (config.h lists the keys), then listens
 * on Host:TcpPort; a configuration error exits with status 2.
 *
 *     msg id 0  -> reply id 0, "ping...ping...ping"
 *     msg id 1  -> reply id 1, "Hello Zinc Router " and the stage
 *     other ids -> a log line, no reply; the connection stays open
 *
 * Every new client first gets msg id 2, "DoConnection BEGIN..." (the
 * on_conn_start hook), and when it leaves, or the server stops, the log
 * says "conn N stopped" (the on_conn_stop hook), once per connection.
 *
 * A message longer than MaxPacketSize closes that client's connection.
 *
 * Ctrl-C (SIGINT) or SIGTERM stops it with exit status 0.
 */
#include "zinc/config.h"
#include "zinc/connection.h"
#include "zinc/router.h"
#include "zinc/server.h"

#include "zn_log.h"

#include <stdio.h>
#include <unistd.h>

/*
 * Log what arrived. Debug, not info: a line per request would let any
 * client fill the disk. Escaped: the bytes are the client's, and a newline
 * among them must not start a line of its own. At most 63 characters are
 * shown, and only when the line will be: escaping costs time per message.
 */
static void log_request(const char *router, struct zn_request *req)
{
    char text[64];

    if (zn_log_get_level() > ZN_LOG_DEBUG)
        return;
    zn_debug("%s: msg id %u, %u bytes: %s", router, zn_request_msg_id(req),
             zn_request_len(req),
             zn_log_escape(zn_request_data(req), zn_request_len(req), text,
                           sizeof(text)));
}

/*
 * Both routers override only handle; pre_handle and post_handle stay NULL
 * and so are the base router's, which do nothing.
 */
static void ping_handle(struct zn_router *r, struct zn_request *req)
{
    static const char pong[] = "ping...ping...ping";
    (void)r;

    log_request("ping router", req);
    zn_conn_send_msg(zn_request_conn(req), 0, pong, sizeof(pong) - 1);
}

static void hello_handle(struct zn_router *r, struct zn_request *req)
{
    static const char hello[] = "Hello Zinc Router " ZN_VERSION;
    (void)r;

    log_request("hello router", req);
    zn_conn_send_msg(zn_request_conn(req), 1, hello, sizeof(hello) - 1);
}

/* on_conn_start: greet the client before it sends anything. */
static void greet(struct zn_conn *conn, void *data)
{
    static const char hi[] = "DoConnection BEGIN...";
    (void)data;

    zn_conn_send_msg(conn, 2, hi, sizeof(hi) - 1);
}

/* on_conn_stop: say goodbye in the log. */
static void goodbye(struct zn_conn *conn, void *data)
{
    (void)data;
    zn_info("conn %u stopped", zn_conn_id(conn));
}

static const struct zn_router_ops ping_ops = {.handle = ping_handle};
static const struct zn_router_ops hello_ops = {.handle = hello_handle};

static struct zn_router ping = {.ops = &ping_ops};
static struct zn_router hello = {.ops = &hello_ops};

int main(int argc, char **argv)
{
    const char *path = ZN_CONFIG_PATH;
    struct zn_server *s;
    int opt, rc;

    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c')
            goto usage;
        path = optarg;
    }
    if (optind != argc)
        goto usage;
    if (zn_config_load(path) < 0)
        return 2;

    s = zn_server_new();
    if (s == NULL) {
        perror("zn_server_new");
        return 1;
    }
    if (zn_server_add_router(s, 0, &ping) < 0 ||
        zn_server_add_router(s, 1, &hello) < 0) {
        zn_server_free(s);
        return 1;
    }
    zn_server_set_on_conn_start(s, greet, NULL);
    zn_server_set_on_conn_stop(s, goodbye, NULL);
    rc = zn_server_serve(s);
    zn_server_free(s);
    return rc < 0 ? 1 : 0;
usage:
    fprintf(stderr, "usage: %s [-c FILE]   (default " ZN_CONFIG_PATH ")\n",
            argv[0]);
    return 2;
}
