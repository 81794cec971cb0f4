#include "zinc/server.h"

#include "zinc/config.h"
#include "zinc/connection_internal.h"
#include "zinc/connmgr.h"
#include "zinc/listener.h"
#include "zinc/msghandler.h"

#include "zn_fd.h"
#include "zn_log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/*
 * Descriptors the server needs besides one per connection: standard
 * input, output and error, the listening socket, two pipes, the spare,
 * and a few for the program around it.
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
    struct zn_connmgr *conns; /* every connection whose reader runs */
    int ended[2]; /* pipe: readers that ended send their connection */
    unsigned long readers; /* started and not joined yet */
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
    s->ended[0] = s->ended[1] = -1;
    s->port = zn_global.tcp_port;
    s->name = strdup(zn_global.name);
    s->ip = strdup(zn_global.host);
    s->handler = zn_msghandler_new();
    s->conns = zn_connmgr_new();
    if (s->name == NULL || s->ip == NULL || s->handler == NULL ||
        s->conns == NULL || zn_fd_pipe(s->wake) < 0 || zn_fd_pipe(s->ended) < 0)
        goto err;
    /* A reader that finds the pipe full waits: it has nothing else to do. */
    if (zn_fd_set_nonblock(s->ended[1], false) < 0)
        goto err;
    return s;
err:
    rc = errno; /* strdup: ENOMEM; pipe: EMFILE or ENFILE */
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
 * descriptor, and the process may open only RLIMIT_NOFILE of them. (It
 * also runs two threads: see the chapter.)
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
    /* The workers, before the first client can be accepted. */
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
 * MaxConn: a client over the limit is closed at once, before it costs a
 * thread, an id or a hook. One line when the limit is reached and one
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

/* What the server does with a connection's messages: see v0.8. */
static void route_msg(struct zn_conn *conn, struct zn_msg *msg, void *data)
{
    struct zn_server *s = data;

    if (zn_msghandler_submit(s->handler, conn, msg) < 0)
        zn_conn_stop(conn); /* the server is stopping, or no memory */
}

/* The hooks, run on the connection's reader thread. */
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
 * A reader's last call: take conn off the manager and hand a reference
 * to the main thread, which joins the reader (zn__conn_join()) and then
 * drops it (join_ended()).
 */
static void reader_exit(struct zn_conn *conn, void *data)
{
    struct zn_server *s = data;

    /* It no longer counts against MaxConn. */
    zn_connmgr_remove(s->conns, conn);
    zn_conn_hold(conn);
    /*
     * The pointer itself goes through the pipe, with the reference: the
     * main thread learns which thread to join, and wakes up to do it. A
     * write of at most PIPE_BUF bytes is atomic, so the pointers of many
     * readers never mix, and this end blocks while the pipe is full. It
     * cannot fail otherwise: the main thread keeps the other end open
     * until it has joined every reader.
     */
    while (write(s->ended[1], &conn, sizeof(conn)) < 0 && errno == EINTR)
        continue;
}

static const struct zn_conn_ops conn_ops = {
    .on_start = conn_started,
    .on_msg = route_msg,
    .on_stop = conn_stopped,
    .on_exit = reader_exit,
};

/*
 * Wrap an accepted socket in a connection, list it in the manager and
 * start its reader thread.
 */
static void start_client(int fd, const struct sockaddr *sa, socklen_t len,
                         void *data)
{
    struct zn_server *s = data;
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
    rc = zn__conn_start(conn);
    if (rc < 0) {
        zn_error("conn %u: cannot start a thread: %s", zn_conn_id(conn),
                 zn_strerror(-rc));
        zn_connmgr_remove(s->conns, conn);
        zn_conn_release(conn);
        return;
    }
    s->readers++;
}

/*
 * Join the readers that ended, and drop the references they handed over.
 * Runs on the main thread only.
 */
static void join_ended(struct zn_server *s)
{
    struct zn_conn *conn;

    while (read(s->ended[0], &conn, sizeof(conn)) == (ssize_t)sizeof(conn)) {
        zn__conn_join(conn);
        zn_conn_release(conn);
        s->readers--;
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
 * writes a byte to a pipe that the accept loop polls next to the listening
 * socket. No flag to check, no race between checking a flag and blocking.
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

/*
 * Stop with live clients (DESIGN §8). The order is what makes it safe:
 *
 *   1. Close the listening socket: no client can be added from now on.
 *   2. Stop every connection (zn_connmgr_clear(): no lock held while it
 *      calls into them). Each reader wakes up, joins its writer, runs
 *      on_conn_stop and hands its connection back through the pipe.
 *   3. Join the readers as they hand back, until none is left. The main
 *      thread holds no lock meanwhile, and every thread it waits for has
 *      been woken and waits for nothing but threads that run on: a reader
 *      for its writer, or for room in a worker's queue that the worker
 *      keeps emptying (requests of stopped connections are dropped).
 *   4. Stop the workers: no reader is left to submit, so they drain
 *      their queues and end; they are joined.
 */
static void stop_clients(struct zn_server *s)
{
    bool cleared = false;

    zn_listener_free(s->listener);
    s->listener = NULL;
    if (s->readers > 0)
        zn_info("[%s] stopping %zu connections", s->name,
                zn_connmgr_len(s->conns));
    while (s->readers > 0) {
        struct pollfd ended = {.fd = s->ended[0], .events = POLLIN};

        /* No memory for the copy: try again a little later. */
        if (!cleared)
            cleared = zn_connmgr_clear(s->conns) >= 0;
        if (poll(&ended, 1, cleared ? -1 : ZN_ACCEPT_PAUSE_MS) < 0 &&
            errno != EINTR)
            zn_error("[%s] poll: %s", s->name, zn_strerror(errno));
        join_ended(s);
    }
    zn_msghandler_stop_workers(s->handler);
}

int zn_server_serve(struct zn_server *s)
{
    int rc, timeout = -1;

    /* Before start() prints "listening on": from that line on, a signal
     * must find the handler. */
    catch_signals(s);
    rc = zn_server_start(s);
    if (rc < 0)
        return rc;

    for (;;) {
        struct pollfd fds[3] = {
            {.fd = s->wake[0], .events = POLLIN},
            {.fd = s->ended[0], .events = POLLIN},
            {.fd = zn_listener_fd(s->listener), .events = POLLIN},
        };

        /* While accept() waits for resources, the socket is not watched. */
        if (poll(fds, timeout < 0 ? 3 : 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            zn_error("[%s] poll: %s", s->name, zn_strerror(errno));
            break;
        }
        if (fds[0].revents)
            break;
        if (fds[1].revents) {
            join_ended(s); /* clients left; any waiting one is next */
            continue;
        }
        /* A client, or the pause is over. */
        timeout = zn_listener_accept(s->listener, start_client, s);
    }
    stop_clients(s);
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
    if (s->ended[0] >= 0)
        close(s->ended[0]);
    if (s->ended[1] >= 0)
        close(s->ended[1]);
    if (s->handler != NULL)
        zn_msghandler_stop_workers(s->handler); /* if serve() did not */
    zn_connmgr_free(s->conns); /* empty: every reader has been joined */
    zn_msghandler_free(s->handler);
    free(s->name);
    free(s->ip);
    free(s);
}
