#include "zinc/server.h"

#include "zn_addr.h"
#include "zn_io.h"
#include "zn_log.h"
#include "zn_thread.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    uint16_t port; /* port to bind; after start, the port bound */
    int listen_fd; /* listening socket, -1 until started */
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
    s->listen_fd = -1;
    s->wake[0] = s->wake[1] = -1;
    s->port = port;
    s->name = strdup(name);
    s->ip = strdup(ip);
    if (s->name == NULL || s->ip == NULL || pipe(s->wake) < 0)
        goto err;
    fcntl(s->wake[1], F_SETFL, O_NONBLOCK);
    return s;
err:
    rc = errno; /* strdup: ENOMEM; pipe: EMFILE or ENFILE */
    zn_server_free(s);
    errno = rc;
    return NULL;
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

        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* Restart at once after a stop, even with old connections in
         * TIME_WAIT on this port. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, SOMAXCONN) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        zn_error("[%s] cannot listen on %s:%u: %s", s->name, s->ip,
                 (unsigned)s->port, strerror(err));
        return -err;
    }

    /* With port 0 the system chose one: ask which. */
    getsockname(fd, (struct sockaddr *)&bound, &len);
    zn_addr_format((struct sockaddr *)&bound, len, addr, sizeof(addr));
    s->port = ntohs(bound.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&bound)->sin6_port
                        : ((struct sockaddr_in *)&bound)->sin_port);
    /*
     * Non-blocking: a client may reset between poll() saying "ready" and
     * our accept(). A blocking accept() would then sit waiting for the next
     * client instead of going back to poll() and the wake-up pipe.
     */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    s->listen_fd = fd;
    zn_info("[%s] listening on %s", s->name, addr);
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
        zn_warn("client %u: read: %s", c->id, strerror(errno));
    zn_info("client %u disconnected", c->id);
    close(c->fd);
    free(c);
    return NULL;
}

/* Hand an accepted socket to a new detached thread. */
static void start_client(struct zn_server *s, int fd, const struct sockaddr *sa,
                         socklen_t len)
{
    char addr[ZN_ADDR_STRLEN];
    struct client *c;
    pthread_attr_t attr;
    pthread_t tid;
    int one = 1, rc;

    /* Small request/reply messages should leave at once, not wait for
     * Nagle's algorithm to collect a full segment. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

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
    rc = pthread_create(&tid, &attr, client_thread, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        zn_error("client %u: cannot start a thread: %s", c->id, strerror(rc));
        close(fd);
        free(c);
    }
}

/* Accept one pending client, if any. Never blocks: the socket is
 * non-blocking. */
static void accept_one(struct zn_server *s)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    int fd = accept(s->listen_fd, (struct sockaddr *)&sa, &len);

    if (fd >= 0) {
        /* Whether O_NONBLOCK is inherited differs between systems; the
         * reader wants blocking reads. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        start_client(s, fd, (struct sockaddr *)&sa, len);
        return;
    }
    if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN ||
        errno == EWOULDBLOCK)
        return; /* the client gave up before we got to it: not an error */
    zn_error("[%s] accept: %s", s->name, strerror(errno));
    /*
     * Out of file descriptors or memory: the pending connection stays in
     * the queue and poll() would report it again at once. Pause instead of
     * spinning on the CPU until a client leaves.
     */
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
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

int zn_server_serve(struct zn_server *s)
{
    struct sigaction sa = {0}, old_int, old_term;
    int rc = zn_server_start(s);

    if (rc < 0)
        return rc;

    /*
     * The self-pipe trick: a signal handler may do almost nothing, so it
     * writes a byte to a pipe that the accept loop polls next to the
     * listening socket. No flag to check, no race between checking a flag
     * and blocking.
     */
    signal_wake_fd = s->wake[1];
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    for (;;) {
        struct pollfd fds[2] = {
            {.fd = s->listen_fd, .events = POLLIN},
            {.fd = s->wake[0], .events = POLLIN},
        };

        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            zn_error("[%s] poll: %s", s->name, strerror(errno));
            break;
        }
        if (fds[1].revents)
            break;
        if (fds[0].revents)
            accept_one(s);
    }

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    signal_wake_fd = -1;
    zn_info("[%s] stopped", s->name);
    return 0;
}

uint16_t zn_server_port(const struct zn_server *s)
{
    return s->listen_fd >= 0 ? s->port : 0;
}

void zn_server_free(struct zn_server *s)
{
    if (s == NULL)
        return;
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    free(s->name);
    free(s->ip);
    free(s);
}
