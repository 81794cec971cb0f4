#include "zinc/connection.h"

#include "zinc/chan.h"
#include "zinc/config.h"
#include "zinc/datapack.h"
#include "zinc/request.h"
#include "zinc/server.h"

#include "zn_addr.h"
#include "zn_io.h"
#include "zn_log.h"
#include "zn_map.h"
#include "zn_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/sockios.h> /* SIOCOUTQ */
#endif

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

/*
 * How long zn_conn_send_msg() waits for room in a full outgoing channel
 * before it gives up on the client as too slow. A worker serves many
 * connections: it must never wait long for one of them.
 */
#define ZN_SEND_WAIT_MS 100

/*
 * How long the writer waits for the client to take a byte before it looks
 * whether the client is too slow (SO_SNDTIMEO, and see write_batch()).
 */
#define ZN_WRITE_TIMEOUT_MS 500

struct zn_conn {
    int fd; /* the client socket, closed by the last release */
    uint32_t id; /* unique per server */
    atomic_int refs; /* the reader's, the writer's, any other holder's */
    atomic_bool closed; /* set once by the first stop */
    struct zn_chan *out; /* packed replies on their way to the writer */
    pthread_t reader; /* the reader thread, joined by the server */
    pthread_t writer; /* the writer thread, joined by the reader */
    pthread_mutex_t send_lock; /* guards the five below, direct writes */
    pthread_cond_t room; /* inflight or queued went down, or stopped */
    unsigned inflight; /* requests submitted and not yet handled */
    unsigned queued; /* replies in out or in the writer's hands */
    size_t partial; /* bytes of out's first reply a direct write sent */
    bool ended; /* zn_conn_end_replies() ran: no more replies */
    struct zn_msghandler *handler; /* routes every request by msg id */
    struct zn_server *server; /* its hooks and manager; NULL: none */
    pthread_rwlock_t props_lock; /* readers: get, foreach; writers: the rest */
    struct zn_map *props; /* key -> struct zn_prop *, owned */
    char remote[ZN_ADDR_STRLEN]; /* "IP:PORT" of the peer */
    char *rnext; /* the next unread byte in rbuf */
    size_t rleft; /* bytes in rbuf not taken yet */
    char rbuf[ZN_READ_BUF]; /* what the last read() brought */
};

struct zn_conn *zn_conn_new(struct zn_server *server, int fd, uint32_t id,
                            const struct sockaddr *addr, socklen_t addrlen,
                            struct zn_msghandler *handler)
{
    /* malloc, not calloc: the pages of rbuf cost memory only once a
     * read() fills them, so an idle connection does not pay for them. */
    struct zn_conn *c = malloc(sizeof(*c));
    struct timeval wait = {ZN_WRITE_TIMEOUT_MS / 1000,
                           ZN_WRITE_TIMEOUT_MS % 1000 * 1000};

    if (c == NULL)
        return NULL;
    c->out = zn_chan_new(zn_global.max_msg_chan_len);
    c->props = zn_map_new();
    if (c->out == NULL || c->props == NULL ||
        pthread_rwlock_init(&c->props_lock, NULL) != 0) {
        zn_chan_free(c->out, NULL);
        zn_map_free(c->props, NULL);
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->fd = fd;
    c->id = id;
    atomic_init(&c->refs, 1);
    atomic_init(&c->closed, false);
    pthread_mutex_init(&c->send_lock, NULL);
    pthread_cond_init(&c->room, NULL);
    c->inflight = 0;
    c->queued = 0;
    c->partial = 0;
    c->ended = false;
    /* The writer's patience with a client that takes nothing. */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof(wait)) < 0)
        zn_warn("conn %u: SO_SNDTIMEO: %s", id, zn_strerror(errno));
    c->handler = handler;
    zn_msghandler_hold(handler);
    c->server = server;
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
 * A write failed (errno): log why and abort, unless the connection was
 * stopped already (a stop makes writes fail). Only the thread that stops
 * it logs, so several senders failing at once still make one line.
 */
