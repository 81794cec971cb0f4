/*
 * zn_chan, the bounded blocking channel of v0.7, tested on its own: each
 * test below is one promise of zinc/chan.h, and reads as an example of it.
 *
 *     ./chan                 run every test
 *     ./chan close_wakes_senders fifo_order    run only these
 *     ./chan --list          name the tests, one a line
 *
 * A failed check prints one line (file:line: what was expected) and the
 * program exits 1; so does a test that finds a thread stuck in the channel
 * (STUCK), at once. Built by tests/test_chan.py against a stage's
 * build/libzinc.a (v0.7+), also under ASan/UBSan and TSan.
 *
 * Threads and time. "Send blocks while full" can only be seen from another
 * thread: a helper thread does the blocking call and then counts down a
 * latch; the main thread waits on that latch with a deadline. "Not done
 * after 50 ms" is how a test sees that a call blocked; "done within 5 s"
 * that it was woken. Nothing here sleeps in place of synchronisation, and
 * nothing can hang: every wait has a deadline, and a watchdog (alarm) ends
 * the program after 30 s whatever happens.
 *
 * The items are pointers, as in the channel's real use (a connection's
 * replies); here they point into arrays of ints, so an item says which
 * element it is.
 */
#include "zinc/chan.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* -- the harness ---------------------------------------------------------- */

static int failures; /* checks that failed, over every test run */
static const char *volatile current = "main"; /* the running test's name */

/* Count and report a failed expectation, then carry on with the test. */
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "%s:%d: %s: CHECK failed: %s: ", __FILE__,         \
                    __LINE__, current, #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/*
 * A thread that is still stuck inside the channel can be neither joined nor
 * its channel freed, so a test that finds one reports it and ends the
 * program here. (tests/test_chan.py runs each test in its own process, so
 * the other tests still report.)
 */
#define STUCK(...)                                                             \
    do {                                                                       \
        fprintf(stderr, "%s:%d: %s: STUCK: ", __FILE__, __LINE__, current);    \
        fprintf(stderr, __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                   \
        exit(1);                                                               \
    } while (0)

/*
 * The watchdog: whatever is stuck, even the main thread inside a channel
 * call, the program ends within 30 s, naming the test. (write(), strlen()
 * and _exit() are safe in a signal handler; printf() is not.)
 */
static void on_alarm(int sig)
{
    static const char msg[] = ": watchdog: still running after 30 s, a "
                              "thread is stuck in the channel\n";
    const char *name = current;

    (void)sig;
    (void)!write(STDERR_FILENO, name, strlen(name));
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(2);
}

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * A latch: threads that finish something call latch_add(); the main thread
 * waits, with a deadline, until n of them have. The mutex also makes what a
 * thread wrote before latch_add() visible to the main thread after its
 * latch_wait() (no data race, as TSan checks).
 */
struct latch {
    pthread_mutex_t lock; /* guards count */
    pthread_cond_t cond; /* count went up */
    int count; /* latch_add() calls so far */
};

static void latch_init(struct latch *l)
{
    pthread_condattr_t attr;

    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &attr);
    pthread_condattr_destroy(&attr);
    l->count = 0;
}

static void latch_destroy(struct latch *l)
{
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
}

static void latch_add(struct latch *l)
{
    pthread_mutex_lock(&l->lock);
    l->count++;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
}

/* How many latch_add() calls so far. */
static int latch_count(struct latch *l)
{
    int n;

    pthread_mutex_lock(&l->lock);
    n = l->count;
    pthread_mutex_unlock(&l->lock);
    return n;
}

/* True when n latch_add() calls happened within ms milliseconds. */
static bool latch_wait(struct latch *l, int n, unsigned ms)
{
    struct timespec deadline;
    bool reached;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->lock);
    while (l->count < n &&
           pthread_cond_timedwait(&l->cond, &l->lock, &deadline) != ETIMEDOUT)
        ;
    reached = l->count >= n;
    pthread_mutex_unlock(&l->lock);
    return reached;
}

/* How long a call must stay blocked to count as blocked, and how long a
 * woken call may take to return (generous: sanitizers, a busy machine). */
#define BLOCKED_MS 50
#define WOKEN_MS 5000

/*
 * One channel call made by a helper thread, so that the main thread can
 * watch it block and wake: the thread makes the call, stores rc (and the
 * item received), then counts down done.
 */
