/*
 * Unit tests for zn_client (client/zn_client.h), against fake servers that
 * run in this process on threads, each on its own loopback port:
 *
 *   echo     answers frame id X with id X and the same body, in order; a
 *            body that starts with '!' also carries commands (srv_cmd())
 *   silent   reads everything and answers nothing
 *   garbage  answers each frame with a header whose DataLen is too large
 *   random   sends frames of random ids and bodies as soon as a client
 *            connects, then random bytes
 *   hold     holds the first connection's frames unanswered, then closes
 *            or resets it; the connections after it are echo
 *   full     listens with a full backlog and never accepts: a connect
 *            hangs there until it times out
 *
 * A server can greet (send frames as soon as a client connects) and can be
 * killed and restarted on the same port. Every wait is bounded (a timeout
 * on every call, alarm() over the whole run), and only the main thread
 * CHECKs: the threads a test starts count what they saw, and the main
 * thread checks the counts. ZN_TEST=name runs one test.
 */
#include "tests/check.h"
#include "zn_client.h"
#include "zn_fd.h"
#include "zn_frame.h"
#include "zn_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64 /* connections one fake server keeps */
#define GREET_ID 900 /* the id of the first greeting frame */
#define PUSH_ID 800 /* the id of the first frame "!push=N;" sends */

/* CHECK(a == b) for integers, printing both sides when they differ. */
#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        CHECK(a_ == b_);                                                       \
        if (a_ != b_)                                                          \
            fprintf(stderr, "    %s = %lld, %s = %lld\n", #a, a_, #b, b_);     \
    } while (0)

/* CHECK(lo <= v && v <= hi) for a time in ms, printing it when it is not. */
#define CHECK_MS(v, lo, hi)                                                    \
    do {                                                                       \
        double v_ = (v);                                                       \
        CHECK(v_ >= (lo) && v_ <= (hi));                                       \
        if (v_ < (lo) || v_ > (hi))                                            \
            fprintf(stderr, "    %s = %.1f ms, not in [%d, %d]\n", #v, v_,     \
                    (int)(lo), (int)(hi));                                     \
    } while (0)

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&t, &t) < 0 && errno == EINTR)
        ;
}

