/*
 * A connection is reference counted (v0.7+): a thread that took
 * zn_conn_hold() may keep using the pointer after the connection has ended,
 * and only the last zn_conn_release() frees it.
 *
 * Connections 0 and 1, each on a loopback TCP pair, share one message
 * handler:
 *
 *   msg id 0  the "hold" router takes a reference, replies "held" and hands
 *             the pointer to another thread. The client sends one request,
 *             half-closes, reads the reply and the end of the stream.
 *   msg id 1  the "stop" router stops its own connection from within
 *             handle; a send right after must return -EPIPE. It also takes
 *             a reference and hands the pointer over. The client sent a
 *             msg id 2 in the same write: after an abort it must not be
 *             handled (the "count" router counts).
 *
 * The other thread waits until the connection has ended (bounded), then
 * calls zn_conn_send_msg() (must be -EPIPE, not a crash), zn_conn_stop()
 * (harmless, logs nothing more) and zn_conn_release(). Until that release
 * the socket must still be open (the held reference keeps it); after it
 * the socket must be closed (the last reference freed everything).
 *
 * Connection 2 (v0.7 only), with MaxMsgChanLen 1 and a client that never
 * reads: its router (msg id 3) sends 64 KiB replies until it blocks (the
 * writer is stuck on the full socket, the channel is full). Another
 * thread stops the connection: the blocked send must wake and return
 * -EPIPE (the reply was not queued), not 0. From v0.8 a send waits for room at
 * most a short time and then stops the connection itself; that stage tests its
 * own rule.
 *
 * Under ASan any use after free or leak fails the run. Built and run by
 * tests/test_read_write_split.py.
 */
#include "zinc/config.h"
#include "zinc/router.h"

#include "testconn.h"
#include "testnet.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000 /* the bound on every wait */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handed_over = PTHREAD_COND_INITIALIZER;
static struct zn_conn *handed; /* a held connection, for late_user() */
static int stop_send_rc = 1; /* what send returned after stop, in handle */
static atomic_int counted; /* requests the count router handled */
static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                             \
            fputc('\n', stderr);                                               \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&t, NULL);
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void hand_over(struct zn_conn *c)
{
    pthread_mutex_lock(&lock);
    handed = c;
    pthread_cond_signal(&handed_over);
    pthread_mutex_unlock(&lock);
}

/* Runs on the reader thread: keep the connection for another thread. */
static void hold_handle(struct zn_router *r, struct zn_request *req)
{
    struct zn_conn *c = zn_request_conn(req);
    (void)r;

    zn_conn_hold(c);
    zn_conn_send_msg(c, 0, "held", 4);
    hand_over(c);
}

/* Runs on the reader thread: abort its own connection, then try to send. */
static void stop_handle(struct zn_router *r, struct zn_request *req)
{
    struct zn_conn *c = zn_request_conn(req);
    (void)r;

    zn_conn_hold(c);
    zn_conn_stop(c);
    stop_send_rc = zn_conn_send_msg(c, 1, "too late", 8);
    hand_over(c);
}

/* Runs on the reader thread: count the requests it is given. */
static void count_handle(struct zn_router *r, struct zn_request *req)
{
    (void)r;
    (void)req;
    atomic_fetch_add(&counted, 1);
}

static const struct zn_router_ops hold_ops = {.handle = hold_handle};
static const struct zn_router_ops stop_ops = {.handle = stop_handle};
static const struct zn_router_ops count_ops = {.handle = count_handle};
static struct zn_router hold_router = {.ops = &hold_ops};
static struct zn_router stop_router = {.ops = &stop_ops};
static struct zn_router count_router = {.ops = &count_ops};

struct late {
    int fd; /* the connection's socket, as zn_conn_fd() said */
    int send_rc; /* what the late zn_conn_send_msg() returned */
    bool got; /* a connection was handed over in time */
    bool ended; /* it ended in time */
    bool open_while_held; /* its socket was still open before our release */
};

/* Another thread: use a held connection after it has ended, then drop it. */
static void *late_user(void *arg)
{
    struct late *l = arg;
    struct zn_conn *c;
    struct timespec deadline;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&lock);
    while (handed == NULL &&
           pthread_cond_timedwait(&handed_over, &lock, &deadline) == 0)
        ;
    c = handed;
    handed = NULL;
    pthread_mutex_unlock(&lock);
    if (c == NULL)
        return NULL;
    l->got = true;
    for (int ms = 0; ms < WAIT_MS && !zn_conn_is_closed(c); ms++)
        sleep_ms(1);
    l->ended = zn_conn_is_closed(c);
    /* Let the reader and the writer finish and drop their references,
     * so ours is most likely the last. */
    sleep_ms(50);
    l->fd = zn_conn_fd(c);
    l->open_while_held = fd_is_open(l->fd);
    l->send_rc = zn_conn_send_msg(c, 0, "late", 4);
    zn_conn_stop(c); /* already stopped: nothing happens */
    zn_conn_release(c);
    return NULL;
}

