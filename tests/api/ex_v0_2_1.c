/*
 * Exercise v0.2-1 (docs/v0.2-connection.md, "Exercises"): zn_conn_send().
 * Built against the stage's build/libzinc.a and run by
 * tests/exercises/test_ex_v0_2.py.
 *
 * Each connection wraps one end of a socketpair and is never started: no
 * reader thread, so this program owns it and may stop and free it. The
 * other end is the client.
 *
 *   send       the bytes arrive at the other end, and 0 is returned
 *   stopped    after zn_conn_stop(), -ENOTCONN
 *   gone       once the client has closed its end, the -errno of
 *              zn_writen(): -EPIPE
 *
 * Prints one line per failed check (testcheck.h) and a summary; exits 1 on
 * any failure.
 */
#include "zinc/connection.h"
#include "zinc/connection_internal.h"

#include "testcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connection on one end of a new socketpair; *client gets the other. */
static struct zn_conn *pair_conn(uint32_t id, int *client)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    struct zn_conn *c;
    int sv[2];

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        perror("socketpair");
        return NULL;
    }
    c = zn__conn_new(sv[0], id, (struct sockaddr *)&addr, sizeof(addr), NULL);
    if (c == NULL) {
        perror("zn__conn_new");
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    *client = sv[1];
    return c;
}

int main(void)
{
    char buf[16] = {0};
    struct zn_conn *c;
    int client, rc;

    c = pair_conn(1, &client);
    if (c == NULL)
        return 1;
    rc = zn_conn_send(c, "hello", 5);
    CHECK(rc == 0, "send: returned %d, expected 0", rc);
    CHECK(read(client, buf, sizeof(buf)) == 5 && memcmp(buf, "hello", 5) == 0,
          "send: the client did not read 'hello'");
    zn_conn_stop(c);
    rc = zn_conn_send(c, "late", 4);
    CHECK(rc == -ENOTCONN, "stopped: returned %d (%s), expected -ENOTCONN", rc,
          strerror(-rc));
    zn__conn_free(c);
    close(client);

    c = pair_conn(2, &client);
    if (c == NULL)
        return 1;
    close(client);
    rc = zn_conn_send(c, "nobody", 6);
    CHECK(rc == -EPIPE, "gone: returned %d (%s), expected -EPIPE", rc,
          strerror(-rc));
    zn__conn_free(c);

    printf("zn_conn_send: %d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