/* xorshift32: a small random generator each thread owns. */
static uint32_t rnd(uint32_t *state)
{
    uint32_t x = *state ? *state : 1;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Write one frame, header and body in one buffer. Returns 0 or -1. */
static int write_frame(int fd, uint32_t id, const void *data, uint32_t len)
{
    unsigned char *buf = malloc(ZN_FRAME_HEADER_LEN + (size_t)len);
    ssize_t n;

    if (buf == NULL)
        return -1;
    zn_frame_put_header(buf, id, len);
    if (len > 0)
        memcpy(buf + ZN_FRAME_HEADER_LEN, data, len);
    n = zn_writen(fd, buf, ZN_FRAME_HEADER_LEN + (size_t)len);
    free(buf);
    return n < 0 ? -1 : 0;
}

/*
 * Read one frame into *body (malloc'd, NUL-terminated). Returns 0, or -1
 * at the end of the stream or on an error.
 */
static int read_frame(int fd, uint32_t *id, unsigned char **body, uint32_t *len)
{
    unsigned char head[ZN_FRAME_HEADER_LEN];

    if (zn_readn(fd, head, sizeof(head)) != (ssize_t)sizeof(head))
        return -1;
    zn_frame_get_header(head, id, len);
    if (*len > (1u << 24))
        return -1;
    *body = malloc((size_t)*len + 1);
    if (*body == NULL)
        return -1;
    if (zn_readn(fd, *body, *len) != (ssize_t)*len) {
        free(*body);
        return -1;
    }
    (*body)[*len] = '\0';
    return 0;
}

/* ---- fake servers ---------------------------------------------------- */

enum srv_mode { SRV_ECHO, SRV_SILENT, SRV_GARBAGE, SRV_RANDOM, SRV_HOLD };

struct srv {
    enum srv_mode mode; /* what each connection gets */
    int lfd; /* the listening socket, -1 while killed */
    uint16_t port; /* kept across kill and restart */
    char addr[32]; /* "127.0.0.1:PORT" */
    pthread_t acceptor; /* accepts until stop */
    bool accepting; /* acceptor runs (not for a full backlog) */
    atomic_bool stop; /* tells every thread of this server to end */
    pthread_mutex_t mu; /* fds[], nconns */
    int fds[MAX_CONNS]; /* each connection's socket, -1 once closed */
    pthread_t threads[MAX_CONNS]; /* each connection's thread */
    int nconns; /* slots used since the last start */
    atomic_int accepted; /* connections accepted, ever */
    atomic_int frames; /* frames read, ever */
    atomic_int replies; /* frames answered, ever */
    _Atomic double closed_at; /* hold: when it closed the connection */
    /* Options, set before srv_start(). */
    int ngreet; /* frames sent as soon as a client connects */
    int jitter_us; /* echo: wait 0..jitter_us before each reply */
    int hold_frames; /* hold: frames to hold before the close */
    int hold_ms; /* hold: then wait this long */
    bool rst; /* hold: reset instead of close */
    uint32_t garbage_len; /* garbage: the DataLen it announces */
    int random_frames; /* random: frames of random ids and bodies first */
    size_t random_len; /* random: then this many random bytes */
    int full_fds[8]; /* full: the connections that fill its backlog */
    int nfull;
};

struct conn_arg {
    struct srv *s;
    int slot; /* in fds[] */
    int fd;
    int nth; /* 1 for the first connection the server ever accepted */
};

/* Sleep ms in short steps, ending early when the server stops. */
static void srv_sleep(struct srv *s, int ms)
{
    double end = now_ms() + ms;

    while (!atomic_load(&s->stop) && now_ms() < end)
        sleep_ms(2);
}

/*
 * Echo's commands: a body that starts with '!' runs each "!cmd;" it starts
 * with before the body is echoed whole (commands included):
 *
 *   !sleep=N;   wait N ms before the reply
 *   !push=N;    first send N unsolicited frames, ids PUSH_ID + i
 *   !big=N;     answer with a header announcing N bytes (then N zeros)
 *   !close;     close the connection instead of answering
 *   !rst;       reset the connection instead of answering
 *
 * Returns what to do next.
 */
enum srv_next { SRV_REPLY, SRV_ANSWERED, SRV_CLOSE, SRV_RESET };

static enum srv_next srv_cmd(struct srv *s, int fd, uint32_t id,
                             const char *body)
{
    const char *p = body;
    int n;

    while (*p == '!') {
        if (sscanf(p, "!sleep=%d;", &n) == 1) {
            srv_sleep(s, n);
        } else if (sscanf(p, "!push=%d;", &n) == 1) {
            for (int i = 0; i < n; i++) {
                char push[32];
                int len = snprintf(push, sizeof(push), "push %d", i);
                write_frame(fd, PUSH_ID + (uint32_t)i, push, (uint32_t)len);
            }
        } else if (sscanf(p, "!big=%d;", &n) == 1) {
            unsigned char head[ZN_FRAME_HEADER_LEN];
            char *zeros = calloc(1, (size_t)n);
            zn_frame_put_header(head, id, (uint32_t)n);
            zn_writen(fd, head, sizeof(head));
            if (zeros != NULL)
                zn_writen(fd, zeros, (size_t)n);
            free(zeros);
            return SRV_ANSWERED;
        } else if (strncmp(p, "!close;", 7) == 0) {
            return SRV_CLOSE;
        } else if (strncmp(p, "!rst;", 5) == 0) {
            return SRV_RESET;
        }
        p = strchr(p, ';');
        if (p == NULL)
            break;
        p++;
    }
    return SRV_REPLY;
}

/* The thread of one connection. */
static void *srv_conn(void *arg)
{
    struct conn_arg a = *(struct conn_arg *)arg;
    struct srv *s = a.s;
    uint32_t seed = (uint32_t)a.fd * 2654435761u + (uint32_t)a.nth;
    enum srv_next next = SRV_REPLY;
    uint32_t id, len;
    unsigned char *body;
    int held = 0;

    free(arg);
    for (int i = 0; i < s->ngreet; i++) {
        char hello[32];
        int n = i % 2 ? 0 : snprintf(hello, sizeof(hello), "hello %d", i);
        write_frame(a.fd, GREET_ID + (uint32_t)i, hello, (uint32_t)n);
    }
    for (int i = 0; s->mode == SRV_RANDOM && i < s->random_frames; i++) {
        unsigned char body[300];
        uint32_t len = rnd(&seed) % (uint32_t)sizeof(body);

        for (uint32_t k = 0; k < len; k++)
            body[k] = (unsigned char)rnd(&seed);
        write_frame(a.fd, rnd(&seed), body, len);
    }
    if (s->mode == SRV_RANDOM) {
        unsigned char *junk = malloc(s->random_len);
        if (junk != NULL) {
            for (size_t i = 0; i < s->random_len; i++)
                junk[i] = (unsigned char)rnd(&seed);
            zn_writen(a.fd, junk, s->random_len);
            free(junk);
        }
    }
    while (!atomic_load(&s->stop) && read_frame(a.fd, &id, &body, &len) == 0) {
        next = SRV_REPLY;
        atomic_fetch_add(&s->frames, 1);
        switch (s->mode == SRV_HOLD && a.nth > 1 ? SRV_ECHO : s->mode) {
        case SRV_ECHO:
            next = srv_cmd(s, a.fd, id, (const char *)body);
            if (next == SRV_REPLY && atomic_load(&s->stop))
                next = SRV_CLOSE; /* killed during a !sleep: no reply */
            if (next == SRV_REPLY && s->jitter_us > 0) {
                long us = (long)(rnd(&seed) % (uint32_t)(s->jitter_us + 1));
                struct timespec t = {0, 1000L * us};
                nanosleep(&t, NULL);
            }
            if (next == SRV_REPLY && write_frame(a.fd, id, body, len) == 0)
                atomic_fetch_add(&s->replies, 1);
            break;
        case SRV_GARBAGE: {
            unsigned char head[ZN_FRAME_HEADER_LEN];
            zn_frame_put_header(head, id, s->garbage_len);
            zn_writen(a.fd, head, sizeof(head));
            break;
        }
        case SRV_HOLD:
            if (++held == s->hold_frames) {
                srv_sleep(s, s->hold_ms);
                next = s->rst ? SRV_RESET : SRV_CLOSE;
            }
            break;
        default: /* silent; random reads like silent */
            break;
        }
        free(body);
        if (next == SRV_CLOSE || next == SRV_RESET)
            break;
    }
    pthread_mutex_lock(&s->mu);
    s->fds[a.slot] = -1;
    pthread_mutex_unlock(&s->mu);
    if (next == SRV_RESET) {
        struct linger l = {1, 0};
        setsockopt(a.fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    atomic_store(&s->closed_at, now_ms());
    close(a.fd);
    return NULL;
}

static void *srv_accept(void *arg)
{
    struct srv *s = arg;
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};

    while (!atomic_load(&s->stop)) {
        struct conn_arg *a;
        int fd;

        if (poll(&p, 1, 10) <= 0)
            continue;
        fd = zn_fd_accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        a = malloc(sizeof(*a));
        pthread_mutex_lock(&s->mu);
        if (a == NULL || s->nconns == MAX_CONNS) {
            pthread_mutex_unlock(&s->mu);
            free(a);
            close(fd);
            continue;
        }
        *a = (struct conn_arg){s, s->nconns, fd,
                               atomic_fetch_add(&s->accepted, 1) + 1};
        s->fds[s->nconns] = fd;
        if (pthread_create(&s->threads[s->nconns], NULL, srv_conn, a) != 0) {
            s->fds[s->nconns] = -1;
            pthread_mutex_unlock(&s->mu);
            free(a);
            close(fd);
            continue;
        }
        s->nconns++;
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* Listen on s->port (0: any) with SO_REUSEADDR. Returns 0 or -1. */
static int srv_listen(struct srv *s, int backlog)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t salen = sizeof(sa);
    int on = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(s->port);
    s->lfd = zn_fd_socket(AF_INET, SOCK_STREAM, 0);
    if (s->lfd < 0)
        return -1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(s->lfd, backlog) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sa, &salen) < 0) {
        perror("fake server");
        close(s->lfd);
        s->lfd = -1;
        return -1;
    }
    s->port = ntohs(sa.sin_port);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", (unsigned)s->port);
    return 0;
}

/* Start listening (again, on the same port after srv_kill()). */
static int srv_start(struct srv *s)
{
    atomic_store(&s->stop, false);
    s->nconns = 0;
    if (srv_listen(s, 64) < 0)
        return -1;
    if (pthread_create(&s->acceptor, NULL, srv_accept, s) != 0) {
        close(s->lfd);
        s->lfd = -1;
        return -1;
    }
    s->accepting = true;
    return 0;
}

static struct srv *srv_new(enum srv_mode mode)
{
    struct srv *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        perror("calloc");
        exit(1);
    }
    s->mode = mode;
    s->lfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

/* A server of that mode, started, or exit: every test needs one. */
static struct srv *srv_up(struct srv *s)
{
    if (srv_start(s) < 0) {
        fprintf(stderr, "cannot start a fake server\n");
        exit(1);
    }
    return s;
}

/* Close the listening socket and every connection; join every thread. */
static void srv_kill(struct srv *s)
{
    int n;

    atomic_store(&s->stop, true);
    if (s->accepting)
        pthread_join(s->acceptor, NULL);
    s->accepting = false;
    for (int i = 0; i < s->nfull; i++)
        close(s->full_fds[i]);
    s->nfull = 0;
    if (s->lfd >= 0)
        close(s->lfd);
    s->lfd = -1;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nconns; i++)
        if (s->fds[i] >= 0)
            shutdown(s->fds[i], SHUT_RDWR);
    n = s->nconns;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++)
        pthread_join(s->threads[i], NULL);
    s->nconns = 0;
}

