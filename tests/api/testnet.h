/*
 * testnet.h -- a loopback TCP pair for the programs in tests/api that
 * drive a connection without a server: the client end, and the server's
 * end to wrap in a connection.
 *
 *     if (test_tcp_pair(&cfd, &sfd, &peer, &plen, narrow) < 0)
 *         return 1;
 */
#ifndef ZN_TESTNET_H
#define ZN_TESTNET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Connect *cfd (the client) to *sfd (the server's end, whose peer address
 * goes to peer and *plen) over 127.0.0.1. A narrow client (a small receive
 * buffer and segment size, set before connect) lets the kernel hold only a
 * little of what the server writes to it. Returns 0, or -1 after perror().
 */
static inline int test_tcp_pair(int *cfd, int *sfd,
                                struct sockaddr_storage *peer, socklen_t *plen,
                                bool narrow)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    socklen_t len = sizeof(addr);
    int lfd, rcvbuf = 4096, mss = 536;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
        perror("listen");
        return -1;
    }
    *cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (*cfd >= 0 && narrow) {
        setsockopt(*cfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        setsockopt(*cfd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss));
    }
    *plen = sizeof(*peer);
    if (*cfd < 0 || connect(*cfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        (*sfd = accept(lfd, (struct sockaddr *)peer, plen)) < 0) {
        perror("connect");
        close(lfd);
        return -1;
    }
    close(lfd);
    return 0;
}

#endif
