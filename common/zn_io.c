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

ssize_t zn_writevn(int fd, struct iovec *iov, int cnt)
{
    size_t done = 0;

    while (cnt > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        size_t left;

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        done += (size_t)w;
        /* Empty the buffers written whole, then trim the one cut short. */
        for (left = (size_t)w; cnt > 0 && left >= iov->iov_len; iov++, cnt--) {
            left -= iov->iov_len;
            iov->iov_len = 0;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return (ssize_t)done;
}
