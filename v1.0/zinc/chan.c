#include "zinc/chan.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct zn_chan {
    pthread_mutex_t lock; /* guards every field below */
    pthread_cond_t not_full; /* a slot was freed, or the channel closed */
    pthread_cond_t not_empty; /* an item was queued, or the channel closed */
    void **slots; /* the ring: cap pointers */
    size_t cap; /* slots in the ring */
    size_t head; /* the slot of the oldest item */
    size_t count; /* items queued, 0 to cap */
    bool closed; /* set by zn_chan_close(), never cleared */
};

struct zn_chan *zn_chan_new(size_t capacity)
{
    struct zn_chan *ch;
    pthread_condattr_t attr;
    int rc;

    if (capacity == 0 || capacity > SIZE_MAX / sizeof(void *)) {
        errno = EINVAL;
        return NULL;
    }
    ch = malloc(sizeof(*ch));
    if (ch == NULL)
        goto err;
    /* malloc, not calloc: a slot's page costs memory only once used. */
    ch->slots = malloc(capacity * sizeof(void *));
    if (ch->slots == NULL)
        goto err_ch;
    if (pthread_mutex_init(&ch->lock, NULL) != 0)
        goto err_slots;
    /* The timed send waits on the monotonic clock: see send_locked(). */
    if (pthread_condattr_init(&attr) != 0)
        goto err_lock;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&ch->not_full, &attr);
    if (rc == 0 && (rc = pthread_cond_init(&ch->not_empty, &attr)) != 0)
        pthread_cond_destroy(&ch->not_full);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        goto err_lock;
    ch->cap = capacity;
    ch->head = 0;
    ch->count = 0;
    ch->closed = false;
    return ch;
err_lock:
    pthread_mutex_destroy(&ch->lock);
err_slots:
    free(ch->slots);
err_ch:
    free(ch);
err:
    errno = ENOMEM;
    return NULL;
}

/*
 * The deadline timeout_ms from now, as pthread_cond_timedwait() wants it:
 * an absolute time on the condition variables' clock.
 */
static struct timespec deadline_after(unsigned timeout_ms)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += timeout_ms / 1000;
    t.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/*
 * The one send behind the three: wait for room while wait says so (NULL
 * deadline: without limit), then queue item. Called and returns with the
 * lock held.
 *
 * The wait is a loop, never a single if: pthread_cond_wait() may return
 * without a signal (a spurious wake-up), and between the signal and this
 * thread getting the lock another sender may have taken the free slot.
 * Only the condition, checked under the lock, says whether to go on.
 */
static int send_locked(struct zn_chan *ch, void *item, bool wait,
                       const struct timespec *deadline)
{
    while (ch->count == ch->cap && !ch->closed) {
        if (!wait)
            return -EAGAIN;
        if (deadline == NULL)
            pthread_cond_wait(&ch->not_full, &ch->lock);
        else if (pthread_cond_timedwait(&ch->not_full, &ch->lock, deadline) ==
                     ETIMEDOUT &&
                 ch->count == ch->cap && !ch->closed)
            return -ETIMEDOUT;
    }
    if (ch->closed)
        return -EPIPE;
    ch->slots[(ch->head + ch->count) % ch->cap] = item;
    ch->count++;
    return 0;
}

/*
 * One waiting receiver is woken per item sent, one waiting sender per item
 * taken, after the lock is released. No wake-up can be lost that way: the
 * count changed under the lock, so a thread that checks it afterwards sees
 * the change and does not wait, and one that already waits is queued on
 * the condition variable and gets the signal. Signalling before the unlock
 * would be as correct, but the woken thread would run into the lock still
 * held and sleep once more: a second context switch for nothing.
 */
static void sent(struct zn_chan *ch)
{
    pthread_cond_signal(&ch->not_empty);
}

static void taken(struct zn_chan *ch)
{
    pthread_cond_signal(&ch->not_full);
}

int zn_chan_send(struct zn_chan *ch, void *item)
{
    int rc;

    pthread_mutex_lock(&ch->lock);
    rc = send_locked(ch, item, true, NULL);
    pthread_mutex_unlock(&ch->lock);
    if (rc == 0)
        sent(ch);
    return rc;
}

int zn_chan_try_send(struct zn_chan *ch, void *item)
{
    int rc;

    pthread_mutex_lock(&ch->lock);
    rc = send_locked(ch, item, false, NULL);
    pthread_mutex_unlock(&ch->lock);
    if (rc == 0)
        sent(ch);
    return rc;
}

int zn_chan_send_timed(struct zn_chan *ch, void *item, unsigned timeout_ms)
{
    struct timespec deadline = deadline_after(timeout_ms);
    int rc;

    pthread_mutex_lock(&ch->lock);
    rc = send_locked(ch, item, true, &deadline);
    pthread_mutex_unlock(&ch->lock);
    if (rc == 0)
        sent(ch);
    return rc;
}

/* Take the head item, waiting while empty and open if wait says so. Called
 * and returns with the lock held. */
static int recv_locked(struct zn_chan *ch, void **item, bool wait)
{
    while (ch->count == 0 && !ch->closed) {
        if (!wait)
            return -EAGAIN;
        pthread_cond_wait(&ch->not_empty, &ch->lock);
    }
    if (ch->count == 0)
        return -EPIPE; /* closed, and everything has been handed out */
    *item = ch->slots[ch->head];
    ch->head = (ch->head + 1) % ch->cap;
    ch->count--;
    return 0;
}

int zn_chan_recv(struct zn_chan *ch, void **item)
{
    int rc;

    pthread_mutex_lock(&ch->lock);
    rc = recv_locked(ch, item, true);
    pthread_mutex_unlock(&ch->lock);
    if (rc == 0)
        taken(ch);
    return rc;
}

int zn_chan_try_recv(struct zn_chan *ch, void **item)
{
    int rc;

    pthread_mutex_lock(&ch->lock);
    rc = recv_locked(ch, item, false);
    pthread_mutex_unlock(&ch->lock);
    if (rc == 0)
        taken(ch);
    return rc;
}

void zn_chan_close(struct zn_chan *ch)
{
    pthread_mutex_lock(&ch->lock);
    ch->closed = true;
    /* Broadcast, not signal: every waiter must see the change. */
    pthread_cond_broadcast(&ch->not_full);
    pthread_cond_broadcast(&ch->not_empty);
    pthread_mutex_unlock(&ch->lock);
}

void zn_chan_free(struct zn_chan *ch, void (*drop)(void *item))
{
    if (ch == NULL)
        return;
    for (; drop != NULL && ch->count > 0; ch->count--) {
        drop(ch->slots[ch->head]);
        ch->head = (ch->head + 1) % ch->cap;
    }
    pthread_cond_destroy(&ch->not_empty);
    pthread_cond_destroy(&ch->not_full);
    pthread_mutex_destroy(&ch->lock);
    free(ch->slots);
    free(ch);
}