enum op_kind { OP_SEND, OP_SEND_TIMED, OP_RECV };

struct op {
    struct zn_chan *ch;
    enum op_kind kind;
    void *item; /* OP_SEND*: what to send; OP_RECV: what was received */
    unsigned timeout_ms; /* OP_SEND_TIMED */
    int rc; /* what the call returned */
    struct latch *done; /* counted down once the call returned */
    pthread_t thread;
};

static void *run_op(void *arg)
{
    struct op *op = arg;

    if (op->kind == OP_SEND)
        op->rc = zn_chan_send(op->ch, op->item);
    else if (op->kind == OP_SEND_TIMED)
        op->rc = zn_chan_send_timed(op->ch, op->item, op->timeout_ms);
    else
        op->rc = zn_chan_recv(op->ch, &op->item);
    latch_add(op->done);
    return NULL;
}

static void op_start(struct op *op, struct zn_chan *ch, enum op_kind kind,
                     void *item, struct latch *done)
{
    *op = (struct op){.ch = ch, .kind = kind, .item = item, .done = done};
    if (kind == OP_SEND_TIMED)
        op->timeout_ms = 10000; /* long: the test wakes it well before */
    if (pthread_create(&op->thread, NULL, run_op, op) != 0)
        STUCK("pthread_create failed");
}

/* -- the tests, in the order chan.h tells the story ----------------------- */

#define NITEMS 16
static int items[NITEMS]; /* the single-threaded tests send &items[i] */

/* Which element of items[] an item is, or -1 for anything else. */
static int which(void *item)
{
    int *p = item;

    return p >= items && p < items + NITEMS ? (int)(p - items) : -1;
}

/* A channel needs room for at least one item: capacity 0 is EINVAL. */
static void test_new_needs_capacity(void)
{
    struct zn_chan *ch;

    errno = 0;
    ch = zn_chan_new(0);
    CHECK(ch == NULL, "zn_chan_new(0) returned a channel");
    CHECK(errno == EINVAL, "errno is %d (%s), want EINVAL", errno,
          strerror(errno));
    zn_chan_free(ch, NULL);

    ch = zn_chan_new(1);
    CHECK(ch != NULL, "zn_chan_new(1) failed: %s", strerror(errno));
    zn_chan_free(ch, NULL);
    zn_chan_free(NULL, NULL); /* freeing NULL does nothing */
}

/* First in, first out, also once the ring's head has wrapped around. */
static void test_fifo_order(void)
{
    struct zn_chan *ch = zn_chan_new(4);
    void *got;
    int rc;

    /* Fill it, empty it: the order it went in. */
    for (int i = 0; i < 4; i++)
        CHECK((rc = zn_chan_send(ch, &items[i])) == 0, "send %d: rc %d", i, rc);
    for (int i = 0; i < 4; i++) {
        got = NULL;
        CHECK((rc = zn_chan_recv(ch, &got)) == 0, "recv %d: rc %d", i, rc);
        CHECK(which(got) == i, "recv %d got item %d", i, which(got));
    }

    /* Three in, three out, five times over: the head walks round the ring
     * of four slots, and the order still holds. */
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 3; i++)
            CHECK((rc = zn_chan_send(ch, &items[round + i])) == 0,
                  "round %d send %d: rc %d", round, i, rc);
        for (int i = 0; i < 3; i++) {
            got = NULL;
            CHECK((rc = zn_chan_recv(ch, &got)) == 0, "round %d recv %d: rc %d",
                  round, i, rc);
            CHECK(which(got) == round + i, "round %d recv %d got item %d",
                  round, i, which(got));
        }
    }
    zn_chan_free(ch, NULL);
}

/* Capacity is honoured: the non-blocking calls say -EAGAIN when full
 * (send) or empty (recv), and a refused item is not queued. */
