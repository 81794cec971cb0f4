/*
 * zinc demo server: an echo server.
 *
 *     build/server [PORT]        default 8999; 0 lets the system choose
 *
 * Listens on 127.0.0.1 and echoes every byte back. Ctrl-C (SIGINT) or
 * SIGTERM stops it with exit status 0.
 */
#include "zinc/server.h"

#include "zn_addr.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    struct zn_server *s;
    uint16_t port = 8999;
    int rc;

    if (argc > 2 || (argc == 2 && zn_addr_parse_port(argv[1], &port) < 0)) {
        fprintf(stderr, "usage: %s [PORT]   (PORT is 0 to 65535)\n", argv[0]);
        return 2;
    }

    s = zn_server_new("zinc " ZN_VERSION, "127.0.0.1", port);
    if (s == NULL) {
        perror("zn_server_new");
        return 1;
    }
    rc = zn_server_serve(s);
    zn_server_free(s);
    return rc < 0 ? 1 : 0;
}
