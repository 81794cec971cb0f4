/*
 * Exercise v0.7-1 (docs/v0.7-read-write-split.md, "Exercises"):
 * zn_conn_try_send_msg() returns -EAGAIN at once, instead of waiting, when
 * the outgoing channel is full, and every reply queued before that arrives
 * whole. Built against the stage's build/libzinc.a and run by
 * tests/exercises/test_ex_v0_7.py.
 *
 * As late_send.c's blocked sender: MaxMsgChanLen 1 and a loopback TCP pair
 * whose client end does not read, so the kernel's buffers fill (with many
 * replies: the client's receive path is not narrowed, so the order of what
 * went out directly and what was queued shows), the writer thread blocks
 * on the full socket and the channel fills. The program sends 64 KiB replies
 * with zn_conn_try_send_msg() until one fails, then times RETRIES more
 * calls, which must fail the same way at once (the fastest of them counts:
 * one call may lose the CPU for a while), then reads on the client and
 * checks every reply that was accepted.
 *
 * Prints `TRY_SEND missing` when the stage has no zn_conn_try_send_msg(),
 * one line per failed check (testcheck.h), and exits 1 on any failure. A
 * call that waits for room would wait forever: after DEADLINE seconds an
 * alarm ends the program with a FAIL line.
 */
#include "zinc/config.h"

#include "testcheck.h"
#include "testclock.h"
#include "testconn.h"
#include "testnet.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BODY (64 * 1024)
#define MAX_SENDS 1000 /* 64 MiB: the socket and channel hold far less */
#define RETRIES 5 /* calls timed once the channel is full */
#define FAST_MS 50.0 /* a call that does not wait returns well within this */
#define DEADLINE 10 /* seconds the sends may take */

/* Weak: the program still builds, and says so, when the stage lacks it. */
int zn_conn_try_send_msg(struct zn_conn *conn, uint32_t id, const void *data,
                         uint32_t len) __attribute__((weak));

static unsigned char body[BODY], got[BODY];

/* SIGALRM: a call is stuck. write() is async-signal-safe. */
static void on_alarm(int sig)
{
    static const char msg[] =
        "FAIL: zn_conn_try_send_msg() has not returned in 10 s with the "
        "channel full: it waits for room instead of returning -EAGAIN\n";

    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

/* Read exactly n bytes; false on an error, a timeout or the end. */
static bool read_exact(int fd, unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, buf, n);

        if (r <= 0)
            return false;
        buf += r;
        n -= (size_t)r;
    }
    return true;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Send reply number seq (its body all one letter); time the call in ms. */
static int try_send(struct zn_conn *conn, int seq, double *ms)
{
    double t0;
    int rc;

    memset(body, 'a' + seq % 26, sizeof(body));
    t0 = now_ms();
    rc = zn_conn_try_send_msg(conn, (uint32_t)seq, body, sizeof(body));
    *ms = now_ms() - t0;
    return rc;
}

int main(void)
{
    struct timeval tv = {.tv_sec = 10};
    struct sigaction sa = {.sa_handler = on_alarm};
    struct sockaddr_storage peer;
    socklen_t plen;
    struct zn_msghandler *handler;
    struct zn_conn *conn;
    unsigned char head[8];
    int cfd, sfd, rc = 0, queued, whole = 0;
    double ms, fastest;

    if (zn_conn_try_send_msg == NULL) {
        printf("TRY_SEND missing\n");
        return 1;
    }
    if (test_tcp_pair(&cfd, &sfd, &peer, &plen, false) < 0)
        return 1;
    zn_global.max_msg_chan_len = 1; /* zn__conn_new() sizes the channel */
    handler = zn_msghandler_new(); /* no routers: the client sends nothing */
    if (handler == NULL)
        return perror("zn_msghandler_new"), 1;
    conn = test_conn_new(sfd, 0, (struct sockaddr *)&peer, plen, handler);
    if (conn == NULL)
        return perror("test_conn_new"), 1;
    test_handler_done(handler);
    zn_conn_hold(conn); /* ours; the other is the reader's */
    if (test_conn_start(conn) < 0)
        return perror("test_conn_start"), 1;

    sigaction(SIGALRM, &sa, NULL);
    alarm(DEADLINE);
    for (queued = 0; queued < MAX_SENDS; queued++)
        if ((rc = try_send(conn, queued, &ms)) != 0)
            break;
    fastest = ms;
    /* The channel is full: the same again, RETRIES times, timed. */
    for (int i = 0; i < RETRIES && rc != 0; i++) {
        int again = try_send(conn, queued, &ms);

        if (again == 0) /* room after all: that reply is queued */
            queued++;
        else if (ms < fastest)
            fastest = ms;
    }
    alarm(0);
    printf("TRY_SEND queued %d, then rc %d (%s), fastest in %.1f ms\n", queued,
           rc, strerror(-rc), fastest);
    CHECK(rc != 0,
          "zn_conn_try_send_msg() accepted %d replies of 64 KiB to a client "
          "that reads none: it never says the channel is full",
          queued);
    CHECK(rc == 0 || rc == -EAGAIN,
          "with the channel full, zn_conn_try_send_msg() returned %d (%s), "
          "not -EAGAIN",
          rc, strerror(-rc));
    CHECK(rc != -EAGAIN || fastest < FAST_MS,
          "with the channel full, the fastest of %d zn_conn_try_send_msg() "
          "calls took %.0f ms: it waits before returning -EAGAIN",
          RETRIES + 1, fastest);

    /* Now read: every reply accepted before the -EAGAIN, whole. */
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (; whole < queued; whole++) {
        if (!read_exact(cfd, head, sizeof(head)) || le32(head) != BODY ||
            le32(head + 4) != (uint32_t)whole ||
            !read_exact(cfd, got, sizeof(got)))
            break;
        memset(body, 'a' + whole % 26, sizeof(body));
        if (memcmp(got, body, sizeof(body)) != 0)
            break;
    }
    printf("TRY_SEND read %d of %d replies whole\n", whole, queued);
    CHECK(whole == queued,
          "reply %d of the %d that zn_conn_try_send_msg() accepted did not "
          "arrive whole, or in order",
          whole, queued);

    close(cfd);
    zn_conn_stop(conn);
    zn_conn_release(conn);
    return failures ? 1 : 0;
}
