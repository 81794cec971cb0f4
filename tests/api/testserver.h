/*
 * testserver.h -- main() for the programs in tests/api that are whole
 * servers, run as the demo is: `PROGRAM [-c FILE]` loads the
 * configuration (default ZN_CONFIG_PATH), makes a server, lets the
 * program add its routers and hooks, and serves until SIGINT or SIGTERM.
 *
 *     static int setup(struct zn_server *s) { return zn_server_add_...; }
 *     int main(int argc, char **argv) { return test_serve(argc, argv, setup); }
 */
#ifndef ZN_TESTSERVER_H
#define ZN_TESTSERVER_H

#include "zinc/config.h"
#include "zinc/server.h"

#include <stdio.h>
#include <unistd.h>

/*
 * Returns the exit status: 0 after a clean stop, 1 when the server could
 * not be made, set up (setup() returned a negative value) or served, 2 for
 * bad arguments or a bad configuration.
 */
static inline int test_serve(int argc, char **argv,
                             int (*setup)(struct zn_server *s))
{
    const char *path = ZN_CONFIG_PATH;
    struct zn_server *s;
    int opt, rc;

    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt != 'c')
            goto usage;
        path = optarg;
    }
    if (optind != argc)
        goto usage;
    if (zn_config_load(path) < 0)
        return 2;

    s = zn_server_new();
    if (s == NULL) {
        perror("zn_server_new");
        return 1;
    }
    if (setup(s) < 0) {
        zn_server_free(s);
        return 1;
    }
    rc = zn_server_serve(s);
    zn_server_free(s);
    return rc < 0 ? 1 : 0;
usage:
    fprintf(stderr, "usage: %s [-c FILE]   (default " ZN_CONFIG_PATH ")\n",
            argv[0]);
    return 2;
}

#endif
