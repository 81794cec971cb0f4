/*
 * The demo's ping router plus a router that blocks, to show what a
 * blocking router costs on an event loop (tests/test_event_loop.py, v1.1).
 *
 *     sleepy_server [-c FILE]     default conf/zinc.json
 *
 * As demo/server.c: the configuration comes from FILE, the library prints
 * `listening on IP:PORT`, SIGINT or SIGTERM stops it with exit status 0,
 * every client first gets msg id 2 "DoConnection BEGIN..." and the end of
 * every connection logs `conn N stopped`, and
 *
 *     msg id 0   -> reply id 0, "ping...ping...ping"
 *
 * and one more router:
 *
 *     msg id 7, body <u32 ms> (little-endian, 4 bytes)
 *                -> logs `conn N: sleeping MS ms on THREAD` (the name of
 *                   the thread it runs on, "?" where that cannot be read),
 *                   sleeps that long (at most SLEEP_MAX_MS) right there in
 *                   handle, then replies id 7 "awake".
 *
 * A router runs on its connection's loop thread, so while it sleeps that
 * loop reads, routes and writes for nobody: every connection of the loop
 * waits, and the connections of the other loops do not. A body that is
 * not 4 bytes, or a longer sleep, gets a log line and no reply.
 *
 * Built by tests/support/build.py's build_api() against the stage's
 * libzinc.a.
 */
#include "zinc/config.h"
#include "zinc/connection.h"
#include "zinc/router.h"
#include "zinc/server.h"

#include "testserver.h"
#include "zn_frame.h"
#include "zn_log.h"

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLEEP_MAX_MS 5000

static void ping_handle(struct zn_router *r, struct zn_request *req)
{
    static const char pong[] = "ping...ping...ping";
    (void)r;

    zn_conn_send_msg(zn_request_conn(req), 0, pong, sizeof(pong) - 1);
}

/* The calling thread's name (Linux: /proc/thread-self/comm), or "?". */
static const char *thread_name(char *name, size_t size)
{
    ssize_t n = -1;
    int fd = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        n = read(fd, name, size - 1);
        close(fd);
    }
    if (n <= 0)
        return "?";
    name[n] = '\0';
    name[strcspn(name, "\n")] = '\0';
    return name;
}

/* msg id 7: block the loop for `ms` milliseconds, then answer. */
static void sleep_handle(struct zn_router *r, struct zn_request *req)
{
    struct zn_conn *conn = zn_request_conn(req);
    struct timespec t;
    char name[32];
    uint32_t ms;
    (void)r;

    if (zn_request_len(req) != 4) {
        zn_warn("conn %u: msg id 7 wants 4 bytes, got %u", zn_conn_id(conn),
                zn_request_len(req));
        return;
    }
    ms = zn_get_le32((const unsigned char *)zn_request_data(req));
    if (ms > SLEEP_MAX_MS) {
        zn_warn("conn %u: msg id 7: %u ms is too long", zn_conn_id(conn), ms);
        return;
    }
    zn_info("conn %u: sleeping %u ms on %s", zn_conn_id(conn), ms,
            thread_name(name, sizeof(name)));
    t.tv_sec = ms / 1000;
    t.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&t, &t) != 0) /* EINTR: sleep the rest */
        continue;
    zn_conn_send_msg(conn, 7, "awake", 5);
}

/* The demo's hooks: greet first, say goodbye once. */
static void greet(struct zn_conn *conn, void *data)
{
    static const char hi[] = "DoConnection BEGIN...";
    (void)data;

    zn_conn_send_msg(conn, 2, hi, sizeof(hi) - 1);
}

static void goodbye(struct zn_conn *conn, void *data)
{
    (void)data;
    zn_info("conn %u stopped", zn_conn_id(conn));
}

static const struct zn_router_ops ping_ops = {.handle = ping_handle};
static const struct zn_router_ops sleep_ops = {.handle = sleep_handle};

static struct zn_router ping = {.ops = &ping_ops};
static struct zn_router sleeper = {.ops = &sleep_ops};

static int setup(struct zn_server *s)
{
    if (zn_server_add_router(s, 0, &ping) < 0 ||
        zn_server_add_router(s, 7, &sleeper) < 0)
        return -1;
    zn_server_set_on_conn_start(s, greet, NULL);
    zn_server_set_on_conn_stop(s, goodbye, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    return test_serve(argc, argv, setup);
}
