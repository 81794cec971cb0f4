/*
 * Exercise v0.8-3 (docs/v0.8-worker-pool.md, "Exercises"): a send that
 * finds a connection's outgoing channel full waits SendWaitMs from the
 * configuration, then stops the connection as too slow. Built against the
 * stage's build/libzinc.a and run by tests/exercises/test_ex_v0_8.py.
 *
 *     ex_v0_8_3 CONFIG WAIT_MS
 *
 * CONFIG holds, say, {"MaxMsgChanLen": 2, "SendWaitMs": 180}; WAIT_MS is
 * then 180.
 *
 * The configuration is loaded as the demo loads it. Then, as in
 * multi_send.c, a loopback TCP pair whose client end never reads: the
 * writer thread soon blocks, the channel fills, and a send waits for room
 * until it gives up. That send must fail with -ETIMEDOUT after WAIT_MS (the
 * SendWaitMs in CONFIG; a wait is never shorter than asked, so the check
 * allows only SLACK_MS less, for rounding), and the connection must be
 * stopped. The library's `conn 0: too slow: ...` line goes to stderr.
 *
 * Prints how long the failed send took, one line per failed check
 * (testcheck.h), and exits 1 on any failure.
 */
#include "zinc/config.h"

#include "testcheck.h"
#include "testclock.h"
#include "testconn.h"
#include "testnet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SENDS 100000 /* 400 MiB at most: the channel fills long before */
#define BODY 4096
#define SLACK_MS 10.0

int main(int argc, char **argv)
{
    static unsigned char body[BODY];
    struct sockaddr_storage peer;
    socklen_t plen;
    struct zn_msghandler *handler;
    struct zn_conn *conn;
    int cfd, sfd, rc = 0, sent, wait_ms;
    double start = 0, took;

    if (argc != 3) {
        fprintf(stderr, "usage: %s CONFIG WAIT_MS\n", argv[0]);
        return 2;
    }
    wait_ms = atoi(argv[2]);
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
    took = now_ms() - start;
    printf("send %d failed with %s after %.0f ms\n", sent, strerror(-rc), took);
    CHECK(rc == -ETIMEDOUT,
          "a send to a client that reads nothing returned %d (%s), not "
          "-ETIMEDOUT",
          rc, strerror(-rc));
    CHECK(rc != -ETIMEDOUT || took >= wait_ms - SLACK_MS,
          "the send that failed waited %.0f ms for room, not the %d ms of "
          "SendWaitMs",
          took, wait_ms);
    CHECK(zn_conn_is_closed(conn),
          "the connection was not stopped after its send timed out");
    close(cfd);
    zn_conn_release(conn);
    return failures ? 1 : 0;
}
