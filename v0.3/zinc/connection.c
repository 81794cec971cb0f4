#include "zinc/connection_internal.h"

#include "zn_addr.h"
#include "zn_io.h"
#include "zn_log.h"
#include "zn_thread.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Each reader thread gets a small stack. The default (8 MiB on Linux) is
 * only address space until touched, but with thousands of clients it adds up
 * to gigabytes of reservations; a read loop with a 512-byte buffer needs a
 * few KiB. 256 KiB leaves room for libc and the sanitizers.
 */
#define ZN_THREAD_STACK (256 * 1024)
#define ZN_READ_BUF 512

struct zn_conn {
    int fd; /* the client socket, owned */
    uint32_t id; /* unique per server */
    atomic_bool closed; /* set once by the first stop */
    struct zn_router *router; /* handles every request */
    char remote[ZN_ADDR_STRLEN]; /* "IP:PORT" of the peer */
};

struct zn_conn *zn__conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                             socklen_t addrlen, struct zn_router *router)
{
    struct zn_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->id = id;
    atomic_init(&c->closed, false);
    c->router = router;
    zn_addr_format(addr, addrlen, c->remote, sizeof(c->remote));
    return c;
}

/* The reader thread: read, hand each chunk to the router, until the end. */
static void *reader_thread(void *arg)
{
    struct zn_conn *c = arg;
    char buf[ZN_READ_BUF];
    ssize_t n;

    zn_thread_set_name("zn-reader-%u", c->id);
    zn_info("conn %u started, remote %s", c->id, c->remote);
    while ((n = zn_read(c->fd, buf, sizeof(buf))) > 0) {
        struct zn_request req = {.conn = c, .data = buf, .len = (size_t)n};

        zn_router_dispatch(c->router, &req);
        if (zn_conn_is_closed(c))
            break; /* the router stopped the connection */
    }
    if (n < 0 && !zn_conn_is_closed(c))
        zn_warn("conn %u: read: %s", c->id, zn_strerror(errno));

    /* Whoever ended the loop, this thread owns c: stop it and free it. */
    zn_conn_stop(c);
    zn__conn_free(c);
    return NULL;
}

int zn__conn_start(struct zn_conn *c)
{
    pthread_attr_t attr;
    sigset_t block, old;
    pthread_t tid;
    int rc;

    /*
     * Detached: nobody joins a reader thread, it cleans up after itself
     * when its client leaves. The price is that stop cannot wait for them;
     * v0.9's connection manager changes that.
     */
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, ZN_THREAD_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /*
     * SIGINT and SIGTERM belong to the server's main thread, which polls
     * the wake-up pipe. A new thread inherits its creator's signal mask:
     * block them around pthread_create() and the reader never runs the
     * handler (which could otherwise write to the pipe while main closes
     * it at exit).
     */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&tid, &attr, reader_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return -rc;
}

void zn_conn_stop(struct zn_conn *c)
{
    /* atomic_exchange returns the old value: only the first caller sees
     * false, so the socket is shut down exactly once. */
    if (atomic_exchange(&c->closed, true))
        return;
    /*
     * shutdown(), not close(): the peer learns at once that the
     * connection is over, and any later read() returns 0, but the
     * descriptor stays open until the reader closes it in zn__conn_free(),
     * so its number cannot be reused by another accept() while the reader
     * still uses it. (From v0.7 other threads stop a connection while its
     * reader is blocked in read(); shutdown() is what wakes it.)
     */
    shutdown(c->fd, SHUT_RDWR);
    zn_info("conn %u stopped", c->id);
}

void zn__conn_free(struct zn_conn *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    free(c);
}

int zn_conn_fd(const struct zn_conn *c)
{
    return c->fd;
}

uint32_t zn_conn_id(const struct zn_conn *c)
{
    return c->id;
}

const char *zn_conn_remote_addr(const struct zn_conn *c)
{
    return c->remote;
}

bool zn_conn_is_closed(const struct zn_conn *c)
{
    return atomic_load(&c->closed);
}
