#include "zinc/writer.h"

#include "zinc/chan.h"
#include "zinc/datapack.h"

#include "zn_io.h"
#include "zn_log.h"
#include "zn_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#if defined(__linux__)
#include <linux/sockios.h> /* SIOCOUTQ */
#endif

/*
 * The most replies the writer takes from its channel for one writev():
 * when a client pipelines, its replies pile up while the writer writes,
 * and the next write carries them all.
 */
#define ZN_WRITE_BATCH 64

struct zn_writer {
    int fd; /* the socket, not owned */
    uint32_t id; /* the connection's, for the thread's name */
    struct zn_chan *out; /* packed replies on their way to the thread */
    size_t cap; /* how many out holds */
    pthread_t thread; /* the writer thread */
    atomic_bool aborted; /* queued replies are dropped, not written */
    zn_writer_failed_fn failed; /* told of a write that failed */
    void *data; /* its second argument */
    pthread_mutex_t lock; /* guards the four below, and direct writes */
    pthread_cond_t room; /* reserved or queued went down, or ended */
    unsigned reserved; /* requests handed on whose replies may come */
    unsigned queued; /* replies in out or in the thread's hands */
    size_t partial; /* bytes of out's first reply a direct write sent */
    bool ended; /* ended or aborted: no more replies */
};

struct zn_writer *zn_writer_new(int fd, uint32_t id, size_t cap,
                                zn_writer_failed_fn failed, void *data)
{
    struct zn_writer *w = malloc(sizeof(*w));
    struct timeval wait = {ZN_WRITE_TIMEOUT_MS / 1000,
                           ZN_WRITE_TIMEOUT_MS % 1000 * 1000};

    if (w == NULL)
        return NULL;
    w->out = zn_chan_new(cap);
    if (w->out == NULL)
        goto err;
    if (pthread_mutex_init(&w->lock, NULL) != 0)
        goto err_chan;
    if (pthread_cond_init(&w->room, NULL) != 0)
        goto err_lock;
    /* The thread's patience with a client that takes nothing. */
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof(wait)) < 0)
        zn_warn("conn %u: SO_SNDTIMEO: %s", id, zn_strerror(errno));
    w->fd = fd;
    w->id = id;
    w->cap = cap;
    atomic_init(&w->aborted, false);
    w->failed = failed;
    w->data = data;
    w->reserved = 0;
    w->queued = 0;
    w->partial = 0;
    w->ended = false;
    return w;
err_lock:
    pthread_mutex_destroy(&w->lock);
err_chan:
    zn_chan_free(w->out, NULL);
