#include "zinc/server.h"

#include "zinc/config.h"
#include "zinc/connection_internal.h"
#include "zinc/connmgr.h"
#include "zinc/listener.h"
#include "zinc/loop.h"
#include "zinc/msghandler.h"

#include "zn_fd.h"
#include "zn_log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/*
 * Descriptors the server needs besides one per connection: standard
 * input, output and error, the listening socket, its wake-up pipe, the
 * spare, and a few for the program around it; every loop takes three
 * more (its poller and its wake-up pipe).
 */
#define ZN_SERVER_FDS 16

struct zn_server {
    char *name; /* shown in log lines */
    char *ip; /* address to bind, e.g. "127.0.0.1" */
    uint16_t port; /* port to bind */
    struct zn_listener *listener; /* NULL until started */
    int wake[2]; /* self-pipe: a byte in wake[1] stops serve() */
    bool full; /* MaxConn reached: logged once, until one is admitted */
    unsigned long refused; /* clients closed at once meanwhile */
    uint32_t next_id; /* the next connection id */
    struct zn_msghandler *handler; /* msg id -> router, owned */
    struct zn_connmgr *conns; /* every connection a loop still serves */
    struct zn_loop *loop; /* the main thread's: accepts, and serves too
                             when there are no workers */
    struct zn_timer pause; /* accept() waits for resources */
    struct zn_task all_ended; /* posted by the last connection to end */
    atomic_ulong live; /* connections started and not ended yet */
    atomic_bool stopping; /* no client is accepted any more */
    zn_conn_hook on_start, on_stop; /* NULL: none */
    void *on_start_data, *on_stop_data; /* their second argument */
};

/* The pipe a signal handler writes to; one serving server per process. */
static atomic_int signal_wake_fd = -1; /* lock-free: a handler may read it */

struct zn_server *zn_server_new(void)
{
    struct zn_server *s = calloc(1, sizeof(*s));
    int rc;

    if (s == NULL)
        return NULL;
    s->wake[0] = s->wake[1] = -1;
    atomic_init(&s->live, 0);
    atomic_init(&s->stopping, false);
    s->port = zn_global.tcp_port;
    s->name = strdup(zn_global.name);
    s->ip = strdup(zn_global.host);
    s->handler = zn_msghandler_new();
    s->conns = zn_connmgr_new();
    s->loop = zn_loop_new();
    if (s->name == NULL || s->ip == NULL || s->handler == NULL ||
        s->conns == NULL || s->loop == NULL || zn_fd_pipe(s->wake) < 0)
        goto err;
    return s;
err:
    rc = errno; /* strdup: ENOMEM; pipe, poller: EMFILE or ENFILE */
    zn_server_free(s);
    errno = rc;
    return NULL;
}

int zn_server_add_router(struct zn_server *s, uint32_t msg_id,
                         struct zn_router *router)
{
    return zn_msghandler_add_router(s->handler, msg_id, router);
}

void zn_server_set_on_conn_start(struct zn_server *s, zn_conn_hook hook,
                                 void *data)
{
    s->on_start = hook;
    s->on_start_data = data;
}

void zn_server_set_on_conn_stop(struct zn_server *s, zn_conn_hook hook,
                                void *data)
{
    s->on_stop = hook;
    s->on_stop_data = data;
}

/*
 * Warn when MaxConn cannot be reached: every connection holds one
 * descriptor, and the process may open only RLIMIT_NOFILE of them.
 */
static void check_fd_limit(struct zn_server *s)
{
    struct rlimit lim;
    rlim_t need = (rlim_t)zn_global.max_conn + ZN_SERVER_FDS;

    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        lim.rlim_cur < need)
        zn_warn("[%s] MaxConn %d cannot be reached: RLIMIT_NOFILE is %llu "
                "descriptors, one per connection and %d for the server "
                "(raise it with `ulimit -n %llu`)",
                s->name, zn_global.max_conn, (unsigned long long)lim.rlim_cur,
                ZN_SERVER_FDS, (unsigned long long)need);
}

int zn_server_start(struct zn_server *s)
{
    int rc;

    s->listener = zn_listener_new(s->name, s->ip, s->port);
    if (s->listener == NULL)
        return -errno;
    check_fd_limit(s);
    /* The workers' loops, before the first client can be accepted. */
    rc = zn_msghandler_start_workers(s->handler);
    if (rc < 0) {
        zn_listener_free(s->listener);
        s->listener = NULL;
        return rc;
    }
    /* NOTICE: printed at every log level, scripts wait for this line. */
    zn_notice("[%s] version %s listening on %s", s->name, zn_global.version,
              zn_listener_addr(s->listener));
    return 0;
}

