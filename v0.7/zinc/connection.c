#include "zinc/connection.h"

#include "zinc/chan.h"
#include "zinc/config.h"
#include "zinc/datapack.h"

#include "zn_addr.h"
#include "zn_io.h"
#include "zn_log.h"
#include "zn_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The reader's buffer, as in CS:APP's rio_readnb(): one read() takes up to
 * ZN_READ_BUF bytes, usually a whole frame or several, and read_msg() takes
 * the header and then the body out of it. Reading the 8-byte header and
 * the body straight from the socket would cost two read() calls per
 * message. 8 KiB holds a frame of the default MaxPacketSize whole.
 */
#define ZN_READ_BUF 8192

/*
 * The most replies the writer takes from its channel for one writev():
 * when a client pipelines, its replies pile up while the writer writes,
 * and the next write carries them all.
 */
#define ZN_WRITE_BATCH 64

struct zn_conn {
    int fd; /* the client socket, closed by the last release */
    uint32_t id; /* unique per server */
    atomic_int refs; /* the reader's, the writer's, any other holder's */
    atomic_bool closed; /* set once by the first stop */
    struct zn_chan *out; /* packed replies on their way to the writer */
    pthread_t writer; /* the writer thread, joined by the reader */
    struct zn_msghandler *handler; /* routes every request by msg id */
    char remote[ZN_ADDR_STRLEN]; /* "IP:PORT" of the peer */
    char *rnext; /* the next unread byte in rbuf */
    size_t rleft; /* bytes in rbuf not taken yet */
    char rbuf[ZN_READ_BUF]; /* what the last read() brought */
};

struct zn_conn *zn_conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                            socklen_t addrlen, struct zn_msghandler *handler)
{
    /* malloc, not calloc: the pages of rbuf cost memory only once a
     * read() fills them, so an idle connection does not pay for them. */
    struct zn_conn *c = malloc(sizeof(*c));

