#include "zinc/writer.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

/* Replies given to one sendmsg(); POSIX guarantees at least 16 (IOV_MAX). */
#define ZN_WRITEV_MAX 64

/* One packed reply waiting in the queue. */
struct zn_out {
    char *buf;
    size_t size;
};

/*
 * The queue is a ring of replies that grows by doubling: q[head] is the
 * oldest, of which the first `offset` bytes are written already.
 */
struct zn_writer {
    int fd; /* the socket, the caller's */
    size_t limit; /* replies that make a send fail */
    size_t busy; /* replies that make a waiting send wait */
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t room; /* signalled when replies leave the queue */
    struct zn_out *q; /* the ring, NULL while empty and never used */
    size_t cap, head, len; /* slots, oldest slot, replies waiting */
    size_t offset; /* bytes of q[head] written already */
    uint64_t sent; /* bytes written in all */
    bool ended; /* zn_writer_end() was called */
};

struct zn_writer *zn_writer_new(int fd, size_t cap)
{
    struct zn_writer *w = calloc(1, sizeof(*w));
    pthread_condattr_t attr;

    if (w == NULL)
        return NULL;
    w->fd = fd;
    w->limit = ZN_WRITER_LIMIT(cap);
    w->busy = ZN_WRITER_BUSY(cap);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&attr);
    /* The monotonic clock: setting the date must not cut a wait short. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->room, &attr);
    pthread_condattr_destroy(&attr);
    return w;
}

/* Append buf to the ring, growing it when full. Returns 0 or -ENOMEM. */
static int push(struct zn_writer *w, char *buf, size_t size, size_t offset)
{
    if (w->len == w->cap) {
        size_t cap = w->cap > 0 ? 2 * w->cap : 8;
        struct zn_out *q = malloc(cap * sizeof(*q));

        if (q == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < w->len; i++) /* unwrap the ring */
            q[i] = w->q[(w->head + i) % w->cap];
        free(w->q);
        w->q = q;
        w->cap = cap;
        w->head = 0;
    }
    w->q[(w->head + w->len) % w->cap] = (struct zn_out){buf, size};
    if (w->len++ == 0)
        w->offset = offset;
    return 0;
}

/* Free every reply waiting; the ring too, so an idle writer costs little. */
static void drop_all(struct zn_writer *w)
{
    for (size_t i = 0; i < w->len; i++)
        free(w->q[(w->head + i) % w->cap].buf);
    free(w->q);
    w->q = NULL;
    w->cap = w->head = w->len = w->offset = 0;
}

/* Write the queue, many replies a call, until it is empty or the socket is
 * full. */
static int flush_locked(struct zn_writer *w)
{
    while (w->len > 0) {
        struct iovec iov[ZN_WRITEV_MAX];
        int n = 0;
        ssize_t r;

        for (size_t i = 0; i < w->len && n < ZN_WRITEV_MAX; i++, n++) {
            struct zn_out *o = &w->q[(w->head + i) % w->cap];
            size_t skip = i == 0 ? w->offset : 0;

            iov[n].iov_base = o->buf + skip;
            iov[n].iov_len = o->size - skip;
        }
        /* writev() as sendmsg(), for MSG_NOSIGNAL: a client that has gone
         * away makes it fail with EPIPE instead of killing the process
         * with SIGPIPE. */
        r = sendmsg(w->fd, &(struct msghdr){.msg_iov = iov, .msg_iovlen = n},
                    MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            return -errno;
        }
        w->sent += (uint64_t)r;
        /* Free what went out whole; remember how far the next one got. */
        while (r > 0) {
            struct zn_out *o = &w->q[w->head];
            size_t left = o->size - w->offset;

            if ((size_t)r < left) {
                w->offset += (size_t)r;
                return 1; /* a short write: the socket is full */
            }
            r -= (ssize_t)left;
            free(o->buf);
            w->head = (w->head + 1) % w->cap;
            w->len--;
            w->offset = 0;
            pthread_cond_broadcast(&w->room); /* room for a waiting send */
        }
    }
    drop_all(w); /* frees the empty ring */
    return 0;
}

/*
 * ZN_SEND_WAIT: wait while busy replies wait, at most ZN_SEND_WAIT_MS.
 * Returns 0 when there is room (or the writer ended), -ETIMEDOUT.
 */
static int wait_for_room(struct zn_writer *w)
{
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += (long)ZN_SEND_WAIT_MS * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    while (!w->ended && w->len >= w->busy) {
        if (pthread_cond_timedwait(&w->room, &w->lock, &deadline) ==
                ETIMEDOUT &&
            !w->ended && w->len >= w->busy)
            return -ETIMEDOUT;
    }
    return 0;
}

int zn_writer_send(struct zn_writer *w, char *buf, size_t size,
                   enum zn_send_mode mode)
{
    size_t done = 0;
    int rc = 0;

    pthread_mutex_lock(&w->lock);
    if (mode == ZN_SEND_WAIT)
        rc = wait_for_room(w);
    if (rc == 0 && (w->ended || w->len >= w->limit))
        rc = w->ended ? -EPIPE : -ENOBUFS;
    if (rc < 0)
        goto out;
    /* Nothing waits: try the socket first, the usual case. */
    while (mode == ZN_SEND_NOW && w->len == 0 && done < size) {
        ssize_t r = send(w->fd, buf + done, size - done, MSG_NOSIGNAL);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            rc = -errno;
            goto out;
        }
        done += (size_t)r;
        w->sent += (uint64_t)r;
    }
    if (done == size) {
        rc = 0;
        goto out;
    }
    rc = push(w, buf, size, done);
    if (rc == 0) {
        pthread_mutex_unlock(&w->lock);
        return 1;
    }
out:
    pthread_mutex_unlock(&w->lock);
    free(buf);
    return rc;
}

int zn_writer_flush(struct zn_writer *w)
{
    int rc;

    pthread_mutex_lock(&w->lock);
    rc = flush_locked(w);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

size_t zn_writer_queued(struct zn_writer *w)
{
    size_t n;

    pthread_mutex_lock(&w->lock);
    n = w->len;
    pthread_mutex_unlock(&w->lock);
    return n;
}

uint64_t zn_writer_taken(struct zn_writer *w)
{
    uint64_t n;
    int queued = 0;

    pthread_mutex_lock(&w->lock);
    n = w->sent;
    pthread_mutex_unlock(&w->lock);
#ifdef TIOCOUTQ
    /* Linux's SIOCOUTQ: bytes in the send queue, not yet acknowledged. */
    if (ioctl(w->fd, TIOCOUTQ, &queued) < 0)
        queued = 0;
#endif
    return n - (uint64_t)queued;
}

void zn_writer_end(struct zn_writer *w, bool drop)
{
    pthread_mutex_lock(&w->lock);
    w->ended = true;
    if (drop)
        drop_all(w);
    pthread_cond_broadcast(&w->room); /* waiting sends fail now */
    pthread_mutex_unlock(&w->lock);
}

void zn_writer_free(struct zn_writer *w)
{
    if (w == NULL)
        return;
    drop_all(w);
    pthread_cond_destroy(&w->room);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
