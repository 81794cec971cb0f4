#include "zinc/poller.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef ZN_POLLER_POLL

/* ---- epoll (Linux) ---- */

#include <sys/epoll.h>

#define ZN_EPOLL_BATCH 256 /* events taken from one epoll_wait() */

struct zn_poller {
    int epfd;
    struct epoll_event events[ZN_EPOLL_BATCH];
};

struct zn_poller *zn_poller_new(void)
{
    struct zn_poller *p = malloc(sizeof(*p));

    if (p == NULL)
        return NULL;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        int err = errno;

        free(p);
        errno = err;
        return NULL;
    }
    return p;
}

void zn_poller_free(struct zn_poller *p)
{
    if (p == NULL)
        return;
    close(p->epfd);
    free(p);
}

int zn_poller_set(struct zn_poller *p, int fd, unsigned old, unsigned events)
{
    struct epoll_event ev = {.data.fd = fd};
    int op = old == 0      ? EPOLL_CTL_ADD
             : events == 0 ? EPOLL_CTL_DEL
                           : EPOLL_CTL_MOD;

    if (old == events)
        return 0;
    if (events & ZN_READABLE)
        ev.events |= EPOLLIN;
    if (events & ZN_WRITABLE)
        ev.events |= EPOLLOUT;
    return epoll_ctl(p->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int zn_poller_wait(struct zn_poller *p, struct zn_fired *fired, int max,
                   int timeout_ms)
{
    int n;

    if (max > ZN_EPOLL_BATCH)
        max = ZN_EPOLL_BATCH;
    n = epoll_wait(p->epfd, p->events, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = p->events[i].events;

        fired[i].fd = p->events[i].data.fd;
        fired[i].events = 0;
        /* An error or a hang-up is news for the reader: read() says which. */
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
            fired[i].events |= ZN_READABLE;
        if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            fired[i].events |= ZN_WRITABLE;
    }
    return n;
}

const char *zn_poller_name(void)
{
    return "epoll";
}

#else

/* ---- poll() (POSIX) ---- */

#include <poll.h>

/*
 * poll() takes the whole array at every call: fds[] holds one entry per
 * watched descriptor, and slot[fd] says where, so that changing or
 * removing one costs O(1) (a removed entry is replaced by the last).
 */
struct zn_poller {
    struct pollfd *fds; /* the watched descriptors, nfds of them */
    int nfds, cap; /* entries used and allocated in fds */
    int *slot; /* slot[fd]: fd's index in fds, for fd < nslot */
    int nslot; /* entries allocated in slot */
    int next; /* where the next wait starts looking: fairness */
};

struct zn_poller *zn_poller_new(void)
{
    return calloc(1, sizeof(struct zn_poller));
}

void zn_poller_free(struct zn_poller *p)
{
    if (p == NULL)
        return;
    free(p->fds);
    free(p->slot);
    free(p);
}

/* Make room for one more entry, and for fd in slot[]. */
static int grow(struct zn_poller *p, int fd)
{
    if (p->nfds == p->cap) {
        int cap = p->cap > 0 ? 2 * p->cap : 64;
        struct pollfd *fds = realloc(p->fds, (size_t)cap * sizeof(*fds));

        if (fds == NULL)
            return -ENOMEM;
        p->fds = fds;
        p->cap = cap;
    }
    if (fd >= p->nslot) {
        int n = p->nslot > 0 ? p->nslot : 64;
        int *slot;

        while (n <= fd)
            n *= 2;
        slot = realloc(p->slot, (size_t)n * sizeof(*slot));
        if (slot == NULL)
            return -ENOMEM;
        p->slot = slot;
        p->nslot = n;
    }
    return 0;
}

int zn_poller_set(struct zn_poller *p, int fd, unsigned old, unsigned events)
{
    short want = (short)(((events & ZN_READABLE) ? POLLIN : 0) |
                         ((events & ZN_WRITABLE) ? POLLOUT : 0));
    int i;

    if (old == events)
        return 0;
    if (old == 0) {
        int rc = grow(p, fd);

        if (rc < 0)
            return rc;
        i = p->nfds++;
        p->fds[i].fd = fd;
        p->slot[fd] = i;
    }
    i = p->slot[fd];
    if (events != 0) {
        p->fds[i].events = want;
        return 0;
    }
    p->fds[i] = p->fds[--p->nfds]; /* the last takes its place */
    p->slot[p->fds[i].fd] = i;
    return 0;
}

int zn_poller_wait(struct zn_poller *p, struct zn_fired *fired, int max,
                   int timeout_ms)
{
    int n = poll(p->fds, (nfds_t)p->nfds, timeout_ms), got = 0;

    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    /* Start where the last wait stopped, so that with more ready than max
     * every descriptor gets its turn. */
    if (p->next >= p->nfds)
        p->next = 0;
    for (int k = 0; k < p->nfds && got < n && got < max; k++) {
        int i = (p->next + k) % p->nfds;
        short e = p->fds[i].revents;

        if (e == 0)
            continue;
        fired[got].fd = p->fds[i].fd;
        fired[got].events = 0;
        if (e & (POLLIN | POLLERR | POLLHUP | POLLNVAL))
            fired[got].events |= ZN_READABLE;
        if (e & (POLLOUT | POLLERR | POLLHUP | POLLNVAL))
            fired[got].events |= ZN_WRITABLE;
        got++;
        if (got == max)
            p->next = i + 1;
    }
    return got;
}

const char *zn_poller_name(void)
{
    return "poll";
}

#endif
