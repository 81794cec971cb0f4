#include "zinc/listener.h"

#include "zn_addr.h"
#include "zn_fd.h"
#include "zn_log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/*
 * Clients taken from the accept queue in one go before the server looks
 * at its wake-up pipe again.
 */
#define ZN_ACCEPT_BATCH 64

struct zn_listener {
    const char *name; /* the server's, for log lines; not owned */
    int fd; /* the listening socket, non-blocking */
    uint16_t port; /* the port bound */
    char addr[ZN_ADDR_STRLEN]; /* the address bound, "IP:PORT" */
    int spare_fd; /* kept free for when descriptors run out, or -1 */
    bool starved; /* accept() is failing: logged once, until it works */
    unsigned long turned_away; /* clients closed at once meanwhile */
};

/*
 * Resolve ip:port, then bind and listen on the first address that works.
 * Returns the socket, or -1 with errno set and the reason logged.
 */
static int listen_on(const char *name, const char *ip, uint16_t port)
{
    struct addrinfo hints = {0}, *res, *ai;
    char service[8];
    int fd = -1, err = 0, rc;

    /* Numeric host and port only: a server should not wait on DNS. */
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    rc = getaddrinfo(ip, service, &hints, &res);
    if (rc != 0) {
        zn_error("[%s] cannot resolve %s: %s", name, ip, gai_strerror(rc));
        errno = EINVAL;
        return -1;
    }

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;

        fd = zn_fd_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        /* Restart at once after a stop, even with old connections in
         * TIME_WAIT on this port. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, SOMAXCONN) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);

    /*
     * Non-blocking, because zn_listener_accept() calls accept() until the
     * queue is empty; a blocking accept() would then wait for the next
     * client instead of going back to poll() and the wake-up pipe.
     */
    if (fd >= 0 && zn_fd_set_nonblock(fd, true) < 0) {
        err = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        zn_error("[%s] cannot listen on %s:%u: %s", name, ip, (unsigned)port,
                 zn_strerror(err));
        errno = err;
    }
    return fd;
}

struct zn_listener *zn_listener_new(const char *name, const char *ip,
                                    uint16_t port)
{
    struct zn_listener *l = calloc(1, sizeof(*l));
    struct sockaddr_storage bound;
    socklen_t len = sizeof(bound);
    int err;

    if (l == NULL)
        return NULL;
    l->name = name;
    l->spare_fd = -1;
    l->fd = listen_on(name, ip, port);
    if (l->fd < 0)
        goto err;
    /* With port 0 the system chose one: ask which. */
    if (getsockname(l->fd, (struct sockaddr *)&bound, &len) < 0) {
        zn_error("[%s] cannot listen on %s:%u: getsockname: %s", name, ip,
                 (unsigned)port, zn_strerror(errno));
        goto err;
    }
    zn_addr_format((struct sockaddr *)&bound, len, l->addr, sizeof(l->addr));
    l->port = ntohs(bound.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&bound)->sin6_port
                        : ((struct sockaddr_in *)&bound)->sin_port);
    /* /dev/null is just a descriptor to give back: see shed_client(). */
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return l;
err:
    err = errno;
    zn_listener_free(l);
    errno = err;
    return NULL;
}

int zn_listener_fd(const struct zn_listener *l)
{
    return l->fd;
}

uint16_t zn_listener_port(const struct zn_listener *l)
{
    return l->port;
}

const char *zn_listener_addr(const struct zn_listener *l)
{
    return l->addr;
}

/*
 * Out of file descriptors, accept() fails and leaves the client in the
 * queue, so poll() reports it again at once: retrying would spin a CPU and
 * fill the log, and waiting would leave the client connected to a server
 * that never answers. The spare descriptor gets out of that: give it back,
 * accept the client and close it at once, so it learns the server is
 * full, then take the spare again (libev and libuv do the same). Returns 0
 * when a client was turned away like that, or the errno of accept():
 * EAGAIN when nobody was waiting after all (Linux reports EMFILE before it
 * looks at the queue).
 */
static int shed_client(struct zn_listener *l)
{
    int fd, err;

    if (l->spare_fd >= 0)
        close(l->spare_fd);
    fd = zn_fd_accept(l->fd, NULL, NULL);
    err = errno;
    if (fd >= 0) {
        close(fd);
        l->turned_away++;
    }
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? 0 : err;
}

/*
 * True for the accept() errors that concern one client, not the server: it
 * gave up before we got to it, or (Linux, see accept(2)) a network error
 * was pending on the new connection. The advice is to retry, as for EAGAIN.
 */
static bool accept_error_is_transient(int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENOPROTOOPT:
    case EOPNOTSUPP:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTUNREACH:
#if defined(EHOSTDOWN)
    case EHOSTDOWN:
#endif
#if defined(ENONET)
    case ENONET:
#endif
        return true;
    default:
        return false;
    }
}

int zn_listener_accept(struct zn_listener *l, zn_accept_fn fn, void *data)
{
    for (int i = 0; i < ZN_ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = zn_fd_accept(l->fd, (struct sockaddr *)&sa, &len);
        int err = errno;

        if (fd >= 0) {
            if (l->starved)
                zn_info("[%s] accepting again (%lu clients turned away)",
                        l->name, l->turned_away);
            l->starved = false;
            l->turned_away = 0;
            fn(fd, (struct sockaddr *)&sa, len, data);
            continue;
        }
        if (err == EAGAIN || err == EWOULDBLOCK)
            return -1; /* the queue is empty */
        if (accept_error_is_transient(err))
            continue;
        if (err == EMFILE || err == ENFILE) {
            int shed = shed_client(l);

            if (shed == EAGAIN || shed == EWOULDBLOCK)
                return -1; /* nobody was waiting: nobody turned away */
            if (!l->starved)
                zn_warn("[%s] out of file descriptors (accept: %s): closing "
                        "new connections until one is free",
                        l->name, zn_strerror(err));
            l->starved = true;
            if (shed == 0)
                continue;
            return ZN_ACCEPT_PAUSE_MS; /* not even the spare came back */
        }
        if (!l->starved)
            zn_error("[%s] accept: %s: pausing", l->name, zn_strerror(err));
        l->starved = true;
        return ZN_ACCEPT_PAUSE_MS;
    }
    return -1;
}

void zn_listener_free(struct zn_listener *l)
{
    if (l == NULL)
        return;
    if (l->fd >= 0)
        close(l->fd);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    free(l);
}
