/*
 * zinc demo client: sends a few messages to the ping router and prints
 * the three lines that come back for each.
 *
 *     build/client [HOST:PORT]   default 127.0.0.1:8999
 */
#include "zn_addr.h"
#include "zn_io.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What the ping router writes for every chunk it reads. */
static const char expected[] = "before ping\nping...ping...ping\nafter ping\n";

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8999";
    char msg[64], reply[sizeof(expected)];
    int fd = zn_addr_dial(addr);

    if (fd < 0) {
        fprintf(stderr, "client: cannot connect to %s: %s\n", addr,
                strerror(-fd));
        return 1;
    }
    for (int i = 0; i < 3; i++) {
        int n = snprintf(msg, sizeof(msg),
                         "hello zinc " ZN_VERSION ", message %d", i);
        size_t want = sizeof(expected) - 1;

        if (zn_writen(fd, msg, (size_t)n) < 0 ||
            zn_readn(fd, reply, want) != (ssize_t)want) {
            fprintf(stderr, "client: connection lost\n");
            close(fd);
            return 1;
        }
        if (memcmp(reply, expected, want) != 0) {
            fprintf(stderr, "client: unexpected reply: %.*s\n", (int)want,
                    reply);
            close(fd);
            return 1;
        }
        printf("sent \"%s\", server replied:\n%.*s", msg, (int)want, reply);
    }
    close(fd);
    return 0;
}
