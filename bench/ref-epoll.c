/*
 * ref-epoll -- the reference server every stage is benchmarked against.
 *
 *     bench/build/ref-epoll [-t N] [PORT]   N loops, default 1; PORT default
 *                                           8999, 0 = any free port
 *
 * The stages' wire format and the v0.6 demo's replies: msg id 0 -> id 0
 * "ping...ping...ping", id 1 -> id 1 "Hello Zinc Router ref-epoll", other
 * ids -> nothing. 127.0.0.1 only; SIGINT or SIGTERM stops it, status 0.
 *
 * Stages v0.1 to v1.0 give every connection a thread that blocks in
 * read(). Here one thread serves everyone: every socket is non-blocking,
 * and one loop asks epoll which of them can make progress, then does just
 * that much on each (redis's ae.c, nginx and libuv work like this). It is
 * the on-box ceiling the stages are compared with, and a glimpse of what
 * comes after the course.
 *
 * Level-triggered: epoll reports a socket for as long as it is readable,
 * so the loop does one read per connection per round (fair to all) and
 * need not remember who still has bytes waiting. Edge-triggered reports an
 * arrival once, so every read must go on until EAGAIN or the rest is lost.
 *
 * With -t N, N threads each run that same loop over connections of their
 * own, as v1.1's WorkerPoolSize loops do, so that `make bench` compares the
 * two at the same number of loops. Each loop has a listening socket of its
 * own, all bound to the one port with SO_REUSEPORT: the kernel hands each
 * new client to one of them, by a hash of the client's address and port,
 * and the loop that owns that socket accepts it. The loops then share no
 * connection, no lock and no data (nginx's `listen ... reuseport`). The
 * other designs cost more code or balance worse: a main thread that accepts
 * and hands each client to a loop (v1.1, memcached) needs a queue and a
 * wake-up per loop; one listener in every loop's epoll wakes every loop for
 * each client, or with EPOLLEXCLUSIVE only one, which then accepts every
 * client waiting, so one loop may get most of a burst. One catch: another
 * process of the same user that asks for the same port with SO_REUSEPORT
 * (a second ref-epoll -t 2 on 8999) joins the group instead of failing and
 * gets a share of the clients; port 0 gives each server a port of its own.
 * The main thread runs loop 0: -t 1 starts no thread, does not set
 * SO_REUSEPORT and is the one-thread server above.
 *
 * Stopping: SIGINT and SIGTERM are blocked in every thread and wait in one
 * signalfd that every loop's epoll watches. Nobody reads it, so a signal,
 * once it came, stays pending and keeps the signalfd readable: every loop
 * sees it and returns, and the main thread joins the others, then closes
 * and frees everything.
 */

/* epoll, accept4() and signalfd() are Linux's: ask glibc for them. */
#define _GNU_SOURCE
#include "zn_addr.h"
#include "zn_frame.h"
#include "zn_log.h"
#include "zn_thread.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define REF_PORT 8999 /* the default port, as the stages' */
#define REF_MAX_LOOPS 256 /* -t: at most this many loops */
#define REF_MAX_PACKET 4096 /* MaxPacketSize: a longer body closes */
#define REF_MAX_EVENTS 256 /* events taken from one epoll_wait() */
#define REF_OUT_MIN 1024 /* first allocation of an output buffer */
#define REF_OUT_HIGH (64 * 1024) /* replies waiting: stop reading */

/*
 * Room for one frame still arriving plus one whole frame more: after
 * parsing, less than a frame is left, so every read has room for at least
 * a full frame, and no frame ever needs a buffer of its own.
 */
#define REF_IN_SIZE (2 * (ZN_FRAME_HEADER_LEN + REF_MAX_PACKET))

struct ref_conn {
    int fd; /* the client's socket, also its index in conns[] */
    unsigned id; /* shown in log lines */
    uint32_t events; /* what epoll watches: EPOLLIN, EPOLLOUT or both */
    bool eof; /* the client shut its side: send what is left, close */
    size_t in_len; /* bytes read into in[], not yet parsed */
    unsigned char *out; /* replies not yet written, oldest first */
    size_t out_len; /* bytes waiting in out */
    size_t out_cap; /* bytes allocated for out */
    unsigned char in[REF_IN_SIZE]; /* bytes read, oldest at in[0] */
};