static void test_capacity(void)
{
    struct zn_chan *ch = zn_chan_new(3);
    void *got;
    int rc;

    got = &items[15];
    CHECK((rc = zn_chan_try_recv(ch, &got)) == -EAGAIN,
          "try_recv on a new channel: rc %d, want -EAGAIN", rc);
    CHECK(which(got) == 15, "a failed try_recv wrote item %d", which(got));

    for (int i = 0; i < 3; i++)
        CHECK((rc = zn_chan_try_send(ch, &items[i])) == 0,
              "try_send %d of 3: rc %d", i, rc);
    CHECK((rc = zn_chan_try_send(ch, &items[3])) == -EAGAIN,
          "try_send on a full channel: rc %d, want -EAGAIN", rc);

    for (int i = 0; i < 3; i++) {
        got = NULL;
        CHECK((rc = zn_chan_try_recv(ch, &got)) == 0, "try_recv %d: rc %d", i,
              rc);
        CHECK(which(got) == i, "try_recv %d got item %d", i, which(got));
    }
    /* items[3] was refused, so it is not in there. */
    CHECK((rc = zn_chan_try_recv(ch, &got)) == -EAGAIN,
          "try_recv after draining: rc %d, want -EAGAIN", rc);
    zn_chan_free(ch, NULL);

    /* Capacity 1, the smallest: one item fits, the second does not. */
    ch = zn_chan_new(1);
    CHECK((rc = zn_chan_try_send(ch, &items[0])) == 0, "rc %d", rc);
    CHECK((rc = zn_chan_try_send(ch, &items[1])) == -EAGAIN,
          "second item in a channel of 1: rc %d, want -EAGAIN", rc);
    CHECK((rc = zn_chan_try_recv(ch, &got)) == 0 && which(got) == 0,
          "rc %d, item %d", rc, which(got));
    zn_chan_free(ch, NULL);
}

/* A send on a full channel waits until a recv frees a slot, then queues
 * its item. */
static void test_send_blocks_while_full(void)
{
    struct zn_chan *ch = zn_chan_new(1);
    struct latch done;
    struct op send;
    void *got = NULL;
    int rc;

    latch_init(&done);
    zn_chan_send(ch, &items[0]); /* now full */
    op_start(&send, ch, OP_SEND, &items[1], &done);
    CHECK(!latch_wait(&done, 1, BLOCKED_MS),
          "send on a full channel returned (rc %d) instead of waiting",
          send.rc);

    CHECK((rc = zn_chan_recv(ch, &got)) == 0 && which(got) == 0,
          "recv: rc %d, item %d, want item 0", rc, which(got));
    if (!latch_wait(&done, 1, WOKEN_MS))
        STUCK("a recv freed a slot, but the blocked send never returned");
    pthread_join(send.thread, NULL);
    CHECK(send.rc == 0, "the woken send returned %d, want 0", send.rc);
    CHECK((rc = zn_chan_try_recv(ch, &got)) == 0 && which(got) == 1,
          "the woken send's item: rc %d, item %d, want item 1", rc, which(got));
    zn_chan_free(ch, NULL);
    latch_destroy(&done);
}

/* A recv on an empty channel waits until a send brings an item. */
static void test_recv_blocks_while_empty(void)
{
    struct zn_chan *ch = zn_chan_new(2);
    struct latch done;
    struct op recv;
    int rc;

    latch_init(&done);
    op_start(&recv, ch, OP_RECV, NULL, &done);
    CHECK(!latch_wait(&done, 1, BLOCKED_MS),
          "recv on an empty channel returned (rc %d) instead of waiting",
          recv.rc);

    CHECK((rc = zn_chan_send(ch, &items[7])) == 0, "send: rc %d", rc);
    if (!latch_wait(&done, 1, WOKEN_MS))
        STUCK("a send brought an item, but the blocked recv never returned");
    pthread_join(recv.thread, NULL);
    CHECK(recv.rc == 0, "the woken recv returned %d, want 0", recv.rc);
    CHECK(which(recv.item) == 7, "the woken recv got item %d, want 7",
          which(recv.item));
    zn_chan_free(ch, NULL);
    latch_destroy(&done);
}

/*
 * The timed send: on a full channel it gives up after its timeout with
 * -ETIMEDOUT (not sooner, and not much later), and the item stays the
 * caller's; when a slot frees up in time, it succeeds.
 */
