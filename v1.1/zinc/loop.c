#include "zinc/loop.h"

#include "zn_fd.h"
#include "zn_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Descriptors reported by one wait; the rest wait for the next round. */
#define ZN_LOOP_BATCH 256

/* What a watched descriptor is watched for, and whom to tell. */
struct zn_watch {
    unsigned events; /* 0: not watched */
    zn_io_fn fn;
    void *data;
};

struct zn_loop {
    struct zn_poller *poller;
    struct zn_watch *watches; /* watches[fd], for fd < nwatches */
    int nwatches;
    struct zn_fired fired[ZN_LOOP_BATCH]; /* what the last wait reported */
    struct zn_timer *first, *last; /* armed timers, the next one due first */
    int wake[2]; /* the wake-up pipe: a byte in wake[1] wakes the loop */
    atomic_bool stopping; /* zn_loop_stop() was called */
    pthread_mutex_t lock; /* guards the inbox, woken and ended */
    struct zn_task *inbox, *inbox_last; /* posted, not run yet, in order */
    bool woken; /* a byte is in the pipe, or the loop runs the inbox */
    bool ended; /* zn_loop_run() has returned: posts fail */
};

/* The loop the calling thread runs, if any. */
static _Thread_local const struct zn_loop *current;

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_inbox(int fd, unsigned events, void *data);

struct zn_loop *zn_loop_new(void)
{
    struct zn_loop *loop = calloc(1, sizeof(*loop));
    int err = ENOMEM;

    if (loop == NULL)
        return NULL;
    loop->wake[0] = loop->wake[1] = -1;
    atomic_init(&loop->stopping, false);
    pthread_mutex_init(&loop->lock, NULL);
    loop->poller = zn_poller_new();
    if (loop->poller == NULL || zn_fd_pipe(loop->wake) < 0) {
        err = errno;
        goto fail;
    }
    err = -zn_loop_watch(loop, loop->wake[0], ZN_READABLE, run_inbox, loop);
    if (err == 0)
        return loop;
fail:
    zn_loop_free(loop);
    errno = err;
    return NULL;
}

void zn_loop_free(struct zn_loop *loop)
{
    if (loop == NULL)
        return;
    zn_poller_free(loop->poller);
    if (loop->wake[0] >= 0)
        close(loop->wake[0]);
    if (loop->wake[1] >= 0)
        close(loop->wake[1]);
    pthread_mutex_destroy(&loop->lock);
    free(loop->watches);
    free(loop);
}

int zn_loop_watch(struct zn_loop *loop, int fd, unsigned events, zn_io_fn fn,
                  void *data)
{
    struct zn_watch *w;
    int rc;

    if (fd >= loop->nwatches) {
        int n = loop->nwatches > 0 ? loop->nwatches : 64;

        while (n <= fd)
            n *= 2;
        w = realloc(loop->watches, (size_t)n * sizeof(*w));
        if (w == NULL)
            return -ENOMEM;
        for (int i = loop->nwatches; i < n; i++)
            w[i].events = 0;
        loop->watches = w;
        loop->nwatches = n;
    }
    w = &loop->watches[fd];
    rc = zn_poller_set(loop->poller, fd, w->events, events);
    if (rc < 0)
        return rc;
    w->events = events;
    w->fn = fn;
    w->data = data;
    return 0;
}

/* Wake the loop: one byte, unless one is there already. */
static void wake(struct zn_loop *loop)
{
    char byte = 1;

    /* Non-blocking: a full pipe wakes the loop just as well. */
    if (write(loop->wake[1], &byte, 1) < 0) {
        /* nothing to undo */
    }
}

int zn_loop_post(struct zn_loop *loop, struct zn_task *task)
{
    bool sleeping;

    task->next = NULL;
    pthread_mutex_lock(&loop->lock);
    if (loop->ended) {
        pthread_mutex_unlock(&loop->lock);
        return -EPIPE;
    }
    if (loop->inbox == NULL)
        loop->inbox = task;
    else
        loop->inbox_last->next = task;
    loop->inbox_last = task;
    /* One byte per batch of posts: the loop takes the whole inbox. */
    sleeping = !loop->woken;
    loop->woken = true;
    pthread_mutex_unlock(&loop->lock);
    if (sleeping)
        wake(loop);
    return 0;
}