/* One event loop and everything it owns; -t N makes N of them. */
struct ref_loop {
    int epfd; /* the epoll instance */
    int listen_fd; /* this loop's non-blocking listening socket */
    int sig_fd; /* the signalfd, shared by every loop: readable = stop */
    int spare_fd; /* kept free for when descriptors run out, or -1 */
    unsigned next_id; /* id of the next connection */
    unsigned id_step; /* the number of loops: loop i numbers i, i+N, ... */
    int setsize; /* length of conns[]: the descriptor limit */
    struct ref_conn **conns; /* conns[fd]: the connection on fd, or NULL */
    pthread_t tid; /* the thread that runs it (not loop 0's: main) */
    bool started; /* tid runs this loop and is to be joined */
    int rc; /* what serve() returned: 0 after a signal, -1 */
};

/* Append one reply to the output buffer. Returns 0 or -ENOMEM. */
static int conn_send(struct ref_conn *c, uint32_t id, const char *data,
                     uint32_t len)
{
    size_t need = c->out_len + ZN_FRAME_HEADER_LEN + len; /* see conn_watch() */

    if (need > c->out_cap) {
        size_t cap = c->out_cap > 0 ? c->out_cap : REF_OUT_MIN;
        unsigned char *p;

        while (cap < need)
            cap *= 2;
        p = realloc(c->out, cap);
        if (p == NULL)
            return -ENOMEM;
        c->out = p;
        c->out_cap = cap;
    }
    zn_frame_put_header(c->out + c->out_len, id, len);
    memcpy(c->out + c->out_len + ZN_FRAME_HEADER_LEN, data, len);
    c->out_len = need;
    return 0;
}

/* The v0.6 demo's two routers, as a switch. Returns 0 or -ENOMEM. */
static int handle_msg(struct ref_conn *c, uint32_t id)
{
    static const char ping[] = "ping...ping...ping";
    static const char hello[] = "Hello Zinc Router ref-epoll";

    if (id == 0)
        return conn_send(c, 0, ping, sizeof(ping) - 1);
    if (id == 1)
        return conn_send(c, 1, hello, sizeof(hello) - 1);
    return 0; /* unknown id: no reply, the connection stays open */
}

/*
 * Handle every complete frame in the input buffer, where it lies: one read
 * may bring several frames (sticky packets) and end inside one (split
 * packets), whose start then moves to the front to wait for the rest. A
 * header claiming more than REF_MAX_PACKET bytes is refused at once, so a
 * lie costs nothing. Returns 0 or a negative errno.
 */
static int conn_parse(struct ref_conn *c)
{
    size_t pos = 0;

    while (c->in_len - pos >= ZN_FRAME_HEADER_LEN) {
        uint32_t id, len;
        int rc;

        zn_frame_get_header(c->in + pos, &id, &len);
        if (len > REF_MAX_PACKET)
            return -EMSGSIZE;
        if (c->in_len - pos < ZN_FRAME_HEADER_LEN + len)
            break; /* the body is still on its way */
        rc = handle_msg(c, id);
        if (rc < 0)
            return rc;
        pos += ZN_FRAME_HEADER_LEN + len;
    }
    c->in_len -= pos;
    if (pos > 0 && c->in_len > 0)
        memmove(c->in, c->in + pos, c->in_len);
    return 0;
}

/* One read, as much as fits, then parse. Returns 0 or a negative errno. */
static int conn_read(struct ref_conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (n == 0) {
        c->eof = true; /* answer what came, then close */
        return 0;
    }
    c->in_len += (size_t)n;
    return conn_parse(c);
}

/*
 * Write as much of the output buffer as the socket takes; the rest waits
 * for EPOLLOUT. MSG_NOSIGNAL: a client that has gone away makes send()
 * fail with EPIPE instead of killing us with SIGPIPE.
 */