static void test_send_timed(void)
{
    struct zn_chan *ch = zn_chan_new(1);
    struct latch done;
    struct op send;
    long long start, took;
    void *got = NULL;
    int rc;

    CHECK((rc = zn_chan_send_timed(ch, &items[0], 100)) == 0,
          "send_timed with room: rc %d, want 0 at once", rc);

    start = now_ms();
    rc = zn_chan_send_timed(ch, &items[1], 100);
    took = now_ms() - start;
    CHECK(rc == -ETIMEDOUT,
          "send_timed on a full channel: rc %d, want -ETIMEDOUT", rc);
    CHECK(took >= 90, "gave up after %lld ms, before its 100 ms", took);
    CHECK(took < 2000, "gave up after %lld ms, long after its 100 ms", took);

    /* A zero timeout on a full channel: -ETIMEDOUT at once. */
    CHECK((rc = zn_chan_send_timed(ch, &items[2], 0)) == -ETIMEDOUT,
          "send_timed(0) on a full channel: rc %d, want -ETIMEDOUT", rc);

    /* Neither timed-out item was queued: only items[0] is in there. */
    CHECK((rc = zn_chan_try_recv(ch, &got)) == 0 && which(got) == 0,
          "rc %d, item %d, want item 0", rc, which(got));
    CHECK((rc = zn_chan_try_recv(ch, &got)) == -EAGAIN,
          "a timed-out item was queued anyway (rc %d, item %d)", rc,
          which(got));

    /* A slot frees up while it waits: the send succeeds, long before its
     * 10 s timeout. */
    latch_init(&done);
    zn_chan_send(ch, &items[3]); /* full again */
    op_start(&send, ch, OP_SEND_TIMED, &items[4], &done);
    CHECK(!latch_wait(&done, 1, BLOCKED_MS),
          "send_timed on a full channel returned (rc %d) instead of waiting",
          send.rc);
    zn_chan_recv(ch, &got);
    if (!latch_wait(&done, 1, WOKEN_MS))
        STUCK("a recv freed a slot, but the blocked send_timed never "
              "returned");
    pthread_join(send.thread, NULL);
    CHECK(send.rc == 0, "the woken send_timed returned %d, want 0", send.rc);
    CHECK((rc = zn_chan_try_recv(ch, &got)) == 0 && which(got) == 4,
          "rc %d, item %d, want item 4", rc, which(got));
    zn_chan_free(ch, NULL);
    latch_destroy(&done);
}

/*
 * Close wakes every sender waiting on a full channel (a broadcast, not a
 * signal: all three of them), and each gets -EPIPE: its item was not
 * queued. What was queued before the close is still there.
 */
static void test_close_wakes_senders(void)
{
    struct zn_chan *ch = zn_chan_new(1);
    struct latch done;
    struct op send[3];
    void *got = NULL;
    int rc;

    latch_init(&done);
    zn_chan_send(ch, &items[0]); /* now full */
    op_start(&send[0], ch, OP_SEND, &items[1], &done);
    op_start(&send[1], ch, OP_SEND, &items[2], &done);
    op_start(&send[2], ch, OP_SEND_TIMED, &items[3], &done); /* 10 s */
    CHECK(!latch_wait(&done, 1, BLOCKED_MS),
          "a send on a full channel returned instead of waiting");

    zn_chan_close(ch);
    if (!latch_wait(&done, 3, WOKEN_MS))
        STUCK("close woke %d of the 3 blocked senders", latch_count(&done));
    for (int i = 0; i < 3; i++) {
        pthread_join(send[i].thread, NULL);
        CHECK(send[i].rc == -EPIPE,
              "blocked sender %d woke with rc %d, want -EPIPE", i, send[i].rc);
    }
    CHECK((rc = zn_chan_recv(ch, &got)) == 0 && which(got) == 0,
          "the item queued before close: rc %d, item %d", rc, which(got));
    CHECK((rc = zn_chan_recv(ch, &got)) == -EPIPE,
          "an item of a woken sender was queued (rc %d, item %d)", rc,
          which(got));
    zn_chan_free(ch, NULL);
    latch_destroy(&done);
}

/* Close wakes every receiver waiting on an empty channel; there is
 * nothing to hand out, so each gets -EPIPE. */
static void test_close_wakes_receivers(void)
{
    struct zn_chan *ch = zn_chan_new(4);
    struct latch done;
    struct op recv[3];

    latch_init(&done);
    for (int i = 0; i < 3; i++)
        op_start(&recv[i], ch, OP_RECV, NULL, &done);
    CHECK(!latch_wait(&done, 1, BLOCKED_MS),
          "a recv on an empty channel returned instead of waiting");

    zn_chan_close(ch);
    if (!latch_wait(&done, 3, WOKEN_MS))
        STUCK("close woke %d of the 3 blocked receivers", latch_count(&done));
    for (int i = 0; i < 3; i++) {
        pthread_join(recv[i].thread, NULL);
        CHECK(recv[i].rc == -EPIPE,
              "blocked receiver %d woke with rc %d, want -EPIPE", i,
              recv[i].rc);
    }
    zn_chan_free(ch, NULL);
    latch_destroy(&done);
}

