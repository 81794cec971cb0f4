#include "zn_io.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t zn_read(int fd, void *buf, size_t n)
{
    ssize_t r;

    do {
        r = read(fd, buf, n);
    } while (r < 0 && errno == EINTR);
    return r;
}

ssize_t zn_readn(int fd, void *buf, size_t n)
{
    char *p = buf;
    size_t left = n;

    while (left > 0) {
        ssize_t r = zn_read(fd, p, left);
        if (r < 0)
            return -1;
        if (r == 0)
            break; /* EOF: report what arrived */
        p += r;
        left -= (size_t)r;
    }
    return (ssize_t)(n - left);
}

ssize_t zn_writen(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    size_t left = n;

    while (left > 0) {
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    return (ssize_t)n;
}
