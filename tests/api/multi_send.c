/*
 * A connection that several threads send on, and whose client never reads,
 * is stopped as too slow once, with one WARN line, however many of the
 * threads find its outgoing channel full at the same moment (v0.8+).
 *
 *     multi_send [BODY]     BODY: bytes per message, default 256
 *
 * A loopback TCP pair: the client end has a 4 KiB receive buffer and a
 * 536-byte MSS and never reads, so the kernel soon takes no more of the
 * server end's bytes; the writer thread blocks, and with MaxMsgChanLen 2
 * the outgoing channel is full a moment later. Four sender threads keep
 * calling zn_conn_send_msg() (at most MAX_SENDS messages each, and for at
 * most WAIT_MS): all four end up waiting for room in the full channel, and
 * their waits run out within microseconds of each other. Each send that
 * gives up may be the one that stops the connection, but only one of them
 * may say so: the log must show `conn 0: too slow` once and `conn 0
 * stopped` once. Every later send returns -EPIPE.
 *
 * The program checks that the connection was stopped and that the last
 * zn_conn_release() closed its socket (so nothing leaks under ASan), and
 * prints one summary line. The log lines go to stderr, as the library
 * writes them; tests/test_slow_clients.py runs this RUNS times and counts
 * them (with fewer runs a race that bites once in a few runs would pass).
 */
#include "zinc/config.h"

#include "testclock.h"
#include "testconn.h"
#include "testnet.h"

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

#define THREADS 4
#define MAX_SENDS 100000 /* per thread: 25 MiB at the default size */
#define WAIT_MS 10000 /* the bound on every wait */
#define MAX_BODY (1 << 20)

static uint32_t body_len = 256;

struct sender {
    struct zn_conn *conn;
    uint32_t id; /* the msg id it sends: its index */
    int ok; /* sends that returned 0 */
    int rc; /* the first send that did not; 0 if none */
};

/* Send until a send fails, MAX_SENDS, or WAIT_MS: whichever comes first. */
static void *send_all(void *arg)
{
    struct sender *s = arg;
    unsigned char *body = malloc(body_len);
    double end = now_ms() + WAIT_MS;

    if (body == NULL) {
        s->rc = -ENOMEM;
        return NULL;
    }
    memset(body, 'a' + (int)s->id, body_len);
    while (s->ok < MAX_SENDS && now_ms() < end) {
        int rc = zn_conn_send_msg(s->conn, s->id, body, body_len);

        if (rc != 0) {
            s->rc = rc;
            break;
        }
        s->ok++;
    }
    free(body);
    return NULL;
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

int main(int argc, char **argv)
{
    struct sockaddr_storage peer;
    socklen_t plen;
    struct sender senders[THREADS];
    pthread_t t[THREADS];
    struct zn_msghandler *handler;
    struct zn_conn *conn;
    int cfd, sfd, ms, failures = 0;
    bool stopped;

    if (argc > 1)
        body_len = (uint32_t)atoi(argv[1]);
    if (body_len < 1 || body_len > MAX_BODY) {
        fprintf(stderr, "usage: %s [BODY]   (1 to %d bytes)\n", argv[0],
                MAX_BODY);
        return 2;
    }

    /* cfd the client, which never reads, with a narrow receive path;
     * sfd the server's end. */
    if (test_tcp_pair(&cfd, &sfd, &peer, &plen, true) < 0)
        return 1;

    /* A small outgoing channel: it is full soon after the writer blocks.
     * zn__conn_new() sizes the channel from zn_global. */
    zn_global.max_msg_chan_len = 2;
    handler = zn_msghandler_new(); /* no routers: the client sends nothing */
    if (handler == NULL)
        return perror("zn_msghandler_new"), 1;
    conn = test_conn_new(sfd, 0, (struct sockaddr *)&peer, plen, handler);
    if (conn == NULL)
        return perror("test_conn_new"), 1;
    test_handler_done(handler); /* the reader may still use it */
    zn_conn_hold(conn); /* ours, for the senders; the other is the reader's */
    if (test_conn_start(conn) < 0)
        return perror("test_conn_start"), 1;

    for (int i = 0; i < THREADS; i++) {
        senders[i] = (struct sender){.conn = conn, .id = (uint32_t)i};
        pthread_create(&t[i], NULL, send_all, &senders[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    stopped = zn_conn_is_closed(conn);

    printf("sends that returned 0:");
    for (int i = 0; i < THREADS; i++)
        printf(" %d", senders[i].ok);
    printf("; then:");
    for (int i = 0; i < THREADS; i++)
        printf(" %s",
               senders[i].rc == 0 ? "none failed" : strerror(-senders[i].rc));
    printf("\n");
    if (!stopped) {
        fprintf(stderr, "FAIL: the connection was never stopped\n");
        failures++;
    }
    for (int i = 0; i < THREADS; i++) {
        if (senders[i].rc == 0) {
            fprintf(stderr, "FAIL: sender %d never saw a send fail\n", i);
            failures++;
        }
    }

    /* Drop our reference; the reader (woken by the stop) drops the last,
     * which closes the socket. Wait for that, bounded. */
    close(cfd);
    zn_conn_release(conn);
    for (ms = 0; ms < WAIT_MS && fd_is_open(sfd); ms++)
        sleep_ms(1);
    if (fd_is_open(sfd)) {
        fprintf(stderr,
                "FAIL: socket still open %d ms after the last "
                "release\n",
                WAIT_MS);
        failures++;
    }
    return failures == 0 ? 0 : 1;
}