void zn_server_stop(struct zn_server *s)
{
    char byte = 1;

    /* write(2) is async-signal-safe. The pipe is non-blocking: when it is
     * full, a stop is already pending and losing this byte is fine. */
    if (write(s->wake[1], &byte, 1) < 0) {
        /* nothing to undo */
    }
}

/*
 * MaxConn: a client over the limit is closed at once, before it costs
 * memory, an id or a hook. One line when the limit is reached and one
 * when a client is admitted again, not one per client: a connect storm
 * must not fill the log. Returns true when fd was closed.
 */
static bool over_max_conn(struct zn_server *s, int fd)
{
    if (zn_connmgr_len(s->conns) < (size_t)zn_global.max_conn) {
        if (s->full)
            zn_info("[%s] below MaxConn again (%lu clients turned away)",
                    s->name, s->refused);
        s->full = false;
        s->refused = 0;
        return false;
    }
    close(fd);
    if (!s->full)
        zn_warn("[%s] MaxConn %d reached: closing new connections until one "
                "leaves",
                s->name, zn_global.max_conn);
    s->full = true;
    s->refused++;
    return true;
}

/* What the server does with a connection's messages: route them now. */
static void route_msg(struct zn_conn *conn, struct zn_msg *msg, void *data)
{
    struct zn_server *s = data;

    if (zn_msghandler_submit(s->handler, conn, msg) < 0)
        zn_conn_stop(conn); /* no memory */
}

/* The hooks, run on the connection's loop thread. */
static void conn_started(struct zn_conn *conn, void *data)
{
    struct zn_server *s = data;

    if (s->on_start != NULL)
        s->on_start(conn, s->on_start_data);
}

static void conn_stopped(struct zn_conn *conn, void *data)
{
    struct zn_server *s = data;

    if (s->on_stop != NULL)
        s->on_stop(conn, s->on_stop_data);
}

/*
 * A connection's last call, on its loop: take it off the manager (it no
 * longer counts against MaxConn). While the server stops, the last one
 * to end tells the main loop.
 */
static void conn_exit(struct zn_conn *conn, void *data)
{
    struct zn_server *s = data;

    zn_connmgr_remove(s->conns, conn);
    if (atomic_fetch_sub(&s->live, 1) == 1 && atomic_load(&s->stopping))
        zn_loop_post(s->loop, &s->all_ended); /* fails once it has ended */
}

static const struct zn_conn_ops conn_ops = {
    .on_start = conn_started,
    .on_msg = route_msg,
    .on_stop = conn_stopped,
    .on_exit = conn_exit,
};

/*
 * Wrap an accepted socket in a connection, list it in the manager and
 * hand it to its loop: a worker's, or the main thread's own.
 */
static void start_client(int fd, const struct sockaddr *sa, socklen_t len,
                         void *data)
{
    struct zn_server *s = data;
    struct zn_loop *loop;
    struct zn_conn *conn;
    int one = 1, rc;

    if (over_max_conn(s, fd))
        return;

    /* Small request/reply messages should leave at once, not wait for
     * Nagle's algorithm to collect a full segment. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        zn_warn("[%s] TCP_NODELAY: %s", s->name, zn_strerror(errno));

    conn = zn__conn_new(fd, s->next_id++, sa, len, &conn_ops, s);
    if (conn == NULL) {
        zn_error("[%s] out of memory for a connection", s->name);
        close(fd);
        return;
    }
    /* -EEXIST only if ids wrapped around 2^32 onto a live connection. */
    rc = zn_connmgr_add(s->conns, conn);
    if (rc < 0) {
        zn_error("conn %u: cannot list it: %s", zn_conn_id(conn),
                 zn_strerror(-rc));
        zn_conn_release(conn);
        return;
    }
    loop = zn_msghandler_loop(s->handler, zn_conn_id(conn));
    atomic_fetch_add(&s->live, 1);
    rc = zn__conn_start(conn, loop != NULL ? loop : s->loop);
    if (rc < 0) {
        zn_error("conn %u: cannot start it: %s", zn_conn_id(conn),
                 zn_strerror(-rc));
        atomic_fetch_sub(&s->live, 1);
        zn_connmgr_remove(s->conns, conn);
        zn_conn_release(conn);
    }
}

static void on_signal(int sig)
{
    int saved = errno; /* a handler must not change errno under main */
    char byte = (char)sig;

    if (write(signal_wake_fd, &byte, 1) < 0) {
        /* full pipe: a stop is already pending */
    }
    errno = saved;
}

/*
 * The self-pipe trick: a signal handler may do almost nothing, so it
 * writes a byte to a pipe that the main loop watches next to the
 * listening socket. No flag to check, no race between checking a flag
 * and blocking.
 */
