#include "zn_client.h"

#include "zn_addr.h"
#include "zn_frame.h"
#include "zn_io.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * Requests that timed out and still wait for their late reply. A server
 * that never answers would otherwise let them pile up: past this many the
 * connection is given up (the next call connects again, with none).
 */
#define ZN_MAX_LATE 1024

/*
 * One zn_client_request() waiting for its reply. On the heap, not the
 * requester's stack: after a timeout it stays in line (late) and the
 * reader frees it when the late reply comes.
 */
struct waiter {
    struct waiter *next; /* in line behind this one */
    uint32_t id; /* the reply id it waits for */
    bool late; /* timed out: drop the reply, free the waiter */
    bool done; /* reply or err is set */
    int err; /* why it failed, or 0 */
    struct zn_frame *reply; /* the reply, handed to the requester */
    pthread_cond_t cond; /* done */
};

struct zn_client {
    char *addr; /* "HOST:PORT" */
    struct zn_client_options o; /* with the defaults filled in */
    /*
     * Lock order: connect_lock, then send_lock, then lock. The reader
     * thread takes only lock.
     */
    pthread_mutex_t connect_lock; /* one connect (and join) at a time */
    pthread_mutex_t send_lock; /* one frame at a time on the socket */
    pthread_mutex_t lock; /* everything below */
    int fd; /* the connection, -1 when there is none */
    int dead_fd; /* a lost connection's socket, closed at the next connect */
    unsigned gen; /* counts connections: a stale failure is ignored */
    bool reading; /* a reader thread to join (connect_lock) */
    pthread_t reader;
    struct waiter *head, **tail; /* the requests waiting, in send order */
    unsigned late; /* waiters in line that timed out */
    int lost; /* why the last connection was lost, 0 before any was */
    bool told; /* a recv returned lost: the next one connects again */
    struct zn_frame **queue; /* unsolicited frames, a ring of max_queued */
    size_t qhead, qlen;
    pthread_cond_t queued; /* a frame was queued, or the connection lost */
    unsigned long dropped; /* frames the full queue dropped */
    int last_err; /* why the last connect failed */
    int backoff_ms; /* the wait after it, 0 after a success */
    struct timespec next_try; /* no connect before this (CLOCK_MONOTONIC) */
};

static struct timespec after_ms(int ms)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static bool passed(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec ||
           (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* A condition variable that times out on CLOCK_MONOTONIC: wall-clock
 * jumps must not stretch or cut a timeout. */
static void cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &a);
    pthread_condattr_destroy(&a);
}

/* Wait on cond until deadline (NULL: no limit). Returns ETIMEDOUT or 0. */
static int wait_until(pthread_cond_t *cond, pthread_mutex_t *m,
                      const struct timespec *deadline)
{
    if (deadline == NULL)
        return pthread_cond_wait(cond, m);
    return pthread_cond_timedwait(cond, m, deadline);
}

