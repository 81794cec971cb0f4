/* accept4(), pipe2() and SOCK_CLOEXEC are Linux's: ask glibc for them. */
#if defined(__linux__)
#define _GNU_SOURCE
#endif
#include "zn_fd.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#if !defined(__linux__)
/* Set FD_CLOEXEC, for systems without the atomic flags. */
static int set_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);

    return flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0 ? -1 : 0;
}

/* Close fd after a failure, keeping the failure's errno. */
static int close_failed(int fd)
{
    int e = errno;

    close(fd);
    errno = e;
    return -1;
}
#endif

int zn_fd_socket(int domain, int type, int protocol)
{
#if defined(__linux__)
    return socket(domain, type | SOCK_CLOEXEC, protocol);
#else
    int fd = socket(domain, type, protocol);

    if (fd >= 0 && set_cloexec(fd) < 0)
        return close_failed(fd);
    return fd;
#endif
}

int zn_fd_accept(int listen_fd, struct sockaddr *addr, socklen_t *len)
{
#if defined(__linux__)
    /* Linux never passes O_NONBLOCK on: no flag means blocking. */
    return accept4(listen_fd, addr, len, SOCK_CLOEXEC);
#else
    int fd = accept(listen_fd, addr, len);

    if (fd >= 0 && (set_cloexec(fd) < 0 || zn_fd_set_nonblock(fd, false) < 0))
        return close_failed(fd);
    return fd;
#endif
}

int zn_fd_pipe(int fds[2])
{
#if defined(__linux__)
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
#else
    if (pipe(fds) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (set_cloexec(fds[i]) < 0 || zn_fd_set_nonblock(fds[i], true) < 0) {
            close(fds[1 - i]);
            return close_failed(fds[i]);
        }
    }
    return 0;
#endif
}

int zn_fd_set_nonblock(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFL);

    /* F_GETFL can fail: or-ing a flag into -1 would set every flag. */
    if (flags < 0)
        return -errno;
    flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    if (fcntl(fd, F_SETFL, flags) < 0)
        return -errno;
    return 0;
}
