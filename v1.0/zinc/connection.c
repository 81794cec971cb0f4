#include "zinc/connection_internal.h"

#include "zinc/config.h"
#include "zinc/datapack.h"
#include "zinc/properties.h"
#include "zinc/writer.h"

#include "zn_addr.h"
#include "zn_io.h"
#include "zn_log.h"
#include "zn_thread.h"

#include <errno.h>
#include <stdatomic.h>
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

struct zn_conn {
    int fd; /* the client socket, closed by the last release */
    uint32_t id; /* unique per server */
    atomic_int refs; /* the reader's, any other holder's */
    atomic_bool closed; /* set once by the first stop */
    pthread_t reader; /* the reader thread, joined by the maker */
    struct zn_writer *writer; /* the outgoing channel and its thread */
    struct zn_properties *props; /* freed by the last release */
    const struct zn_conn_ops *ops; /* how it reports to its maker */
    void *data; /* passed back with every call of ops */
    char remote[ZN_ADDR_STRLEN]; /* "IP:PORT" of the peer */
    char *rnext; /* the next unread byte in rbuf */
    size_t rleft; /* bytes in rbuf not taken yet */
    char rbuf[ZN_READ_BUF]; /* what the last read() brought */
};

static void write_failed(int err, void *data);

struct zn_conn *zn__conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                             socklen_t addrlen, const struct zn_conn_ops *ops,
                             void *data)
{
    /* malloc, not calloc: the pages of rbuf cost memory only once a
     * read() fills them, so an idle connection does not pay for them. */
    struct zn_conn *c = malloc(sizeof(*c));

    if (c == NULL)
        return NULL;
    c->writer =
        zn_writer_new(fd, id, zn_global.max_msg_chan_len, write_failed, c);
    if (c->writer == NULL)
        goto err;
    c->props = zn_properties_new();
    if (c->props == NULL)
        goto err_writer;
    c->fd = fd;
    c->id = id;
    atomic_init(&c->refs, 1);
    atomic_init(&c->closed, false);
    c->ops = ops;
    c->data = data;
    zn_addr_format(addr, addrlen, c->remote, sizeof(c->remote));
    c->rnext = c->rbuf;
    c->rleft = 0;
    return c;
err_writer:
    zn_writer_free(c->writer);
err:
    free(c);
    errno = ENOMEM;
    return NULL;
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

static bool claim_stop(struct zn_conn *c);
static void finish_stop(struct zn_conn *c);

/*
 * A read() failed (errno): log it and abort, unless the connection was
 * stopped already. Only the thread that stops it logs, so a reset that
 * fails the reader and the writer at once still makes one line.
 */
static void read_failed(struct zn_conn *c)
{
    int err = errno;

    if (!claim_stop(c))
        return;
    zn_warn("conn %u: read: %s", c->id, zn_strerror(err));
    finish_stop(c);
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
 * A write failed (err): log why and abort, unless the connection was
 * stopped already (a stop makes writes fail). Only the thread that stops
 * it logs, so several senders failing at once still make one line.
 */
static void write_failed(int err, void *data)
{
    struct zn_conn *c = data;

    if (!claim_stop(c))
        return;
    if (err == EAGAIN || err == EWOULDBLOCK)
        zn_warn("conn %u: too slow: took nothing for %d ms, stopping", c->id,
                ZN_WRITE_TIMEOUT_MS);
    else if (err == ETIMEDOUT)
        zn_warn("conn %u: too slow: %u replies waiting for %d ms, stopping",
                c->id, zn_global.max_msg_chan_len, ZN_SEND_WAIT_MS);
    else
        zn_warn("conn %u: send: %s", c->id, zn_strerror(err));
    finish_stop(c); /* the reader wakes and ends too */
}

/*
 * The reader thread: start the writer, run on_start, read messages and
 * hand each to on_msg until the end, end the connection gracefully or
 * finish its abort, then run on_stop. The hooks run here, once each: only
 * the reader starts a connection, and only it gets to the end.
 */
static void *reader_thread(void *arg)
{
    struct zn_conn *c = arg;
    struct zn_msg *msg;
    int rc;

    zn_thread_set_name("zn-reader-%u", c->id);
    zn_info("conn %u started, remote %s", c->id, c->remote);
    rc = zn_writer_start(c->writer);
    if (rc < 0) {
        zn_error("conn %u: cannot start a writer: %s", c->id, zn_strerror(-rc));
        zn_conn_stop(c);
        c->ops->on_exit(c, c->data); /* no hook ran, none will */
        zn_conn_release(c);
        return NULL;
    }
    if (c->ops->on_start != NULL)
        c->ops->on_start(c, c->data);
    while ((msg = read_msg(c)) != NULL) {
        /* Room for its replies first: see writer.h, slow consumers. */
        if (zn_writer_reserve(c->writer) < 0) {
            zn_msg_free(msg); /* stopped meanwhile */
            break;
        }
        c->ops->on_msg(c, msg, c->data); /* to a worker, or handled here */
        if (zn_conn_is_closed(c))
            break; /* the router stopped the connection */
    }

    /*
     * Graceful: the client closed its side. Requests it sent may still
     * wait in a worker's queue, and their replies are still to come:
     * ending the writer waits until every one of them is done, then lets
     * it write what is queued and end. The join waits for that, and only
     * then does stop shut the socket down, so the FIN follows the last
     * reply. After an abort the writer is dropping what is left; the join
     * just waits for it.
     */
    zn_writer_end(c->writer);
    zn_writer_join(c->writer);
    zn_conn_stop(c);
    /* Stopped, not yet closed: the hook can still read the connection. */
    if (c->ops->on_stop != NULL)
        c->ops->on_stop(c, c->data);
    c->ops->on_exit(c, c->data);
    zn_conn_release(c);
    return NULL;
}

int zn__conn_start(struct zn_conn *c)
{
    /* Joinable: the server joins every reader, while it runs and at its
     * stop, so no thread outlives it. */
    return zn_thread_start(&c->reader, reader_thread, c, false, NULL);
}

void zn__conn_join(struct zn_conn *c)
{
    pthread_join(c->reader, NULL);
}

/*
 * Mark c closed. atomic_exchange returns the old value: only the first
 * caller sees false and gets true here, and only it goes on to
 * finish_stop(), so the socket is shut down exactly once.
 */
static bool claim_stop(struct zn_conn *c)
{
    return !atomic_exchange(&c->closed, true);
}

void zn_conn_stop(struct zn_conn *c)
{
    if (claim_stop(c))
        finish_stop(c);
}

static void finish_stop(struct zn_conn *c)
{
    /*
     * shutdown(), not close(): the peer learns at once that the
     * connection is over, and any later read() returns 0, but the
     * descriptor stays open until the last zn_conn_release() closes it,
     * so its number cannot be reused by another accept() while a thread
     * still uses it. A reader blocked in read() and a writer blocked in
     * write() both wake up. Aborting the writer wakes its thread waiting
     * for a reply and anyone waiting for room to send one.
     */
    shutdown(c->fd, SHUT_RDWR);
    zn_writer_abort(c->writer);
    zn_info("conn %u closed", c->id);
}

int zn_conn_send_msg(struct zn_conn *c, uint32_t id, const void *data,
                     uint32_t len)
{
    size_t size;
    char *buf;

    if (zn_conn_is_closed(c))
        return -EPIPE;
    buf = zn_datapack_pack(id, data, len, &size);
    if (buf == NULL)
        return -errno; /* ENOMEM, or EMSGSIZE */
    return zn_writer_send(c->writer, buf, size); /* it takes buf */
}

void zn__conn_request_done(struct zn_conn *c)
{
    zn_writer_unreserve(c->writer);
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
    zn_writer_free(c->writer); /* with the replies nobody will write */
    zn_properties_free(c->props); /* after on_stop: nobody reads them */
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

int zn_conn_set_property(struct zn_conn *c, const char *key, const void *value,
                         size_t len)
{
    return zn_properties_set(c->props, key, value, len);
}

void *zn_conn_get_property(struct zn_conn *c, const char *key, size_t *len)
{
    return zn_properties_get(c->props, key, len);
}

int zn_conn_remove_property(struct zn_conn *c, const char *key)
{
    return zn_properties_remove(c->props, key);
}

int zn_conn_foreach_property(struct zn_conn *c, zn_property_fn fn, void *arg)
{
    return zn_properties_foreach(c->props, fn, arg);
}
