/*
 * Chapter v1.0, exercise 3: zn_conn_get_property_into() copies a
 * property's value into the caller's buffer and returns its length,
 * -ERANGE when it does not fit (nothing copied), -ENOENT when there is no
 * such key. One connection that is never started (testconn.h): a 10-byte
 * value into 16 bytes, into 10, into 9, and a key that is not there.
 *
 * Prints what failed on stderr, "ok" on stdout; exit 0 when all held.
 * Built and run by tests/exercises/test_ex_v1_0.py.
 */
#include "testcheck.h"
#include "testconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Get "k" into size bytes of a buffer filled with '#'; check the result. */
static void get_into(struct zn_conn *conn, size_t size, ssize_t want,
                     const char *what)
{
    char buf[16];
    ssize_t n;

    memset(buf, '#', sizeof(buf));
    n = zn_conn_get_property_into(conn, "k", buf, size);
    CHECK(n == want, "%s: returned %zd, want %zd", what, n, want);
    if (want > 0)
        CHECK(memcmp(buf, "0123456789", 10) == 0,
              "%s: the value copied is not 0123456789", what);
    else
        CHECK(memcmp(buf, "##########", 10) == 0,
              "%s: bytes were copied, though the value does not fit", what);
}

int main(void)
{
    struct sockaddr_in peer = {.sin_family = AF_INET};
    struct zn_conn *conn;
    char buf[16];
    ssize_t n;
    int sv[2], rc;

    alarm(60);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    peer.sin_port = htons(9);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return perror("socketpair"), 1;
    conn =
        test_conn_new(sv[0], 7, (struct sockaddr *)&peer, sizeof(peer), NULL);
    if (conn == NULL)
        return perror("test_conn_new"), 1;

    rc = zn_conn_set_property(conn, "k", "0123456789", 10);
    CHECK(rc == 0, "setting k to a 10-byte value returned %d, want 0", rc);
    get_into(conn, 16, 10, "a 10-byte value into 16 bytes");
    get_into(conn, 10, 10, "a 10-byte value into 10 bytes");
    get_into(conn, 9, -ERANGE, "a 10-byte value into 9 bytes");
    n = zn_conn_get_property_into(conn, "none", buf, sizeof(buf));
    CHECK(n == -ENOENT, "a missing key: returned %zd, want -ENOENT (%d)", n,
          -ENOENT);

    zn_conn_release(conn);
    close(sv[1]);
    if (failures != 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
