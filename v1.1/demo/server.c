/*
 * zinc demo server: routers chosen by message id, two hooks, and
 * connection properties.
 *
 *     build/server [-c FILE]     default conf/zinc.json
 *
 * Reads its configuration from FILE (config.h lists the keys), then listens
 * on Host:TcpPort; a configuration error exits with status 2.
 *
 *     msg id 0  -> reply id 0, "ping...ping...ping"
 *     msg id 1  -> reply id 1, "Hello Zinc Router " and the stage
 *     msg id 3, "key=value" -> set a property of this connection, reply
 *               id 3 "OK" (split at the first '='; the value may be empty
 *               and hold any bytes)
 *     msg id 4, "key"       -> reply id 4 with the property's value
 *     msg id 5, "key"       -> remove the property, reply id 5 "OK"
 *     other ids -> a log line, no reply; the connection stays open
 *
 * A property request that cannot be done (no '=', an empty key, a key of
 * more than 64 bytes or with a NUL byte, no such key, 64 properties
 * already) gets a reply with the same id that starts with "ERR ", and the
 * connection stays open.
 *
 * Every new client first gets msg id 2, "DoConnection BEGIN..." (the
 * on_conn_start hook), which also sets the properties Name = "zinc" and
 * Stage = the stage. When it leaves, or the server stops, the log says
 * "conn N stopped" and "conn N property KEY=VALUE" for each property (the
 * on_conn_stop hook), once per connection.
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

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Reply to req with the same msg id and a text. */
static void reply(struct zn_request *req, const char *text)
{
    zn_conn_send_msg(zn_request_conn(req), zn_request_msg_id(req), text,
                     (uint32_t)strlen(text));
}

/*
 * Take a property key from the client's bytes into key (a string), or
 * reply why not. Returns 0 or -1.
 */
static int take_key(struct zn_request *req, const char *data, size_t len,
                    char key[ZN_MAX_PROPERTY_KEY + 1])
{
    if (len == 0)
        reply(req, "ERR empty key");
    else if (len > ZN_MAX_PROPERTY_KEY)
        reply(req, "ERR key longer than 64 bytes");
    else if (memchr(data, '\0', len) != NULL)
        reply(req, "ERR key holds a NUL byte");
    else {
        memcpy(key, data, len);
        key[len] = '\0';
        return 0;
    }
    return -1;
}

/* msg id 3, "key=value": set a property of the caller's connection. */
static void set_handle(struct zn_router *r, struct zn_request *req)
{
    const char *data = zn_request_data(req);
    uint32_t len = zn_request_len(req);
    const char *eq = len > 0 ? memchr(data, '=', len) : NULL;
    char key[ZN_MAX_PROPERTY_KEY + 1];
    int rc;
    (void)r;

    log_request("set router", req);
    if (eq == NULL) {
        reply(req, "ERR want key=value");
        return;
    }
    if (take_key(req, data, (size_t)(eq - data), key) < 0)
        return;
    rc = zn_conn_set_property(zn_request_conn(req), key, eq + 1,
                              len - (size_t)(eq - data) - 1);
    if (rc == -ENOSPC)
        reply(req, "ERR at most 64 properties");
    else if (rc < 0)
        reply(req, "ERR out of memory");
    else
        reply(req, "OK");
}

/* msg id 4, "key": the value of a property of the caller's connection. */
static void get_handle(struct zn_router *r, struct zn_request *req)
{
    struct zn_conn *conn = zn_request_conn(req);
    char key[ZN_MAX_PROPERTY_KEY + 1];
    size_t len;
    char *value;
    (void)r;

    log_request("get router", req);
    if (take_key(req, zn_request_data(req), zn_request_len(req), key) < 0)
        return;
    value = zn_conn_get_property(conn, key, &len);
    if (value == NULL) {
        reply(req, errno == ENOENT ? "ERR no such key" : "ERR out of memory");
        return;
    }
    zn_conn_send_msg(conn, 4, value, (uint32_t)len);
    free(value); /* get hands out a copy: ours to free */
}

/* msg id 5, "key": remove a property of the caller's connection. */
static void remove_handle(struct zn_router *r, struct zn_request *req)
{
    char key[ZN_MAX_PROPERTY_KEY + 1];
    (void)r;

    log_request("remove router", req);
    if (take_key(req, zn_request_data(req), zn_request_len(req), key) < 0)
        return;
    if (zn_conn_remove_property(zn_request_conn(req), key) < 0)
        reply(req, "ERR no such key");
    else
        reply(req, "OK");
}

/*
 * on_conn_start: name the connection, then greet the client before it
 * sends anything.
 */
static void greet(struct zn_conn *conn, void *data)
{
    static const char hi[] = "DoConnection BEGIN...";
    (void)data;

    zn_conn_set_property(conn, "Name", "zinc", 4);
    zn_conn_set_property(conn, "Stage", ZN_VERSION, strlen(ZN_VERSION));
    zn_conn_send_msg(conn, 2, hi, sizeof(hi) - 1);
}

/*
 * Log one property, escaped: keys and values come from the client. A long
 * value is cut, ending with "...". The buffers are sized so that the whole
 * line fits in one log line (zn_log.c cuts at 1 KiB, silently): the
 * escaped key takes at most 256 characters, the value at most 511.
 */
static int log_property(const char *key, const void *value, size_t len,
                        void *arg)
{
    char k[4 * ZN_MAX_PROPERTY_KEY + 1], v[512];

    zn_info("conn %u property %s=%s", zn_conn_id(arg),
            zn_log_escape(key, strlen(key), k, sizeof(k)),
            zn_log_escape(value, len, v, sizeof(v)));
    return 0;
}

/* on_conn_stop: say goodbye in the log, with what the connection kept. */
static void goodbye(struct zn_conn *conn, void *data)
{
    (void)data;
    zn_info("conn %u stopped", zn_conn_id(conn));
    zn_conn_foreach_property(conn, log_property, conn);
}

static const struct zn_router_ops ping_ops = {.handle = ping_handle};
static const struct zn_router_ops hello_ops = {.handle = hello_handle};
static const struct zn_router_ops set_ops = {.handle = set_handle};
static const struct zn_router_ops get_ops = {.handle = get_handle};
static const struct zn_router_ops remove_ops = {.handle = remove_handle};

static struct zn_router ping = {.ops = &ping_ops};
static struct zn_router hello = {.ops = &hello_ops};
static struct zn_router set_prop = {.ops = &set_ops};
static struct zn_router get_prop = {.ops = &get_ops};
static struct zn_router remove_prop = {.ops = &remove_ops};

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
        zn_server_add_router(s, 1, &hello) < 0 ||
        zn_server_add_router(s, 3, &set_prop) < 0 ||
        zn_server_add_router(s, 4, &get_prop) < 0 ||
        zn_server_add_router(s, 5, &remove_prop) < 0) {
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
