/*
 * zn_io -- blocking socket I/O that finishes the job (after CS:APP's rio).
 *
 * read(2) and write(2) may move fewer bytes than asked for (a "short count")
 * and may be interrupted by a signal (EINTR). Code that forgets either works
 * in a quick test and then loses data under load. These helpers loop until
 * the whole buffer is done.
 */
#ifndef ZN_IO_H
#define ZN_IO_H

#include <sys/types.h>
#include <sys/uio.h>

/*
 * Read exactly n bytes from fd into buf, retrying on EINTR and short counts.
 * Returns n on success, fewer than n (possibly 0) when the peer closed the
 * stream first, and -1 with errno set on error.
 */
ssize_t zn_readn(int fd, void *buf, size_t n);

/*
 * Write all n bytes of buf to fd, retrying on EINTR and short counts. Uses
 * send(2) with MSG_NOSIGNAL, so writing to a peer that has gone away returns
 * -1 with errno EPIPE instead of killing the process with SIGPIPE. Returns n
 * on success and -1 with errno set on error.
 */
ssize_t zn_writen(int fd, const void *buf, size_t n);

/*
 * Write every byte the cnt buffers of iov describe, in order, as one stream
 * (writev(2), through sendmsg(2) with MSG_NOSIGNAL), retrying on EINTR and
 * short counts. iov is used up in place: a buffer written whole is left
 * with length 0, one written in part starts after what went out. So after
 * an error such as EAGAIN, a call with the same iov and cnt writes exactly
 * what is left. Returns the bytes written by this call, all of what was
 * left, or -1 with errno set.
 */
ssize_t zn_writevn(int fd, struct iovec *iov, int cnt);

/*
 * Read at most n bytes, retrying only on EINTR: whatever one read(2)
 * returns. Returns the byte count, 0 at end of stream, -1 with errno set.
 */
ssize_t zn_read(int fd, void *buf, size_t n);

#endif
