/*
 * zn_fd -- descriptors that do not leak into other programs.
 *
 * A descriptor without close-on-exec survives exec(): a server that runs a
 * helper program would hand it every client socket and its listening
 * socket, and the helper would keep a client's connection open after the
 * server closed it. Linux creates a descriptor close-on-exec atomically
 * (SOCK_CLOEXEC, accept4(), pipe2()); elsewhere it is set right after, with
 * fcntl(). These helpers hide that platform detail so the stages read the
 * same everywhere.
 */
#ifndef ZN_FD_H
#define ZN_FD_H

#include <stdbool.h>
#include <sys/socket.h>

/* socket(2), close-on-exec. Returns the descriptor or -1 with errno. */
int zn_fd_socket(int domain, int type, int protocol);

/*
 * accept(2) a connection as a blocking, close-on-exec socket, whatever the
 * listening socket's flags (the BSDs let O_NONBLOCK be inherited, Linux
 * does not). Returns the descriptor or -1 with errno, as accept() does.
 */
int zn_fd_accept(int listen_fd, struct sockaddr *addr, socklen_t *len);

/*
 * pipe(2) with both ends close-on-exec and non-blocking: a self-pipe whose
 * writer (a signal handler) must never block. Returns 0 or -1 with errno.
 */
int zn_fd_pipe(int fds[2]);

/*
 * Turn O_NONBLOCK on or off, leaving the other status flags alone.
 * Returns 0 or a negative errno.
 */
int zn_fd_set_nonblock(int fd, bool on);

#endif