static void srv_free(struct srv *s)
{
    srv_kill(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/*
 * A listener whose backlog is full and that never accepts: the kernel
 * drops the SYNs of any further connect, which then hangs until its own
 * timeout. Returns 0, or -1 when this system would not fill the backlog.
 */
static int srv_full(struct srv *s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};

    if (srv_listen(s, 0) < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(s->port);
    while (s->nfull < 8) {
        int fd = zn_fd_socket(AF_INET, SOCK_STREAM, 0);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t elen = sizeof(err);

        if (fd < 0)
            return -1;
        zn_fd_set_nonblock(fd, true);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
            errno != EINPROGRESS) {
            close(fd);
            return -1;
        }
        if (poll(&p, 1, 100) == 0) { /* it hangs: the backlog is full */
            close(fd);
            return 0;
        }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        s->full_fds[s->nfull++] = fd;
        if (err != 0)
            return -1;
    }
    return -1;
}

/* ---- helpers --------------------------------------------------------- */

static struct zn_client *client(struct srv *s,
                                const struct zn_client_options *o)
{
    struct zn_client *c = zn_client_new(s->addr, o);

    if (c == NULL) {
        perror("zn_client_new");
        exit(1);
    }
    return c;
}

/* A request with a text body; *ms (when not NULL) gets how long it took. */
static int req(struct zn_client *c, uint32_t id, const char *body,
               int timeout_ms, struct zn_frame **reply, double *ms)
{
    double t0 = now_ms();
    int rc = zn_client_request(c, id, body, (uint32_t)strlen(body), id,
                               timeout_ms, reply);

    if (ms != NULL)
        *ms = now_ms() - t0;
    return rc;
}

/* A request with a text body that must come back as it went. */
static bool echoes(struct zn_client *c, uint32_t id, const char *body)
{
    struct zn_frame *r = NULL;
    bool ok;

    if (req(c, id, body, 2000, &r, NULL) != 0)
        return false;
    ok = r->id == id && r->len == strlen(body) &&
         strcmp((char *)r->data, body) == 0;
    free(r);
    return ok;
}

/* Wait (bounded) until *v reaches n. */
static bool wait_count(atomic_int *v, int n, int ms)
{
    double end = now_ms() + ms;

    while (atomic_load(v) < n && now_ms() < end)
        sleep_ms(1);
    return atomic_load(v) >= n;
}

/*
 * How many connections s accepted, once it has accepted n or 2 s passed.
 * A connect() is done before the server's accept(): a client can have
 * connected (and timed out) before the count moves.
 */
static int accepted(struct srv *s, int n)
{
    wait_count(&s->accepted, n, 2000);
    return atomic_load(&s->accepted);
}

/* ---- tests ----------------------------------------------------------- */

static void test_new(void)
{
    struct zn_client *c;
    struct srv *s = srv_new(SRV_ECHO);
    char gone[32];

    errno = 0;
    CHECK(zn_client_new("localhost", NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(zn_client_new("127.0.0.1:port", NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(zn_client_new("127.0.0.1:70000", NULL) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(zn_client_new(":8999", NULL) == NULL && errno == EINVAL);
    c = zn_client_new("[::1]:8999", NULL);
    CHECK(c != NULL);
    zn_client_free(c);
    zn_client_free(NULL);

    /* Nothing listens on a port that was just closed: refused, twice (the
     * second from the back-off, without trying). */
    srv_up(s);
    snprintf(gone, sizeof(gone), "%s", s->addr);
    srv_kill(s);
    c = zn_client_new(gone, NULL);
    CHECK(c != NULL);
    CHECK_EQ(zn_client_connect(c), -ECONNREFUSED);
    CHECK_EQ(zn_client_connect(c), -ECONNREFUSED);
    CHECK_EQ(zn_client_send(c, 1, "x", 1), -ECONNREFUSED);
    zn_client_free(c);
    srv_free(s);
}

static void test_round_trip(void)
{
    struct srv *s = srv_up(srv_new(SRV_ECHO));
    struct zn_client *c = client(s, NULL);
    struct zn_frame *r = NULL;

    CHECK(atomic_load(&s->accepted) == 0); /* connects at the first call */
    CHECK_EQ(zn_client_request(c, 1, "hello", 5, 1, 2000, &r), 0);
    CHECK(r != NULL && r->id == 1 && r->len == 5);
    CHECK(r != NULL && strcmp((char *)r->data, "hello") == 0);
    free(r);
    r = NULL;
    CHECK_EQ(zn_client_request(c, 2, "no limit", 8, 2, -1, &r), 0);
    CHECK(r != NULL && r->id == 2 && strcmp((char *)r->data, "no limit") == 0);
    free(r);
    for (int i = 0; i < 100; i++) {
        char body[32];
        snprintf(body, sizeof(body), "n%d", i);
        CHECK(echoes(c, (uint32_t)i * 7919u, body));
    }
    CHECK(echoes(c, UINT32_MAX, "max id"));
    CHECK_EQ(zn_client_connect(c), 0); /* connected already */
    /* A send waits for nothing; its echo is unsolicited, for recv. */
    CHECK_EQ(zn_client_send(c, 42, "fire", 4), 0);
    r = NULL;
    CHECK_EQ(zn_client_recv(c, 2000, &r), 0);
    CHECK(r != NULL && r->id == 42 && strcmp((char *)r->data, "fire") == 0);
    free(r);
    CHECK_EQ(accepted(s, 1), 1);
    zn_client_free(c);
    srv_free(s);
}

static void test_binary(void)
{
    struct srv *s = srv_up(srv_new(SRV_ECHO));
    struct zn_client_options o = {.max_frame = 1000};
    struct zn_client *c = client(s, &o);
    unsigned char all[256], big[1000];
    struct zn_frame *r = NULL;
    uint32_t seed = 7;

    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)(255 - i); /* NUL in the middle, at the end */
    CHECK_EQ(zn_client_request(c, 3, all, sizeof(all), 3, 2000, &r), 0);
    CHECK(r != NULL && r->len == 256 && memcmp(r->data, all, 256) == 0);
    CHECK(r != NULL && r->data[256] == '\0');
    free(r);

    r = NULL; /* an empty body, with or without a pointer */
    CHECK_EQ(zn_client_request(c, 4, NULL, 0, 4, 2000, &r), 0);
    CHECK(r != NULL && r->id == 4 && r->len == 0 && r->data[0] == '\0');
    free(r);
    r = NULL;
    CHECK_EQ(zn_client_request(c, 5, "", 0, 5, 2000, &r), 0);
    CHECK(r != NULL && r->id == 5 && r->len == 0);
    free(r);

    r = NULL; /* exactly max_frame, both ways */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)rnd(&seed);
    big[0] = 0;
    CHECK_EQ(zn_client_request(c, 6, big, sizeof(big), 6, 2000, &r), 0);
    CHECK(r != NULL && r->len == sizeof(big) &&
          memcmp(r->data, big, sizeof(big)) == 0);
    free(r);
    CHECK_EQ(accepted(s, 1), 1);
    zn_client_free(c);
    srv_free(s);
}

static void test_max_frame(void)
{
    struct srv *s = srv_up(srv_new(SRV_ECHO));
    struct zn_client_options o = {.max_frame = 100};
    struct zn_client *c = client(s, &o);
    char body[101], cmd[32];
    struct zn_frame *r = NULL;
    double ms;

    /* Too large to send: refused before anything goes out, and the
     * connection is still there. */
    memset(body, 'x', sizeof(body));
    CHECK(echoes(c, 1, "before"));
    ms = now_ms();
    CHECK_EQ(zn_client_request(c, 2, body, 101, 2, 2000, &r), -EMSGSIZE);
    CHECK_EQ(zn_client_send(c, 2, body, 101), -EMSGSIZE);
    CHECK_EQ(zn_client_send(c, 2, body, UINT32_MAX), -EMSGSIZE);
    CHECK_MS(now_ms() - ms, 0, 100);
    CHECK(echoes(c, 3, "after"));
    CHECK_EQ(accepted(s, 1), 1);
    CHECK_EQ(atomic_load(&s->frames), 2);

    /* Too large to take: -EPROTO for the waiter, once for recv, and the
     * next call connects again. */
    snprintf(cmd, sizeof(cmd), "!big=%d;", 101);
    CHECK_EQ(req(c, 4, cmd, 2000, &r, &ms), -EPROTO);
    CHECK_MS(ms, 0, 1000);
    CHECK_EQ(zn_client_recv(c, 0, &r), -EPROTO);
    CHECK(echoes(c, 5, "again"));
    CHECK_EQ(accepted(s, 2), 2);
    /* Exactly max_frame is fine. */
    snprintf(cmd, sizeof(cmd), "!big=%d;", 100);
    r = NULL;
    CHECK_EQ(req(c, 6, cmd, 2000, &r, NULL), 0);
    CHECK(r != NULL && r->len == 100);
    free(r);
    CHECK_EQ(accepted(s, 2), 2);
    zn_client_free(c);
    srv_free(s);

    /* A server that announces 1 GiB: the same, and nothing is allocated
     * for it (valgrind and ASan would see it). */
    s = srv_new(SRV_GARBAGE);
    s->garbage_len = 1u << 30;
    srv_up(s);
    c = client(s, NULL);
    CHECK_EQ(req(c, 7, "x", 2000, &r, &ms), -EPROTO);
    CHECK_MS(ms, 0, 1000);
    CHECK_EQ(req(c, 8, "y", 2000, &r, &ms), -EPROTO);
    CHECK_EQ(accepted(s, 2), 2);
    zn_client_free(c);
    srv_free(s);
}

static void test_timeout(void)
{
    struct srv *s = srv_up(srv_new(SRV_ECHO));
    struct zn_client *c = client(s, NULL);
    struct zn_frame *r = NULL;
    double ms;

    /* The reply comes after 300 ms: the request gives up at 50. */
    CHECK_EQ(req(c, 1, "!sleep=300;first", 50, &r, &ms), -ETIMEDOUT);
    CHECK_MS(ms, 45, 250);
    /* Still connected, and the late reply to "first" is not taken for
     * this one's, although both wait for id 1. */
    r = NULL;
    CHECK_EQ(req(c, 1, "second", 2000, &r, &ms), 0);
    CHECK(r != NULL && strcmp((char *)r->data, "second") == 0);
    free(r);
    CHECK(wait_count(&s->replies, 2, 2000)); /* counted after the write */
    CHECK_EQ(accepted(s, 1), 1);
    CHECK_EQ(zn_client_recv(c, 0, &r), -ETIMEDOUT); /* nothing unsolicited */

    /* A zero timeout: sent, and given up at once. */
    CHECK_EQ(req(c, 2, "!sleep=50;zero", 0, &r, &ms), -ETIMEDOUT);
    CHECK_MS(ms, 0, 100);
    r = NULL;
    CHECK_EQ(req(c, 2, "after zero", 2000, &r, NULL), 0);
    CHECK(r != NULL && strcmp((char *)r->data, "after zero") == 0);
    free(r);

    /* Several in a row time out; the replies that come late are dropped
     * in order and the next request gets its own. */
    for (int i = 0; i < 5; i++)
        CHECK_EQ(req(c, 3, "!sleep=40;late", 10, &r, NULL), -ETIMEDOUT);
    r = NULL;
    CHECK_EQ(req(c, 3, "mine", 3000, &r, NULL), 0);
    CHECK(r != NULL && strcmp((char *)r->data, "mine") == 0);
    free(r);
    CHECK_EQ(zn_client_recv(c, 0, &r), -ETIMEDOUT);
    CHECK_EQ(accepted(s, 1), 1);
    zn_client_free(c);
    srv_free(s);

    /* A silent server: every request times out in time, the connection
     * stays, and free() frees the requests still waiting for a reply. */
    s = srv_up(srv_new(SRV_SILENT));
    c = client(s, NULL);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(req(c, 9, "anyone?", 20, &r, &ms), -ETIMEDOUT);
        CHECK_MS(ms, 15, 200);
    }
    CHECK_EQ(zn_client_recv(c, 20, &r), -ETIMEDOUT);
    CHECK_EQ(accepted(s, 1), 1);
    CHECK(wait_count(&s->frames, 10, 2000));
    zn_client_free(c);
    srv_free(s);
}

/* A thread that makes requests and counts what it got. */
struct worker {
    pthread_t thread;
    struct zn_client *c;
    int idx; /* which worker: in every body it sends */
    int n; /* requests to make */
    uint32_t id; /* request and reply id */
    int timeout_ms; /* each request's, plus 0..spread_ms */
    int spread_ms;
    int pause_ms; /* after a timeout, before the next request */
    bool give_up; /* stop at the first request that is not answered */
    const char *body; /* the body (NULL: "w<idx>-<seq>-" + random bytes) */
    int ok, wrong, timeouts, errors; /* what came back */
    int err; /* the last error other than -ETIMEDOUT */
    double done_at; /* when the last request returned */
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint32_t seed = (uint32_t)w->idx * 7919u + 1;
    unsigned char body[128];

    for (int i = 0; i < w->n; i++) {
        struct zn_frame *r = NULL;
        uint32_t len;
        int rc, timeout;

        if (w->body != NULL) {
            len = (uint32_t)strlen(w->body);
            memcpy(body, w->body, len);
        } else { /* who and which, then random bytes, NULs included */
            len = (uint32_t)snprintf((char *)body, sizeof(body), "w%02d-%05d-",
                                     w->idx, i);
            for (uint32_t k = rnd(&seed) % 64; k > 0; k--)
                body[len++] = (unsigned char)(rnd(&seed) % 4 ? rnd(&seed) : 0);
        }
        timeout =
            w->timeout_ms + (int)(rnd(&seed) % (uint32_t)(w->spread_ms + 1));
        rc = zn_client_request(w->c, w->id, body, len, w->id, timeout, &r);
        if (rc == 0) {
            if (r->id == w->id && r->len == len &&
                memcmp(r->data, body, len) == 0 && r->data[len] == '\0')
                w->ok++;
            else
                w->wrong++;
            free(r);
        } else if (rc == -ETIMEDOUT) {
            w->timeouts++;
            sleep_ms(w->pause_ms); /* let the server catch up */
        } else {
            w->errors++;
            w->err = rc;
        }
        if (w->give_up && rc != 0)
            break;
    }
    w->done_at = now_ms();
    return NULL;
}

static void run_workers(struct worker *w, int n)
{
    for (int i = 0; i < n; i++)
        if (pthread_create(&w[i].thread, NULL, work, &w[i]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    for (int i = 0; i < n; i++)
        pthread_join(w[i].thread, NULL);
}

/* Many threads, one connection, an in-order server: each request gets its
 * own reply, whether the threads share a reply id or not. */
static void test_threads(void)
{
    enum { N = 12, REQS = 150 };
    struct srv *s = srv_up(srv_new(SRV_ECHO));
    struct zn_client *c = client(s, NULL);
    struct worker w[N];
    int ok = 0, wrong = 0, other = 0;

    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++)
        w[i] = (struct worker){.c = c,
                               .idx = i,
                               .n = REQS,
                               .id = i % 2 ? 7 : 100 + (uint32_t)i,
                               .timeout_ms = 2000,
                               .give_up = true};
    run_workers(w, N);
    for (int i = 0; i < N; i++) {
        ok += w[i].ok;
        wrong += w[i].wrong;
        other += w[i].timeouts + w[i].errors;
    }
    CHECK_EQ(ok, N * REQS);
    CHECK_EQ(wrong, 0);
    CHECK_EQ(other, 0);
    CHECK_EQ(accepted(s, 1), 1);
    zn_client_free(c);
    srv_free(s);
}

/* Timeouts racing replies: the server waits 0..1 ms before each reply
 * while 8 threads ask with timeouts of 1..12 ms (a reply waits for about
 * 8 others), so replies land before, at and after the timeouts. A reply
 * may be missed, never given to the wrong request; and once it is over,
 * a request gets its own reply. */
static void test_timeout_races(void)
{
    enum { N = 8, REQS = 80 };
    struct srv *s = srv_new(SRV_ECHO);
    struct zn_client *c;
    struct worker w[N];
    struct zn_frame *r = NULL;
    int ok = 0, wrong = 0, timeouts = 0, errors = 0;

    s->jitter_us = 1000;
    srv_up(s);
    c = client(s, NULL);
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++)
        w[i] = (struct worker){.c = c,
                               .idx = i,
                               .n = REQS,
                               .id = i % 3 ? 5 : 50 + (uint32_t)i,
                               .timeout_ms = 1,
                               .spread_ms = 11,
                               .pause_ms = 5};
    run_workers(w, N);
    for (int i = 0; i < N; i++) {
        ok += w[i].ok;
        wrong += w[i].wrong;
        timeouts += w[i].timeouts;
        errors += w[i].errors;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(errors, 0);
    CHECK_EQ(ok + timeouts, N * REQS);
    printf("    timeout races: %d replies, %d timeouts\n", ok, timeouts);
    CHECK_EQ(req(c, 5, "last", 5000, &r, NULL), 0);
    CHECK(r != NULL && strcmp((char *)r->data, "last") == 0);
    free(r);
    CHECK_EQ(zn_client_recv(c, 0, &r), -ETIMEDOUT);
    CHECK_EQ(accepted(s, 1), 1);
    zn_client_free(c);
    srv_free(s);
}

/* The server reads 12 requests, answers none, and closes (or resets) the
 * connection: every waiter returns at once with -ECONNRESET, and the next
 * call connects again. */
static void test_lost(bool rst)
{
    enum { N = 12 };
    struct srv *s = srv_new(SRV_HOLD);
    struct zn_client *c;
    struct worker w[N];
    int same = 0;
    double latest = 0;

    s->hold_frames = N;
    s->hold_ms = 100;
    s->rst = rst;
    srv_up(s);
    c = client(s, NULL);
    memset(w, 0, sizeof(w));
    for (int i = 0; i < N; i++)
        w[i] = (struct worker){.c = c,
                               .idx = i,
                               .n = 1,
                               .id = i % 2 ? 1 : 10 + (uint32_t)i,
                               .timeout_ms = 5000};
    run_workers(w, N);
    for (int i = 0; i < N; i++) {
        same += w[i].errors == 1 && w[i].err == -ECONNRESET;
        if (w[i].done_at > latest)
            latest = w[i].done_at;
    }
    CHECK_EQ(same, N);
    CHECK_MS(latest - atomic_load(&s->closed_at), -5, 500);
    CHECK(echoes(c, 1, "back"));
    CHECK_EQ(accepted(s, 2), 2);
    zn_client_free(c);
    srv_free(s);
}

static void test_lost_close(void)
{
    test_lost(false);
}

static void test_lost_reset(void)
{
    test_lost(true);
}

/* A request in flight when the server closes the connection gets
 * -ECONNRESET; recv reports the loss once, and the call after it connects
 * again. The same when the server resets it. */
static void test_close_mid_request(void)
{
    struct srv *s = srv_up(srv_new(SRV_ECHO));
    struct zn_client *c = client(s, NULL);
    struct zn_frame *r = NULL;
    double ms;

    CHECK_EQ(req(c, 1, "!sleep=20;!close;", 2000, &r, &ms), -ECONNRESET);
    CHECK_MS(ms, 15, 1000);
    CHECK_EQ(zn_client_recv(c, 1000, &r), -ECONNRESET);
    CHECK_EQ(zn_client_recv(c, 20, &r), -ETIMEDOUT); /* connected again */
    CHECK_EQ(accepted(s, 2), 2);
    CHECK_EQ(req(c, 1, "!rst;", 2000, &r, &ms), -ECONNRESET);
    CHECK(echoes(c, 1, "back"));
    CHECK_EQ(accepted(s, 3), 3);

    /* The loss wakes a recv that waits. */
    {
        struct srv *h = srv_new(SRV_HOLD);
        struct zn_client *hc;

        h->hold_frames = 1;
        h->hold_ms = 50;
        srv_up(h);
        hc = client(h, NULL);
        CHECK_EQ(zn_client_send(hc, 1, "x", 1), 0);
        ms = now_ms();
        CHECK_EQ(zn_client_recv(hc, 3000, &r), -ECONNRESET);
        CHECK_MS(now_ms() - ms, 20, 1000);
        zn_client_free(hc);
        srv_free(h);
    }
    zn_client_free(c);
    srv_free(s);
}

/* Two threads wait in recv when the connection is lost: both hear of it
 * at once, not only the first. */
struct receiver {
    pthread_t thread;
    struct zn_client *c;
    int rc;
    double ms;
};

static void *receive(void *arg)
{
    struct receiver *rv = arg;
    struct zn_frame *f = NULL;
    double t0 = now_ms();

    rv->rc = zn_client_recv(rv->c, 3000, &f);
    rv->ms = now_ms() - t0;
    free(f);
    return NULL;
}

static void test_lost_recv_waiters(void)
{
    struct srv *s = srv_new(SRV_HOLD);
    struct zn_client *c;
    struct receiver rv[3];

    s->hold_frames = 1;
    s->hold_ms = 150;
    srv_up(s);
    c = client(s, NULL);
    CHECK_EQ(zn_client_connect(c), 0);
    for (int i = 0; i < 3; i++) {
        rv[i] = (struct receiver){.c = c};
        pthread_create(&rv[i].thread, NULL, receive, &rv[i]);
    }
    CHECK_EQ(zn_client_send(c, 1, "x", 1), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(rv[i].thread, NULL);
        CHECK_EQ(rv[i].rc, -ECONNRESET);
        CHECK_MS(rv[i].ms, 50, 1500);
    }
    zn_client_free(c);
    srv_free(s);
}

/* The server dies with a request in flight, and comes back on the same
 * port a while later: the request fails at once, calls while it is down
 * fail at once (the back-off, without sleeping), and a call after it is
 * back and the back-off is over connects. */
static void test_restart(void)
{
    struct srv *s = srv_up(srv_new(SRV_ECHO));
    struct zn_client_options o = {.backoff_min_ms = 50, .backoff_max_ms = 200};
    struct zn_client *c = client(s, &o);
    struct worker w = {.c = c,
                       .n = 1,
                       .id = 1,
                       .timeout_ms = 5000,
                       .body = "!sleep=3000;in flight"};
    double t0, slowest = 0, killed, back = 0;
    int refused = 0, other = 0, rc;

    CHECK(echoes(c, 1, "before"));
    pthread_create(&w.thread, NULL, work, &w);
    CHECK(wait_count(&s->frames, 2, 2000));
    killed = now_ms();
    srv_kill(s);
    pthread_join(w.thread, NULL);
    CHECK_EQ(w.errors, 1);
    CHECK_EQ(w.err, -ECONNRESET);
    CHECK_MS(w.done_at - killed, -5, 500);

    /* Down for 400 ms: every call fails with -ECONNREFUSED, fast. */
    t0 = now_ms();
    while (now_ms() - t0 < 400) {
        double t = now_ms();
        rc = zn_client_connect(c);
        t = now_ms() - t;
        if (t > slowest)
            slowest = t;
        refused += rc == -ECONNREFUSED;
        other += rc != -ECONNREFUSED;
        sleep_ms(1);
    }
    CHECK(refused > 20);
    CHECK_EQ(other, 0);
    CHECK_MS(slowest, 0, 20);

    /* Back: the back-off (at most 200 ms now) ends, then it connects. */
    CHECK_EQ(srv_start(s), 0);
    t0 = now_ms();
    while (now_ms() - t0 < 1000) {
        rc = zn_client_connect(c);
        if (rc == 0) {
            back = now_ms() - t0;
            break;
        }
        CHECK_EQ(rc, -ECONNREFUSED);
        sleep_ms(1);
    }
    CHECK(back > 0);
    CHECK_MS(back, 30, 200 + 100); /* the try at ~550 ms, not at once */
    CHECK(echoes(c, 1, "after"));
    CHECK_EQ(accepted(s, 2), 2);
    zn_client_free(c);
    srv_free(s);
}

/*
 * Against a listener that never accepts (its backlog full), each connect
 * times out after connect_timeout_ms (30 here), and the calls in between
 * fail at once with the same error. Checks that the waits between the
 * first tries are want[0..n). Returns false when the backlog would not
 * fill on this system (the check is then skipped).
 */
static bool backoff_run(int min_ms, int max_ms, const double *want, int n)
{
    struct srv *s = srv_new(SRV_ECHO);
    struct zn_client_options o = {.connect_timeout_ms = 30,
                                  .backoff_min_ms = min_ms,
                                  .backoff_max_ms = max_ms};
    double start[8], end[8], t0, fastest_slow = 1e9, slowest_fast = 0;
    int tries = 0, wrong = 0;
    struct zn_client *c;

    if (srv_full(s) < 0) {
        srv_free(s);
        return false;
    }
    c = client(s, &o);
    t0 = now_ms();
    while (now_ms() - t0 < 2000 && tries < n + 1) {
        double a = now_ms(), b;
        int rc = zn_client_connect(c);

        b = now_ms();
        wrong += rc != -ETIMEDOUT;
        if (b - a >= 20) { /* a real try: it took connect_timeout_ms */
            start[tries] = a;
            end[tries++] = b;
            if (b - a < fastest_slow)
                fastest_slow = b - a;
        } else if (b - a > slowest_fast) {
            slowest_fast = b - a;
        }
        sleep_ms(1);
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(tries, n + 1);
    CHECK_MS(fastest_slow, 25, 200);
    CHECK_MS(slowest_fast, 0, 10);
    for (int i = 0; i + 1 < tries; i++)
        CHECK_MS(start[i + 1] - end[i], want[i] - 2, want[i] + 30);
    zn_client_free(c);
    srv_free(s);
    return true;
}

/* The wait doubles from backoff_min_ms up to backoff_max_ms; a maximum
 * below the minimum is the minimum (a field set is never the default). */
static void test_backoff(void)
{
    const double doubling[] = {40, 80, 160, 160};
    const double flat[] = {40, 40, 40};

    if (!backoff_run(40, 160, doubling, 4)) {
        printf("    backoff: cannot fill a backlog here, skipped\n");
        return;
    }
    backoff_run(40, 20, flat, 3);
}

/* A greeting, and pushes amid replies, come out of recv in order. */
static void test_recv(void)
{
    struct srv *s = srv_new(SRV_ECHO);
    struct zn_client *c;
    struct zn_frame *f = NULL;
    double ms;

    s->ngreet = 2;
    srv_up(s);
    c = client(s, NULL);
    CHECK_EQ(zn_client_recv(c, 2000, &f), 0); /* connects, then waits */
    CHECK(f != NULL && f->id == GREET_ID &&
          strcmp((char *)f->data, "hello 0") == 0);
    free(f);
    f = NULL;
    CHECK_EQ(zn_client_recv(c, 2000, &f), 0);
    CHECK(f != NULL && f->id == GREET_ID + 1 && f->len == 0 &&
          f->data[0] == '\0');
    free(f);
    ms = now_ms();
    CHECK_EQ(zn_client_recv(c, 30, &f), -ETIMEDOUT);
    CHECK_MS(now_ms() - ms, 25, 300);

    CHECK(echoes(c, 1, "!push=3;with pushes"));
    for (int i = 0; i < 3; i++) {
        f = NULL;
        CHECK_EQ(zn_client_recv(c, 0, &f), 0);
        CHECK(f != NULL && f->id == PUSH_ID + (uint32_t)i);
        free(f);
    }
    CHECK_EQ(zn_client_recv(c, 0, &f), -ETIMEDOUT);
    CHECK_EQ(zn_client_dropped(c), 0);
    CHECK_EQ(accepted(s, 1), 1);
    zn_client_free(c);
    srv_free(s);
}

/* When the queue is full the oldest frames go, and are counted. */
static void test_queue_full(void)
{
    struct srv *s = srv_up(srv_new(SRV_ECHO));
    struct zn_client_options o = {.max_queued = 4};
    struct zn_client *c = client(s, &o);
    struct zn_frame *f = NULL;

    CHECK(echoes(c, 1, "!push=10;")); /* the pushes arrive before it */
    CHECK_EQ(zn_client_dropped(c), 6);
    for (int i = 6; i < 10; i++) {
        f = NULL;
        CHECK_EQ(zn_client_recv(c, 0, &f), 0);
        CHECK(f != NULL && f->id == PUSH_ID + (uint32_t)i);
        free(f);
    }
    CHECK_EQ(zn_client_recv(c, 0, &f), -ETIMEDOUT);
    CHECK(echoes(c, 1, "!push=5;"));
    CHECK_EQ(zn_client_dropped(c), 7);
    /* free() frees what is still queued */
    zn_client_free(c);
    srv_free(s);
}

/* With on_frame, unsolicited frames go to the callback, not the queue. */
struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n;
    uint32_t ids[16];
    bool terminated; /* every body ended with a NUL */
};

static void on_frame(const struct zn_frame *f, void *arg)
{
    struct seen *seen = arg;

    pthread_mutex_lock(&seen->mu);
    if (seen->n < 16)
        seen->ids[seen->n] = f->id;
    seen->n++;
    if (f->data[f->len] != '\0')
        seen->terminated = false;
    pthread_cond_broadcast(&seen->cond);
    pthread_mutex_unlock(&seen->mu);
}

static void test_on_frame(void)
{
    struct seen seen = {.terminated = true};
    struct srv *s = srv_new(SRV_ECHO);
    struct zn_client_options o = {.on_frame = on_frame, .arg = &seen};
    struct zn_client *c;
    struct zn_frame *f = NULL;
    struct timespec end;

    pthread_mutex_init(&seen.mu, NULL);
    pthread_cond_init(&seen.cond, NULL);
    s->ngreet = 2;
    srv_up(s);
    c = client(s, &o);
    CHECK(echoes(c, 1, "!push=2;reply")); /* greeting, pushes, reply */
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += 2;
    pthread_mutex_lock(&seen.mu);
    while (seen.n < 4 &&
           pthread_cond_timedwait(&seen.cond, &seen.mu, &end) == 0)
        ;
    CHECK_EQ(seen.n, 4);
    CHECK(seen.ids[0] == GREET_ID && seen.ids[1] == GREET_ID + 1);
    CHECK(seen.ids[2] == PUSH_ID && seen.ids[3] == PUSH_ID + 1);
    CHECK(seen.terminated);
    pthread_mutex_unlock(&seen.mu);
    CHECK_EQ(zn_client_recv(c, 20, &f), -ETIMEDOUT);
    CHECK_EQ(zn_client_dropped(c), 0);
    zn_client_free(c);
    srv_free(s);
    pthread_cond_destroy(&seen.cond);
    pthread_mutex_destroy(&seen.mu);
}

/* Random frames, then random bytes from the server: no crash, no hang;
 * the client takes the frames (the queue drops what does not fit), then
 * what the bytes happen to make, then gives up on an oversized frame
 * (-EPROTO) or waits for the end of a short one (-ETIMEDOUT). */
static void test_random(void)
{
    for (int round = 0; round < 20; round++) {
        struct srv *s = srv_new(SRV_RANDOM);
        struct zn_client_options o = {.max_frame = 4096};
        struct zn_client *c;
        struct zn_frame *f = NULL;
        int rc, frames = 0;

        s->random_frames = 100 + round * 5;
        s->random_len = 1000 + (size_t)round * 1000;
        srv_up(s);
        c = client(s, &o);
        while ((rc = zn_client_recv(c, 200, &f)) == 0 && frames < 10000) {
            frames++;
            free(f);
            f = NULL;
        }
        CHECK(rc == -EPROTO || rc == -ETIMEDOUT);
        CHECK(frames + (long)zn_client_dropped(c) >= s->random_frames);
        if (rc != -EPROTO && rc != -ETIMEDOUT)
            fprintf(stderr, "    round %d: rc %d\n", round, rc);
        zn_client_free(c);
        srv_free(s);
    }
}

/* Past 1024 requests that timed out and still wait for their replies,
 * the connection is given up, and the next call connects again. */
static void test_too_many_late(void)
{
    struct srv *s = srv_up(srv_new(SRV_SILENT));
    struct zn_client *c = client(s, NULL);
    struct zn_frame *r = NULL;
    int timeouts = 0;

    for (int i = 0; i < 1024; i++)
        timeouts += zn_client_request(c, 1, "?", 1, 1, 0, &r) == -ETIMEDOUT;
    CHECK_EQ(timeouts, 1024);
    CHECK_EQ(zn_client_connect(c), 0);
    CHECK_EQ(accepted(s, 1), 1);
    CHECK_EQ(zn_client_request(c, 1, "?", 1, 1, 0, &r), -ETIMEDOUT);
    CHECK_EQ(zn_client_connect(c), 0); /* a new connection */
    CHECK_EQ(accepted(s, 2), 2);
    CHECK_EQ(zn_client_request(c, 1, "?", 1, 1, 0, &r), -ETIMEDOUT);
    zn_client_free(c);
    srv_free(s);
}

/* A server that reads nothing: once the socket buffers are full, a send
 * gives up after connect_timeout_ms with -ETIMEDOUT, the connection is
 * lost with that reason (a request waiting fails with it), and the next
 * call connects again. */
static void *stall_request(void *arg)
{
    struct worker *w = arg;
    struct zn_frame *r = NULL;

    w->err = zn_client_request(w->c, 1, "q", 1, 1, 5000, &r);
    w->done_at = now_ms();
    free(r);
    return NULL;
}

static void test_stalled(void)
{
    struct srv *s = srv_new(SRV_HOLD);
    struct zn_client_options o = {.connect_timeout_ms = 200,
                                  .max_frame = 1u << 20};
    struct zn_client *c;
    struct worker w = {0};
    char *big = calloc(1, 1u << 20);
    double t = 0, t0;
    int rc = 0, sent = 0;

    s->hold_frames = 1;
    s->hold_ms = 5000; /* reads one frame, then nothing for 5 s */
    srv_up(s);
    c = client(s, &o);
    w.c = c;
    CHECK_EQ(zn_client_connect(c), 0);
    pthread_create(&w.thread, NULL, stall_request, &w);
    CHECK(wait_count(&s->frames, 1, 2000));
    while (sent < 1000) {
        t0 = now_ms();
        rc = zn_client_send(c, 2, big, 1u << 20);
        t = now_ms() - t0;
        if (rc != 0)
            break;
        sent++;
    }
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_MS(t, 150, 1500);
    pthread_join(w.thread, NULL);
    CHECK_EQ(w.err, -ETIMEDOUT);
    CHECK_MS(now_ms() - w.done_at, 0, 1500);
    CHECK(echoes(c, 3, "next")); /* hold: the second connection echoes */
    CHECK_EQ(accepted(s, 2), 2);
    zn_client_free(c);
    srv_free(s);
    free(big);
}

/* free() while requests wait for late replies that are still on their way
 * (and one that was never answered), and while frames are queued. */
static void test_free_late(void)
{
    struct srv *s = srv_new(SRV_ECHO);
    struct zn_client *c;
    struct zn_frame *r = NULL;

    s->ngreet = 3;
    srv_up(s);
    c = client(s, NULL);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(req(c, 1, "!sleep=30;", 1, &r, NULL), -ETIMEDOUT);
    CHECK_EQ(req(c, 2, "!sleep=2000;", 1, &r, NULL), -ETIMEDOUT);
    sleep_ms(40); /* some late replies come, some do not */
    zn_client_free(c);
    srv_free(s);

    /* Never connected: nothing to do. */
    s = srv_up(srv_new(SRV_ECHO));
    c = client(s, NULL);
    zn_client_free(c);
    CHECK_EQ(accepted(s, 0), 0);
    srv_free(s);
}

/* An on_frame callback may send (it waits for no reply), even while the
 * connection is being replaced. Here the server greets, then goes; the
 * callback answers the greeting after the loss, while the main thread
 * connects again: the callback's send fails with the reason (it does not
 * connect), and nothing hangs. The test runs in a child process with its
 * own alarm, so that a deadlock fails it instead of the whole run. */
static atomic_int cb_rc = 1;

static void send_back(const struct zn_frame *f, void *arg)
{
    struct zn_client *c = *(struct zn_client **)arg;
    int first = 1;

    if (f->id != GREET_ID || atomic_load(&cb_rc) != 1)
        return; /* only the first greeting */
    sleep_ms(100); /* meanwhile the main thread sees the loss */
    atomic_compare_exchange_strong(&cb_rc, &first,
                                   zn_client_send(c, 2, "thanks", 6));
}

static void on_frame_send(void)
{
    struct srv *s = srv_new(SRV_ECHO);
    struct zn_client *c;
    struct zn_client_options o = {.on_frame = send_back, .arg = &c};
    struct zn_frame *r = NULL;
    double t0;
    int rc;

    s->ngreet = 1;
    srv_up(s);
    c = client(s, &o);
    CHECK_EQ(zn_client_connect(c), 0);
    sleep_ms(20); /* the callback has the greeting */
    srv_kill(s); /* the connection goes, while the reader is busy */
    CHECK_EQ(srv_start(s), 0);
    t0 = now_ms();
    /* A write sees the reset, or the reader's loss came first. */
    while ((rc = zn_client_send(c, 1, "ping", 4)) == 0 && now_ms() - t0 < 1000)
        sleep_ms(5);
    /* The reader is in the callback: the write found the loss, and
     * tells it as the header says, not as -EPIPE. */
    CHECK_EQ(rc, -ECONNRESET);
    CHECK_EQ(req(c, 3, "again", 2000, &r, NULL), 0);
    free(r);
    t0 = now_ms();
    while (atomic_load(&cb_rc) == 1 && now_ms() - t0 < 2000)
        sleep_ms(5);
    CHECK_EQ(atomic_load(&cb_rc), -ECONNRESET);
    zn_client_free(c);
    srv_free(s);
}

/* Run fn in a child process that gets seconds to finish. No other thread
 * may run when it is called (fork() copies only this one). */
static void forked(void (*fn)(void), unsigned seconds)
{
    int status = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int failed = check_failed;

        alarm(seconds);
        fn();
        fflush(NULL);
        _exit(check_failed > failed);
    }
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (WIFSIGNALED(status))
        fprintf(stderr, "    the child died of signal %d (%s)\n",
                WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? "it hung" : "it crashed");
}

static void test_on_frame_send(void)
{
    forked(on_frame_send, 5);
}

int main(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"new", test_new},
        {"round_trip", test_round_trip},
        {"binary", test_binary},
        {"max_frame", test_max_frame},
        {"timeout", test_timeout},
        {"threads", test_threads},
        {"timeout_races", test_timeout_races},
        {"lost_close", test_lost_close},
        {"lost_reset", test_lost_reset},
        {"close_mid_request", test_close_mid_request},
        {"lost_recv_waiters", test_lost_recv_waiters},
        {"restart", test_restart},
        {"backoff", test_backoff},
        {"recv", test_recv},
        {"queue_full", test_queue_full},
        {"on_frame", test_on_frame},
        {"random", test_random},
        {"too_many_late", test_too_many_late},
        {"stalled", test_stalled},
        {"free_late", test_free_late},
        {"on_frame_send", test_on_frame_send},
    };
    const char *only = getenv("ZN_TEST");

    alarm(60); /* whatever hangs, the run ends */
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int failed = check_failed;
        double t0 = now_ms();

        if (only != NULL && strcmp(only, tests[i].name) != 0)
            continue;
        tests[i].fn();
        printf("%-18s %s (%.0f ms)\n", tests[i].name,
               check_failed == failed ? "ok" : "FAILED", now_ms() - t0);
    }
    return CHECK_DONE();
}
