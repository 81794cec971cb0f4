/*
 * zn_conn_send_msg() from a thread that is not the connection's loop
 * (v1.1): the reply is queued under the writer's lock and the loop is
 * woken to write it (DESIGN.md section 11, Writing); once the connection
 * has ended, a send returns -EPIPE.
 *
 *     foreign_send order [N [CAP]]   connection 0: N messages (default
 *                                    10000), MaxMsgChanLen CAP (default N)
 *     foreign_send race              connection 1
 *     foreign_send burst             connection 2
 *
 * Each connection is one end of a loopback TCP pair (testnet.h), started
 * on the program's loop (testconn.h) with ops of our own that count the
 * calls of on_start, on_stop and on_exit. Its messages go to two routers,
 * run on the loop's thread: msg id 1 echoes its body back as id 1, msg id
 * 9, body <u32 ms>, blocks the loop that long (a slow router) and answers
 * nothing. The program's own thread, the "foreign" thread, sends messages
 * of id 7, body <u32 seq> and then seq % 61 bytes (seq + i) % 256.
 *
 * order: the foreign thread sends N messages, the first half from the
 * moment the connection is started; meanwhile the client pipelines
 * ECHOES requests of id 1, body <u32 k>, which the loop answers itself:
 * the loop's own writes and the foreign thread's queue meet on one
 * socket. The second half goes out once the client has read all that
 * came before, to a loop that has nothing else to do and sleeps: only
 * the foreign thread's own wake-up gets them written, and the first of
 * them must arrive within IDLE_WAKE_MS. The client reads everything and
 * checks it: the N messages whole, byte for byte and in seq order, the
 * echoes whole and in order, the two streams interleaved only at frame
 * boundaries. Each of the N sends must return 0. Then the client closes
 * its end; once on_stop and on_exit have run (the loop is done with the
 * connection), a send from the foreign thread returns -EPIPE. The
 * program's reference, the last one, keeps the socket open until
 * zn_conn_release() closes it.
 *
 * race (MaxMsgChanLen 65536): once on_start has run, the foreign thread
 * sends without pause while the client reads 64 KiB and then resets the
 * connection. Every send must return 0, -EPIPE, or -ETIMEDOUT (no room
 * for ZN_SEND_WAIT_MS: the client is too slow; -ENOBUFS from a loop's
 * thread), and every send once
 * on_exit has run -EPIPE. No crash, and under the sanitizers no report:
 * the foreign thread's queueing races the loop's writing and ending.
 *
 * burst (MaxMsgChanLen 1024, the default): as order with N 10000 and no
 * echoes, but the client first asks the slow router to block the loop
 * for BURST_BUSY_MS, and the foreign thread sends while it does. The
 * client reads all along and the kernel takes every byte; only the loop
 * is busy for a moment. Every send must return 0 and every message
 * arrive. v1.0's send waited for room (ZN_SEND_WAIT_MS, 100 ms) before
 * it gave up on a client; a foreign thread serves no one else and may
 * wait.
 *
 * Exit status 0 when every check held (one line "foreign_send: ... 0
 * failed" on stdout), 1 otherwise, with a FAIL line per broken check on
 * stderr. The library's log lines (conn N started, conn N closed) go to
 * stderr. Built and run by tests/test_event_loop.py.
 */
#include "zinc/config.h"
#include "zinc/msghandler.h"
#include "zinc/router.h"

#include "testclock.h"
#include "testconn.h"
#include "testnet.h"
#include "zn_frame.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000 /* the bound on every wait */
#define ECHOES 2000 /* echo requests connection 0's client pipelines */
#define FOREIGN 7 /* the msg id of the foreign thread's messages */
#define ECHO 1 /* the echo router's msg id */
#define SLOW 9 /* the slow router's msg id */
/* A send wakes an idle loop within this: half the time after which a loop
 * looks at a client with replies waiting anyway (writer.h). */
#define IDLE_WAKE_MS 250
#define MAX_N 1000000
#define BURST_N 10000 /* messages of the burst */
#define BURST_CAP 1024 /* its MaxMsgChanLen: the default */
#define BURST_BUSY_MS 50 /* how long the slow router blocks the loop */
#define RACE_CAP 65536 /* connection 1's MaxMsgChanLen */
#define RACE_READ 65536 /* bytes connection 1's client reads, then resets */
#define RACE_MAX 2000000 /* sends at most on connection 1 */