static void write_failed(struct zn_conn *c)
{
    int err = errno;

    if (!claim_stop(c))
        return;
    if (err == EAGAIN || err == EWOULDBLOCK)
        zn_warn("conn %u: too slow: took nothing for %d ms, stopping", c->id,
                ZN_WRITE_TIMEOUT_MS);
    else
        zn_warn("conn %u: send: %s", c->id, zn_strerror(err));
    finish_stop(c); /* the reader wakes and ends too */
}

/*
 * Bytes written to the socket that the client has not acknowledged yet, or
 * -1 where the system does not tell (SIOCOUTQ is Linux's).
 */
static int unacked(int fd)
{
#if defined(SIOCOUTQ)
    int n;

    if (ioctl(fd, SIOCOUTQ, &n) == 0)
        return n;
#endif
    (void)fd;
    return -1;
}

/* The bytes iov still holds to write. */
static size_t iov_bytes(const struct iovec *iov, int cnt)
{
    size_t n = 0;

    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    return n;
}

/*
 * Write a batch of replies, giving up on a client that takes nothing. The
 * socket's SO_SNDTIMEO ends a write that waited ZN_WRITE_TIMEOUT_MS with
 * EAGAIN, but that alone does not prove the client took nothing: Linux
 * wakes a blocked writer only once a third of the send buffer is free, and
 * that buffer grows to megabytes, so a client reading a steady 1 MB/s can
 * keep a write waiting longer. What the client took is what it
 * acknowledged: the bytes unacknowledged at the last look (SIOCOUTQ), plus
 * those written since, minus those unacknowledged now. When that is more
 * than nothing, the write goes on (zn_writevn() resumes where it stopped);
 * otherwise the client is too slow. Returns 0, or -1 with errno (EAGAIN:
 * too slow).
 */
static int write_batch(struct zn_conn *c, struct iovec *iov, int cnt)
{
    size_t rest = iov_bytes(iov, cnt), now_rest;
    int last = unacked(c->fd), now;

    while (zn_writevn(c->fd, iov, cnt) < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        now = unacked(c->fd);
        now_rest = iov_bytes(iov, cnt);
        if (zn_conn_is_closed(c) || last < 0 || now < 0 ||
            (long long)last + (long long)(rest - now_rest) - now <= 0) {
            errno = EAGAIN;
            return -1;
        }
        last = now;
        rest = now_rest;
    }
    return 0;
}

/*
 * The writer thread: take packed replies from the outgoing channel and
 * write them, several in one writev() when several wait, until the channel
 * is closed and empty. After an abort it drops what is left instead of
 * writing it. It holds a reference of its own, released at the end.
 *
 * While it holds replies, `queued` is not 0, so no sender writes to the
 * socket directly (see zn_conn_send_msg()): the bytes cannot interleave.
 */
static void *writer_thread(void *arg)
{
    struct zn_conn *c = arg;
    void *bufs[ZN_WRITE_BATCH];
    struct iovec iov[ZN_WRITE_BATCH];
    size_t skip;
    int n;

    while (zn_chan_recv(c->out, &bufs[0]) == 0) {
        for (n = 1; n < ZN_WRITE_BATCH; n++)
            if (zn_chan_try_recv(c->out, &bufs[n]) < 0)
                break;
        for (int i = 0; i < n; i++)
            iov[i] = (struct iovec){bufs[i], zn_datapack_size(bufs[i])};
        /* A direct write may have sent the start of the first one. */
        pthread_mutex_lock(&c->send_lock);
        skip = c->partial;
        c->partial = 0;
        pthread_mutex_unlock(&c->send_lock);
        iov[0].iov_base = (char *)iov[0].iov_base + skip;
        iov[0].iov_len -= skip;
        if (!zn_conn_is_closed(c) && write_batch(c, iov, n) < 0)
            write_failed(c);
        for (int i = 0; i < n; i++)
            free(bufs[i]);
        pthread_mutex_lock(&c->send_lock);
        c->queued -= (unsigned)n;
        pthread_cond_signal(&c->room); /* the reader may submit again */
        pthread_mutex_unlock(&c->send_lock);
    }
    zn_conn_release(c);
    return NULL;
}