    if (c == NULL)
        return NULL;
    c->out = zn_chan_new(zn_global.max_msg_chan_len);
    if (c->out == NULL) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->fd = fd;
    c->id = id;
    atomic_init(&c->refs, 1);
    atomic_init(&c->closed, false);
    c->handler = handler;
    zn_msghandler_hold(handler);
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

/* A read() failed (errno): log it, unless a stop caused it, and abort. */
static void read_failed(struct zn_conn *c)
{
    if (!zn_conn_is_closed(c))
        zn_warn("conn %u: read: %s", c->id, zn_strerror(errno));
    zn_conn_stop(c);
}

/*
 * Read one message: exactly ZN_HEADER_LEN bytes of header, then exactly
 * DataLen bytes of body, however the bytes were cut into TCP segments.
 * Returns the message, or NULL at the end of the stream or on any error
 * (logged, except a clean close between two messages). An error stops the
 * connection (abort); the end of the stream, even in the middle of a
 * message, leaves it to end gracefully.
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
            read_failed(c);
        else if (!zn_conn_is_closed(c))
            zn_warn("conn %u: truncated header (%zd of %d bytes)", c->id, n,
                    ZN_HEADER_LEN);
        return NULL;
    }
    if (zn_datapack_unpack(head, &id, &len) < 0) {
        zn_warn("conn %u: message of %u bytes exceeds MaxPacketSize %u, "
                "closing",
                c->id, len, (unsigned)zn_global.max_packet_size);
        zn_conn_stop(c);
        return NULL;
    }

    size = len < ZN_BODY_STEP ? len : ZN_BODY_STEP;
    msg = zn_msg_new(id, NULL, size);
    while (msg != NULL) {
        n = conn_readn(c, zn_msg_data(msg) + got, size - got);
        if (n != (ssize_t)(size - got)) {
            if (n < 0)
                read_failed(c);
            else if (!zn_conn_is_closed(c))
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
    zn_conn_stop(c);
    return NULL;
}

/*
 * The writer thread: take packed replies from the outgoing channel and
 * write them, several in one writev() when several wait, until the channel
 * is closed and empty. After an abort it drops what is left instead of
 * writing it. It holds a reference of its own, released at the end.
 */
static void *writer_thread(void *arg)
{
    struct zn_conn *c = arg;
    void *bufs[ZN_WRITE_BATCH];
    struct iovec iov[ZN_WRITE_BATCH];
    int n;

    while (zn_chan_recv(c->out, &bufs[0]) == 0) {
        for (n = 1; n < ZN_WRITE_BATCH; n++)
            if (zn_chan_try_recv(c->out, &bufs[n]) < 0)
                break;
        for (int i = 0; i < n; i++)
            iov[i] = (struct iovec){bufs[i], zn_datapack_size(bufs[i])};
        if (!zn_conn_is_closed(c) && zn_writevn(c->fd, iov, n) < 0) {
            if (!zn_conn_is_closed(c))
                zn_warn("conn %u: send: %s", c->id, zn_strerror(errno));
            zn_conn_stop(c); /* abort: the reader wakes and ends too */
        }
        for (int i = 0; i < n; i++)
            free(bufs[i]);
    }
    zn_conn_release(c);
    return NULL;
}

/*
 * The reader thread: start the writer, read messages and hand each to the
 * message handler until the end, then end the connection gracefully or
 * finish its abort.
 */
static void *reader_thread(void *arg)
{
    struct zn_conn *c = arg;
    struct zn_msg *msg;
    char name[24]; /* "zn-writer-" and an id; the kernel keeps 15 */
    int rc;

    zn_thread_set_name("zn-reader-%u", c->id);
    zn_info("conn %u started, remote %s", c->id, c->remote);
    zn_conn_hold(c); /* the writer's reference */
    snprintf(name, sizeof(name), "zn-writer-%u", c->id);
    rc = zn_thread_start(&c->writer, writer_thread, c, false, name);
    if (rc < 0) {
        zn_error("conn %u: cannot start a writer: %s", c->id, zn_strerror(-rc));
        zn_conn_release(c);
        zn_conn_stop(c);
        zn_conn_release(c);
        return NULL;
    }
    while ((msg = read_msg(c)) != NULL) {
        struct zn_request req = {.conn = c, .msg = msg};

        zn_msghandler_do(c->handler, &req);
        zn_msg_free(msg);
        if (zn_conn_is_closed(c))
            break; /* the router stopped the connection */
    }

    /*
     * Graceful: the client closed its side, and every request it sent has
     * been handled. Closing the channel lets the writer write what is
     * queued and then end; the join waits for that, and only then does
     * stop shut the socket down, so the FIN follows the last reply. After
     * an abort the channel is already closed and the writer is dropping
     * what is left; the join just waits for it.
     */
    zn_chan_close(c->out);
    pthread_join(c->writer, NULL);
    zn_conn_stop(c);
    zn_conn_release(c);
    return NULL;
}

int zn_conn_start(struct zn_conn *c)
{
    pthread_t tid;

    /*
     * Detached: nobody joins a reader thread, it cleans up after itself
     * when its client leaves. The price is that stop cannot wait for them;
     * v0.9's connection manager changes that.
     */
    return zn_thread_start(&tid, reader_thread, c, true, NULL);
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
     * descriptor stays open until the last zn_conn_release() closes it,
     * so its number cannot be reused by another accept() while a thread
     * still uses it. A reader blocked in read() and a writer blocked in
     * write() both wake up. Closing the channel wakes the writer waiting
     * for a reply and anyone waiting for room to send one.
     */
    shutdown(c->fd, SHUT_RDWR);
    zn_chan_close(c->out);
    zn_info("conn %u stopped", c->id);
}

int zn_conn_send_msg(struct zn_conn *c, uint32_t id, const void *data,
                     uint32_t len)
{
    size_t size;
    char *buf;
    int rc;

    if (zn_conn_is_closed(c))
        return -EPIPE;
    buf = zn_datapack_pack(id, data, len, &size);
    if (buf == NULL)
        return -errno; /* ENOMEM, or EMSGSIZE */
    /* From here the buffer is the channel's, then the writer's, unless
     * the channel is closed: then it is still ours. */
    rc = zn_chan_send(c->out, buf);
    if (rc < 0)
        free(buf);
    return rc;
}

void zn_conn_hold(struct zn_conn *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void zn_conn_release(struct zn_conn *c)
{
    /*
     * Only the thread that drops the count to zero frees. The atomic
     * decrement also orders memory: whatever the other holders did with
     * the connection happens before the free.
     */
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    zn_chan_free(c->out, free); /* replies nobody will write */
    close(c->fd);
    zn_msghandler_release(c->handler);
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
