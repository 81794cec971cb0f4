/*
 * poller -- which of many descriptors can make progress: one small
 * interface over the system's readiness call, chosen at build time.
 *
 * redis's ae.c compiles one of ae_epoll.c, ae_kqueue.c or ae_select.c
 * behind the same four functions; zinc does the same with two backends in
 * one file: epoll on Linux (the default), and plain POSIX poll() everywhere
 * (`make POLLER=poll`, which defines ZN_POLLER_POLL). The loop (loop.h)
 * uses nothing else, so the suite runs unchanged against either.
 *
 * Level-triggered, both: a descriptor is reported for as long as it is
 * readable (or writable), not once per change. A loop may then read a
 * little from every client each round and come back for the rest; with
 * edge-triggered epoll every read would have to go on until EAGAIN, or
 * the bytes left would never be reported again.
 *
 * A poller is used by one thread only, the loop's.
 */
#ifndef ZN_POLLER_H
#define ZN_POLLER_H

#define ZN_READABLE 1u /* data, EOF or an error: read() will not block */
#define ZN_WRITABLE 2u /* room in the send buffer: write() will not block */

/* One descriptor that can make progress, as zn_poller_wait() reports it. */
struct zn_fired {
    int fd;
    unsigned events; /* ZN_READABLE, ZN_WRITABLE or both */
};

struct zn_poller;

/* A new poller. Returns NULL with errno set (ENOMEM, EMFILE). */
struct zn_poller *zn_poller_new(void);

/* Free the poller (the descriptors it watched are not closed). */
void zn_poller_free(struct zn_poller *p);

/*
 * Watch fd for events (ZN_READABLE, ZN_WRITABLE, both), replacing what it
 * was watched for; old says what that was (0: not watched yet), and 0 as
 * events stops watching it. Returns 0 or a negative errno.
 */
int zn_poller_set(struct zn_poller *p, int fd, unsigned old, unsigned events);

/*
 * Wait at most timeout_ms (-1: without a bound) for a watched descriptor
 * to become ready, and report at most max of them in fired. Returns how
 * many, 0 on timeout (or a signal), or a negative errno.
 */
int zn_poller_wait(struct zn_poller *p, struct zn_fired *fired, int max,
                   int timeout_ms);

/* "epoll" or "poll": the backend this build uses. */
const char *zn_poller_name(void);

#endif