struct zn_client *zn_client_new(const char *addr,
                                const struct zn_client_options *opts)
{
    const char *colon = strrchr(addr, ':');
    struct zn_client *c;
    uint16_t port;

    /* Check what can be checked now; dial() resolves the host. */
    if (colon == NULL || colon == addr ||
        zn_addr_parse_port(colon + 1, &port) < 0) {
        errno = EINVAL;
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (opts != NULL)
        c->o = *opts;
    if (c->o.connect_timeout_ms <= 0)
        c->o.connect_timeout_ms = 5000;
    if (c->o.max_frame == 0)
        c->o.max_frame = 65536;
    if (c->o.backoff_min_ms <= 0)
        c->o.backoff_min_ms = 100;
    if (c->o.backoff_max_ms <= 0)
        c->o.backoff_max_ms = 5000;
    if (c->o.backoff_max_ms < c->o.backoff_min_ms)
        c->o.backoff_max_ms = c->o.backoff_min_ms;
    if (c->o.max_queued == 0)
        c->o.max_queued = 64;
    c->addr = strdup(addr);
    c->queue = calloc(c->o.max_queued, sizeof(*c->queue));
    if (c->addr == NULL || c->queue == NULL) {
        free(c->addr);
        free(c->queue);
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&c->connect_lock, NULL);
    pthread_mutex_init(&c->send_lock, NULL);
    pthread_mutex_init(&c->lock, NULL);
    cond_init(&c->queued);
    c->fd = c->dead_fd = -1;
    c->tail = &c->head;
    return c;
}

static void free_waiter(struct waiter *w)
{
    free(w->reply);
    pthread_cond_destroy(&w->cond);
    free(w);
}

/*
 * Give up connection number gen (caller holds lock): shut the socket
 * down, which wakes the reader, and fail every waiter with err at once.
 * The socket stays open until the next connect closes it under
 * send_lock, so a sender that still holds its number never writes to a
 * descriptor reused for something else. Does nothing when that
 * connection is gone already.
 */
static void lose(struct zn_client *c, unsigned gen, int err)
{
    struct waiter *w, *next;

    if (gen != c->gen || c->fd < 0)
        return;
    shutdown(c->fd, SHUT_RDWR);
    c->dead_fd = c->fd;
    c->fd = -1;
    c->lost = err;
    c->told = false;
    for (w = c->head; w != NULL; w = next) {
        next = w->next;
        if (w->late) {
            free_waiter(w);
            continue;
        }
        w->done = true;
        w->err = err;
        pthread_cond_signal(&w->cond);
    }
    c->head = NULL;
    c->tail = &c->head;
    c->late = 0;
    pthread_cond_broadcast(&c->queued);
}

/* Hand an unsolicited frame to recv's queue (caller holds lock). */
static void enqueue(struct zn_client *c, struct zn_frame *f)
{
    if (c->qlen == c->o.max_queued) { /* full: the oldest goes */
        free(c->queue[c->qhead]);
        c->qhead = (c->qhead + 1) % c->o.max_queued;
        c->qlen--;
        c->dropped++;
    }
    c->queue[(c->qhead + c->qlen) % c->o.max_queued] = f;
    c->qlen++;
    pthread_cond_signal(&c->queued);
}

/*
 * A frame arrived (caller holds lock): to the first waiter for its id, or
 * else it is unsolicited. Returns the frame when it is for the on_frame
 * callback (to be called without the lock), NULL when it was taken.
 */
static struct zn_frame *deliver(struct zn_client *c, struct zn_frame *f)
{
    struct waiter **pp, *w;

    for (pp = &c->head; (w = *pp) != NULL; pp = &w->next) {
        if (w->id != f->id)
            continue;
        *pp = w->next;
        if (c->tail == &w->next)
            c->tail = pp;
        if (w->late) { /* the reply of a request that timed out */
            c->late--;
            free(f);
            free_waiter(w);
            return NULL;
        }
        w->reply = f;
        w->done = true;
        pthread_cond_signal(&w->cond);
        return NULL;
    }
    if (c->o.on_frame != NULL)
        return f;
    enqueue(c, f);
    return NULL;
}

/*
 * The client this thread reads for: set on a reader thread, NULL on every
 * other. An on_frame callback runs on the reader, and a call it makes must
 * not connect: dial() first joins the last reader, so the callback would
 * wait for itself, or for the connect_lock of a thread that waits for it.
 */
static _Thread_local struct zn_client *reading_for;

/* What the reader thread needs: the client, and which connection. */
struct reader_arg {
    struct zn_client *c;
    int fd;
    unsigned gen;
};

/*
 * Read one frame from fd. Returns 0 with *out, or a negative errno:
 * -ECONNRESET at the end of the stream, -EPROTO for a body larger than
 * max_frame, -ENOMEM.
 */
static int read_frame(struct zn_client *c, int fd, struct zn_frame **out)
{
    unsigned char head[ZN_FRAME_HEADER_LEN];
    struct zn_frame *f;
    ssize_t n = zn_readn(fd, head, sizeof(head));
    uint32_t id, len;

    if (n != (ssize_t)sizeof(head))
        return n < 0 && errno != ECONNRESET ? -errno : -ECONNRESET;
    zn_frame_get_header(head, &id, &len);
    if (len > c->o.max_frame)
        return -EPROTO;
    f = malloc(sizeof(*f) + len + 1);
    if (f == NULL)
        return -ENOMEM;
    f->len = len;
    f->id = id;
    n = zn_readn(fd, f->data, len);
    if (n != (ssize_t)len) {
        free(f);
        return n < 0 && errno != ECONNRESET ? -errno : -ECONNRESET;
    }
    f->data[len] = '\0';
    *out = f;
    return 0;
}

/* The reader thread: deliver every frame until the connection ends. */
static void *reader_thread(void *arg)
{
    struct reader_arg a = *(struct reader_arg *)arg;
    struct zn_client *c = a.c;
    struct zn_frame *f = NULL;
    int rc;

    free(arg);
    reading_for = c;
    while ((rc = read_frame(c, a.fd, &f)) == 0) {
        pthread_mutex_lock(&c->lock);
        f = deliver(c, f);
        pthread_mutex_unlock(&c->lock);
        if (f != NULL) {
            c->o.on_frame(f, c->o.arg);
            free(f);
        }
    }
    pthread_mutex_lock(&c->lock);
    lose(c, a.gen, rc);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/*
 * Connect (caller holds connect_lock): close what the last connection
 * left, dial, start a reader. Returns 0 or a negative errno.
 */
static int dial(struct zn_client *c)
{
    struct timeval wait = {c->o.connect_timeout_ms / 1000,
                           c->o.connect_timeout_ms % 1000 * 1000};
    struct reader_arg *a;
    int fd, rc;

    if (c->reading) { /* the last reader ended, or is about to */
        pthread_join(c->reader, NULL);
        c->reading = false;
    }
    pthread_mutex_lock(&c->send_lock);
    pthread_mutex_lock(&c->lock);
    if (c->dead_fd >= 0)
        close(c->dead_fd);
    c->dead_fd = -1;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->send_lock);

    fd = zn_addr_dial_timeout(c->addr, c->o.connect_timeout_ms);
    if (fd < 0)
        return fd;
    /* A server that takes nothing for that long is given up on too. */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof(wait));
    a = malloc(sizeof(*a));
    if (a == NULL) {
        close(fd);
        return -ENOMEM;
    }
    pthread_mutex_lock(&c->lock);
    c->fd = fd;
    c->gen++;
    *a = (struct reader_arg){c, fd, c->gen};
    pthread_mutex_unlock(&c->lock);
    rc = pthread_create(&c->reader, NULL, reader_thread, a);
    if (rc != 0) {
        free(a);
        pthread_mutex_lock(&c->lock);
        lose(c, c->gen, -rc);
        pthread_mutex_unlock(&c->lock);
        return -rc;
    }
    c->reading = true;
    return 0;
}