static atomic_int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                             \
            fputc('\n', stderr);                                               \
            atomic_fetch_add(&failures, 1);                                    \
        }                                                                      \
    } while (0)

/* on_start, on_stop and on_exit calls per connection id. */
static atomic_int starts[3], stops[3], exits[3];

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* Wait (bounded) until on_exit has run for connection id. */
static bool wait_exit(uint32_t id)
{
    double end = now_ms() + WAIT_MS;

    while (atomic_load(&exits[id]) == 0 && now_ms() < end)
        sleep_ms(1);
    return atomic_load(&exits[id]) > 0;
}

/* msg id 1: the same body back, written by the loop's thread. */
static void echo_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    zn_conn_send_msg(zn_request_conn(req), ECHO, zn_request_data(req),
                     zn_request_len(req));
}

/* Set by the slow router when it starts blocking its loop. */
static atomic_bool loop_busy;

/* msg id 9, body <u32 ms>: block the loop that long, as a slow router
 * would; no reply. */
static void slow_handle(struct zn_router *r, struct zn_request *req)
{
    uint32_t ms = 0;
    (void)r;

    if (zn_request_len(req) == 4)
        ms = zn_get_le32((const unsigned char *)zn_request_data(req));
    atomic_store(&loop_busy, true);
    sleep_ms(ms < WAIT_MS ? ms : WAIT_MS);
}

static const struct zn_router_ops echo_ops = {.handle = echo_handle};
static const struct zn_router_ops slow_ops = {.handle = slow_handle};
static struct zn_router echo = {.ops = &echo_ops};
static struct zn_router slow = {.ops = &slow_ops};

static void on_start(struct zn_conn *conn, void *data)
{
    (void)data;
    atomic_fetch_add(&starts[zn_conn_id(conn)], 1);
}

static void on_stop(struct zn_conn *conn, void *data)
{
    (void)data;
    atomic_fetch_add(&stops[zn_conn_id(conn)], 1);
}

/* The last call: on_stop has run, once, if on_start did. */
static void on_exit_(struct zn_conn *conn, void *data)
{
    uint32_t id = zn_conn_id(conn);

    (void)data;
    CHECK(atomic_load(&stops[id]) == atomic_load(&starts[id]) &&
              atomic_load(&stops[id]) <= 1,
          "conn %u: on_exit after %d on_start and %d on_stop calls", id,
          atomic_load(&starts[id]), atomic_load(&stops[id]));
    atomic_fetch_add(&exits[zn_conn_id(conn)], 1);
}

/* test_on_msg (testconn.h) routes through the handler; the other calls
 * are counted here. */
static const struct zn_conn_ops ops = {
    .on_start = on_start,
    .on_msg = test_on_msg,
    .on_stop = on_stop,
    .on_exit = on_exit_,
};

/* The body of foreign message seq, in buf; returns its length. */
static uint32_t foreign_body(uint32_t seq, unsigned char *buf)
{
    uint32_t len = 4 + seq % 61;

    zn_put_le32(buf, seq);
    for (uint32_t i = 4; i < len; i++)
        buf[i] = (unsigned char)(seq + i);
    return len;
}

/* A connection on a new loopback pair: *cfd the client end (reads give
 * up after WAIT_MS). The caller holds a reference of its own. */