/*
 * After close: every send fails with -EPIPE, even with room to spare; what
 * was queued before the close is still handed out, in order; then recv
 * says -EPIPE, and keeps saying it. Closing twice does no harm.
 */
static void test_drain_after_close(void)
{
    struct zn_chan *ch = zn_chan_new(4);
    void *got;
    int rc;

    for (int i = 0; i < 3; i++)
        zn_chan_send(ch, &items[i]);
    zn_chan_close(ch);

    /* One slot is free, but the channel is closed. */
    CHECK((rc = zn_chan_send(ch, &items[3])) == -EPIPE,
          "send after close: rc %d, want -EPIPE", rc);
    CHECK((rc = zn_chan_try_send(ch, &items[4])) == -EPIPE,
          "try_send after close: rc %d, want -EPIPE", rc);
    CHECK((rc = zn_chan_send_timed(ch, &items[5], 100)) == -EPIPE,
          "send_timed after close: rc %d, want -EPIPE", rc);
    zn_chan_close(ch); /* again: nothing happens */

    for (int i = 0; i < 3; i++) {
        got = NULL;
        CHECK((rc = zn_chan_recv(ch, &got)) == 0,
              "recv %d of the items queued before close: rc %d", i, rc);
        CHECK(which(got) == i, "recv %d after close got item %d", i,
              which(got));
    }
    for (int i = 0; i < 2; i++) {
        CHECK((rc = zn_chan_recv(ch, &got)) == -EPIPE,
              "recv on a closed, empty channel: rc %d (item %d), want -EPIPE",
              rc, which(got));
        CHECK((rc = zn_chan_try_recv(ch, &got)) == -EPIPE,
              "try_recv on a closed, empty channel: rc %d, want -EPIPE", rc);
    }

    /* A closed channel that is full: the send fails because it is closed,
     * not because it is full. */
    zn_chan_free(ch, NULL);
    ch = zn_chan_new(1);
    zn_chan_send(ch, &items[0]);
    zn_chan_close(ch);
    CHECK((rc = zn_chan_send(ch, &items[1])) == -EPIPE,
          "send on a closed, full channel: rc %d, want -EPIPE at once", rc);
    CHECK((rc = zn_chan_try_send(ch, &items[1])) == -EPIPE,
          "try_send on a closed, full channel: rc %d, want -EPIPE", rc);
    zn_chan_free(ch, NULL);
}

static int dropped[NITEMS]; /* how often drop() was handed each of items[] */
static int dropped_other; /* drop() calls with anything else */

static void drop(void *item)
{
    if (which(item) >= 0)
        dropped[which(item)]++;
    else
        dropped_other++;
}

/*
 * Free hands every item still queued to the drop callback, each exactly
 * once, so nothing queued leaks; items already received are not dropped.
 */
static void test_free_drops_leftovers(void)
{
    struct zn_chan *ch = zn_chan_new(5);
    void *got;

    /* Five in, two out, two more in: five left, items 2 to 6, and the
     * ring's head has moved, so they wrap round its end. */
    for (int i = 0; i < 5; i++)
        zn_chan_send(ch, &items[i]);
    zn_chan_recv(ch, &got);
    zn_chan_recv(ch, &got);
    zn_chan_send(ch, &items[5]);
    zn_chan_send(ch, &items[6]);
    zn_chan_close(ch); /* closed or not, free drops what is left */

    memset(dropped, 0, sizeof(dropped));
    dropped_other = 0;
    zn_chan_free(ch, drop);
    for (int i = 0; i < NITEMS; i++) {
        int want = i >= 2 && i <= 6 ? 1 : 0;

        CHECK(dropped[i] == want, "item %d was dropped %d times, want %d", i,
              dropped[i], want);
    }
    CHECK(dropped_other == 0, "drop() got %d pointers that were never sent",
          dropped_other);

    /* An empty channel: drop() is never called. */
    memset(dropped, 0, sizeof(dropped));
    ch = zn_chan_new(2);
    zn_chan_free(ch, drop);
    for (int i = 0; i < NITEMS; i++)
        CHECK(dropped[i] == 0, "freeing an empty channel dropped item %d", i);

    /* A NULL drop: the leftovers are left alone (they are the caller's
     * business then). NULL channel: nothing happens. */
    ch = zn_chan_new(2);
    zn_chan_send(ch, &items[0]);
    zn_chan_free(ch, NULL);
    zn_chan_free(NULL, drop);
}