int zn_client_connect(struct zn_client *c)
{
    bool backing_off;
    int rc;

    if (reading_for == c) { /* in on_frame: this connection or none */
        pthread_mutex_lock(&c->lock);
        rc = c->fd >= 0 ? 0 : c->lost != 0 ? c->lost : -ECONNRESET;
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    pthread_mutex_lock(&c->connect_lock);
    pthread_mutex_lock(&c->lock);
    if (c->fd >= 0) {
        pthread_mutex_unlock(&c->lock);
        pthread_mutex_unlock(&c->connect_lock);
        return 0;
    }
    /* Still backing off: fail at once with the last error, never sleep. */
    backing_off = c->backoff_ms > 0 && !passed(&c->next_try);
    rc = c->last_err;
    pthread_mutex_unlock(&c->lock);
    if (backing_off) {
        pthread_mutex_unlock(&c->connect_lock);
        return rc;
    }

    rc = dial(c);
    pthread_mutex_lock(&c->lock);
    if (rc == 0) {
        c->backoff_ms = 0;
    } else { /* wait twice as long before the next try, up to the most */
        if (c->backoff_ms == 0)
            c->backoff_ms = c->o.backoff_min_ms;
        else if (c->backoff_ms > c->o.backoff_max_ms / 2)
            c->backoff_ms = c->o.backoff_max_ms;
        else
            c->backoff_ms *= 2;
        c->next_try = after_ms(c->backoff_ms);
        c->last_err = rc;
    }
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->connect_lock);
    return rc;
}

/*
 * Write one frame, after putting w (when not NULL) in line for its reply:
 * listed before the write, the reply cannot arrive before its waiter.
 * Returns 0 or a negative errno; when the write fails the connection is
 * lost, and w has been failed with the rest.
 */
static int send_frame(struct zn_client *c, uint32_t id, const void *data,
                      uint32_t len, struct waiter *w)
{
    unsigned char head[ZN_FRAME_HEADER_LEN];
    struct iovec iov[2] = {{head, sizeof(head)}, {(void *)data, len}};
    unsigned gen;
    int fd, rc;

    if (len > c->o.max_frame)
        return -EMSGSIZE;
    rc = zn_client_connect(c);
    if (rc < 0)
        return rc;
    zn_frame_put_header(head, id, len);

    pthread_mutex_lock(&c->send_lock);
    pthread_mutex_lock(&c->lock);
    fd = c->fd;
    gen = c->gen;
    if (fd < 0) { /* lost since the connect */
        rc = c->lost != 0 ? c->lost : -ECONNRESET;
        pthread_mutex_unlock(&c->lock);
        pthread_mutex_unlock(&c->send_lock);
        return rc;
    }
    if (w != NULL) {
        *c->tail = w;
        c->tail = &w->next;
    }
    pthread_mutex_unlock(&c->lock);
    if (zn_writevn(fd, iov, len > 0 ? 2 : 1) < 0) {
        /* SO_SNDTIMEO ran out; EPIPE is a server that closed. */
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            rc = -ETIMEDOUT;
        else
            rc = errno == EPIPE ? -ECONNRESET : -errno;
        pthread_mutex_lock(&c->lock);
        lose(c, gen, rc);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&c->send_lock);
    return rc;
}