/* Everything the client end receives until EOF, an error or the timeout;
 * *end is 0 for EOF, else the errno. Returns the byte count. */
static size_t read_all(int fd, unsigned char *buf, size_t size, int *end)
{
    size_t got = 0;

    for (;;) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r <= 0) {
            *end = r == 0 ? 0 : errno;
            return got;
        }
        got += (size_t)r;
        if (got == size) {
            *end = ENOBUFS;
            return got;
        }
    }
}

/*
 * A loopback TCP pair (testnet.h) whose client gives up on a read after
 * WAIT_MS. Returns 0 or -1.
 */
static int loopback_pair(int *cfd, int *sfd, struct sockaddr_storage *peer,
                         socklen_t *plen, bool narrow)
{
    struct timeval tv = {WAIT_MS / 1000, 0};

    if (test_tcp_pair(cfd, sfd, peer, plen, narrow) < 0)
        return -1;
    setsockopt(*cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return 0;
}

/* Wait (bounded) until the last release has closed the socket. */
static int wait_fd_closed(uint32_t id, int sfd)
{
    int ms;

    for (ms = 0; ms < WAIT_MS && fd_is_open(sfd); ms++)
        sleep_ms(1);
    CHECK(!fd_is_open(sfd), "conn %u: socket still open after every release",
          id);
    return ms;
}

/*
 * Connections 0 and 1: the server end started as connection id; the
 * client sends a request of msg_id 0 ("hold") or 1 ("stop", followed in
 * the same write by a msg id 2 that must not be handled).
 */
static void run(struct zn_msghandler *h, uint32_t id, uint32_t msg_id)
{
    struct sockaddr_storage peer;
    socklen_t plen;
    /* Two frames: DataLen 5, MsgID msg_id (set below), "hello"; DataLen 5,
     * MsgID 2, "after". */
    unsigned char req[] = "\x05\0\0\0\0\0\0\0hello\x05\0\0\0\x02\0\0\0after";
    size_t req_len = msg_id == 1 ? 2 * 13 : 13; /* both, or the first */
    unsigned char buf[256];
    struct late l = {.fd = -1, .send_rc = 1};
    struct zn_conn *conn;
    pthread_t late;
    size_t got;
    int cfd, sfd, end, ms;

    req[4] = (unsigned char)msg_id;
    if (loopback_pair(&cfd, &sfd, &peer, &plen, false) < 0) {
        failures++;
        return;
    }
    conn = test_conn_new(sfd, id, (struct sockaddr *)&peer, plen, h);
    if (conn == NULL || test_conn_start(conn) < 0) {
        perror("test_conn_new/test_conn_start");
        failures++;
        return;
    }
    /* Our reference went to the reader: from here conn is not ours. */
    pthread_create(&late, NULL, late_user, &l);

    if (write(cfd, req, req_len) != (ssize_t)req_len)
        perror("write");
    if (msg_id == 0)
        shutdown(cfd, SHUT_WR); /* graceful: the reply, then EOF */
    got = read_all(cfd, buf, sizeof(buf), &end);
    if (msg_id == 0) { /* DataLen 4, MsgID 0, "held" */
        CHECK(got == 12 && memcmp(buf, "\x04\0\0\0\0\0\0\0held", 12) == 0 &&
                  end == 0,
              "conn %u: wanted the reply \"held\" then EOF, got %zu bytes, "
              "end: %s",
              id, got, end ? strerror(end) : "EOF");
    } else {
        CHECK(got == 0 && (end == 0 || end == ECONNRESET),
              "conn %u: wanted the end of the stream and no reply, got %zu "
              "bytes, end: %s",
              id, got, end ? strerror(end) : "EOF");
    }

    /* After the join: the router's result reached us through the lock
     * that handed the connection to late_user(). */
    pthread_join(late, NULL);
    if (msg_id == 1) {
        CHECK(stop_send_rc == -EPIPE,
              "conn %u: send after zn_conn_stop() in handle returned %d, "
              "not -EPIPE",
              id, stop_send_rc);
        CHECK(atomic_load(&counted) == 0,
              "conn %u: %d requests handled after the router stopped the "
              "connection",
              id, atomic_load(&counted));
    }
    CHECK(l.got, "conn %u: the router never handed the connection over", id);
    CHECK(!l.got || l.ended, "conn %u: never ended", id);
    CHECK(!l.got || l.fd == sfd, "conn %u: zn_conn_fd() is %d, not %d", id,
          l.fd, sfd);
    CHECK(!l.got || l.open_while_held,
          "conn %u: socket closed while a reference was still held", id);
    CHECK(!l.got || l.send_rc == -EPIPE,
          "conn %u: late send returned %d, not -EPIPE", id, l.send_rc);

    ms = wait_fd_closed(id, sfd);
    close(cfd);
    printf("conn %u: reply %zu bytes, late send %d, socket closed after %d "
           "ms\n",
           id, got, l.send_rc, ms);
}

#if ZN_STAGE_MINOR < 8
#define BIG (64 * 1024) /* one reply of the flood router */
#define MAX_SENDS 2000 /* the flood's bound: 125 MiB */

static atomic_int flood_ok; /* the flood's sends that returned 0 */
static atomic_int flood_rc; /* the first send that did not */
static atomic_bool flood_done; /* the flood router has returned */

/*
 * Runs on the reader thread: send 64 KiB replies until a send fails (or
 * MAX_SENDS). The reader itself is the sender that blocks, so nothing but
 * zn_conn_stop() can close the channel while it waits.
 */
static void flood_handle(struct zn_router *r, struct zn_request *req)
{
    static char body[BIG];
    int rc = 0;
    (void)r;

    for (int i = 0; i < MAX_SENDS && rc == 0; i++) {
        rc = zn_conn_send_msg(zn_request_conn(req), 0, body, BIG);
        if (rc == 0)
            atomic_fetch_add(&flood_ok, 1);
    }
    atomic_store(&flood_rc, rc);
    atomic_store(&flood_done, true);
}

static const struct zn_router_ops flood_ops = {.handle = flood_handle};
static struct zn_router flood_router = {.ops = &flood_ops};

/*
 * Connection 2: MaxMsgChanLen 1, a narrow client that never reads. Its
 * flood router blocks in a send on the full channel; zn_conn_stop() from
 * this thread must wake it with -EPIPE.
 */
static void run_blocked_sender(struct zn_msghandler *h, uint32_t id)
{
    static const unsigned char flood[8] = {0, 0, 0, 0, 3, 0, 0, 0};
    struct sockaddr_storage peer;
    socklen_t plen;
    struct zn_conn *conn;
    int cfd, sfd, before, now, still, ms;

    if (loopback_pair(&cfd, &sfd, &peer, &plen, true) < 0) {
        failures++;
        return;
    }
    zn_global.max_msg_chan_len = 1;
    conn = test_conn_new(sfd, id, (struct sockaddr *)&peer, plen, h);
    if (conn == NULL) {
        perror("test_conn_new");
        failures++;
        return;
    }
    zn_conn_hold(conn); /* ours, for the stop */
    if (test_conn_start(conn) < 0) {
        perror("test_conn_start");
        failures++;
        return;
    }
    if (write(cfd, flood, sizeof(flood)) != (ssize_t)sizeof(flood))
        perror("write");

    /* Blocked: no send completes for 200 ms in a row. */
    before = atomic_load(&flood_ok);
    for (still = 0, ms = 0; ms < WAIT_MS && still < 200; ms++) {
        sleep_ms(1);
        now = atomic_load(&flood_ok);
        still = now == before && now > 0 ? still + 1 : 0;
        before = now;
    }
    CHECK(still >= 200 && !atomic_load(&flood_done),
          "conn %u: the flood never blocked (%d sends went through)", id,
          before);
    zn_conn_stop(conn);
    for (ms = 0; ms < WAIT_MS && !atomic_load(&flood_done); ms++)
        sleep_ms(1);
    CHECK(atomic_load(&flood_done), "conn %u: the blocked send did not wake up",
          id);
    CHECK(atomic_load(&flood_rc) == -EPIPE,
          "conn %u: the blocked send returned %d, not -EPIPE", id,
          atomic_load(&flood_rc));
    CHECK(atomic_load(&flood_ok) == before,
          "conn %u: %d sends returned 0 after zn_conn_stop() (the blocked "
          "one must fail: its reply is never written)",
          id, atomic_load(&flood_ok) - before);
    zn_conn_release(conn);
    ms = wait_fd_closed(id, sfd);
    close(cfd);
    printf("conn %u: %d sends before the stop, then %d; socket closed after "
           "%d ms\n",
           id, before, atomic_load(&flood_rc), ms);
}
#endif

int main(void)
{
    struct zn_msghandler *h = zn_msghandler_new();

    if (h == NULL || zn_msghandler_add_router(h, 0, &hold_router) < 0 ||
        zn_msghandler_add_router(h, 1, &stop_router) < 0 ||
        zn_msghandler_add_router(h, 2, &count_router) < 0) {
        perror("zn_msghandler");
        return 1;
    }
#if ZN_STAGE_MINOR < 8
    if (zn_msghandler_add_router(h, 3, &flood_router) < 0) {
        perror("zn_msghandler");
        return 1;
    }
#endif
    run(h, 0, 0);
    run(h, 1, 1);
#if ZN_STAGE_MINOR < 8
    run_blocked_sender(h, 2);
#endif
    test_handler_done(h); /* the readers held their own */
    printf("%d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
