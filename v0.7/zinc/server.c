#include "zinc/server.h"

#include "zinc/config.h"
#include "zinc/connection_internal.h"
#include "zinc/msghandler.h"

#include "zn_addr.h"
#include "zn_fd.h"
#include "zn_log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Clients taken from the accept queue in one go before the loop looks at
 * the wake-up pipe again, and how long it waits when accept() cannot get
 * what it needs (memory, a descriptor).
 */
#define ZN_ACCEPT_BATCH 64
#define ZN_ACCEPT_PAUSE_MS 100

struct zn_server {
    char *name; /* shown in log lines */
    char *ip; /* address to bind, e.g. "127.0.0.1" */
    uint16_t port; /* port to bind; after start, the port bound */
    int listen_fd; /* listening socket, -1 until started */
    int wake[2]; /* self-pipe: a byte in wake[1] stops serve() */
    int spare_fd; /* kept free for when descriptors run out, or -1 */
    bool starved; /* accept() is failing: logged once, until it works */
    unsigned long turned_away; /* clients closed at once meanwhile */
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
    s->listen_fd = -1;
    s->wake[0] = s->wake[1] = -1;
    s->spare_fd = -1;
    s->port = zn_global.tcp_port;
    s->name = strdup(zn_global.name);
    s->ip = strdup(zn_global.host);
    s->handler = zn_msghandler_new();
    if (s->name == NULL || s->ip == NULL || s->handler == NULL ||
        zn_fd_pipe(s->wake) < 0)
        goto err;
    /* /dev/null is just a descriptor to give back: see shed_client(). */
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
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
    struct addrinfo hints = {0}, *res, *ai;
    struct sockaddr_storage bound;
    socklen_t len = sizeof(bound);
    char port[8], addr[ZN_ADDR_STRLEN];
    int fd = -1, err = 0, rc;

    /* Numeric host and port only: a server should not wait on DNS. */
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", (unsigned)s->port);
    rc = getaddrinfo(s->ip, port, &hints, &res);
    if (rc != 0) {
        zn_error("[%s] cannot resolve %s: %s", s->name, s->ip,
                 gai_strerror(rc));
        return -EINVAL;
    }

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;

        fd = zn_fd_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* Restart at once after a stop, even with old connections in
         * TIME_WAIT on this port. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, SOMAXCONN) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);

    /*
     * With port 0 the system chose one: ask which. Non-blocking, because
     * accept_clients() calls accept() until the queue is empty; a blocking
     * accept() would then wait for the next client instead of going back
     * to poll() and the wake-up pipe.
     */
    if (fd >= 0 && (getsockname(fd, (struct sockaddr *)&bound, &len) < 0 ||
                    zn_fd_set_nonblock(fd, true) < 0)) {
        err = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        zn_error("[%s] cannot listen on %s:%u: %s", s->name, s->ip,
                 (unsigned)s->port, zn_strerror(err));
        return -err;
    }
    zn_addr_format((struct sockaddr *)&bound, len, addr, sizeof(addr));
    s->port = ntohs(bound.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&bound)->sin6_port
                        : ((struct sockaddr_in *)&bound)->sin_port);
    s->listen_fd = fd;
    /* NOTICE: printed at every log level, scripts wait for this line. */
    zn_notice("[%s] version %s listening on %s", s->name, zn_global.version,
              addr);
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
 * What the server does with a connection's messages: wrap each in a
 * request and let the message handler route it by id. data is the
 * message handler: the server itself may be gone when a detached reader
 * gets here (see zn_server_free()).
 */