err:
    free(w);
    errno = ENOMEM;
    return NULL;
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
static int write_batch(struct zn_writer *w, struct iovec *iov, int cnt)
{
    size_t rest = iov_bytes(iov, cnt), now_rest;
    int last = unacked(w->fd), now;

    while (zn_writevn(w->fd, iov, cnt) < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        now = unacked(w->fd);
        now_rest = iov_bytes(iov, cnt);
        if (atomic_load(&w->aborted) || last < 0 || now < 0 ||
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
 * The writer thread: take packed replies from the channel and write them,
 * several in one writev() when several wait, until the channel is closed
 * and empty. After an abort it drops what is left instead of writing it.
 *
 * While it holds replies, `queued` is not 0, so no sender writes to the
 * socket directly (see zn_writer_send()): the bytes cannot interleave.
 */
static void *writer_thread(void *arg)
{
    struct zn_writer *w = arg;
    void *bufs[ZN_WRITE_BATCH];
    struct iovec iov[ZN_WRITE_BATCH];
    size_t skip;
    int n;

    while (zn_chan_recv(w->out, &bufs[0]) == 0) {
        for (n = 1; n < ZN_WRITE_BATCH; n++)
            if (zn_chan_try_recv(w->out, &bufs[n]) < 0)
                break;
        for (int i = 0; i < n; i++)
            iov[i] = (struct iovec){bufs[i], zn_datapack_size(bufs[i])};
        /* A direct write may have sent the start of the first one. */
        pthread_mutex_lock(&w->lock);
        skip = w->partial;
        w->partial = 0;
        pthread_mutex_unlock(&w->lock);
        iov[0].iov_base = (char *)iov[0].iov_base + skip;
        iov[0].iov_len -= skip;
        if (!atomic_load(&w->aborted) && write_batch(w, iov, n) < 0)
            w->failed(errno, w->data);
        for (int i = 0; i < n; i++)
            free(bufs[i]);
        pthread_mutex_lock(&w->lock);
        w->queued -= (unsigned)n;
        pthread_cond_signal(&w->room); /* the reader may reserve again */
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

int zn_writer_start(struct zn_writer *w)
{
    char name[24]; /* "zn-writer-" and an id; the kernel keeps 15 */

    snprintf(name, sizeof(name), "zn-writer-%u", w->id);
    return zn_thread_start(&w->thread, writer_thread, w, false, name);
}

/*
 * Write a packed reply straight to the socket without waiting: the bytes
 * send() took (0 when the socket buffer is full), or -1 with errno set.
 */
static ssize_t send_now(int fd, const char *buf, size_t size)
{
    ssize_t n = send(fd, buf, size, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return n;
}

int zn_writer_send(struct zn_writer *w, char *buf, size_t size)
{
    ssize_t n;
    int rc;

    pthread_mutex_lock(&w->lock);
    if (w->ended) {
        pthread_mutex_unlock(&w->lock);
        free(buf);
        return -EPIPE;
    }
    if (w->queued == 0) {
        /*
         * Nothing waits for the thread, and it holds nothing: write
         * directly, without blocking. The lock keeps any other sender out
         * meanwhile.
         */
        n = send_now(w->fd, buf, size);
        if (n == (ssize_t)size) {
            pthread_mutex_unlock(&w->lock);
            free(buf);
            return 0;
        }
        if (n < 0) {
            rc = -errno;
            pthread_mutex_unlock(&w->lock);
            free(buf);
            w->failed(-rc, w->data);
            return rc;
        }
        /*
         * The socket took part of it, or nothing: the rest goes to the
         * thread. The channel is empty and stays so while we hold the
         * lock (with queued 0 every sender comes here), so the rest is
         * first in line and no other reply can overtake it.
         */
        w->partial = (size_t)n;
        w->queued = 1;
        rc = zn_chan_try_send(w->out, buf);
        if (rc < 0) { /* aborted meanwhile: the channel is closed */
            w->partial = 0;
            w->queued = 0;
        }
        pthread_mutex_unlock(&w->lock);
        if (rc < 0)
            free(buf);
        return rc;
    }
    w->queued++;
    pthread_mutex_unlock(&w->lock);

    /* The thread is busy: queue behind it, but never wait long. */
    rc = zn_chan_send_timed(w->out, buf, ZN_SEND_WAIT_MS);
    if (rc == 0)
        return 0;
    pthread_mutex_lock(&w->lock);
    w->queued--;
    pthread_cond_signal(&w->room);
    pthread_mutex_unlock(&w->lock);
    free(buf);
    if (rc == -ETIMEDOUT)
        w->failed(ETIMEDOUT, w->data);
    return rc;
}

int zn_writer_reserve(struct zn_writer *w)
{
    size_t half = (w->cap + 1) / 2;
    int rc = 0;

    pthread_mutex_lock(&w->lock);
    while (w->reserved + w->queued >= half && !w->ended)
        pthread_cond_wait(&w->room, &w->lock);
    if (atomic_load(&w->aborted))
        rc = -EPIPE;
    else
        w->reserved++;
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void zn_writer_unreserve(struct zn_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->reserved--;
    pthread_cond_signal(&w->room);
    pthread_mutex_unlock(&w->lock);
}

void zn_writer_end(struct zn_writer *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->reserved > 0 && !w->ended)
        pthread_cond_wait(&w->room, &w->lock); /* replies still to come */
    w->ended = true; /* no direct write from now on */
    pthread_mutex_unlock(&w->lock);
    zn_chan_close(w->out); /* the thread writes what is queued, then ends */
}

void zn_writer_abort(struct zn_writer *w)
{
    atomic_store(&w->aborted, true);
    pthread_mutex_lock(&w->lock);
    w->ended = true;
    pthread_cond_broadcast(&w->room); /* a reader waiting to reserve or end */
    pthread_mutex_unlock(&w->lock);
    zn_chan_close(w->out);
}

void zn_writer_join(struct zn_writer *w)
{
    pthread_join(w->thread, NULL);
}

void zn_writer_free(struct zn_writer *w)
{
    if (w == NULL)
        return;
    zn_chan_free(w->out, free); /* replies nobody will write */
    pthread_cond_destroy(&w->room);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