/*
 * Flow control: wait while this connection's requests in flight and its
 * replies waiting for the writer fill half the outgoing channel, then
 * count one more request in flight (zn_conn_request_done() gives it back).
 * A client that pipelines faster than it reads its replies is simply not
 * read from for a while, so a worker almost never finds its channel full
 * and never waits for it; the other half of the channel is room for a
 * request that is answered with several replies. The wait is this
 * client's own: this thread serves nobody else.
 */
static void wait_for_room(struct zn_conn *c)
{
    unsigned half = (zn_global.max_msg_chan_len + 1) / 2;

    pthread_mutex_lock(&c->send_lock);
    while (c->inflight + c->queued >= half && !zn_conn_is_closed(c))
        pthread_cond_wait(&c->room, &c->send_lock);
    c->inflight++;
    pthread_mutex_unlock(&c->send_lock);
}

/*
 * The reader's last step. A server's connection leaves the server's
 * manager, and the reader's reference goes to the server's main thread,
 * which joins this thread and then drops it (zn_server_conn_ended()). A
 * connection without a server runs detached: the reference is dropped.
 */
static void *reader_done(struct zn_conn *c)
{
    if (c->server != NULL)
        zn_server_conn_ended(c->server, c);
    else
        zn_conn_release(c);
    return NULL;
}

/*
 * The reader thread: start the writer, run on_conn_start, read messages
 * and hand each to the message handler until the end, end the connection
 * gracefully or finish its abort, then run on_conn_stop. The hooks run
 * here, once each: only the reader starts a connection, and only it gets
 * to the end.
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
        return reader_done(c); /* no hook ran, none will */
    }
    if (c->server != NULL)
        zn_server_call_on_conn_start(c->server, c);
    while ((msg = read_msg(c)) != NULL) {
        struct zn_request *req;

        wait_for_room(c);
        req = zn_request_new(c, msg);
        if (req == NULL) {
            zn_error("conn %u: no memory for a request", c->id);
            zn_msg_free(msg);
            zn_conn_request_done(c);
            zn_conn_stop(c);
            break;
        }
        /* To a worker, or handled right here without workers. */
        if (zn_msghandler_submit(c->handler, req) < 0) {
            zn_request_free(req); /* the server is stopping */
            zn_conn_stop(c);
            break;
        }
        if (zn_conn_is_closed(c))
            break; /* the router stopped the connection */
    }

    /*
     * Graceful: the client closed its side. Requests it sent may still
     * wait in the worker's queue, and their replies are still to come, so
     * the reader cannot close the outgoing channel itself. It queues a last
     * request without a message behind them; the worker handles requests
     * in order, so when it gets to that one it has handled every other,
     * and it ends the replies: the writer writes what is queued and ends.
     * The join waits for that, and only then does stop shut the socket
     * down, so the FIN follows the last reply. After an abort the channel
     * is already closed and the writer is dropping what is left; the join
     * just waits for it.
     */
    if (!zn_conn_is_closed(c)) {
        struct zn_request *last = zn_request_new(c, NULL);

        if (last == NULL || zn_msghandler_submit(c->handler, last) < 0) {
            zn_request_free(last);
            zn_conn_stop(c);
        }
    }
    pthread_join(c->writer, NULL);
    zn_conn_stop(c);
    /* Stopped, not yet closed: the hook can still read the connection. */
    if (c->server != NULL)
        zn_server_call_on_conn_stop(c->server, c);
    return reader_done(c);
}

