#include "zinc/connection_internal.h"

#include "zinc/config.h"
#include "zinc/datapack.h"
#include "zinc/properties.h"
#include "zinc/writer.h"

#include "zn_addr.h"
#include "zn_fd.h"
#include "zn_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * One read() takes up to ZN_READ_BUF bytes, usually several whole frames,
 * into a buffer that belongs to the loop's thread, not to the connection:
 * the frames are handled straight from there, and only the start of a
 * frame still arriving is copied into the connection's own input buffer.
 * An idle connection holds no input buffer at all.
 */
#define ZN_READ_BUF 16384

/*
 * Reads for one connection per readiness report (fairness): a client that
 * sends without pause gets this many, then its loop serves the others and
 * comes back, since the socket is still readable (level-triggered).
 */
#define ZN_READS_PER_ROUND 4

struct zn_conn {
    int fd; /* the client socket, closed by the last release */
    uint32_t id; /* unique per server */
    atomic_int refs; /* the loop's, any other holder's */
    atomic_bool closed; /* set once by the first stop */
    _Atomic(struct zn_loop *) loop; /* its owner, from zn__conn_start() */
    struct zn_writer *writer; /* the output queue */
    struct zn_properties *props; /* freed by the last release */
    const struct zn_conn_ops *ops; /* how it reports to its maker */
    void *data; /* passed back with every call of ops */
    char remote[ZN_ADDR_STRLEN]; /* "IP:PORT" of the peer */
    struct zn_task start; /* zn__conn_start() posts it to the loop */
    struct zn_task kick; /* another thread wants the loop to look */
    atomic_bool kicked; /* kick is in the inbox */

    /* The loop's: used on its thread only. */
    unsigned watched; /* ZN_READABLE, ZN_WRITABLE: what the loop watches */
    bool started; /* the start task ran */
    bool hooked; /* on_start ran: on_stop will */
    bool ended; /* end() ran: the loop is done with it */
    bool eof; /* the client closed its side: flush, then end */
    bool paused; /* too many replies wait: read nothing for now */
    char *in; /* the start of a frame still arriving, and what the */
    size_t in_len, in_cap; /* client sent while paused; NULL when empty */
    struct zn_timer slow; /* the client's progress, while replies wait */
    uint64_t taken_mark; /* bytes the client had taken then */
};

/* Where every connection of a loop reads into: see ZN_READ_BUF. */
static _Thread_local char scratch[ZN_READ_BUF];

static void start_task(void *arg);
static void kick_task(void *arg);

