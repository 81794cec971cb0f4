#include "zinc/server.h"

#include "zinc/listener.h"

#include "zn_addr.h"
#include "zn_fd.h"
#include "zn_io.h"
#include "zn_log.h"
#include "zn_thread.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Each client thread gets a small stack. The default (8 MiB on Linux) is
 * only address space until touched, but with thousands of clients it adds up
 * to gigabytes of reservations; an echo loop with a 512-byte buffer needs a
 * few KiB. 256 KiB leaves room for libc and the sanitizers.
 */
#define ZN_THREAD_STACK (256 * 1024)
#define ZN_READ_BUF 512

struct zn_server {
    char *name; /* shown in log lines */
    char *ip; /* address to bind, e.g. "127.0.0.1" */
    uint16_t port; /* port to bind */
    struct zn_listener *listener; /* NULL until started */
    int wake[2]; /* self-pipe: a byte in wake[1] stops serve() */
    unsigned next_id; /* numbers the client threads */
};

/* The pipe a signal handler writes to; one serving server per process. */
static atomic_int signal_wake_fd = -1; /* lock-free: a handler may read it */

struct zn_server *zn_server_new(const char *name, const char *ip, uint16_t port)
{
    struct zn_server *s = calloc(1, sizeof(*s));
    int rc;

    if (s == NULL)
        return NULL;
    s->wake[0] = s->wake[1] = -1;
    s->port = port;
    s->name = strdup(name);
    s->ip = strdup(ip);
    if (s->name == NULL || s->ip == NULL || zn_fd_pipe(s->wake) < 0)
        goto err;
    return s;
err:
    rc = errno; /* strdup: ENOMEM; pipe: EMFILE or ENFILE */
    zn_server_free(s);
    errno = rc;
    return NULL;
}

int zn_server_start(struct zn_server *s)
{
    s->listener = zn_listener_new(s->name, s->ip, s->port);
    if (s->listener == NULL)
        return -errno;
    /* NOTICE: printed at every log level, scripts wait for this line. */
    zn_notice("[%s] listening on %s", s->name, zn_listener_addr(s->listener));
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

/* The arguments a client thread starts with; the thread frees them. */
struct client {
    int fd; /* the accepted socket, owned by the thread */
    unsigned id; /* for the thread name and log lines */
};

/* One thread per client: echo until the client closes or an error. */
static void *client_thread(void *arg)
{
    struct client *c = arg;
    char buf[ZN_READ_BUF];
    ssize_t n;

    zn_thread_set_name("zn-reader-%u", c->id);
    while ((n = zn_read(c->fd, buf, sizeof(buf))) > 0) {
        /* write() may take only part of the buffer: zn_writen loops. */
        if (zn_writen(c->fd, buf, (size_t)n) < 0)
            break;
    }
    if (n < 0)
        zn_warn("client %u: read: %s", c->id, zn_strerror(errno));
    zn_info("client %u disconnected", c->id);
    close(c->fd);
    free(c);
    return NULL;
}

/* Hand an accepted socket to a new detached thread. */
static void start_client(int fd, const struct sockaddr *sa, socklen_t len,
                         void *data)
{
    struct zn_server *s = data;
    char addr[ZN_ADDR_STRLEN];
    struct client *c;
    pthread_attr_t attr;
    sigset_t block, old;
    pthread_t tid;
    int one = 1, rc;

    /* Small request/reply messages should leave at once, not wait for
     * Nagle's algorithm to collect a full segment. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        zn_warn("[%s] TCP_NODELAY: %s", s->name, zn_strerror(errno));

    c = malloc(sizeof(*c));
    if (c == NULL) {
        zn_error("[%s] out of memory for a client", s->name);
        close(fd);
        return;
    }
    c->fd = fd;
    c->id = s->next_id++;
    zn_info("client %u connected from %s", c->id,
            zn_addr_format(sa, len, addr, sizeof(addr)));

    /*
     * Detached: nobody joins a client thread, it cleans up after itself
     * when its client leaves. The price is that stop cannot wait for them;
     * v0.9's connection manager changes that.
     */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, ZN_THREAD_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /*
     * SIGINT and SIGTERM belong to the main thread, which polls the
     * wake-up pipe. A new thread inherits its creator's signal mask: block
     * them around pthread_create() and the client thread never runs the
     * handler (which could otherwise write to the pipe while main closes
     * it at exit).
     */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&tid, &attr, client_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        zn_error("client %u: cannot start a thread: %s", c->id,
                 zn_strerror(rc));
        close(fd);
        free(c);
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
    free(s->name);
    free(s->ip);
    free(s);
}