static void route_msg(struct zn_conn *conn, struct zn_msg *msg, void *data)
{
    struct zn_request req = {.conn = conn, .msg = msg};

    zn_msghandler_do(data, &req);
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
static void start_client(struct zn_server *s, int fd, const struct sockaddr *sa,
                         socklen_t len)
{
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

/*
 * Out of file descriptors, accept() fails and leaves the client in the
 * queue, so poll() reports it again at once: retrying would spin a CPU and
 * fill the log, and waiting would leave the client connected to a server
 * that never answers. The spare descriptor gets out of that: give it back,
 * accept the client and close it at once, so it learns the server is
 * full, then take the spare again (libev and libuv do the same). Returns 0
 * when a client was turned away like that, or the errno of accept():
 * EAGAIN when nobody was waiting after all (Linux reports EMFILE before it
 * looks at the queue).
 */
static int shed_client(struct zn_server *s)
{
    int fd, err;

    if (s->spare_fd >= 0)
        close(s->spare_fd);
    fd = zn_fd_accept(s->listen_fd, NULL, NULL);
    err = errno;
    if (fd >= 0) {
        close(fd);
        s->turned_away++;
    }
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? 0 : err;
}

/*
 * True for the accept() errors that concern one client, not the server: it
 * gave up before we got to it, or (Linux, see accept(2)) a network error
 * was pending on the new connection. The advice is to retry, as for EAGAIN.
 */
static bool accept_error_is_transient(int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENOPROTOOPT:
    case EOPNOTSUPP:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTUNREACH:
#if defined(EHOSTDOWN)
    case EHOSTDOWN:
#endif
#if defined(ENONET)
    case ENONET:
#endif
        return true;
    default:
        return false;
    }
}

/*
 * Accept the clients waiting in the queue, at most ZN_ACCEPT_BATCH. Returns
 * the timeout for the next poll(): -1 to wait for the next client, or
 * ZN_ACCEPT_PAUSE_MS when accept() must wait for memory or descriptors
 * (poll() then watches only the wake-up pipe). A failure is logged once,
 * when it starts, and once more when accept() works again.
 */
static int accept_clients(struct zn_server *s)
{
    for (int i = 0; i < ZN_ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = zn_fd_accept(s->listen_fd, (struct sockaddr *)&sa, &len);
        int err = errno;

        if (fd >= 0) {
            if (s->starved)
                zn_info("[%s] accepting again (%lu clients turned away)",
                        s->name, s->turned_away);
            s->starved = false;
            s->turned_away = 0;
            start_client(s, fd, (struct sockaddr *)&sa, len);
            continue;
        }
        if (err == EAGAIN || err == EWOULDBLOCK)
            return -1; /* the queue is empty */
        if (accept_error_is_transient(err))
            continue;
        if (err == EMFILE || err == ENFILE) {
            int shed = shed_client(s);

            if (shed == EAGAIN || shed == EWOULDBLOCK)
                return -1; /* nobody was waiting: nobody turned away */
            if (!s->starved)
                zn_warn("[%s] out of file descriptors (accept: %s): closing "
                        "new connections until one is free",
                        s->name, zn_strerror(err));
            s->starved = true;
            if (shed == 0)
                continue;
            return ZN_ACCEPT_PAUSE_MS; /* not even the spare came back */
        }
        if (!s->starved)
            zn_error("[%s] accept: %s: pausing", s->name, zn_strerror(err));
        s->starved = true;
        return ZN_ACCEPT_PAUSE_MS;
    }
    return -1;
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
            {.fd = s->listen_fd, .events = POLLIN},
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
        timeout = accept_clients(s); /* a client, or the pause is over */
    }
    zn_info("[%s] stopped", s->name);
    return rc;
}

uint16_t zn_server_port(const struct zn_server *s)
{
    return s->listen_fd >= 0 ? s->port : 0;
}

void zn_server_free(struct zn_server *s)
{
    if (s == NULL)
        return;
    /* The handlers stay installed: from now on they find no pipe. */
    atomic_compare_exchange_strong(&signal_wake_fd, &(int){s->wake[1]}, -1);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    zn_msghandler_release(s->handler); /* readers may still hold it */
    free(s->name);
    free(s->ip);
    free(s);
}