/* Take the inbox as it is, and run it in order. */
static void run_tasks(struct zn_loop *loop)
{
    struct zn_task *task, *next;

    pthread_mutex_lock(&loop->lock);
    task = loop->inbox;
    loop->inbox = loop->inbox_last = NULL;
    loop->woken = false; /* a post from now on writes a byte */
    pthread_mutex_unlock(&loop->lock);
    for (; task != NULL; task = next) {
        next = task->next; /* the task may be posted again by fn */
        task->fn(task->data);
    }
}

/* The wake-up pipe is readable: empty it, then run the inbox. */
static void run_inbox(int fd, unsigned events, void *data)
{
    char buf[64];

    (void)events;
    while (read(fd, buf, sizeof(buf)) > 0)
        continue;
    run_tasks(data);
}

void zn_loop_timer_start(struct zn_loop *loop, struct zn_timer *timer, int ms,
                         zn_task_fn fn, void *data)
{
    struct zn_timer *after;

    zn_loop_timer_stop(loop, timer);
    timer->fn = fn;
    timer->data = data;
    timer->due_ms = now_ms() + ms;
    timer->armed = true;
    /* From the end: the one due last is usually the newest. */
    for (after = loop->last; after != NULL && after->due_ms > timer->due_ms;
         after = after->prev)
        continue;
    timer->prev = after;
    timer->next = after != NULL ? after->next : loop->first;
    if (timer->next != NULL)
        timer->next->prev = timer;
    else
        loop->last = timer;
    if (after != NULL)
        after->next = timer;
    else
        loop->first = timer;
}

void zn_loop_timer_stop(struct zn_loop *loop, struct zn_timer *timer)
{
    if (!timer->armed)
        return;
    if (timer->prev != NULL)
        timer->prev->next = timer->next;
    else
        loop->first = timer->next;
    if (timer->next != NULL)
        timer->next->prev = timer->prev;
    else
        loop->last = timer->prev;
    timer->armed = false;
}

/* Run the timers that are due; return how long the poller may sleep. */
static int run_timers(struct zn_loop *loop)
{
    long long now = now_ms();
    struct zn_timer *t;

    while ((t = loop->first) != NULL && t->due_ms <= now) {
        zn_loop_timer_stop(loop, t);
        t->fn(t->data); /* it may arm itself, or others, again */
    }
    if (t == NULL)
        return -1;
    return (int)(t->due_ms - now);
}

int zn_loop_run(struct zn_loop *loop)
{
    int rc = 0;

    current = loop;
    while (!atomic_load(&loop->stopping)) {
        int n = zn_poller_wait(loop->poller, loop->fired, ZN_LOOP_BATCH,
                               run_timers(loop));

        if (n < 0) {
            rc = n;
            zn_error("%s: %s", zn_poller_name(), zn_strerror(-n));
            break;
        }
        for (int i = 0; i < n; i++) {
            int fd = loop->fired[i].fd;
            struct zn_watch *w = &loop->watches[fd];
            /* A callback earlier in this round may have stopped watching
             * fd, or changed what for: ask the table, not the report. */
            unsigned ready = loop->fired[i].events & w->events;

            if (ready != 0)
                w->fn(fd, ready, w->data);
        }
    }
    /* The end: no post gets in any more; run those that did. */
    pthread_mutex_lock(&loop->lock);
    loop->ended = true;
    pthread_mutex_unlock(&loop->lock);
    run_tasks(loop);
    current = NULL;
    return rc;
}

void zn_loop_stop(struct zn_loop *loop)
{
    atomic_store(&loop->stopping, true);
    wake(loop);
}

bool zn_loop_in_thread(const struct zn_loop *loop)
{
    return current == loop;
}

bool zn_loop_thread(void)
{
    return current != NULL;
}