struct zn_conn *zn__conn_new(int fd, uint32_t id, const struct sockaddr *addr,
                             socklen_t addrlen, const struct zn_conn_ops *ops,
                             void *data)
{
    struct zn_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->writer = zn_writer_new(fd, zn_global.max_msg_chan_len);
    if (c->writer == NULL)
        goto err;
    c->props = zn_properties_new();
    if (c->props == NULL)
        goto err_writer;
    if (zn_fd_set_nonblock(fd, true) < 0)
        goto err_props;
    c->fd = fd;
    c->id = id;
    atomic_init(&c->refs, 1);
    atomic_init(&c->closed, false);
    atomic_init(&c->kicked, false);
    atomic_init(&c->loop, NULL);
    c->ops = ops;
    c->data = data;
    c->start = (struct zn_task){.fn = start_task, .data = c};
    c->kick = (struct zn_task){.fn = kick_task, .data = c};
    zn_addr_format(addr, addrlen, c->remote, sizeof(c->remote));
    return c;
err_props:
    zn_properties_free(c->props);
err_writer:
    zn_writer_free(c->writer);
err:
    free(c);
    errno = ENOMEM;
    return NULL;
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

/*
 * Ask c's loop to look at c: write what another thread queued, or end a
 * connection another thread stopped. At most one kick waits in the inbox,
 * holding a reference. Before zn__conn_start() there is no loop yet: the
 * start task looks at everything anyway.
 */
static void kick(struct zn_conn *c)
{
    struct zn_loop *loop = atomic_load(&c->loop);

    if (loop == NULL || atomic_exchange(&c->kicked, true))
        return;
    zn_conn_hold(c);
    if (zn_loop_post(loop, &c->kick) < 0) {
        atomic_store(&c->kicked, false); /* the loop has ended */
        zn_conn_release(c);
    }
}

static void finish_stop(struct zn_conn *c)
{
    /*
     * shutdown(), not close(): the peer learns at once that the
     * connection is over, but the descriptor stays open until the last
     * zn_conn_release() closes it, so its number cannot be reused by
     * another accept() while a thread still uses it. The replies still
     * waiting are dropped. The loop ends the connection (end()) on its
     * own thread: at once when this runs there, or through a kick.
     */
    shutdown(c->fd, SHUT_RDWR);
    zn_writer_end(c->writer, true);
    zn_info("conn %u closed", c->id);
    kick(c);
}

void zn_conn_stop(struct zn_conn *c)
{
    if (claim_stop(c))
        finish_stop(c);
}

/*
 * A read() or write() failed with err, or the client is too slow: log it
 * and abort, unless the connection was stopped already (a stop makes
 * reads and writes fail).
 */
static void conn_failed(struct zn_conn *c, const char *what, int err)
{
    if (!claim_stop(c))
        return;
    if (err == ENOBUFS)
        zn_warn("conn %u: too slow: %zu replies waiting, stopping", c->id,
                ZN_WRITER_LIMIT(zn_global.max_msg_chan_len));
    else if (err == ETIMEDOUT)
        zn_warn("conn %u: too slow: %u replies waiting for %d ms, stopping",
                c->id, zn_global.max_msg_chan_len, ZN_SEND_WAIT_MS);
    else if (err == EAGAIN)
        zn_warn("conn %u: too slow: took nothing for %d ms, stopping", c->id,
                ZN_WRITE_TIMEOUT_MS);
    else
        zn_warn("conn %u: %s: %s", c->id, what, zn_strerror(err));
    finish_stop(c);
}

/*
 * The end, on the loop, once: stop watching the socket, run on_stop (the
 * socket is still open), tell the maker (on_exit) and drop the loop's
 * reference. The caller touches c no more.
 */
static void end(struct zn_conn *c)
{
    c->ended = true;
    if (c->watched != 0)
        zn_loop_watch(c->loop, c->fd, 0, NULL, NULL);
    c->watched = 0;
    zn_loop_timer_stop(c->loop, &c->slow);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    if (c->hooked && c->ops->on_stop != NULL)
        c->ops->on_stop(c, c->data);
    c->ops->on_exit(c, c->data);
    zn_conn_release(c);
}

static void on_io(int fd, unsigned events, void *arg);
static void slow_check(void *arg);

/*
 * Watch the socket for what c needs now: readable unless it is paused or
 * the client has closed its side, writable while replies wait; and keep
 * an eye on the client's progress while they do.
 */
static void rewatch(struct zn_conn *c)
{
    bool waiting = zn_writer_queued(c->writer) > 0;
    unsigned want =
        (c->paused || c->eof ? 0 : ZN_READABLE) | (waiting ? ZN_WRITABLE : 0);
    int rc;

    if (waiting && !c->slow.armed) {
        c->taken_mark = zn_writer_taken(c->writer);
        zn_loop_timer_start(c->loop, &c->slow, ZN_WRITE_TIMEOUT_MS, slow_check,
                            c);
    }
    if (want == c->watched)
        return;
    rc = zn_loop_watch(c->loop, c->fd, want, on_io, c);
    if (rc < 0)
        conn_failed(c, "watch", -rc);
    else
        c->watched = want;
}

static void parse(struct zn_conn *c, const char *buf, size_t len);

/*
 * Write what waits. When nothing waits any more, a client that closed
 * its side gets its FIN now (the graceful end), and a paused client is
 * read again: the requests it sent meanwhile first.
 */
static void flush(struct zn_conn *c)
{
    int rc = zn_writer_flush(c->writer);

    if (rc < 0) {
        conn_failed(c, "send", -rc);
        return;
    }
    if (c->paused && zn_writer_queued(c->writer) <=
                         ZN_WRITER_BUSY(zn_global.max_msg_chan_len) / 2) {
        c->paused = false;
        parse(c, c->in, c->in_len);
    }
    if (c->eof && zn_writer_queued(c->writer) == 0)
        zn_conn_stop(c); /* graceful: every reply went out */
}

/*
 * The timer of a client whose replies wait: when it took no byte of them
 * since the timer was armed, it is too slow; otherwise look again later.
 */
static void slow_check(void *arg)
{
    struct zn_conn *c = arg;

    if (zn_writer_queued(c->writer) == 0)
        return;
    if (zn_writer_taken(c->writer) == c->taken_mark) {
        conn_failed(c, "send", EAGAIN);
        end(c);
        return;
    }
    rewatch(c); /* arms it again */
}

/*
 * Keep what was not parsed, from buf (the loop's read buffer or c->in
 * itself), in c->in: the start of a frame still arriving, or whole frames
 * read before a pause.
 */
static int keep(struct zn_conn *c, const char *buf, size_t len)
{
    if (len == 0) {
        free(c->in); /* an idle connection holds no buffer */
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        return 0;
    }
    if (buf == c->in) {
        memmove(c->in, c->in + (c->in_len - len), len);
    } else {
        char *in = malloc(len);

        if (in == NULL)
            return -ENOMEM;
        memcpy(in, buf, len);
        free(c->in);
        c->in = in;
        c->in_cap = len;
    }
    c->in_len = len;
    return 0;
}

/*
 * Handle every whole frame in buf (len bytes), in order, each at once:
 * one read may bring several frames (sticky packets) and end inside one
 * (split packets). Stops early when the connection is stopped, or pauses
 * when too many replies wait for the client, keeping the rest.
 */
static void parse(struct zn_conn *c, const char *buf, size_t len)
{
    size_t busy = ZN_WRITER_BUSY(zn_global.max_msg_chan_len);

    while (len >= ZN_HEADER_LEN && !zn_conn_is_closed(c)) {
        struct zn_msg *msg;
        uint32_t id, size;

        if (zn_writer_queued(c->writer) >= busy) {
            flush(c); /* the socket may take some now */
            if (zn_writer_queued(c->writer) >= busy) {
                c->paused = true;
                break;
            }
        }
        if (zn_datapack_unpack((const unsigned char *)buf, &id, &size) < 0) {
            zn_warn("conn %u: message of %u bytes exceeds MaxPacketSize %u, "
                    "closing",
                    c->id, size, (unsigned)zn_global.max_packet_size);
            zn_conn_stop(c);
            return;
        }
        if (len - ZN_HEADER_LEN < size)
            break; /* the rest of it is still to come */
        msg = zn_msg_new(id, buf + ZN_HEADER_LEN, size);
        if (msg == NULL) {
            zn_error("conn %u: no memory for a message of %u bytes", c->id,
                     size);
            zn_conn_stop(c);
            return;
        }
        buf += ZN_HEADER_LEN + size;
        len -= ZN_HEADER_LEN + size;
        c->ops->on_msg(c, msg, c->data); /* handled now, on this thread */
    }
    if (!zn_conn_is_closed(c) && keep(c, buf, len) < 0) {
        zn_error("conn %u: no memory for its input", c->id);
        zn_conn_stop(c);
    }
}

/*
 * The client closed its side. Every whole frame has been handled; a frame
 * cut short is logged and dropped. What waits is still written, then the
 * connection stops (flush()).
 */
static void at_eof(struct zn_conn *c)
{
    uint32_t id, size;

    c->eof = true;
    if (c->in_len > 0 && c->in_len < ZN_HEADER_LEN)
        zn_warn("conn %u: truncated header (%zu of %d bytes)", c->id, c->in_len,
                ZN_HEADER_LEN);
    else if (c->in_len > 0 &&
             zn_datapack_unpack((unsigned char *)c->in, &id, &size) == 0)
        zn_warn("conn %u: truncated body (%zu of %u bytes)", c->id,
                c->in_len - ZN_HEADER_LEN, size);
    flush(c);
}

/* Room in c->in for one more read after what it holds. */
static int grow_in(struct zn_conn *c)
{
    size_t cap = c->in_cap;
    char *in;

    if (cap - c->in_len >= ZN_READ_BUF)
        return 0;
    /* Doubling, never by what a header claims: memory follows the bytes
     * that really arrived. */
    cap = 2 * cap > c->in_len + ZN_READ_BUF ? 2 * cap : c->in_len + ZN_READ_BUF;
    in = realloc(c->in, cap);
    if (in == NULL)
        return -ENOMEM;
    c->in = in;
    c->in_cap = cap;
    return 0;
}

/* The socket is readable: read a few times, handling each frame. */
static void read_some(struct zn_conn *c)
{
    for (int i = 0; i < ZN_READS_PER_ROUND; i++) {
        char *buf = scratch;
        size_t room = sizeof(scratch);
        ssize_t n;

        if (c->in_len > 0) { /* append to the frame in progress */
            if (grow_in(c) < 0) {
                zn_error("conn %u: no memory for its input", c->id);
                zn_conn_stop(c);
                return;
            }
            buf = c->in + c->in_len;
            room = c->in_cap - c->in_len;
        }
        n = read(c->fd, buf, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_failed(c, "read", errno);
            return;
        }
        if (n == 0) {
            at_eof(c);
            return;
        }
        if (buf == scratch) {
            parse(c, scratch, (size_t)n);
        } else {
            c->in_len += (size_t)n;
            parse(c, c->in, c->in_len);
        }
        if (c->paused || zn_conn_is_closed(c) || (size_t)n < room)
            return; /* paused, stopped, or nothing more to read now */
    }
}

/*
 * The loop's callback for the socket. Whatever happened, a stopped
 * connection ends here, at the tail, when nothing uses it any more.
 */
static void on_io(int fd, unsigned events, void *arg)
{
    struct zn_conn *c = arg;

    (void)fd;
    if (events & ZN_WRITABLE)
        flush(c);
    if ((events & ZN_READABLE) && !zn_conn_is_closed(c) && !c->paused &&
        !c->eof)
        read_some(c);
    if (zn_conn_is_closed(c))
        end(c);
    else
        rewatch(c);
}

/* The first thing the loop does with a new connection. */
static void start_task(void *arg)
{
    struct zn_conn *c = arg;

    c->started = true;
    if (!zn_conn_is_closed(c)) {
        zn_info("conn %u started, remote %s", c->id, c->remote);
        c->hooked = true;
        if (c->ops->on_start != NULL)
            c->ops->on_start(c, c->data);
    }
    if (!zn_conn_is_closed(c))
        flush(c); /* what another thread sent meanwhile */
    if (zn_conn_is_closed(c))
        end(c);
    else
        rewatch(c);
}

/* Another thread queued replies, or stopped the connection. */
static void kick_task(void *arg)
{
    struct zn_conn *c = arg;

    atomic_store(&c->kicked, false); /* a later kick posts again */
    if (c->started && !c->ended) {
        if (!zn_conn_is_closed(c))
            flush(c);
        if (zn_conn_is_closed(c))
            end(c); /* drops the loop's reference; the kick's is left */
        else
            rewatch(c);
    }
    zn_conn_release(c); /* the kick's */
}

int zn__conn_start(struct zn_conn *c, struct zn_loop *loop)
{
    atomic_store(&c->loop, loop);
    if (zn_loop_in_thread(loop)) {
        start_task(c);
        return 0;
    }
    return zn_loop_post(loop, &c->start);
}

int zn_conn_send_msg(struct zn_conn *c, uint32_t id, const void *data,
                     uint32_t len)
{
    struct zn_loop *loop = atomic_load(&c->loop);
    enum zn_send_mode mode = ZN_SEND_WAIT;
    size_t size;
    char *buf;
    int rc;

    if (zn_conn_is_closed(c))
        return -EPIPE;
    buf = zn_datapack_pack(id, data, len, &size);
    if (buf == NULL)
        return -errno; /* ENOMEM, or EMSGSIZE */
    /* On the connection's loop, write at once; from another thread, queue
     * and kick the loop. Only a thread that runs no loop may wait. */
    if (loop != NULL && zn_loop_in_thread(loop) && c->started)
        mode = ZN_SEND_NOW;
    else if (zn_loop_thread())
        mode = ZN_SEND_QUEUE;
    rc = zn_writer_send(c->writer, buf, size, mode);
    if (rc == 1) {
        if (mode == ZN_SEND_NOW)
            rewatch(c);
        else
            kick(c);
        return 0;
    }
    if (rc < 0 && rc != -EPIPE)
        conn_failed(c, "send", -rc);
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
    zn_writer_free(c->writer); /* with the replies nobody will write */
    zn_properties_free(c->props); /* after on_stop: nobody reads them */
    free(c->in);
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