/*
 * Many producers and many consumers at once on a small channel, so that
 * both sides block and wake all the time: every item arrives exactly once,
 * each producer's items reach any one consumer in the order it sent them,
 * no consumer sees -EPIPE before the close, and the close ends them all.
 */
#define PRODUCERS 4
#define CONSUMERS 4
#define ITEMS 100000 /* in all; item i comes from producer i / PER_PRODUCER */
#define PER_PRODUCER (ITEMS / PRODUCERS)
#define SMALL_CAP 8

static int mt_items[ITEMS]; /* the producers send &mt_items[i] */
/* seen[c][i]: how often consumer c received item i (one row per consumer,
 * so the consumers never write to the same memory). */
static unsigned short seen[CONSUMERS][ITEMS];

struct worker {
    struct zn_chan *ch;
    int id; /* producer or consumer number */
    struct latch *done; /* counted down when the thread ends */
    atomic_bool *closed; /* set by the main thread just before the close */
    int bad_rc; /* calls that returned something unexpected */
    int out_of_order; /* consumer: items older than one seen before */
    int strangers; /* consumer: pointers no producer sent */
    int early_epipe; /* consumer: -EPIPE before the close */
    pthread_t thread;
};

/*
 * Producer 0 and 1 use the blocking send, producer 2 the timed send (with
 * time to spare), producer 3 the non-blocking one, falling back to the
 * blocking send when it says full: every call gets its share of the
 * contention, so TSan watches all of them.
 */
static int send_one(struct worker *w, void *item)
{
    int rc;

    switch (w->id) {
    case 2:
        return zn_chan_send_timed(w->ch, item, 10000);
    case 3:
        rc = zn_chan_try_send(w->ch, item);
        return rc == -EAGAIN ? zn_chan_send(w->ch, item) : rc;
    default:
        return zn_chan_send(w->ch, item);
    }
}

static void *produce(void *arg)
{
    struct worker *w = arg;

    for (int k = 0; k < PER_PRODUCER; k++) {
        int rc = send_one(w, &mt_items[w->id * PER_PRODUCER + k]);

        if (rc != 0 && w->bad_rc++ == 0)
            fprintf(stderr, "producer %d: send returned %d\n", w->id, rc);
    }
    latch_add(w->done);
    return NULL;
}

/* Odd consumers try the non-blocking recv first, even ones just block. */
static int recv_one(struct worker *w, void **item)
{
    int rc;

    if (w->id % 2 == 0)
        return zn_chan_recv(w->ch, item);
    rc = zn_chan_try_recv(w->ch, item);
    return rc == -EAGAIN ? zn_chan_recv(w->ch, item) : rc;
}

static void *consume(void *arg)
{
    struct worker *w = arg;
    int last[PRODUCERS]; /* the newest item from each producer so far */
    void *item;
    int rc;

    for (int p = 0; p < PRODUCERS; p++)
        last[p] = -1;
    while ((rc = recv_one(w, &item)) == 0) {
        int *p = item, i, from;

        if (p < mt_items || p >= mt_items + ITEMS) {
            w->strangers++;
            continue;
        }
        i = (int)(p - mt_items);
        from = i / PER_PRODUCER;
        if (i <= last[from])
            w->out_of_order++;
        last[from] = i;
        seen[w->id][i]++;
    }
    if (rc != -EPIPE)
        w->bad_rc++;
    else if (!atomic_load(w->closed))
        w->early_epipe++;
    latch_add(w->done);
    return NULL;
}