int zn_conn_start(struct zn_conn *c)
{
    /*
     * Joinable: the server joins every reader, while it runs and at its
     * stop, so no thread outlives it. A connection without a server has
     * nobody to join it: its reader is detached, as before v0.9.
     */
    return zn_thread_start(&c->reader, reader_thread, c, c->server == NULL,
                           NULL);
}

void zn_conn_join(struct zn_conn *c)
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
     * write() both wake up. Closing the channel wakes the writer waiting
     * for a reply and anyone waiting for room to send one.
     */
    shutdown(c->fd, SHUT_RDWR);
    zn_chan_close(c->out);
    pthread_mutex_lock(&c->send_lock);
    pthread_cond_broadcast(&c->room); /* a reader waiting to submit */
    pthread_mutex_unlock(&c->send_lock);
    zn_info("conn %u closed", c->id);
}

/*
 * Write a packed reply straight to the socket without waiting: the bytes
 * send() took (0 when the socket buffer is full), or -1 with errno set.
 */
static ssize_t send_now(struct zn_conn *c, const char *buf, size_t size)
{
    ssize_t n = send(c->fd, buf, size, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return n;
}

int zn_conn_send_msg(struct zn_conn *c, uint32_t id, const void *data,
                     uint32_t len)
{
    size_t size;
    ssize_t n;
    char *buf;
    int rc;

    if (zn_conn_is_closed(c))
        return -EPIPE;
    buf = zn_datapack_pack(id, data, len, &size);
    if (buf == NULL)
        return -errno; /* ENOMEM, or EMSGSIZE */

    pthread_mutex_lock(&c->send_lock);
    if (c->ended) {
        pthread_mutex_unlock(&c->send_lock);
        free(buf);
        return -EPIPE;
    }
    if (c->queued == 0) {
        /*
         * Nothing waits for the writer, and it holds nothing: write
         * directly, without blocking, and save the hop to the writer
         * thread (a wake-up and a context switch) whenever the socket
         * buffer has room, which is nearly always. The lock keeps any
         * other sender out meanwhile.
         */
        n = send_now(c, buf, size);
        if (n == (ssize_t)size) {
            pthread_mutex_unlock(&c->send_lock);
            free(buf);
            return 0;
        }
        if (n < 0) {
            rc = -errno;
            pthread_mutex_unlock(&c->send_lock);
            free(buf);
            errno = -rc;
            write_failed(c);
            return rc;
        }
        /*
         * The socket took part of it, or nothing: the rest goes to the
         * writer. The channel is empty and stays so while we hold the
         * lock (with queued 0 every sender comes here), so the rest is
         * first in line and no other reply can overtake it.
         */
        c->partial = (size_t)n;
        c->queued = 1;
        rc = zn_chan_try_send(c->out, buf);
        if (rc < 0) { /* stopped meanwhile: the channel is closed */
            c->partial = 0;
            c->queued = 0;
        }
        pthread_mutex_unlock(&c->send_lock);
        if (rc < 0)
            free(buf);
        return rc;
    }
    c->queued++;
    pthread_mutex_unlock(&c->send_lock);

    /* The writer is busy: queue behind it, but never wait long. */
    rc = zn_chan_send_timed(c->out, buf, ZN_SEND_WAIT_MS);
    if (rc == 0)
        return 0;
    pthread_mutex_lock(&c->send_lock);
    c->queued--;
    pthread_mutex_unlock(&c->send_lock);
    free(buf);
    if (rc == -ETIMEDOUT && claim_stop(c)) {
        zn_warn("conn %u: too slow: %u replies waiting for %d ms, stopping",
                c->id, zn_global.max_msg_chan_len, ZN_SEND_WAIT_MS);
        finish_stop(c);
    }
    return rc;
}

void zn_conn_request_done(struct zn_conn *c)
{
    pthread_mutex_lock(&c->send_lock);
    c->inflight--;
    pthread_cond_signal(&c->room);
    pthread_mutex_unlock(&c->send_lock);
}

void zn_conn_end_replies(struct zn_conn *c)
{
    pthread_mutex_lock(&c->send_lock);
    c->ended = true; /* no direct write from now on */
    pthread_mutex_unlock(&c->send_lock);
    zn_chan_close(c->out); /* the writer writes what is queued, then ends */
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
    zn_map_free(c->props, free); /* after on_conn_stop: nobody reads them */
    pthread_rwlock_destroy(&c->props_lock);
    pthread_cond_destroy(&c->room);
    pthread_mutex_destroy(&c->send_lock);
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

/* A property's value, with its key (the map's copy has no NUL). */
struct zn_prop {
    size_t len; /* bytes in value */
    char key[ZN_MAX_PROPERTY_KEY + 1]; /* NUL-terminated */
    unsigned char value[]; /* len bytes and a NUL */
};

int zn_conn_set_property(struct zn_conn *c, const char *key, const void *value,
                         size_t len)
{
    size_t keylen = strlen(key);
    struct zn_prop *p, *old = NULL;
    int rc;

    if (keylen == 0 || keylen > ZN_MAX_PROPERTY_KEY)
        return -EINVAL;
    /* The copy is made before the lock: nobody waits for a malloc. */
    p = malloc(sizeof(*p) + len + 1);
    if (p == NULL)
        return -ENOMEM;
    p->len = len;
    memcpy(p->key, key, keylen + 1);
    if (len > 0)
        memcpy(p->value, value, len);
    p->value[len] = '\0';

    pthread_rwlock_wrlock(&c->props_lock);
    if (zn_map_len(c->props) >= ZN_MAX_PROPERTIES &&
        zn_map_get_str(c->props, key) == NULL)
        rc = -ENOSPC; /* a new key, and no room for it */
    else
        rc = zn_map_set_str(c->props, key, p, (void **)&old);
    pthread_rwlock_unlock(&c->props_lock);
    free(rc == 0 ? old : p); /* the value replaced, or ours unused */
    return rc;
}

void *zn_conn_get_property(struct zn_conn *c, const char *key, size_t *len)
{
    struct zn_prop *p;
    void *copy = NULL;
    int err = ENOENT;

    pthread_rwlock_rdlock(&c->props_lock);
    p = zn_map_get_str(c->props, key);
    if (p != NULL) {
        /* Copied under the lock: a set or remove may free p right after. */
        copy = malloc(p->len + 1);
        if (copy != NULL) {
            memcpy(copy, p->value, p->len + 1);
            *len = p->len;
        }
        err = ENOMEM;
    }
    pthread_rwlock_unlock(&c->props_lock);
    if (copy == NULL)
        errno = err;
    return copy;
}

int zn_conn_remove_property(struct zn_conn *c, const char *key)
{
    struct zn_prop *p;

    pthread_rwlock_wrlock(&c->props_lock);
    p = zn_map_remove_str(c->props, key);
    pthread_rwlock_unlock(&c->props_lock);
    free(p);
    return p != NULL ? 0 : -ENOENT;
}

/* zn_conn_foreach_property()'s walk: the caller's function, its argument. */
struct prop_walk {
    int (*fn)(const char *key, const void *value, size_t len, void *arg);
    void *arg;
};

static int visit(const void *key, size_t keylen, void *value, void *arg)
{
    struct prop_walk *w = arg;
    struct zn_prop *p = value;
    (void)key;
    (void)keylen;

    return w->fn(p->key, p->value, p->len, w->arg);
}

int zn_conn_foreach_property(struct zn_conn *c,
                             int (*fn)(const char *key, const void *value,
                                       size_t len, void *arg),
                             void *arg)
{
    struct prop_walk w = {fn, arg};
    int rc;

    pthread_rwlock_rdlock(&c->props_lock);
    rc = zn_map_foreach(c->props, visit, &w);
    pthread_rwlock_unlock(&c->props_lock);
    return rc;
}
