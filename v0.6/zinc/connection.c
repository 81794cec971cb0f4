#include "zinc/connection_internal.h"

#include "zinc/config.h"
#include "zinc/datapack.h"

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
 * to gigabytes of reservations; the read loop keeps its messages on the
 * heap and needs a few KiB. 256 KiB leaves room for libc and the
 * sanitizers.
 */
#define ZN_THREAD_STACK (256 * 1024)

/*
 * The reader's buffer, as in CS:APP's rio_readnb(): one read() takes up to
 * ZN_READ_BUF bytes, usually a whole frame or several, and read_msg() takes
 * the header and then the body out of it. Reading the 8-byte header and
 * the body straight from the socket would cost two read() calls per
 * message. 8 KiB holds a frame of the default MaxPacketSize whole.
 */
#define ZN_READ_BUF 8192

struct zn_conn {
    int fd; /* the client socket, owned */
    uint32_t id; /* unique per server */
    atomic_bool closed; /* set once by the first stop */
    pthread_mutex_t send_lock; /* one message on the wire at a time */
    const struct zn_conn_ops *ops; /* how it reports to its maker */
    void *data; /* passed back with every call of ops */
    char remote[ZN_ADDR_STRLEN]; /* "IP:PORT" of the peer */
    char *rnext; /* the next unread byte in rbuf */
    size_t rleft; /* bytes in rbuf not taken yet */
    char rbuf[ZN_READ_BUF]; /* what the last read() brought */
};

struct zn_conn *zn__conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                             socklen_t addrlen, const struct zn_conn_ops *ops,
                             void *data)
{
    /* malloc, not calloc: the pages of rbuf cost memory only once a
     * read() fills them, so an idle connection does not pay for them. */
    struct zn_conn *c = malloc(sizeof(*c));

    if (c == NULL)
        return NULL;
    if (pthread_mutex_init(&c->send_lock, NULL) != 0) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->fd = fd;
    c->id = id;
    atomic_init(&c->closed, false);
    c->ops = ops;
    c->data = data;
    zn_addr_format(addr, addrlen, c->remote, sizeof(c->remote));
    c->rnext = c->rbuf;
    c->rleft = 0;
    return c;
}

/*
 * Take up to n bytes for buf from the connection's buffer, refilling it
 * with one read() when it is empty (CS:APP's rio_read). A request for at
 * least a whole buffer, with the buffer empty, reads straight into buf:
 * copying it through would gain nothing. Returns the byte count, 0 at the
 * end of the stream, -1 with errno set.
 */
static ssize_t conn_read(struct zn_conn *c, char *buf, size_t n)
{
    if (c->rleft == 0) {
        ssize_t r;

        if (n >= sizeof(c->rbuf))
            return zn_read(c->fd, buf, n);
        r = zn_read(c->fd, c->rbuf, sizeof(c->rbuf));
        if (r <= 0)
            return r;
        c->rnext = c->rbuf;
        c->rleft = (size_t)r;
    }
    if (n > c->rleft)
        n = c->rleft;
    memcpy(buf, c->rnext, n);
    c->rnext += n;
    c->rleft -= n;
    return (ssize_t)n;
}

/*
 * Read exactly n bytes through the buffer (CS:APP's rio_readnb). Returns n,
 * fewer when the stream ends first, or -1 with errno set.
 */
static ssize_t conn_readn(struct zn_conn *c, void *buf, size_t n)
{
    char *p = buf;
    size_t left = n;

    while (left > 0) {
        ssize_t r = conn_read(c, p, left);

        if (r < 0)
            return -1;
        if (r == 0)
            break; /* EOF: report what arrived */
        p += r;
        left -= (size_t)r;
    }
    return (ssize_t)(n - left);
}

/*
 * A body is read into a buffer that grows with the bytes that have arrived,
 * never straight to the DataLen the header claims: a header alone claiming
 * 1 GiB must not cost 1 GiB. It starts at ZN_BODY_STEP and doubles, so a
 * large body costs a few reallocs and at most twice what really arrived
 * (or the first 64 KiB).
 */
