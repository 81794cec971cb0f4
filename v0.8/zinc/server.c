#include "zinc/server.h"

#include "zinc/config.h"
#include "zinc/connection_internal.h"
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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct zn_server {
    char *name; /* shown in log lines */
    char *ip; /* address to bind, e.g. "127.0.0.1" */
    uint16_t port; /* port to bind */
    struct zn_listener *listener; /* NULL until started */
    int wake[2]; /* self-pipe: a byte in wake[1] stops serve() */
    uint32_t next_id; /* the next connection id */
    struct zn_msghandler *handler; /* msg id -> router, owned */
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
    s->port = zn_global.tcp_port;
    s->name = strdup(zn_global.name);
    s->ip = strdup(zn_global.host);
    s->handler = zn_msghandler_new();
    if (s->name == NULL || s->ip == NULL || s->handler == NULL ||
        zn_fd_pipe(s->wake) < 0)
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

int zn_server_start(struct zn_server *s)
{
    int rc;

    s->listener = zn_listener_new(s->name, s->ip, s->port);
    if (s->listener == NULL)
        return -errno;
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
 * What the server does with a connection's messages: submit each to the
 * message handler, whose worker routes it by id. data is the message
 * handler: the server itself may be gone when a detached reader gets here
 * (see zn_server_free()).
 */
static void route_msg(struct zn_conn *conn, struct zn_msg *msg, void *data)
{
    if (zn_msghandler_submit(data, conn, msg) < 0)
        zn_conn_stop(conn); /* the server is stopping, or no memory */
}

/* The reader ends: drop the message handler it held. */
static void reader_exit(struct zn_conn *conn, void *data)
{
    (void)conn;
    zn_msghandler_release(data);
}

static const struct zn_conn_ops conn_ops = {
    .on_msg = route_msg,
    .on_exit = reader_exit,
};

/*
 * Wrap an accepted socket in a connection and start its reader thread,
 * which holds a reference to the message handler until it ends.
 */
static void start_client(int fd, const struct sockaddr *sa, socklen_t len,
                         void *data)
{
    struct zn_server *s = data;
    struct zn_conn *conn;
    int one = 1, rc;

    /* Small request/reply messages should leave at once, not wait for
     * Nagle's algorithm to collect a full segment. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        zn_warn("[%s] TCP_NODELAY: %s", s->name, zn_strerror(errno));

    conn = zn__conn_new(fd, s->next_id++, sa, len, &conn_ops, s->handler);
    if (conn == NULL) {
        zn_error("[%s] out of memory for a connection", s->name);
        close(fd);
        return;
    }
    zn_msghandler_hold(s->handler);
    rc = zn__conn_start(conn);
    if (rc < 0) {
        zn_error("conn %u: cannot start a thread: %s", zn_conn_id(conn),
                 zn_strerror(-rc));
        zn_msghandler_release(s->handler);
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
        struct pollfd fds[2] = {
            {.fd = s->wake[0], .events = POLLIN},
            {.fd = zn_listener_fd(s->listener), .events = POLLIN},
        };

        /* While accept() waits for resources, only the pipe is watched. */
        if (poll(fds, timeout < 0 ? 2 : 1, timeout) < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            zn_error("[%s] poll: %s", s->name, zn_strerror(errno));
            break;
        }
        if (fds[0].revents)
            break;
        /* A client, or the pause is over. */
        timeout = zn_listener_accept(s->listener, start_client, s);
    }
    /* The workers drop what is queued, stopping those connections, then
     * end. (Readers are detached until v0.9; one that submits later is
     * told -EPIPE.) */
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
    zn_msghandler_release(s->handler); /* readers may still hold it */
    free(s->name);
    free(s->ip);
    free(s);
}
