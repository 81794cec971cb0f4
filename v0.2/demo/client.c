/*
 * zinc demo client: sends a few lines to the echo server and prints
 * what comes back.
 *
 *     build/client [HOST:PORT]   default 127.0.0.1:8999
 */
#include "zn_addr.h"
#include "zn_io.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8999";
    char msg[64], reply[64];
    int fd = zn_addr_dial(addr);

    if (fd < 0) {
        fprintf(stderr, "client: cannot connect to %s: %s\n", addr,
                strerror(-fd));
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        int n = snprintf(msg, sizeof(msg),
                         "hello zinc " ZN_VERSION ", message %d", i);

        /* An echo server returns exactly what we sent: read that much. */
        if (zn_writen(fd, msg, (size_t)n) < 0 ||
            zn_readn(fd, reply, (size_t)n) != n) {
            fprintf(stderr, "client: connection lost\n");
            close(fd);
            return 1;
        }
        printf("server echoed: %.*s\n", n, reply);
    }
    close(fd);
    return 0;
}
