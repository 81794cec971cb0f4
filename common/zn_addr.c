#include "zn_addr.h"
#include "zn_fd.h"

#include <netdb.h>
#include <netinet/in.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

char *zn_addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                     size_t size)
{
    char host[INET6_ADDRSTRLEN];
    char port[8];

    if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, size, "?");
        return buf;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(buf, size, "[%s]:%s", host, port);
    else
        snprintf(buf, size, "%s:%s", host, port);
    return buf;
}

int zn_addr_parse_port(const char *text, uint16_t *port)
{
    unsigned long v = 0;

    if (*text == '\0' || strlen(text) > 5)
        return -EINVAL;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/*
 * connect() fd to addr, waiting at most timeout_ms (negative: as long as
 * connect() takes). A non-blocking connect() returns EINPROGRESS at once;
 * the socket becomes writable when the handshake is over, and SO_ERROR
 * then tells how it went. Returns 0 or -1 with errno set.
 */
static int connect_timed(int fd, const struct sockaddr *addr, socklen_t len,
                         int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    socklen_t elen = sizeof(int);
    int err = 0, n;

    if (timeout_ms < 0)
        return connect(fd, addr, len);
    if (zn_fd_set_nonblock(fd, true) < 0)
        return -1;
    if (connect(fd, addr, len) < 0) {
        if (errno != EINPROGRESS)
            return -1;
        do
            n = poll(&p, 1, timeout_ms);
        while (n < 0 && errno == EINTR);
        if (n == 0)
            errno = ETIMEDOUT;
        if (n <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            return -1;
        if (err != 0) {
            errno = err;
            return -1;
        }
    }
    return zn_fd_set_nonblock(fd, false);
}

int zn_addr_dial(const char *hostport)
{
    return zn_addr_dial_timeout(hostport, -1);
}

int zn_addr_dial_timeout(const char *hostport, int timeout_ms)
{
    struct addrinfo hints = {0}, *res, *ai;
    char host[ZN_ADDR_STRLEN];
    const char *colon = strrchr(hostport, ':');
    const char *h = hostport;
    size_t hlen;
    uint16_t port;
    int fd = -1, err = ECONNREFUSED;

    if (colon == NULL || zn_addr_parse_port(colon + 1, &port) < 0)
        return -EINVAL;
    hlen = (size_t)(colon - hostport);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++; /* "[::1]:8999" */
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -EINVAL;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = zn_fd_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect_timed(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : -err;
}
