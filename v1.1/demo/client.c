/*
 * zinc demo client: prints the server's greeting (msg id 2, sent by its
 * on_conn_start hook), then sends messages with id 0 and id 1, which the
 * server routes to two different routers, and prints the replies.
 *
 *     build/client [HOST:PORT]   default 127.0.0.1:8999
 *
 * It packs and unpacks with the same datapack module as the server.
 */
#include "zinc/datapack.h"

#include "zn_addr.h"
#include "zn_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Read one message of at most 256 bytes into body. Returns 0 or -1. */
static int recv_msg(int fd, uint32_t *id, char body[256], uint32_t *len)
{
    unsigned char head[ZN_HEADER_LEN];

    if (zn_readn(fd, head, sizeof(head)) != sizeof(head) ||
        zn_datapack_unpack(head, id, len) < 0 || *len > 256 ||
        zn_readn(fd, body, *len) != (ssize_t)*len)
        return -1;
    return 0;
}

/* Send one message and print the reply. Returns 0 or -1. */
static int exchange(int fd, uint32_t id, const char *text)
{
    char body[256];
    uint32_t rid, rlen;
    size_t size;
    char *buf = zn_datapack_pack(id, text, (uint32_t)strlen(text), &size);
    ssize_t n;

    if (buf == NULL)
        return -1;
    n = zn_writen(fd, buf, size);
    free(buf);
    if (n < 0 || recv_msg(fd, &rid, body, &rlen) < 0)
        return -1;
    printf("sent msg id %u \"%s\" -> recv msg id %u, %u bytes: %.*s\n", id,
           text, rid, rlen, (int)rlen, body);
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8999";
    int fd = zn_addr_dial(addr);
    char body[256];
    uint32_t id, len;

    if (fd < 0) {
        fprintf(stderr, "client: cannot connect to %s: %s\n", addr,
                strerror(-fd));
        return 1;
    }
    if (recv_msg(fd, &id, body, &len) < 0) {
        fprintf(stderr, "client: connection lost\n");
        close(fd);
        return 1;
    }
    printf("greeting: msg id %u, %u bytes: %.*s\n", id, len, (int)len, body);
    for (uint32_t i = 0; i < 4; i++) {
        if (exchange(fd, i % 2, "Zinc " ZN_VERSION " client test message") <
            0) {
            fprintf(stderr, "client: connection lost\n");
            close(fd);
            return 1;
        }
    }
    close(fd);
    return 0;
}
