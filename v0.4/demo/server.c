/*
 * zinc demo server: a ping router.
 *
 *     build/server [-c FILE]     default conf/zinc.json
 *
 * Reads its configuration from FILE (config.h lists the keys), then listens
 * on Host:TcpPort; a configuration error exits with status 2. For every
 * chunk a client sends, the ping router's three steps each write one line
 * back:
 *
 *     before ping
 *     ping...ping...ping
 *     after ping
 *
 * Ctrl-C (SIGINT) or SIGTERM stops it with exit status 0.
 */
#include "zinc/config.h"
#include "zinc/connection.h"
#include "zinc/router.h"
#include "zinc/server.h"

#include "zn_io.h"
#include "zn_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Write one line to the request's client; on failure, drop the client. */
static void reply(struct zn_request *req, const char *line)
{
    struct zn_conn *conn = zn_request_conn(req);

    if (zn_conn_is_closed(conn))
        return; /* an earlier step already failed to write */
    if (zn_writen(zn_conn_fd(conn), line, strlen(line)) < 0) {
        zn_warn("conn %u: write: %s", zn_conn_id(conn), zn_strerror(errno));
        zn_conn_stop(conn);
    }
}

static void ping_pre_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    reply(req, "before ping\n");
}

static void ping_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    reply(req, "ping...ping...ping\n");
}

static void ping_post_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    reply(req, "after ping\n");
}

static const struct zn_router_ops ping_ops = {
    .pre_handle = ping_pre_handle,
    .handle = ping_handle,
    .post_handle = ping_post_handle,
};

/*
 * Static, not local to main(): a reader thread may still be using a router
 * for a moment after main() returns, while the process exits.
 */
static struct zn_router ping = {.ops = &ping_ops};

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
    zn_server_add_router(s, &ping);
    rc = zn_server_serve(s);
    zn_server_free(s);
    return rc < 0 ? 1 : 0;
usage:
    fprintf(stderr, "usage: %s [-c FILE]   (default " ZN_CONFIG_PATH ")\n",
            argv[0]);
    return 2;
}