static void test_many_producers_many_consumers(void)
{
    struct zn_chan *ch = zn_chan_new(SMALL_CAP);
    struct worker prod[PRODUCERS], cons[CONSUMERS];
    struct latch produced, consumed;
    atomic_bool closed = false;
    int missing = 0, twice = 0;

    latch_init(&produced);
    latch_init(&consumed);
    memset(seen, 0, sizeof(seen));
    for (int c = 0; c < CONSUMERS; c++) {
        cons[c] = (struct worker){
            .ch = ch, .id = c, .done = &consumed, .closed = &closed};
        pthread_create(&cons[c].thread, NULL, consume, &cons[c]);
    }
    for (int p = 0; p < PRODUCERS; p++) {
        prod[p] = (struct worker){
            .ch = ch, .id = p, .done = &produced, .closed = &closed};
        pthread_create(&prod[p].thread, NULL, produce, &prod[p]);
    }

    if (!latch_wait(&produced, PRODUCERS, 15000))
        STUCK("%d of %d producers finished within 15 s", latch_count(&produced),
              PRODUCERS);
    for (int p = 0; p < PRODUCERS; p++) {
        pthread_join(prod[p].thread, NULL);
        CHECK(prod[p].bad_rc == 0, "producer %d: %d sends failed", p,
              prod[p].bad_rc);
    }

    /* Everything is sent; the consumers drain the rest, then the close
     * ends every one of them. */
    atomic_store(&closed, true);
    zn_chan_close(ch);
    if (!latch_wait(&consumed, CONSUMERS, WOKEN_MS))
        STUCK("after close, %d of %d consumers ended", latch_count(&consumed),
              CONSUMERS);
    for (int c = 0; c < CONSUMERS; c++) {
        struct worker *w = &cons[c];

        pthread_join(w->thread, NULL);
        CHECK(w->bad_rc == 0,
              "consumer %d: recv ended with neither 0 nor -EPIPE", c);
        CHECK(w->early_epipe == 0, "consumer %d: -EPIPE before the close", c);
        CHECK(w->strangers == 0, "consumer %d: %d items no producer sent", c,
              w->strangers);
        CHECK(w->out_of_order == 0,
              "consumer %d: %d items out of their producer's order", c,
              w->out_of_order);
    }

    for (int i = 0; i < ITEMS; i++) {
        int n = 0;

        for (int c = 0; c < CONSUMERS; c++)
            n += seen[c][i];
        if (n == 0 && missing++ < 5)
            fprintf(stderr, "  item %d never arrived\n", i);
        if (n > 1 && twice++ < 5)
            fprintf(stderr, "  item %d arrived %d times\n", i, n);
    }
    CHECK(missing == 0, "%d of %d items never arrived", missing, ITEMS);
    CHECK(twice == 0, "%d of %d items arrived more than once", twice, ITEMS);

    dropped_other = 0;
    zn_chan_free(ch, drop);
    CHECK(dropped_other == 0, "%d items were left in the drained channel",
          dropped_other);
    latch_destroy(&produced);
    latch_destroy(&consumed);
}

/* -- main ----------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*run)(void);
} tests[] = {
    {"new_needs_capacity", test_new_needs_capacity},
    {"fifo_order", test_fifo_order},
    {"capacity", test_capacity},
    {"send_blocks_while_full", test_send_blocks_while_full},
    {"recv_blocks_while_empty", test_recv_blocks_while_empty},
    {"send_timed", test_send_timed},
    {"close_wakes_senders", test_close_wakes_senders},
    {"close_wakes_receivers", test_close_wakes_receivers},
    {"drain_after_close", test_drain_after_close},
    {"free_drops_leftovers", test_free_drops_leftovers},
    {"many_producers_many_consumers", test_many_producers_many_consumers},
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

static int run(size_t t)
{
    int before = failures;

    current = tests[t].name;
    tests[t].run();
    printf("%s %s\n", failures == before ? "ok  " : "FAIL", tests[t].name);
    fflush(stdout);
    return failures == before ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    int failed_tests = 0, ran = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm(30);

    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t t = 0; t < NTESTS; t++)
            printf("%s\n", tests[t].name);
        return 0;
    }
    for (size_t t = 0; t < NTESTS; t++) {
        bool wanted = argc == 1;

        for (int a = 1; a < argc; a++)
            wanted = wanted || strcmp(argv[a], tests[t].name) == 0;
        if (wanted) {
            failed_tests += run(t);
            ran++;
        }
    }
    if (ran == 0 || ran < argc - 1) {
        fprintf(stderr, "chan: unknown test name (see --list)\n");
        return 2;
    }
    printf("chan: %d tests, %d failed, %d failed checks\n", ran, failed_tests,
           failures);
    return failures == 0 ? 0 : 1;
}