static struct zn_conn *new_conn(uint32_t id, struct zn_msghandler *h, int *cfd,
                                int *sfd)
{
    struct sockaddr_storage peer;
    socklen_t plen;
    struct timeval tv = {WAIT_MS / 1000, 0};
    struct zn_conn *conn;

    if (test_tcp_pair(cfd, sfd, &peer, &plen, false) < 0)
        return NULL;
    setsockopt(*cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    conn = zn__conn_new(*sfd, id, (struct sockaddr *)&peer, plen, &ops, h);
    if (conn == NULL) {
        perror("zn__conn_new");
        return NULL;
    }
    zn_conn_hold(conn); /* ours; the other goes to the loop */
    if (test_conn_start(conn) < 0) {
        perror("test_conn_start");
        return NULL;
    }
    return conn;
}

/* ---- connections 0 and 2: N messages, in order, then -EPIPE ---- */

/* What one run of in_order() does. */
struct plan {
    uint32_t id; /* the connection id */
    uint32_t n; /* messages the foreign thread sends */
    uint32_t echoes; /* echo requests the client pipelines meanwhile */
    uint32_t idle_at; /* >0: after this many messages, wait until the
                         client has read everything so far, then send the
                         rest to a loop that has nothing else to do */
    uint32_t busy_ms; /* >0: the client first asks the slow router to
                         block the loop this long; the burst starts once
                         it does */
};

struct client {
    int fd;
    const struct plan *plan;
    uint32_t got_foreign, got_echo;
    atomic_uint frames; /* got_foreign + got_echo, for the foreign thread */
    double idle_got_ms; /* when message idle_at arrived */
    bool ok; /* everything read and right */
};

struct foreign {
    struct zn_conn *conn;
    const struct plan *plan;
    const struct client *client;
    uint32_t sent; /* sends that returned 0 */
    int first_rc; /* the first send that did not; 0 if none */
    int late_rc; /* the send after on_exit */
    double idle_sent_ms; /* when message idle_at was sent */
};

/* Wait (bounded) until the client has read every frame sent so far. */
static void wait_read(const struct foreign *f)
{
    double end = now_ms() + WAIT_MS;

    while (atomic_load(&f->client->frames) < f->sent + f->plan->echoes &&
           now_ms() < end)
        sleep_ms(1);
}

static void *foreign_thread(void *arg)
{
    struct foreign *f = arg;
    unsigned char body[4 + 61];
    double end = now_ms() + WAIT_MS;

    while (f->plan->busy_ms > 0 && !atomic_load(&loop_busy) && now_ms() < end)
        sleep_ms(1);
    for (uint32_t seq = 0; seq < f->plan->n; seq++) {
        int rc;

        /* The loop has written everything and sleeps: only the foreign
         * thread's own wake-up can get the rest written. */
        if (seq > 0 && seq == f->plan->idle_at) {
            wait_read(f);
            f->idle_sent_ms = now_ms();
        }
        rc = zn_conn_send_msg(f->conn, FOREIGN, body, foreign_body(seq, body));
        if (rc != 0) {
            f->first_rc = rc;
            break;
        }
        f->sent++;
    }
    /* The client closes once it has read everything; the loop ends the
     * connection, and from then on a send must fail. */
    if (wait_exit(zn_conn_id(f->conn)))
        f->late_rc = zn_conn_send_msg(f->conn, FOREIGN, "late", 4);
    return NULL;
}

/* Pipeline the echo requests, 100 a write. */
static void *echo_sender(void *arg)
{
    struct client *c = arg;
    unsigned char req[100][12];

    for (uint32_t k = 0; k < c->plan->echoes; k += 100) {
        for (uint32_t i = 0; i < 100; i++) {
            zn_put_le32(req[i], 4);
            zn_put_le32(req[i] + 4, ECHO);
            zn_put_le32(req[i] + 8, k + i);
        }
        /* MSG_NOSIGNAL: a connection the server stopped is a failed
         * check, not a SIGPIPE. */
        if (send(c->fd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
            break; /* read_all() tells what went wrong */
    }
    return NULL;
}

/* Read exactly len bytes, or fail (EOF, error, timeout). */
static bool read_n(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* The client end: read and check every frame. */
static void read_all(struct client *c)
{
    unsigned char hdr[ZN_FRAME_HEADER_LEN], body[4 + 61], want[4 + 61];
    uint32_t id = c->plan->id;

    while (c->got_foreign < c->plan->n || c->got_echo < c->plan->echoes) {
        uint32_t len, msg_id;

        if (!read_n(c->fd, hdr, sizeof(hdr))) {
            CHECK(0,
                  "conn %u: the stream ended after %u foreign messages "
                  "and %u echoes",
                  id, c->got_foreign, c->got_echo);
            return;
        }
        len = zn_get_le32(hdr);
        msg_id = zn_get_le32(hdr + 4);
        if (len > sizeof(body) || (msg_id != FOREIGN && msg_id != ECHO)) {
            CHECK(0,
                  "conn %u: a frame of id %u, %u bytes, after %u foreign "
                  "messages and %u echoes: not a frame we sent",
                  id, msg_id, len, c->got_foreign, c->got_echo);
            return;
        }
        if (!read_n(c->fd, body, len)) {
            CHECK(0, "conn %u: a frame cut short", id);
            return;
        }
        if (msg_id == ECHO) {
            if (len != 4 || zn_get_le32(body) != c->got_echo) {
                CHECK(0, "conn %u: echo %u is wrong (%u bytes)", id,
                      c->got_echo, len);
                return;
            }
            c->got_echo++;
            atomic_fetch_add(&c->frames, 1);
            continue;
        }
        if (len != foreign_body(c->got_foreign, want) ||
            memcmp(body, want, len) != 0) {
            CHECK(0, "conn %u: foreign message %u is wrong: %u bytes, seq %u",
                  id, c->got_foreign, len, len >= 4 ? zn_get_le32(body) : 0);
            return;
        }
        if (c->got_foreign > 0 && c->got_foreign == c->plan->idle_at)
            c->idle_got_ms = now_ms();
        c->got_foreign++;
        atomic_fetch_add(&c->frames, 1);
    }
    c->ok = true;
}

static void in_order(struct zn_msghandler *h, const struct plan *p)
{
    struct client c = {.plan = p};
    struct foreign f = {.plan = p, .client = &c, .first_rc = 0, .late_rc = 1};
    uint32_t id = p->id;
    pthread_t ft, et;
    int sfd;

    f.conn = new_conn(id, h, &c.fd, &sfd);
    if (f.conn == NULL) {
        atomic_fetch_add(&failures, 1);
        return;
    }
    if (p->busy_ms > 0) {
        unsigned char req[12];

        zn_put_le32(req, 4);
        zn_put_le32(req + 4, SLOW);
        zn_put_le32(req + 8, p->busy_ms);
        if (write(c.fd, req, sizeof(req)) != (ssize_t)sizeof(req))
            perror("write");
    }
    /* At once: the first sends may find the start task not run yet. */
    pthread_create(&ft, NULL, foreign_thread, &f);
    pthread_create(&et, NULL, echo_sender, &c);
    read_all(&c);
    pthread_join(et, NULL);
    close(c.fd); /* the end: the loop sees EOF and ends the connection */
    pthread_join(ft, NULL);

    printf("conn %u: %u of %u foreign sends returned 0, %u foreign "
           "messages and %u echoes read\n",
           id, f.sent, p->n, c.got_foreign, c.got_echo);
    CHECK(f.sent == p->n, "conn %u: send %u of %u returned %d (%s)", id,
          f.sent + 1, p->n, f.first_rc, strerror(-f.first_rc));
    CHECK(c.ok, "conn %u: not every message arrived whole and in order", id);
    if (p->idle_at > 0 && c.ok) {
        printf("conn %u: message %u, sent to an idle loop, arrived %.1f ms "
               "later\n",
               id, p->idle_at, c.idle_got_ms - f.idle_sent_ms);
        CHECK(c.idle_got_ms - f.idle_sent_ms < IDLE_WAKE_MS,
              "conn %u: message %u, sent to an idle loop, took %.0f ms to "
              "arrive: the send did not wake the loop",
              id, p->idle_at, c.idle_got_ms - f.idle_sent_ms);
    }
    CHECK(atomic_load(&exits[id]) == 1,
          "conn %u: on_exit ran %d times after the client closed", id,
          atomic_load(&exits[id]));
    CHECK(atomic_load(&starts[id]) == 1 && atomic_load(&stops[id]) == 1,
          "conn %u: on_start ran %d times, on_stop %d times", id,
          atomic_load(&starts[id]), atomic_load(&stops[id]));
    CHECK(zn_conn_is_closed(f.conn), "conn %u: not closed after its end", id);
    CHECK(f.late_rc == -EPIPE,
          "conn %u: a send after the connection ended returned %d, not "
          "-EPIPE",
          id, f.late_rc);
    CHECK(fd_is_open(sfd), "conn %u: socket closed while we hold a reference",
          id);
    zn_conn_release(f.conn); /* the last reference: closes the socket */
    CHECK(!fd_is_open(sfd), "conn %u: socket still open after the last release",
          id);
}

/* ---- connection 1: sends racing the end ---- */

struct racer {
    struct zn_conn *conn;
    unsigned long ok, epipe, noroom, other, late;
    int other_rc; /* a return that is none of the three */
};

static void *race_thread(void *arg)
{
    struct racer *r = arg;
    unsigned char body[4 + 61];
    double end = now_ms() + WAIT_MS;

    while (atomic_load(&starts[1]) == 0 && now_ms() < end)
        sleep_ms(1);
    for (uint32_t seq = 0; seq < RACE_MAX && now_ms() < end; seq++) {
        bool exited = atomic_load(&exits[1]) > 0;
        int rc =
            zn_conn_send_msg(r->conn, FOREIGN, body, foreign_body(seq, body));

        if (rc == 0)
            r->ok++;
        else if (rc == -EPIPE)
            r->epipe++;
        else if (rc == -ETIMEDOUT || rc == -ENOBUFS)
            r->noroom++;
        else
            r->other++, r->other_rc = rc;
        if (exited) { /* on_exit had run before this send */
            if (rc != -EPIPE)
                r->late++;
            if (r->epipe >= 100)
                break; /* enough sends after the end */
        }
    }
    return NULL;
}

static void racing_end(struct zn_msghandler *h)
{
    struct racer r = {0};
    unsigned char buf[4096];
    struct linger lg = {1, 0};
    size_t got = 0;
    pthread_t t;
    int cfd, sfd;

    r.conn = new_conn(1, h, &cfd, &sfd);
    if (r.conn == NULL) {
        atomic_fetch_add(&failures, 1);
        return;
    }
    pthread_create(&t, NULL, race_thread, &r);
    /* A few frames' worth, then a reset. */
    while (got < RACE_READ) {
        ssize_t n = read(cfd, buf, sizeof(buf));

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(cfd);
    pthread_join(t, NULL);

    printf("conn 1: %zu bytes read, then a reset; sends: %lu returned 0, "
           "%lu -EPIPE, %lu without room, %lu other\n",
           got, r.ok, r.epipe, r.noroom, r.other);
    CHECK(r.other == 0, "conn 1: a send returned %d (%s)", r.other_rc,
          strerror(-r.other_rc));
    CHECK(atomic_load(&exits[1]) == 1, "conn 1: on_exit ran %d times",
          atomic_load(&exits[1]));
    CHECK(atomic_load(&stops[1]) == atomic_load(&starts[1]),
          "conn 1: on_stop ran %d times, on_start %d times",
          atomic_load(&stops[1]), atomic_load(&starts[1]));
    CHECK(r.epipe > 0, "conn 1: no send returned -EPIPE after the reset");
    CHECK(r.late == 0,
          "conn 1: %lu sends after on_exit did not return "
          "-EPIPE",
          r.late);
    zn_conn_release(r.conn);
    CHECK(!fd_is_open(sfd), "conn 1: socket still open after the last "
                            "release");
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s order [N [CAP]]   (1 to %d each)\n"
            "       %s race\n"
            "       %s burst\n",
            prog, MAX_N, prog, prog);
    return 2;
}

int main(int argc, char **argv)
{
    struct zn_msghandler *h;
    const char *what = argc > 1 ? argv[1] : "";
    long n = 10000, cap;

    if (strcmp(what, "order") == 0) {
        if (argc > 2)
            n = atol(argv[2]);
        cap = argc > 3 ? atol(argv[3]) : n;
        if (argc > 4 || n < 1 || n > MAX_N || cap < 1 || cap > MAX_N)
            return usage(argv[0]);
    } else if (strcmp(what, "race") == 0 || strcmp(what, "burst") == 0) {
        if (argc > 2)
            return usage(argv[0]);
        cap = strcmp(what, "race") == 0 ? RACE_CAP : BURST_CAP;
    } else {
        return usage(argv[0]);
    }
    /* zn__conn_new() sizes the output queue from zn_global. */
    zn_global.max_msg_chan_len = (uint32_t)cap;
    h = zn_msghandler_new();
    if (h == NULL || zn_msghandler_add_router(h, ECHO, &echo) < 0 ||
        zn_msghandler_add_router(h, SLOW, &slow) < 0) {
        perror("zn_msghandler_new");
        return 1;
    }
    test_handler_done(h); /* keep it: the loop may still use it */

    if (strcmp(what, "order") == 0)
        in_order(h, &(struct plan){.id = 0,
                                   .n = (uint32_t)n,
                                   .echoes = ECHOES,
                                   .idle_at = (uint32_t)n / 2});
    else if (strcmp(what, "race") == 0)
        racing_end(h);
    else
        in_order(
            h, &(struct plan){.id = 2, .n = BURST_N, .busy_ms = BURST_BUSY_MS});

    printf("foreign_send %s: %d failed\n", what, atomic_load(&failures));
    return atomic_load(&failures) == 0 ? 0 : 1;
}
