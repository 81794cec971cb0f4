/*
 * Exercise v0.5-2 (tests/exercises/test_ex_v0_5.py): zn_conn_send_msg()
 * sends the header and the caller's body with writev() (or sendmsg()),
 * without copying the body, and loops over short counts.
 *
 * This program defines writev() and sendmsg() itself: the library's calls
 * land here instead of in libc (a program's own definition wins at link
 * time). Each call notes whether one of its iovecs points at the caller's
 * body, then passes at most SHORT bytes on to the kernel, so that every
 * call returns a short count, cut in the middle of an iovec, as a real one
 * may. A loop that does not advance through the iovecs correctly sends
 * the wrong bytes. The client end reads the frame and compares it byte for
 * byte. Prints `WRITEV ...` lines that the test reads.
 */
#define _GNU_SOURCE /* syscall() */

#include "testconn.h"
#include "testnet.h"

#include <pthread.h>
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

static unsigned char body[BODY]; /* the caller's buffer */
static unsigned char got[8 + BODY]; /* what the client read */
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

/* The client: read one whole frame into got. */
static void *client(void *arg)
{
    int fd = *(int *)arg;
    size_t done = 0;

    while (done < sizeof(got)) {
        ssize_t r = read(fd, got + done, sizeof(got) - done);

        if (r <= 0)
            break;
        done += (size_t)r;
    }
    printf("WRITEV client read %zu of %zu bytes\n", done, sizeof(got));
    return NULL;
}

int main(void)
{
    struct timeval tv = {.tv_sec = 5};
    struct sockaddr_storage peer;
    socklen_t plen;
    struct zn_conn *conn;
    pthread_t t;
    int cfd, sfd, rc;

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
    printf("WRITEV send returned %d after %d calls; body sent from the "
           "caller's buffer: %s\n",
           rc, calls, body_seen ? "yes" : "no");
    printf("WRITEV frame %s\n",
           got[0] == (BODY & 0xff) && got[1] == (BODY >> 8 & 0xff) &&
                   got[2] == (BODY >> 16) && got[3] == 0 && got[4] == 5 &&
                   got[5] == 0 && got[6] == 0 && got[7] == 0 &&
                   memcmp(got + 8, body, BODY) == 0
               ? "whole"
               : "corrupted");
    zn__conn_free(conn);
    close(cfd);
    return 0;
}