int zn_client_send(struct zn_client *c, uint32_t id, const void *data,
                   uint32_t len)
{
    return send_frame(c, id, data, len, NULL);
}

int zn_client_request(struct zn_client *c, uint32_t id, const void *data,
                      uint32_t len, uint32_t reply_id, int timeout_ms,
                      struct zn_frame **reply)
{
    struct timespec deadline = {0, 0};
    struct waiter *w = calloc(1, sizeof(*w));
    int rc;

    if (w == NULL)
        return -ENOMEM;
    w->id = reply_id;
    cond_init(&w->cond);
    if (timeout_ms >= 0)
        deadline = after_ms(timeout_ms);
    rc = send_frame(c, id, data, len, w);

    pthread_mutex_lock(&c->lock);
    if (rc < 0 && !w->done) { /* never put in line */
        pthread_mutex_unlock(&c->lock);
        free_waiter(w);
        return rc;
    }
    while (!w->done) {
        if (wait_until(&w->cond, &c->lock,
                       timeout_ms >= 0 ? &deadline : NULL) == ETIMEDOUT &&
            !w->done) {
            /* It stays in line; the reader frees it with its reply. */
            w->late = true;
            if (++c->late > ZN_MAX_LATE)
                lose(c, c->gen, -ETIMEDOUT);
            pthread_mutex_unlock(&c->lock);
            return -ETIMEDOUT;
        }
    }
    pthread_mutex_unlock(&c->lock);
    rc = w->err;
    *reply = w->reply;
    w->reply = NULL;
    free_waiter(w);
    return rc;
}

int zn_client_recv(struct zn_client *c, int timeout_ms, struct zn_frame **frame)
{
    struct timespec deadline = {0, 0};
    unsigned gen;
    int rc = 0;

    if (timeout_ms >= 0)
        deadline = after_ms(timeout_ms);
    pthread_mutex_lock(&c->lock);
    if (c->qlen == 0 && c->fd < 0 && (c->lost == 0 || c->told)) {
        pthread_mutex_unlock(&c->lock);
        rc = zn_client_connect(c);
        if (rc < 0)
            return rc;
        pthread_mutex_lock(&c->lock);
    }
    /* Wait on this connection; when it is lost (even if another call
     * connected again since), every recv that waited on it says why. */
    gen = c->gen;
    while (c->qlen == 0 && c->fd >= 0 && c->gen == gen && rc == 0)
        rc = -wait_until(&c->queued, &c->lock,
                         timeout_ms >= 0 ? &deadline : NULL);
    if (c->qlen > 0) {
        *frame = c->queue[c->qhead];
        c->qhead = (c->qhead + 1) % c->o.max_queued;
        c->qlen--;
        rc = 0;
    } else if (rc == 0) { /* lost */
        rc = c->lost;
        c->told = true;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

unsigned long zn_client_dropped(struct zn_client *c)
{
    unsigned long n;

    pthread_mutex_lock(&c->lock);
    n = c->dropped;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void zn_client_free(struct zn_client *c)
{
    struct waiter *w, *next;

    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    lose(c, c->gen, -ECANCELED);
    pthread_mutex_unlock(&c->lock);
    if (c->reading)
        pthread_join(c->reader, NULL);
    if (c->dead_fd >= 0)
        close(c->dead_fd);
    for (w = c->head; w != NULL; w = next) { /* only late ones are left */
        next = w->next;
        free_waiter(w);
    }
    while (c->qlen > 0) {
        free(c->queue[c->qhead]);
        c->qhead = (c->qhead + 1) % c->o.max_queued;
        c->qlen--;
    }
    free(c->queue);
    pthread_cond_destroy(&c->queued);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->send_lock);
    pthread_mutex_destroy(&c->connect_lock);
    free(c->addr);
    free(c);
}