static int conn_flush(struct ref_conn *c)
{
    size_t done = 0;

    while (done < c->out_len) {
        ssize_t n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);

        if (n < 0 && errno == EAGAIN)
            break; /* the socket's buffer is full */
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            done += (size_t)n;
    }
    c->out_len -= done;
    if (done > 0 && c->out_len > 0)
        memmove(c->out, c->out + done, c->out_len);
    return 0;
}

/*
 * Tell epoll what the connection waits for now. EPOLLOUT only while
 * replies wait: a socket is nearly always writable, and a level-triggered
 * EPOLLOUT would wake us for nothing. EPOLLIN only while fewer than
 * REF_OUT_HIGH bytes of replies wait, because a client that sends but
 * never reads would otherwise make us queue replies, and memory, without
 * bound; unread, its requests fill the kernel's buffers and TCP makes that
 * client alone wait. One read adds the replies to at most REF_IN_SIZE
 * bytes of frames, so out stays below REF_OUT_HIGH + 36 KiB.
 */
static int conn_watch(struct ref_loop *loop, struct ref_conn *c)
{
    struct epoll_event ev = {.events = 0, .data.fd = c->fd};

    if (!c->eof && c->out_len < REF_OUT_HIGH)
        ev.events |= EPOLLIN;
    if (c->out_len > 0)
        ev.events |= EPOLLOUT;
    if (ev.events != c->events &&
        epoll_ctl(loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -errno;
    c->events = ev.events;
    return 0;
}

/* Add fd to the epoll set, watched for input. Returns 0 or -1 (errno). */
static int watch_input(struct ref_loop *loop, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

    return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void conn_open(struct ref_loop *loop, int fd)
{
    struct ref_conn *c = NULL;
    int one = 1;

    if (fd >= loop->setsize) {
        errno = EMFILE; /* someone raised our limit (prlimit) since start */
        goto err;
    }
    /* Replies should leave at once, not wait for Nagle's algorithm to fill
     * a segment. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        (c = malloc(sizeof(*c))) == NULL || watch_input(loop, fd) < 0)
        goto err;
    /* Not calloc(): in[] stays untouched, and so costs no memory, until
     * bytes arrive; small requests only ever touch its first page. */
    c->fd = fd;
    c->id = loop->next_id;
    loop->next_id += loop->id_step;
    c->events = EPOLLIN;
    c->eof = false;
    c->in_len = c->out_len = c->out_cap = 0;
    c->out = NULL;
    loop->conns[fd] = c;
    zn_debug("conn %u opened", c->id);
    return;
err:
    zn_warn("cannot serve a new client: %s", zn_strerror(errno));
    free(c);
    close(fd);
}

static void conn_close(struct ref_loop *loop, struct ref_conn *c,
                       const char *why)
{
    zn_debug("conn %u closed: %s", c->id, why);
    loop->conns[c->fd] = NULL;
    close(c->fd); /* the socket's last descriptor: epoll forgets it too */
    free(c->out);
    free(c);
}

/*
 * One round for one connection: read and parse, write the replies at once
 * (usually the socket takes them all and EPOLLOUT is never needed), then
 * choose what to wait for. An error closes this connection only.
 */
static void conn_on_event(struct ref_loop *loop, struct ref_conn *c,
                          uint32_t events)
{
    int rc = 0;

    if (events & (EPOLLERR | EPOLLHUP))
        rc = -ECONNRESET; /* reset: it can neither read nor write */
    if (rc == 0 && (events & EPOLLIN))
        rc = conn_read(c);
    if (rc == 0 && c->out_len > 0)
        rc = conn_flush(c);
    if (rc == 0 && c->eof && c->out_len == 0) {
        conn_close(loop, c, "end of stream");
        return;
    }
    if (rc == 0)
        rc = conn_watch(loop, c);
    if (rc == -EMSGSIZE)
        conn_flush(c); /* answer the frames before it, as the stages do */
    if (rc < 0)
        conn_close(loop, c, zn_strerror(-rc));
}

/*
 * Accept every waiting client, until EAGAIN. Out of descriptors, accept()
 * fails and leaves the client queued, and a level-triggered listener is
 * reported again at once: a busy loop. So give the spare descriptor back,
 * accept that client and close it (it learns the server is full), and take
 * the spare again, as libev and libuv do. Other errors concern one client
 * (see accept(2)): the loop comes back to the rest in the next round. (With
 * several loops, another loop can take the freed descriptor first; then
 * this loop's spare is gone, and it spins until descriptors free up, as
 * it would without the trick.)
 */
static void accept_clients(struct ref_loop *loop)
{
    for (;;) {
        int fd =
            accept4(loop->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            conn_open(loop, fd);
            continue;
        }
        if ((errno != EMFILE && errno != ENFILE) || loop->spare_fd < 0)
            return; /* EAGAIN: nobody is waiting any more */
        close(loop->spare_fd);
        fd = accept4(loop->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        loop->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return;
    }
}

/*
 * The event loop. Returns 0 after SIGINT or SIGTERM, -1 on a failure; a
 * loop that fails sends the process SIGTERM, so the other loops stop too.
 */
static int serve(struct ref_loop *loop)
{
    struct epoll_event evs[REF_MAX_EVENTS];

    for (;;) {
        int n = epoll_wait(loop->epfd, evs, REF_MAX_EVENTS, -1);

        if (n < 0 && errno != EINTR) {
            zn_error("epoll_wait: %s", zn_strerror(errno));
            kill(getpid(), SIGTERM);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;

            if (fd == loop->sig_fd)
                return 0;
            if (fd == loop->listen_fd)
                accept_clients(loop);
            else if (loop->conns[fd] != NULL)
                conn_on_event(loop, loop->conns[fd], evs[i].events);
        }
    }
}

/* What a loop's thread runs: loops 1 to N-1; the main thread runs loop 0. */
static void *loop_thread(void *arg)
{
    struct ref_loop *loop = arg;

    loop->rc = serve(loop);
    return NULL;
}

/*
 * Blocked, SIGINT and SIGTERM no longer kill the process but wait in the
 * signalfd, which the loops watch like a socket: no handler, and no race
 * between a flag the handler sets and the call to epoll_wait(). Threads
 * started later inherit the mask, so no thread ever takes these signals.
 */
static int signals_open(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/*
 * Listen on 127.0.0.1:*port (0: the system chooses, and *port learns
 * which). SO_REUSEADDR: restart at once after a stop, even with old
 * connections in TIME_WAIT. With reuseport, SO_REUSEPORT: sockets that all
 * set it before bind() may share the port, and the kernel spreads new
 * clients over them. Returns the socket, or -1 after one line.
 */
static int listen_on(uint16_t *port, bool reuseport)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(*port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int one = 1, err;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd >= 0 &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
        (!reuseport ||
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0) &&
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        listen(fd, SOMAXCONN) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        *port = ntohs(sa.sin_port);
        return fd;
    }
    err = errno;
    zn_error("cannot listen on 127.0.0.1:%u: %s", *port, zn_strerror(err));
    if (fd >= 0)
        close(fd);
    return -1;
}

/*
 * Set up loop i of n: its connection table, its epoll, its spare descriptor
 * and its listening socket on *port (0: the first loop's socket learns the
 * port, and the others share it), watched in its epoll with the signalfd.
 * Returns 0 or -1 after one line.
 */
static int loop_open(struct ref_loop *loop, unsigned i, unsigned n, int sig_fd,
                     uint16_t *port)
{
    struct rlimit rl;

    /* Every descriptor is below the limit, so conns[] never grows. */
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > (1 << 20))
        rl.rlim_cur = 1 << 20;
    loop->setsize = (int)rl.rlim_cur;
    loop->conns = calloc((size_t)loop->setsize, sizeof(*loop->conns));
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->sig_fd = sig_fd;
    loop->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    loop->next_id = i;
    loop->id_step = n;
    if (loop->conns == NULL || loop->epfd < 0 || loop->spare_fd < 0) {
        zn_error("cannot start: %s", zn_strerror(errno));
        return -1;
    }
    loop->listen_fd = listen_on(port, n > 1);
    if (loop->listen_fd < 0)
        return -1;
    if (watch_input(loop, loop->listen_fd) < 0 ||
        watch_input(loop, loop->sig_fd) < 0) {
        zn_error("epoll_ctl: %s", zn_strerror(errno));
        return -1;
    }
    return 0;
}

/* Close every connection and descriptor of the loop, free what it holds. */
static void loop_close(struct ref_loop *loop)
{
    int fds[] = {loop->listen_fd, loop->spare_fd, loop->epfd};

    for (int fd = 0; loop->conns != NULL && fd < loop->setsize; fd++) {
        if (loop->conns[fd] != NULL)
            conn_close(loop, loop->conns[fd], "server stopped");
    }
    free(loop->conns);
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
}

/* Parse -t's number of loops, 1 to REF_MAX_LOOPS. Returns 0 or -EINVAL. */
static int parse_loops(const char *text, unsigned *n)
{
    unsigned v = 0;

    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*p - '0');
        if (v > REF_MAX_LOOPS)
            return -EINVAL; /* before it can overflow */
    }
    if (v == 0)
        return -EINVAL; /* "" or 0 */
    *n = v;
    return 0;
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-t N] [PORT]\n"
            "  -t N   event loops, a thread each (1 to %d, default 1)\n"
            "  PORT   default %d, 0 = any free port\n",
            prog, REF_MAX_LOOPS, REF_PORT);
    return 2;
}