#define ZN_BODY_STEP (64 * 1024)

/*
 * Read one message: exactly ZN_HEADER_LEN bytes of header, then exactly
 * DataLen bytes of body, however the bytes were cut into TCP segments.
 * Returns the message, or NULL at the end of the stream or on any error
 * (logged, except a clean close between two messages).
 */
static struct zn_msg *read_msg(struct zn_conn *c)
{
    unsigned char head[ZN_HEADER_LEN];
    struct zn_msg *msg, *bigger;
    uint32_t id, len, size, got = 0;
    ssize_t n = conn_readn(c, head, sizeof(head));

    if (n == 0)
        return NULL; /* the client closed between two messages */
    if (n < (ssize_t)sizeof(head)) {
        if (n < 0)
            zn_warn("conn %u: read: %s", c->id, zn_strerror(errno));
        else if (!zn_conn_is_closed(c))
            zn_warn("conn %u: truncated header (%zd of %d bytes)", c->id, n,
                    ZN_HEADER_LEN);
        return NULL;
    }
    if (zn_datapack_unpack(head, &id, &len) < 0) {
        zn_warn("conn %u: message of %u bytes exceeds MaxPacketSize %u, "
                "closing",
                c->id, len, (unsigned)zn_global.max_packet_size);
        return NULL;
    }

    size = len < ZN_BODY_STEP ? len : ZN_BODY_STEP;
    msg = zn_msg_new(id, NULL, size);
    while (msg != NULL) {
        n = conn_readn(c, zn_msg_data(msg) + got, size - got);
        if (n != (ssize_t)(size - got)) {
            if (n < 0)
                zn_warn("conn %u: read: %s", c->id, zn_strerror(errno));
            else
                zn_warn("conn %u: truncated body (%u of %u bytes)", c->id,
                        got + (uint32_t)n, len);
            zn_msg_free(msg);
            return NULL;
        }
        got = size;
        if (got == len)
            return msg;
        size = len - got > got ? 2 * got : len;
        bigger = zn_msg_resize(msg, size);
        if (bigger == NULL)
            zn_msg_free(msg);
        msg = bigger;
    }
    zn_error("conn %u: no memory for a message of %u bytes", c->id, len);
    return NULL;
}

/* The reader thread: read messages, hand each to on_msg, until the end. */
static void *reader_thread(void *arg)
{
    struct zn_conn *c = arg;
    struct zn_msg *msg;

    zn_thread_set_name("zn-reader-%u", c->id);
    zn_info("conn %u started, remote %s", c->id, c->remote);
    while ((msg = read_msg(c)) != NULL) {
        c->ops->on_msg(c, msg, c->data);
        zn_msg_free(msg);
        if (zn_conn_is_closed(c))
            break; /* the router stopped the connection */
    }

    /* Whoever ended the loop, this thread owns c: stop it and free it. */
    zn_conn_stop(c);
    c->ops->on_exit(c, c->data);
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

int zn_conn_send_msg(struct zn_conn *c, uint32_t id, const void *data,
                     uint32_t len)
{
    size_t size;
    char *buf;
    int rc = 0;

    if (zn_conn_is_closed(c))
        return -EPIPE;
    buf = zn_datapack_pack(id, data, len, &size);
    if (buf == NULL)
        return -errno; /* ENOMEM, or EMSGSIZE */
    pthread_mutex_lock(&c->send_lock);
    if (zn_writen(c->fd, buf, size) < 0)
        rc = -errno;
    pthread_mutex_unlock(&c->send_lock);
    free(buf);
    if (rc < 0) {
        zn_warn("conn %u: send: %s", c->id, zn_strerror(-rc));
        zn_conn_stop(c);
    }
    return rc;
}

void zn__conn_free(struct zn_conn *c)
{
    if (c == NULL)
        return;
    close(c->fd);
    pthread_mutex_destroy(&c->send_lock);
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