static void catch_signals(struct zn_server *s)
{
    struct sigaction sa = {0};

    signal_wake_fd = s->wake[1];
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Every connection has ended: the main loop may end too. */
static void stopped(void *data)
{
    struct zn_server *s = data;

    zn_loop_stop(s->loop);
}

/*
 * Stop every connection; without memory for zn_connmgr_clear()'s copy,
 * try again a little later.
 */
static void clear_conns(void *data)
{
    struct zn_server *s = data;

    if (zn_connmgr_clear(s->conns) < 0)
        zn_loop_timer_start(s->loop, &s->pause, ZN_ACCEPT_PAUSE_MS, clear_conns,
                            s);
}

/*
 * Stop with live clients (DESIGN §8, §11). The main loop keeps running
 * until every connection has ended, and none waits for another:
 *
 *   1. Close the listening socket: no client can be added from now on.
 *   2. Stop every connection (zn_connmgr_clear(): no lock held while it
 *      calls into them). Each one's loop ends it on its own thread, runs
 *      on_conn_stop and takes it off the manager (conn_exit()).
 *   3. The last one to end posts all_ended to the main loop, which stops.
 *   4. serve() stops the workers' loops and joins them.
 */
static void stop_clients(int fd, unsigned events, void *data)
{
    struct zn_server *s = data;
    unsigned long live;

    (void)fd;
    (void)events;
    zn_loop_watch(s->loop, s->wake[0], 0, NULL, NULL);
    zn_loop_watch(s->loop, zn_listener_fd(s->listener), 0, NULL, NULL);
    zn_loop_timer_stop(s->loop, &s->pause);
    zn_listener_free(s->listener);
    s->listener = NULL;
    atomic_store(&s->stopping, true);
    live = atomic_load(&s->live);
    if (live == 0) {
        zn_loop_stop(s->loop);
        return;
    }
    zn_info("[%s] stopping %lu connections", s->name, live);
    clear_conns(s);
}

static void on_listener(int fd, unsigned events, void *data);

/* The pause is over: watch the listening socket again, and accept. */
static void resume_accept(void *data)
{
    struct zn_server *s = data;

    on_listener(zn_listener_fd(s->listener), ZN_READABLE, s);
}

/*
 * Clients wait: accept them. While accept() waits for resources, the
 * socket is not watched, for ZN_ACCEPT_PAUSE_MS.
 */
static void on_listener(int fd, unsigned events, void *data)
{
    struct zn_server *s = data;
    int pause = zn_listener_accept(s->listener, start_client, s);
    int rc;

    (void)events;
    rc =
        zn_loop_watch(s->loop, fd, pause < 0 ? ZN_READABLE : 0, on_listener, s);
    if (rc < 0) /* no memory to watch it: try again later */
        pause = ZN_ACCEPT_PAUSE_MS;
    if (pause >= 0)
        zn_loop_timer_start(s->loop, &s->pause, pause, resume_accept, s);
}

int zn_server_serve(struct zn_server *s)
{
    int rc;

    /* Before start() prints "listening on": from that line on, a signal
     * must find the handler. */
    catch_signals(s);
    rc = zn_server_start(s);
    if (rc < 0)
        return rc;
    s->all_ended = (struct zn_task){.fn = stopped, .data = s};
    rc = zn_loop_watch(s->loop, s->wake[0], ZN_READABLE, stop_clients, s);
    if (rc == 0)
        rc = zn_loop_watch(s->loop, zn_listener_fd(s->listener), ZN_READABLE,
                           on_listener, s);
    if (rc == 0)
        rc = zn_loop_run(s->loop);
    else
        zn_error("[%s] cannot watch the listening socket: %s", s->name,
                 zn_strerror(-rc));
    zn_msghandler_stop_workers(s->handler);
    zn_info("[%s] stopped", s->name);
    return rc;
}

uint16_t zn_server_port(const struct zn_server *s)
{
    return s->listener != NULL ? zn_listener_port(s->listener) : 0;
}

void zn_server_free(struct zn_server *s)
{
    if (s == NULL)
        return;
    /* The handlers stay installed: from now on they find no pipe. */
    atomic_compare_exchange_strong(&signal_wake_fd, &(int){s->wake[1]}, -1);
    zn_listener_free(s->listener);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    if (s->handler != NULL)
        zn_msghandler_stop_workers(s->handler); /* if serve() did not */
    zn_connmgr_free(s->conns); /* empty: every connection has ended */
    zn_msghandler_free(s->handler);
    zn_loop_free(s->loop);
    free(s->name);
    free(s->ip);
    free(s);
}