/*
 * Open every loop, start loops 1 to N-1 on threads of their own, print the
 * line scripts wait for and run loop 0 here; once they have all returned,
 * join them and close everything.
 */
int main(int argc, char **argv)
{
    struct ref_loop *loops = NULL;
    unsigned nloops = 1;
    uint16_t port = REF_PORT;
    int sig_fd = -1, opt, rc = 1;

    while ((opt = getopt(argc, argv, "t:")) != -1) {
        if (opt != 't' || parse_loops(optarg, &nloops) < 0)
            return usage(argv[0]);
    }
    if (argc - optind > 1 ||
        (argc - optind == 1 && zn_addr_parse_port(argv[optind], &port) < 0))
        return usage(argv[0]);

    loops = calloc(nloops, sizeof(*loops));
    sig_fd = signals_open(); /* before "listening on", as promised */
    if (loops == NULL || sig_fd < 0) {
        zn_error("cannot start: %s", zn_strerror(errno));
        goto out;
    }
    for (unsigned i = 0; i < nloops; i++)
        loops[i].epfd = loops[i].listen_fd = loops[i].spare_fd = -1;
    for (unsigned i = 0; i < nloops; i++) {
        if (loop_open(&loops[i], i, nloops, sig_fd, &port) < 0)
            goto out;
    }
    rc = 0;
    for (unsigned i = 1; i < nloops; i++) {
        char name[24]; /* "ref-loop-255" and room to spare */
        int err;

        snprintf(name, sizeof(name), "ref-loop-%u", i);
        err =
            zn_thread_start(&loops[i].tid, loop_thread, &loops[i], false, name);
        if (err < 0) {
            zn_error("cannot start loop %u: %s", i, zn_strerror(-err));
            kill(getpid(), SIGTERM); /* the loops already running stop */
            rc = 1;
            break;
        }
        loops[i].started = true;
    }
    if (rc == 0) /* every loop runs, or is about to: ready */
        zn_notice("ref-epoll listening on 127.0.0.1:%u", port);
    loops[0].rc = serve(&loops[0]);
    for (unsigned i = 0; i < nloops; i++) {
        if (loops[i].started)
            pthread_join(loops[i].tid, NULL);
        if (loops[i].rc < 0)
            rc = 1;
    }
out:
    for (unsigned i = 0; loops != NULL && i < nloops; i++)
        loop_close(&loops[i]);
    free(loops);
    if (sig_fd >= 0)
        close(sig_fd);
    if (rc == 0)
        zn_info("ref-epoll stopped");
    return rc;
}
