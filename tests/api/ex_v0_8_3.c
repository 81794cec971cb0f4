/*
 * Exercise v0.8-3 (tests/exercises/test_ex_v0_8.py): a send that finds a
 * connection's outgoing channel full waits SendWaitMs from the
 * configuration, then stops the connection as too slow.
 *
 *     ex_v0_8_3 CONFIG     e.g. {"MaxMsgChanLen": 2, "SendWaitMs": 37}
 *
 * The configuration is loaded as the demo loads it. Then, as in
 * multi_send.c, a loopback TCP pair whose client end never reads: the
 * writer thread soon blocks, the channel fills, and a send waits for room
 * until it gives up. The library's `conn 0: too slow: ... waiting for M
 * ms` line goes to stderr; the test reads M there. Prints how long the
 * send that failed took, and exits 0 when the connection was stopped.
 */
#include "zinc/config.h"

#include "testconn.h"
#include "testnet.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SENDS 100000 /* 400 MiB at most: the channel fills long before */
#define BODY 4096

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    static unsigned char body[BODY];
    struct sockaddr_storage peer;
    socklen_t plen;
    struct zn_msghandler *handler;
    struct zn_conn *conn;
    int cfd, sfd, rc = 0, sent;
    double start = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CONFIG\n", argv[0]);
        return 2;
    }
    if (zn_config_load(argv[1]) < 0)
        return 2;
    if (test_tcp_pair(&cfd, &sfd, &peer, &plen, true) < 0)
        return 1;
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

    memset(body, 'x', sizeof(body));
    for (sent = 0; sent < MAX_SENDS && rc == 0; sent++) {
        start = now_ms();
        rc = zn_conn_send_msg(conn, 1, body, sizeof(body));
    }
    printf("send %d failed with %s after %.0f ms\n", sent, strerror(-rc),
           now_ms() - start);
    rc = zn_conn_is_closed(conn) ? 0 : 1;
    close(cfd);
    zn_conn_release(conn);
    return rc;
}
