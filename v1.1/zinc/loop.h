/*
 * loop -- an event loop: one thread, many descriptors, no thread waits
 * for one of them (redis's ae.c, libuv's uv_run, memcached's worker
 * threads).
 *
 * A loop asks its poller (poller.h) which watched descriptors can make
 * progress, calls each one's callback, runs the timers that are due, and
 * goes back to sleep in the poller. Nothing in a callback may block: a
 * callback that waits stalls every descriptor of its loop.
 *
 * Other threads talk to a loop through its inbox: zn_loop_post() appends
 * a task under a lock and, when the loop may be asleep, writes a byte to
 * its wake-up pipe, which the loop watches like any socket. The loop then
 * runs the task on its own thread. This is how the main thread hands a
 * new connection to a worker's loop (memcached's dispatcher does the
 * same), and how a reply sent from another thread reaches its socket.
 *
 * Everything but zn_loop_post(), zn_loop_stop() and zn_loop_in_thread()
 * is called on the loop's own thread (or before it runs).
 */
#ifndef ZN_LOOP_H
#define ZN_LOOP_H

#include <stdbool.h>

#include "zinc/poller.h"

struct zn_loop;

/* A watched descriptor can make progress: events is what it is ready for
 * (ZN_READABLE, ZN_WRITABLE), among what it is watched for. */
typedef void (*zn_io_fn)(int fd, unsigned events, void *data);

/* A task or a timer is due: run fn(data). */
typedef void (*zn_task_fn)(void *data);

/*
 * A task for zn_loop_post(), kept by whoever posts it (usually inside the
 * object it concerns: posting never allocates). A task is in at most one
 * inbox at a time; the poster keeps track of that.
 */
struct zn_task {
    zn_task_fn fn;
    void *data;
    struct zn_task *next; /* the loop's */
};

/*
 * A timer, kept by its owner like a task. The loop keeps its armed timers
 * in a list sorted by when they are due; zinc's timers of one kind all
 * have the same length, so a new one nearly always goes at the end.
 */
struct zn_timer {
    zn_task_fn fn;
    void *data;
    long long due_ms; /* the loop's */
    bool armed; /* the loop's */
    struct zn_timer *prev, *next; /* the loop's */
};

/* A new loop with its poller and wake-up pipe. NULL with errno set. */
struct zn_loop *zn_loop_new(void);

/* Free a loop that does not run (any more). NULL is a no-op. */
void zn_loop_free(struct zn_loop *loop);

/*
 * Watch fd for events (ZN_READABLE, ZN_WRITABLE or both) and call fn(fd,
 * events, data) when it is ready; a second call changes what fd is
 * watched for (and its callback); events 0 stops watching it. Stop
 * watching a descriptor before closing it. Returns 0 or a negative errno.
 */
int zn_loop_watch(struct zn_loop *loop, int fd, unsigned events, zn_io_fn fn,
                  void *data);

/*
 * Run task->fn(task->data) on the loop's thread, after the tasks posted
 * before it. Safe from any thread. Returns 0, or -EPIPE once the loop has
 * ended: the task will not run then.
 */
int zn_loop_post(struct zn_loop *loop, struct zn_task *task);

/*
 * Run fn(data) once, in ms milliseconds, on the loop's thread. Arming an
 * armed timer moves it.
 */
void zn_loop_timer_start(struct zn_loop *loop, struct zn_timer *timer, int ms,
                         zn_task_fn fn, void *data);

/* Disarm timer, if armed. */
void zn_loop_timer_stop(struct zn_loop *loop, struct zn_timer *timer);

/*
 * Run the loop on the calling thread until zn_loop_stop(). Then it ends:
 * posts fail from now on, and the tasks still in the inbox run. Returns 0,
 * or a negative errno when the poller failed (logged).
 */
int zn_loop_run(struct zn_loop *loop);

/* Make zn_loop_run() return soon. Safe from any thread. */
void zn_loop_stop(struct zn_loop *loop);

/* True on the thread that runs the loop. */
bool zn_loop_in_thread(const struct zn_loop *loop);

/* True on a thread that runs a loop, any loop: one that must not wait. */
bool zn_loop_thread(void);

#endif
