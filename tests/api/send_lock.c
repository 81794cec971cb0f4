/*
 * zn_conn_send_msg() is safe from several threads at once: each message
 * goes out whole, never interleaved with another. Four threads send 100
 * messages of 64 KiB each on one connection (id = thread number, body full
 * of that byte); this thread reads the other end and checks every frame.
 * From v0.7 the connection is started and its writer does the writing (at
 * once when the socket takes it, else through its thread). Built by
 * tests/test_framing.py against a stage's build/libzinc.a (v0.5+).
 */
#include "testconn.h"
#include "testnet.h"
#include "zn_frame.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define THREADS 4
#define MESSAGES 100
#define BODY (64 * 1024)

struct sender {
    struct zn_conn *conn;
    uint32_t id;
    int failed; /* sends that did not return 0 */
};

static void *send_all(void *arg)
{
    struct sender *s = arg;
    static unsigned char bodies[THREADS][BODY];

    memset(bodies[s->id], (int)s->id, BODY);
    for (int i = 0; i < MESSAGES; i++)
        if (zn_conn_send_msg(s->conn, s->id, bodies[s->id], BODY) != 0)
            s->failed++;
    return NULL;
}

static int read_full(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1; /* closed, error or the 10 s timeout */
        got += (size_t)r;
    }
    return 0;
}

int main(void)
{
    struct sockaddr_storage peer;
    socklen_t plen;
    struct timeval tv = {10, 0};
    struct sender senders[THREADS];
    pthread_t t[THREADS];
    static unsigned char body[BODY];
    unsigned char head[ZN_FRAME_HEADER_LEN];
    int counts[THREADS] = {0}, frames = 0, bad = 0, failed = 0;
    int cfd, sfd;
    struct zn_conn *conn;

    /* A loopback TCP pair: cfd is the client, sfd the server's end. */
    if (test_tcp_pair(&cfd, &sfd, &peer, &plen, false) < 0)
        return 1;
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

#if ZN_STAGE_MINOR < 7
    /* Never started: this test owns the connection. */
    conn = test_conn_new(sfd, 0, (struct sockaddr *)&peer, plen, NULL);
    if (conn == NULL)
        return perror("test_conn_new"), 1;
#else
    /* From v0.7 the connection's writer writes: start the connection (its
     * reader waits for requests that never come) and keep a reference for
     * the senders. */
    conn = test_conn_new(sfd, 0, (struct sockaddr *)&peer, plen, NULL);
    if (conn == NULL)
        return perror("test_conn_new"), 1;
    zn_conn_hold(conn);
    if (test_conn_start(conn) < 0)
        return perror("test_conn_start"), 1;
#endif
    for (int i = 0; i < THREADS; i++) {
        senders[i] = (struct sender){.conn = conn, .id = (uint32_t)i};
        pthread_create(&t[i], NULL, send_all, &senders[i]);
    }

    while (frames < THREADS * MESSAGES) {
        uint32_t dlen, id;

        if (read_full(cfd, head, sizeof(head)) < 0) {
            fprintf(stderr, "frame %d: connection closed or timed out\n",
                    frames);
            bad++;
            break;
        }
        zn_frame_get_header(head, &id, &dlen);
        if (dlen != BODY || id >= THREADS) {
            fprintf(stderr, "frame %d: torn header: DataLen %u, MsgID %u\n",
                    frames, dlen, id);
            bad++;
            break;
        }
        if (read_full(cfd, body, BODY) < 0) {
            fprintf(stderr, "frame %d: body cut short\n", frames);
            bad++;
            break;
        }
        for (size_t i = 0; i < BODY; i++) {
            if (body[i] != id) {
                fprintf(stderr,
                        "frame %d (id %u): byte %zu is %u, another "
                        "message's bytes\n",
                        frames, id, i, body[i]);
                bad++;
                break;
            }
        }
        if (bad)
            break;
        counts[id]++;
        frames++;
    }
    /* Close our end with a reset: after a bad frame the senders' writes
     * then fail, so they finish instead of blocking on a full socket. */
    setsockopt(cfd, SOL_SOCKET, SO_LINGER, &(struct linger){1, 0},
               sizeof(struct linger));
    close(cfd);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failed += senders[i].failed;
    }
#if ZN_STAGE_MINOR < 7
    zn__conn_free(conn);
#else
    zn_conn_release(conn);
#endif

    printf("%d whole frames of %d; per thread %d %d %d %d; failed sends %d\n",
           frames, THREADS * MESSAGES, counts[0], counts[1], counts[2],
           counts[3], failed);
    return bad == 0 && failed == 0 && frames == THREADS * MESSAGES ? 0 : 1;
}
