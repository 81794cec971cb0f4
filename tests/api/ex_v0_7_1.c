/*
 * Exercise v0.7-1 (tests/exercises/test_ex_v0_7.py): zn_conn_try_send_msg()
 * returns -EAGAIN at once, instead of waiting, when the outgoing channel
 * is full, and every reply queued before that arrives whole.
 *
 * As late_send.c's blocked sender: MaxMsgChanLen 1 and a loopback TCP pair
 * whose client end does not read, so the kernel's buffers fill (with many
 * replies: the client's receive path is not narrowed, so the order of what
 * went out directly and what was queued shows), the writer thread blocks
 * on the full socket and the channel fills. The program sends 64 KiB replies
 * with zn_conn_try_send_msg() until one returns -EAGAIN, timing that call,
 * then reads on the client and checks every reply that was accepted.
 * Prints `TRY_SEND ...` lines that the test reads.
 */
#include "zinc/config.h"

#include "testconn.h"
#include "testnet.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BODY (64 * 1024)
#define MAX_SENDS 1000 /* 64 MiB: the socket and channel hold far less */

/* Weak: the program still builds, and says so, when the stage lacks it. */
int zn_conn_try_send_msg(struct zn_conn *conn, uint32_t id, const void *data,
                         uint32_t len) __attribute__((weak));

static unsigned char body[BODY], got[BODY];

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
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

int main(void)
{
    struct timeval tv = {.tv_sec = 10};
    struct sockaddr_storage peer;
    socklen_t plen;
    struct zn_msghandler *handler;
    struct zn_conn *conn;
    unsigned char head[8];
    int cfd, sfd, rc = 0, queued, whole = 0;
    double t0, ms = 0;

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

    for (queued = 0; queued < MAX_SENDS; queued++) {
        memset(body, 'a' + queued % 26, sizeof(body));
        t0 = now_ms();
        rc = zn_conn_try_send_msg(conn, (uint32_t)queued, body, sizeof(body));
        ms = now_ms() - t0;
        if (rc != 0)
            break;
    }
    printf("TRY_SEND queued %d, then rc %d (%s) after %.1f ms\n", queued, rc,
           rc == -EAGAIN ? "EAGAIN" : strerror(-rc), ms);

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

    close(cfd);
    zn_conn_stop(conn);
    zn_conn_release(conn);
    return 0;
}
