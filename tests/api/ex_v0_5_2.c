/*
 * Exercise v0.5-2 (docs/v0.5-message.md, "Exercises"): zn_conn_send_msg()
 * sends the header and the caller's body with writev() (or sendmsg()),
 * without copying the body, and loops over short counts. Built against the
 * stage's build/libzinc.a and run by tests/exercises/test_ex_v0_5.py.
 *
 * This program defines writev() and sendmsg() itself: the library's calls
 * land here instead of in libc (a program's own definition wins at link
 * time). Each call notes whether one of its iovecs points at the caller's
 * body, then passes at most SHORT bytes on to the kernel, so that every
 * call returns a short count, cut in the middle of an iovec, as a real one
 * may. A loop that does not advance through the iovecs correctly sends
 * the wrong bytes. The client end reads the frame and compares it byte for
 * byte.
 *
 * Prints one line per failed check (testcheck.h) and exits 1 on any
 * failure. A send that makes no progress, or one that sends more than the
 * frame and blocks once the client has stopped reading, would hang: after
 * DEADLINE seconds an alarm ends the program with a FAIL line.
 */
#define _GNU_SOURCE /* syscall() */

#include "testcheck.h"
#include "testconn.h"
#include "testnet.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#define BODY (100 * 1024)
#define SHORT 3001 /* the most bytes one call passes on */
#define MAX_IOV 64
#define DEADLINE 20 /* seconds before the alarm ends a stuck send */

static unsigned char body[BODY]; /* the caller's buffer */
static unsigned char got[8 + BODY]; /* what the client read */
static size_t got_len; /* how much of it */
static int calls; /* writev() and sendmsg() calls, on the sender's thread */
static bool body_seen; /* one of them pointed at body itself */

/* Copy iov into out, cut to at most SHORT bytes in all; returns the
 * count of iovecs in out. Notes an iovec that points into body. */
static int cut(const struct iovec *iov, int cnt, struct iovec *out)
{
    size_t left = SHORT;
    int n = 0;

    calls++;
    for (int i = 0; i < cnt && i < MAX_IOV && left > 0; i++) {
        const unsigned char *p = iov[i].iov_base;

        if (iov[i].iov_len > 0 && p >= body && p < body + BODY)
            body_seen = true;
        out[n] = iov[i];
        if (out[n].iov_len > left)
            out[n].iov_len = left;
        left -= out[n].iov_len;
        n++;
    }
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    struct iovec out[MAX_IOV];
    int n = cut(iov, cnt, out);

    return syscall(SYS_writev, fd, out, n);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct iovec out[MAX_IOV];
    struct msghdr m = *msg;

    m.msg_iovlen = (size_t)cut(msg->msg_iov, (int)msg->msg_iovlen, out);
    m.msg_iov = out;
    return syscall(SYS_sendmsg, fd, &m, flags);
}

/* SIGALRM: the send is stuck. write() is async-signal-safe. */
static void on_alarm(int sig)
{
    static const char msg[] =
        "FAIL: zn_conn_send_msg() never returned: the loop makes no "
        "progress over the short counts, or sends more than the frame\n";

    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

/* The client: read one whole frame into got. */
static void *client(void *arg)
{
    int fd = *(int *)arg;

    while (got_len < sizeof(got)) {
        ssize_t r = read(fd, got + got_len, sizeof(got) - got_len);

        if (r <= 0)
            break;
        got_len += (size_t)r;
    }
    return NULL;
}

/* The offset of the first byte of got that is not the frame's, or -1. */
static long first_wrong_byte(void)
{
    /* DataLen BODY, then MsgID 5, both little-endian */
    unsigned char head[8] = {BODY & 0xff, BODY >> 8 & 0xff, BODY >> 16, 0, 5};

    for (size_t i = 0; i < got_len; i++)
        if (got[i] != (i < 8 ? head[i] : body[i - 8]))
            return (long)i;
    return -1;
}

int main(void)
{
    struct timeval tv = {.tv_sec = 5};
    struct sigaction sa = {.sa_handler = on_alarm};
    struct sockaddr_storage peer;
    socklen_t plen;
    struct zn_conn *conn;
    pthread_t t;
    int cfd, sfd, rc;
    long wrong;

    sigaction(SIGALRM, &sa, NULL);
    alarm(DEADLINE);
    for (size_t i = 0; i < BODY; i++)
        body[i] = (unsigned char)(i * 7 + i / 251);
    if (test_tcp_pair(&cfd, &sfd, &peer, &plen, false) < 0)
        return 1;
    conn = test_conn_new(sfd, 0, (struct sockaddr *)&peer, plen, NULL);
    if (conn == NULL)
        return perror("test_conn_new"), 1;
    /* A send that stops short leaves the client waiting: not for long. */
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    pthread_create(&t, NULL, client, &cfd);

    /* Not started: no reader, the send writes on this thread. */
    rc = zn_conn_send_msg(conn, 5, body, BODY);
    pthread_join(t, NULL);
    alarm(0);
    printf("sent with %d writev()/sendmsg() calls, returned %d; the client "
           "read %zu of %zu bytes\n",
           calls, rc, got_len, sizeof(got));
    CHECK(rc == 0, "zn_conn_send_msg() returned %d (%s), not 0", rc,
          strerror(-rc));
    wrong = first_wrong_byte();
    CHECK(wrong < 0,
          "the frame is wrong from byte %ld on: after a short count the loop "
          "does not advance through the iovecs correctly",
          wrong);
    CHECK(wrong >= 0 || got_len == sizeof(got),
          "the client read %zu of the frame's %zu bytes: the send stopped "
          "short",
          got_len, sizeof(got));
    CHECK(body_seen, "no writev() or sendmsg() call pointed at the caller's "
                     "body: the body is copied");
    zn__conn_free(conn);
    close(cfd);
    return failures ? 1 : 0;
}
