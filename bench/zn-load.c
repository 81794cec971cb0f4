/*
 * zn-load -- the load generator of zinc's benchmark (DESIGN.md section 10).
 *
 *     zn-load -c 100 -d 2 127.0.0.1:8999
 *
 * It opens N connections to a server that speaks the wire format of v0.5
 * and later (DESIGN.md section 3), keeps K requests in flight on each,
 * checks every byte of every reply and measures each round trip. At the end
 * it prints one line of JSON on stdout, for bench/run.py, and one line for
 * people on stderr.
 *
 * A run goes through four phases:
 *
 *     connect   every connection, before any request: a connection still
 *               in its handshake must not count against the server; with
 *               -g this includes reading and checking the greeting the
 *               server sends each new connection (zinc's demo from v0.9
 *               on), so it is neither a round trip nor a latency
 *     warm-up   -w seconds of traffic whose replies are checked but not
 *               measured (caches, page faults, the server's thread stacks)
 *     measure   until -n round trips or -d seconds, whichever comes first
 *     drain     no new requests; the replies still due are checked, for at
 *               most 10 s, so a server that stops answering is an error
 *               instead of a quiet gap in the numbers
 *
 * One thread drives many connections with epoll: a client with a thread
 * per connection would measure its own scheduler as much as the server.
 * With -t the connections are split among several such threads; each has
 * its own epoll, its own connections and its own histogram, and they share
 * nothing but a counter of measured round trips, so no lock is taken while
 * the load runs.
 *
 * Linux only (epoll), hence _GNU_SOURCE, as in common/zn_fd.c.
 */
#define _GNU_SOURCE

#include "zn_addr.h"
#include "zn_fd.h"
#include "zn_frame.h"
#include "zn_log.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ZL_MAX_CONNS 20000
#define ZL_MAX_INFLIGHT 1024
#define ZL_MAX_BODY (16u << 20) /* 16 MiB; times -k, all held at once */
#define ZL_MAX_THREADS 64
#define ZL_MAX_SECONDS 86400.0 /* -d and -w: a day is plenty */

#define ZL_NS_PER_SEC UINT64_C(1000000000)
#define ZL_NS_PER_MS UINT64_C(1000000)

/*
 * Connecting: at most this many handshakes at once, this many tries each,
 * all within 10 s plus 0.5 ms a connection. A listen backlog that
 * overflows (normal at a few thousand connections) drops handshakes, and
 * the kernel's first SYN retransmission waits a whole second: a bounded
 * window keeps the backlog short, and a refused connection is simply tried
 * again. The allowance per connection is for the kernel's search for a free
 * local port, which gets slow once most of them are taken (at 20000
 * connections, with the TIME_WAIT sockets of earlier runs).
 */
#define ZL_DIAL_WINDOW 256
#define ZL_DIAL_TRIES 3
#define ZL_DIAL_BACKOFF_NS (50 * ZL_NS_PER_MS) /* times the tries so far */
#define ZL_DIAL_LIMIT_NS (10 * ZL_NS_PER_SEC) /* plus, per connection: */
#define ZL_DIAL_PER_CONN_NS (500 * UINT64_C(1000))

#define ZL_DRAIN_LIMIT_NS (10 * ZL_NS_PER_SEC)
#define ZL_READ_BUF 65536 /* bytes one read() may bring */
#define ZL_EVENTS 256 /* events one epoll_wait() may bring */

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

static const char usage_text[] =
    "usage: zn-load [options] HOST:PORT\n"
    "  -c N      connections (default 1; up to 20000)\n"
    "  -k K      requests in flight per connection (default 1 = lockstep;\n"
    "            up to 1024)\n"
    "  -n N      round trips to measure (default 100000)\n"
    "  -d SEC    time limit of the measured part, seconds, may be\n"
    "            fractional (default 10); whichever of -n and -d comes\n"
    "            first ends the run\n"
    "  -w SEC    warm-up before measuring, seconds (default 0.5); its\n"
    "            round trips are checked but not measured\n"
    "  -s BYTES  request body size (default 581, the teleport benchmark's\n"
    "            message; 0 allowed)\n"
    "  -i ID     request MsgID (default 0)\n"
    "  -r ID     expected reply MsgID (default 0)\n"
    "  -e TEXT   expected reply body (default \"ping...ping...ping\")\n"
    "  -g TEXT   expect a greeting: the server sends every new connection\n"
    "            one frame, body TEXT (may be empty) and MsgID -G, before\n"
    "            anything else; it is read and checked byte for byte while\n"
    "            connecting, before the first request (and in -I mode\n"
    "            too), and a wrong or missing one is an error. zinc's demo\n"
    "            from v0.9 on: -g \"DoConnection BEGIN...\"\n"
    "  -G ID     the greeting's MsgID (default 2; only with -g)\n"
    "  -t N      epoll threads (default 1); connections are split among\n"
    "            them\n"
    "  -I        idle mode: open the N connections, hold them without\n"
    "            sending, print the JSON line once all are connected, then\n"
    "            wait until -d seconds pass or SIGINT/SIGTERM, and exit 0\n"
    "  -h        this text\n"
    "Prints one line of JSON on stdout and a summary on stderr. Exit\n"
    "status: 0 when every reply was right, 1 after any error, 2 for bad\n"
    "arguments. Example: zn-load -c 100 -d 2 127.0.0.1:8999\n";

struct zl_opts {
    unsigned long conns; /* -c: connections */
    unsigned long inflight; /* -k: requests outstanding per connection */
    unsigned long long count; /* -n: round trips to measure */
    double duration; /* -d: seconds measured (idle mode: held) */
    double warmup; /* -w: seconds of warm-up */
    unsigned long body; /* -s: request body bytes */
    uint32_t req_id; /* -i: MsgID of every request */
    uint32_t reply_id; /* -r: MsgID every reply must have */
    const char *expect; /* -e: body every reply must have */
    size_t expect_len; /* strlen(expect) */
    const char *greet; /* -g: body of the greeting, NULL: none expected */
    size_t greet_len; /* strlen(greet) */
    uint32_t greet_id; /* -G: MsgID of the greeting */
    unsigned long threads; /* -t: epoll threads, at most conns */
    bool idle; /* -I: connect, then hold without sending */
    const char *target; /* HOST:PORT as given, for messages */
    struct sockaddr_storage addr; /* the target, resolved once */
    socklen_t addr_len; /* bytes of addr in use */
};

/*
 * Parse a whole decimal number in [min, max]. Only digits: strtoull()
 * alone would take " 5", "-1" (as a huge number) and "5x".
 */
static bool parse_ulong(const char *s, unsigned long long min,
                        unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Parse seconds, fractions allowed, in [0, ZL_MAX_SECONDS]. */
static bool parse_seconds(const char *s, bool zero_ok, double *out)
{
    char *end;
    double v;

    if (((*s < '0' || *s > '9') && *s != '.') || strpbrk(s, "xX") != NULL)
        return false; /* no sign, no "inf", no "nan", no hex */
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v >= 0 && v <= ZL_MAX_SECONDS))
        return false;
    if (v == 0 && !zero_ok)
        return false;
    *out = v;
    return true;
}

/*
 * Resolve "HOST:PORT" (or "[::1]:PORT") into o->addr, once, before any
 * connection: 20000 connections need not ask the resolver 20000 times.
 * Returns 0 or -1 after printing why.
 */
static int resolve_target(struct zl_opts *o)
{
    struct addrinfo hints = {0}, *res;
    const char *colon = strrchr(o->target, ':');
    const char *host = o->target;
    char name[ZN_ADDR_STRLEN];
    size_t len;
    uint16_t port;
    int rc;

    if (colon == NULL || zn_addr_parse_port(colon + 1, &port) < 0 ||
        port == 0) {
        fprintf(stderr,
                "zn-load: %s: expected HOST:PORT, e.g. "
                "127.0.0.1:8999\n",
                o->target);
        return -1;
    }
    len = (size_t)(colon - host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(name)) {
        fprintf(stderr, "zn-load: %s: no host\n", o->target);
        return -1;
    }
    memcpy(name, host, len);
    name[len] = '\0';

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(name, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "zn-load: %s: %s\n", o->target, gai_strerror(rc));
        return -1;
    }
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/*
 * Fill o from the command line. Returns 0, 1 when -h asked for the usage
 * (printed on stdout), or -1 after printing what is wrong and the usage on
 * stderr.
 */
static int parse_options(int argc, char **argv, struct zl_opts *o)
{
    unsigned long long v;
    bool greet_id_given = false; /* -G without -g is a mistake */
    int opt;

    *o = (struct zl_opts){
        .conns = 1,
        .inflight = 1,
        .count = 100000,
        .duration = 10,
        .warmup = 0.5,
        .body = 581,
        .expect = "ping...ping...ping",
        .greet_id = 2,
        .threads = 1,
    };
    opterr = 0; /* we say what is wrong ourselves, once */
    while ((opt = getopt(argc, argv, ":c:k:n:d:w:s:i:r:e:g:G:t:Ih")) != -1) {
        bool ok = true;

        switch (opt) {
        case 'c':
            ok = parse_ulong(optarg, 1, ZL_MAX_CONNS, &v);
            o->conns = (unsigned long)v;
            break;
        case 'k':
            ok = parse_ulong(optarg, 1, ZL_MAX_INFLIGHT, &v);
            o->inflight = (unsigned long)v;
            break;
        case 'n':
            ok = parse_ulong(optarg, 1, UINT64_MAX / 1000, &o->count);
            break;
        case 'd':
            ok = parse_seconds(optarg, false, &o->duration);
            break;
        case 'w':
            ok = parse_seconds(optarg, true, &o->warmup);
            break;
        case 's':
            ok = parse_ulong(optarg, 0, ZL_MAX_BODY, &v);
            o->body = (unsigned long)v;
            break;
        case 'i':
        case 'r':
            ok = parse_ulong(optarg, 0, UINT32_MAX, &v);
            *(opt == 'i' ? &o->req_id : &o->reply_id) = (uint32_t)v;
            break;
        case 'e':
            o->expect = optarg;
            break;
        case 'g':
            o->greet = optarg;
            break;
        case 'G':
            ok = parse_ulong(optarg, 0, UINT32_MAX, &v);
            o->greet_id = (uint32_t)v;
            greet_id_given = true;
            break;
        case 't':
            ok = parse_ulong(optarg, 1, ZL_MAX_THREADS, &v);
            o->threads = (unsigned long)v;
            break;
        case 'I':
            o->idle = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 1;
        case ':':
            fprintf(stderr, "zn-load: -%c needs a value\n", optopt);
            goto usage;
        default:
            fprintf(stderr, "zn-load: unknown option -%c\n", optopt);
            goto usage;
        }
        if (!ok) {
            fprintf(stderr, "zn-load: -%c %s: out of range or not a number\n",
                    opt, optarg);
            goto usage;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "zn-load: %s\n",
                optind == argc ? "no HOST:PORT given" : "one HOST:PORT only");
        goto usage;
    }
    if (greet_id_given && o->greet == NULL) {
        fprintf(stderr, "zn-load: -G says which greeting, -g that there is "
                        "one: give -g TEXT too\n");
        goto usage;
    }
    o->target = argv[optind];
    o->expect_len = strlen(o->expect);
    o->greet_len = o->greet != NULL ? strlen(o->greet) : 0;
    if (o->threads > o->conns)
        o->threads = o->conns; /* a thread without connections idles */
    if (resolve_target(o) < 0)
        goto usage;
    return 0;
usage:
    fputs(usage_text, stderr);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Time and bytes                                                     */
/* ------------------------------------------------------------------ */

/*
 * CLOCK_MONOTONIC in nanoseconds: never steps back when the wall clock is
 * set, so a latency is never negative.
 */
static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * ZL_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Milliseconds from now until `when` for epoll_wait(), rounded up. */
static int ms_until(uint64_t when, uint64_t now)
{
    uint64_t ms;

    if (when <= now)
        return 0;
    ms = (when - now + ZL_NS_PER_MS - 1) / ZL_NS_PER_MS;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/*
 * A whole frame in one new buffer of ZN_FRAME_HEADER_LEN + len bytes: header,
 * then the body. The caller frees it. NULL when out of memory.
 */
static unsigned char *frame_new(uint32_t id, const char *body, size_t len)
{
    unsigned char *f = malloc(ZN_FRAME_HEADER_LEN + len);

    if (f == NULL)
        return NULL;
    zn_frame_put_header(f, id, (uint32_t)len);
    memcpy(f + ZN_FRAME_HEADER_LEN, body, len);
    return f;
}

/*
 * Write into out a wrong frame next to the right one, `want` (a whole
 * frame from frame_new()). `head` is the wrong frame's header, and `body`
 * holds the `have` bytes of its body at hand: a header that is wrong
 * already is reported before its body has been read, with what came along
 * with it.
 */
static void frame_describe(char *out, size_t size, const unsigned char *want,
                           const unsigned char *head, const unsigned char *body,
                           size_t have)
{
    char want_body[96], got[96], diff[80] = "";
    uint32_t want_id, want_len, id, len;

    zn_frame_get_header(want, &want_id, &want_len);
    zn_frame_get_header(head, &id, &len);
    zn_log_escape(want + ZN_FRAME_HEADER_LEN, want_len, want_body,
                  sizeof(want_body));
    zn_log_escape(body, have < len ? have : len, got, sizeof(got));
    if (len == want_len && have >= len) {
        size_t i = 0;

        while (i < len && body[i] == want[ZN_FRAME_HEADER_LEN + i])
            i++;
        if (i < len)
            snprintf(diff, sizeof(diff),
                     "; first difference at body byte %zu: got 0x%02x, "
                     "expected 0x%02x",
                     i, body[i], want[ZN_FRAME_HEADER_LEN + i]);
    } else if (have < len) {
        snprintf(diff, sizeof(diff), " (the first %zu of %" PRIu32 " bytes)",
                 have, len);
    }
    snprintf(out, size,
             "expected DataLen %" PRIu32 ", MsgID %" PRIu32 ", body \"%s\"; "
             "got DataLen %" PRIu32 ", MsgID %" PRIu32 ", body \"%s\"%s",
             want_len, want_id, want_body, len, id, got, diff);
}

/* ------------------------------------------------------------------ */
/* Latency histogram                                                  */
/* ------------------------------------------------------------------ */

/*
 * Latencies in nanoseconds, counted the way HdrHistogram does: values
 * below 2 * ZL_SUB ns get a bucket each, and above that every power of two
 * [2^k, 2^(k+1)) is cut into ZL_SUB buckets of equal width. A bucket is
 * never wider than 1/1024 of the values in it: 1 ns around 1 us, 1 us
 * around 1 ms, 67 ms around a minute. Values up to 2^37 ns (137 s) fit in
 * 28672 counters, 224 KiB per thread; anything longer lands in the last
 * bucket. The maximum is kept exactly on the side.
 */
#define ZL_SUB_BITS 10
#define ZL_SUB (1u << ZL_SUB_BITS)
#define ZL_HIST_SHIFTS 27 /* bucket widths 2^0 .. 2^26 ns */
#define ZL_HIST_BUCKETS ((ZL_HIST_SHIFTS + 1) * ZL_SUB)
#define ZL_HIST_TOP ((UINT64_C(2) * ZL_SUB << (ZL_HIST_SHIFTS - 1)) - 1)

struct zl_hist {
    uint64_t *counts; /* ZL_HIST_BUCKETS counters */
    uint64_t total; /* values counted */
    uint64_t max; /* the largest value, exactly */
};

/*
 * The bucket of a value: shift it right until it is below 2 * ZL_SUB. The
 * shift says which power of two it is in, what is left where in it.
 */
static size_t hist_index(uint64_t ns)
{
    unsigned shift = 0;

    if (ns > ZL_HIST_TOP)
        ns = ZL_HIST_TOP;
    while ((ns >> shift) >= 2 * ZL_SUB)
        shift++;
    return (size_t)shift * ZL_SUB + (size_t)(ns >> shift);
}

/* The middle of bucket i, in ns: what a percentile in it reports. */
static uint64_t hist_value(size_t i)
{
    unsigned shift;

    if (i < 2 * ZL_SUB)
        return i;
    shift = (unsigned)(i / ZL_SUB) - 1;
    return ((uint64_t)(i - shift * ZL_SUB) << shift) +
           (UINT64_C(1) << (shift - 1));
}

static int hist_init(struct zl_hist *h)
{
    h->counts = calloc(ZL_HIST_BUCKETS, sizeof(*h->counts));
    h->total = 0;
    h->max = 0;
    return h->counts != NULL ? 0 : -ENOMEM;
}

static void hist_add(struct zl_hist *h, uint64_t ns)
{
    h->counts[hist_index(ns)]++;
    h->total++;
    if (ns > h->max)
        h->max = ns;
}

/* Add everything counted in `from` to `to` (the threads' histograms). */
static void hist_merge(struct zl_hist *to, const struct zl_hist *from)
{
    for (size_t i = 0; i < ZL_HIST_BUCKETS; i++)
        to->counts[i] += from->counts[i];
    to->total += from->total;
    if (from->max > to->max)
        to->max = from->max;
}

/*
 * The value below which `permille` thousandths of the counts lie, in ns:
 * walk the buckets until that many are behind us. Never above the exact
 * maximum, so p50 <= p99 <= max holds even within the last bucket.
 */
static uint64_t hist_percentile(const struct zl_hist *h, unsigned permille)
{
    uint64_t rank = (h->total * permille + 999) / 1000, seen = 0;

    if (h->total == 0)
        return 0;
    if (rank == 0)
        rank = 1;
    for (size_t i = 0; i < ZL_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return hist_value(i) < h->max ? hist_value(i) : h->max;
    }
    return h->max;
}

/* ------------------------------------------------------------------ */
/* Connections, and what all threads share                            */
/* ------------------------------------------------------------------ */

enum zl_state {
    ZL_NEW, /* no socket yet, or waiting to try connecting again */
    ZL_CONNECTING, /* non-blocking connect() under way */
    ZL_GREETING, /* connected, its greeting (-g) not all in yet */
    ZL_OPEN, /* connected (and greeted): ready for requests */
    ZL_CLOSED, /* given up after an error; counted once */
};

/*
 * One connection. Its output buffer is not a buffer of its own: every
 * request is the same bytes, so all connections send from one read-only
 * copy of K requests in a row (zl_run.requests), and a connection only
 * remembers where its unsent bytes start and how many there are. That is
 * what keeps 20000 connections x 1024 requests x 581 bytes from needing
 * 12 GB.
 */
struct zl_conn {
    int fd; /* the socket, -1 when there is none */
    unsigned index; /* 0 .. -c - 1, for messages */
    enum zl_state state; /* where it is in its life */
    unsigned tries; /* connect attempts so far */
    uint64_t retry_at; /* when to try connecting again, ns */
    size_t out_pos; /* offset of the first unsent byte in requests */
    size_t out_len; /* bytes queued but not yet sent */
    bool out_wait; /* EPOLLOUT watched: the socket buffer was full */
    unsigned char *in; /* the reply (or greeting) being received */
    size_t in_len; /* bytes of it received so far */
    uint64_t *sent; /* ring of -k send times, oldest request first */
    unsigned head; /* the oldest entry of sent[] */
    unsigned inflight; /* requests sent and not yet answered */
};

/*
 * What every thread reads, set up before the first thread starts and not
 * changed afterwards, plus the few atomics they share while running.
 */
struct zl_run {
    const struct zl_opts *o; /* the command line */
    unsigned char *requests; /* -k requests back to back, read-only */
    size_t req_len; /* one request: header and -s body bytes */
    unsigned char *reply; /* the one right reply: header and -e */
    size_t reply_len; /* its length */
    uint64_t warm_end; /* the warm-up ends: measuring starts, ns */
    uint64_t measure_end; /* -d is up: draining starts */
    uint64_t drain_end; /* replies still missing are errors */
    atomic_uint_fast64_t measured; /* measured round trips, all threads */
    atomic_bool count_reached; /* -n round trips measured */
    atomic_uint_fast64_t reached_at; /* when the -n-th one arrived */
    int done_pipe[2]; /* readable once count_reached: wakes all threads */
};

/*
 * The self-pipe of the signal handler: SIGINT or SIGTERM writes a byte, and
 * every epoll that watches the read end wakes up. Never read: it stays
 * readable, which is just what "stop" should be.
 */
static int stop_pipe[2] = {-1, -1};
static volatile sig_atomic_t interrupted; /* read by the main thread only */

static void on_signal(int sig)
{
    int saved = errno;

    (void)sig;
    interrupted = 1;
    if (write(stop_pipe[1], "x", 1) < 0) {
        /* full: it is readable already, which is all we need */
    }
    errno = saved;
}

/* Tags for epoll_event.data.ptr that are not connections. */
static char stop_tag, done_tag;

/*
 * Errors are counted, and the first of each kind is shown: with 1000
 * connections one example of a wrong reply says everything, a thousand
 * copies would bury it.
 */
enum zl_error_kind {
    ZL_ERR_CONNECT, /* could not connect */
    ZL_ERR_GREETING, /* a greeting (-g) wrong or missing */
    ZL_ERR_REPLY, /* a reply that is not the expected one */
    ZL_ERR_CLOSED, /* closed or reset by the server, I/O error */
    ZL_ERR_LATE, /* replies still missing when the drain time is up */
    ZL_ERR_KINDS
};

static atomic_flag shown[ZL_ERR_KINDS] = {ATOMIC_FLAG_INIT, ATOMIC_FLAG_INIT,
                                          ATOMIC_FLAG_INIT, ATOMIC_FLAG_INIT,
                                          ATOMIC_FLAG_INIT};

/* Print "zn-load: conn N: ..." unless this kind was shown already. */
static void show_error(enum zl_error_kind kind, const struct zl_conn *c,
                       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void show_error(enum zl_error_kind kind, const struct zl_conn *c,
                       const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (atomic_flag_test_and_set(&shown[kind]))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One fprintf: stdio locks the stream, lines do not interleave. */
    fprintf(stderr, "zn-load: conn %u: %s\n", c->index, msg);
}

/* ------------------------------------------------------------------ */
/* Connecting (main thread)                                           */
/* ------------------------------------------------------------------ */

/*
 * All connections are made by the main thread with one epoll, before the
 * load starts, and only then handed to the load threads. With -g a
 * connection is made only once its greeting is in and right: the greeting
 * is the server's, sent unasked, so it belongs to setting up, not to a
 * round trip. Until then it still counts against the window, so the
 * window also bounds the connections the server has yet to accept.
 */
struct zl_dialer {
    const struct zl_opts *o; /* the target */
    struct zl_conn *conns; /* all of them */
    unsigned char *greeting; /* the right greeting (-g), NULL: none */
    size_t greeting_len; /* its bytes, header included */
    size_t next; /* first connection never tried */
    size_t busy; /* handshakes (and greetings) under way */
    size_t settled; /* connected or given up */
    size_t failed; /* given up */
    size_t *retry; /* connections waiting to try again */
    size_t nretry; /* entries in retry[] */
    int epfd; /* watches the handshakes and the stop pipe */
};

/* ECONNREFUSED: the backlog overflowed (or nobody listens: tries end it). */
static bool dial_retryable(int err)
{
    return err == ECONNREFUSED || err == EAGAIN || err == ECONNRESET ||
           err == ETIMEDOUT;
}

/* This attempt failed: try again later, or give up on the connection. */
static void dial_failed(struct zl_dialer *d, struct zl_conn *c, int err,
                        uint64_t now)
{
    if (c->fd >= 0) {
        close(c->fd); /* also takes it out of the epoll */
        c->fd = -1;
    }
    if (dial_retryable(err) && c->tries < ZL_DIAL_TRIES) {
        c->state = ZL_NEW;
        c->retry_at = now + ZL_DIAL_BACKOFF_NS * c->tries;
        d->retry[d->nretry++] = c->index;
        return;
    }
    show_error(ZL_ERR_CONNECT, c, "connect to %s: %s (after %u tries)",
               d->o->target, zn_strerror(err), c->tries);
    c->state = ZL_CLOSED;
    d->settled++;
    d->failed++;
}

/* c is connected, and greeted if -g asked for it: ready for the load. */
static void dial_ready(struct zl_dialer *d, struct zl_conn *c)
{
    c->state = ZL_OPEN;
    d->settled++;
}

/* No greeting, or the wrong one: give up on c. */
static void dial_greeting_failed(struct zl_dialer *d, struct zl_conn *c,
                                 const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dial_greeting_failed(struct zl_dialer *d, struct zl_conn *c,
                                 const char *fmt, ...)
{
    char msg[900];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    show_error(ZL_ERR_GREETING, c, "%s", msg);
    close(c->fd); /* also takes it out of the epoll */
    c->fd = -1;
    c->state = ZL_CLOSED;
    d->busy--;
    d->settled++;
    d->failed++;
}

/*
 * The handshake is over. Without -g, c is ready; with it, watch c for its
 * greeting. `watched` says whether c->fd is in the epoll already (for
 * EPOLLOUT, the end of its handshake).
 */
static void dial_connected(struct zl_dialer *d, struct zl_conn *c, bool watched)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

    if (d->greeting == NULL) {
        if (watched)
            epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        dial_ready(d, c);
        return;
    }
    c->state = ZL_GREETING;
    c->in_len = 0;
    d->busy++;
    if (epoll_ctl(d->epfd, watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd,
                  &ev) < 0)
        dial_greeting_failed(d, c, "epoll_ctl: %s", zn_strerror(errno));
}

/*
 * c is readable while its greeting is due: take what has come of it,
 * never more, so whatever follows stays in the socket for the load (where
 * bytes nobody asked for are an error). The header is checked as soon as
 * it is in, the body once all of it is.
 */
static void dial_greeting_read(struct zl_dialer *d, struct zl_conn *c)
{
    char what[512];
    ssize_t n = recv(c->fd, c->in + c->in_len, d->greeting_len - c->in_len, 0);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        dial_greeting_failed(d, c, "no greeting: %s after %zu of its %zu bytes",
                             n == 0 ? "closed by the server"
                                    : zn_strerror(errno),
                             c->in_len, d->greeting_len);
        return;
    }
    c->in_len += (size_t)n;
    if (c->in_len >= ZN_FRAME_HEADER_LEN &&
        memcmp(c->in, d->greeting, ZN_FRAME_HEADER_LEN) != 0) {
        frame_describe(what, sizeof(what), d->greeting, c->in,
                       c->in + ZN_FRAME_HEADER_LEN,
                       c->in_len - ZN_FRAME_HEADER_LEN);
        dial_greeting_failed(d, c, "wrong greeting: %s", what);
        return;
    }
    if (c->in_len < d->greeting_len)
        return;
    if (memcmp(c->in, d->greeting, d->greeting_len) != 0) {
        frame_describe(what, sizeof(what), d->greeting, c->in,
                       c->in + ZN_FRAME_HEADER_LEN,
                       d->greeting_len - ZN_FRAME_HEADER_LEN);
        dial_greeting_failed(d, c, "wrong greeting: %s", what);
        return;
    }
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->in_len = 0;
    d->busy--;
    dial_ready(d, c);
}

/*
 * Start one non-blocking connect(). TCP_NODELAY: a small request must go
 * out at once, not wait up to 40 ms for Nagle to gather more.
 */
static void dial_start(struct zl_dialer *d, struct zl_conn *c, uint64_t now)
{
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    int one = 1;

    c->tries++;
    c->fd = socket(d->o->addr.ss_family,
                   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        dial_failed(d, c, errno, now);
        return;
    }
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        dial_failed(d, c, errno, now);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&d->o->addr, d->o->addr_len) ==
        0) {
        dial_connected(d, c, false); /* loopback may finish at once */
        return;
    }
    if (errno != EINPROGRESS) {
        dial_failed(d, c, errno, now);
        return;
    }
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        dial_failed(d, c, errno, now);
        return;
    }
    c->state = ZL_CONNECTING;
    d->busy++;
}

/* The socket became writable: the handshake is over, one way or another. */
static void dial_finish(struct zl_dialer *d, struct zl_conn *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);

    d->busy--;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        dial_failed(d, c, err, now);
        return;
    }
    dial_connected(d, c, true);
}

/*
 * Start what may start now: retries whose back-off is over, then new
 * connections, while fewer than ZL_DIAL_WINDOW handshakes are under way.
 * Returns when the next retry is due (UINT64_MAX: none is waiting).
 */
static uint64_t dial_start_due(struct zl_dialer *d, uint64_t now)
{
    size_t waiting = d->nretry;
    uint64_t next = UINT64_MAX;

    /*
     * Rebuild retry[] in place. dial_start() may append a connection that
     * failed again, but each step appends at most one entry, so the writes
     * never overtake the entry being read.
     */
    d->nretry = 0;
    for (size_t i = 0; i < waiting; i++) {
        size_t idx = d->retry[i];

        if (d->conns[idx].retry_at <= now && d->busy < ZL_DIAL_WINDOW)
            dial_start(d, &d->conns[idx], now);
        else
            d->retry[d->nretry++] = idx;
    }
    while (d->busy < ZL_DIAL_WINDOW && d->next < d->o->conns)
        dial_start(d, &d->conns[d->next++], now);
    for (size_t i = 0; i < d->nretry; i++)
        if (d->conns[d->retry[i]].retry_at < next)
            next = d->conns[d->retry[i]].retry_at;
    return next;
}

/* Time is up: every connection not connected yet has failed. */
static void dial_give_up(struct zl_dialer *d)
{
    for (size_t i = 0; i < d->o->conns; i++) {
        struct zl_conn *c = &d->conns[i];

        if (c->state == ZL_OPEN || c->state == ZL_CLOSED)
            continue;
        if (c->state == ZL_GREETING)
            show_error(ZL_ERR_GREETING, c,
                       "no greeting in time: %zu of its %zu bytes came",
                       c->in_len, d->greeting_len);
        else
            show_error(ZL_ERR_CONNECT, c,
                       "connect to %s: not connected in time", d->o->target);
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        c->state = ZL_CLOSED;
        d->failed++;
    }
}

/*
 * Connect all -c connections (and take their greetings, with -g), at most
 * ZL_DIAL_LIMIT_NS plus ZL_DIAL_PER_CONN_NS each in all. Returns the
 * number that could not be connected; a signal stops it early (the rest
 * then count as not connected, but are not errors).
 */
static size_t dial_all(struct zl_dialer *d)
{
    uint64_t deadline =
        now_ns() + ZL_DIAL_LIMIT_NS + ZL_DIAL_PER_CONN_NS * d->o->conns;
    struct epoll_event evs[ZL_EVENTS];

    while (d->settled < d->o->conns && !interrupted) {
        uint64_t now = now_ns(), next;
        int n;

        if (now >= deadline) {
            dial_give_up(d);
            break;
        }
        next = dial_start_due(d, now);
        if (d->settled == d->o->conns)
            break;
        n = epoll_wait(d->epfd, evs, ZL_EVENTS,
                       ms_until(next < deadline ? next : deadline, now));
        if (n < 0 && errno != EINTR) {
            perror("zn-load: epoll_wait");
            dial_give_up(d);
            break;
        }
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct zl_conn *c = evs[i].data.ptr;

            if (evs[i].data.ptr == &stop_tag)
                continue;
            if (c->state == ZL_CONNECTING)
                dial_finish(d, c, now);
            else if (c->state == ZL_GREETING)
                dial_greeting_read(d, c);
        }
    }
    return d->failed;
}

/* ------------------------------------------------------------------ */
/* Load threads                                                       */
/* ------------------------------------------------------------------ */

/* One load thread and the connections it alone drives. */
struct zl_worker {
    struct zl_run *run; /* shared setup and counters */
    struct zl_conn *conns; /* its slice of the connections */
    size_t nconns; /* how many */
    size_t open; /* of those, still open */
    int epfd; /* its epoll: its connections and both pipes */
    pthread_t thread; /* runs worker_main() */
    unsigned char *rbuf; /* ZL_READ_BUF bytes for read() */
    struct zl_hist hist; /* measured latencies */
    uint64_t warmup_replies; /* replies in the warm-up: checked only */
    uint64_t errors; /* errors on its connections */
    uint64_t outstanding; /* requests in flight on all its connections */
    bool sending; /* still warming up or measuring: send more */
    bool stop; /* a signal: leave at once */
    uint64_t stopped_at; /* when it stopped measuring, ns */
};

/* Close c after an error: count it, show it if it is the first. */
static void conn_fail(struct zl_worker *w, struct zl_conn *c,
                      enum zl_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conn_fail(struct zl_worker *w, struct zl_conn *c,
                      enum zl_error_kind kind, const char *fmt, ...)
{
    char msg[900];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    show_error(kind, c, "%s", msg);
    w->errors++;
    w->outstanding -= c->inflight;
    w->open--;
    close(c->fd); /* the only descriptor: it leaves the epoll too */
    c->fd = -1;
    c->state = ZL_CLOSED;
    c->inflight = 0;
}

/*
 * Watch EPOLLOUT only while a write is unfinished. Level-triggered epoll
 * reports a socket with room in its buffer as writable on every call, so
 * watching it all the time would wake the thread for nothing.
 */
static int conn_watch_out(struct zl_worker *w, struct zl_conn *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.ptr = c};

    if (c->out_wait == on)
        return 0;
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return -errno;
    c->out_wait = on;
    return 0;
}

/*
 * Send what is queued, as far as the socket takes it. A short count is
 * normal for a non-blocking socket: the rest waits for EPOLLOUT. Since the
 * request stream repeats every req_len bytes, the position wraps around
 * modulo req_len. Returns 0, or -1 when c was closed for an error.
 */
static int conn_flush(struct zl_worker *w, struct zl_conn *c)
{
    const struct zl_run *run = w->run;
    int rc;

    while (c->out_len > 0) {
        ssize_t n =
            send(c->fd, run->requests + c->out_pos, c->out_len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            conn_fail(w, c, ZL_ERR_CLOSED, "send: %s", zn_strerror(errno));
            return -1;
        }
        c->out_len -= (size_t)n;
        c->out_pos = (c->out_pos + (size_t)n) % run->req_len;
    }
    rc = conn_watch_out(w, c, c->out_len > 0);
    if (rc < 0) {
        conn_fail(w, c, ZL_ERR_CLOSED, "epoll_ctl: %s", zn_strerror(-rc));
        return -1;
    }
    return 0;
}

/*
 * Queue one request and remember when: its latency counts from now, the
 * moment the client wants to send, so time spent waiting for room in a
 * full socket buffer is part of it, as a user would see it.
 */
static void conn_queue(struct zl_worker *w, struct zl_conn *c, uint64_t now)
{
    unsigned k = (unsigned)w->run->o->inflight;

    c->sent[(c->head + c->inflight) % k] = now;
    c->inflight++;
    c->out_len += w->run->req_len;
    w->outstanding++;
}

/* Stop sending new requests: the measured part is over for this thread. */
static void worker_stop_sending(struct zl_worker *w, uint64_t now)
{
    const struct zl_run *run = w->run;

    if (!w->sending)
        return;
    w->sending = false;
    w->stopped_at = now < run->measure_end ? now : run->measure_end;
    /* The done pipe stays readable: stop watching it or we would spin. */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, run->done_pipe[0], NULL);
}

/* Leave the measured part when its time is up or -n was reached. */
static void worker_tick(struct zl_worker *w, uint64_t now)
{
    if (w->sending &&
        (now >= w->run->measure_end ||
         atomic_load_explicit(&w->run->count_reached, memory_order_relaxed)))
        worker_stop_sending(w, now);
}

/*
 * Count one round trip of `ns` that ended at `now`: in the warm-up only
 * counted; while measuring, into the histogram, as long as all threads
 * together have not measured -n yet. The thread that measures the -n-th
 * tells the others through the done pipe.
 */
static void worker_count(struct zl_worker *w, uint64_t ns, uint64_t now)
{
    struct zl_run *run = w->run;
    uint64_t k;

    if (now < run->warm_end) {
        w->warmup_replies++;
        return;
    }
    if (!w->sending)
        return; /* draining: checked, not measured */
    k = atomic_fetch_add_explicit(&run->measured, 1, memory_order_relaxed);
    if (k < run->o->count)
        hist_add(&w->hist, ns);
    if (k + 1 >= run->o->count) {
        if (k + 1 == run->o->count) {
            atomic_store(&run->reached_at, now);
            atomic_store(&run->count_reached, true);
            if (write(run->done_pipe[1], "x", 1) < 0) {
                /* cannot fail: one byte into an empty pipe */
            }
        }
        worker_stop_sending(w, now);
    }
}

/* A whole, correct reply arrived: count it and send the next request. */
static void conn_reply_done(struct zl_worker *w, struct zl_conn *c,
                            uint64_t now)
{
    uint64_t sent = c->sent[c->head];

    c->head = (c->head + 1) % (unsigned)w->run->o->inflight;
    c->inflight--;
    w->outstanding--;
    c->in_len = 0;
    worker_count(w, now - sent, now);
    if (w->sending)
        conn_queue(w, c, now);
}

/* Show a wrong reply next to the right one (see frame_describe()). */
static void conn_bad_reply(struct zl_worker *w, struct zl_conn *c,
                           const unsigned char *head, const unsigned char *body,
                           size_t have)
{
    char what[512];

    frame_describe(what, sizeof(what), w->run->reply, head, body, have);
    conn_fail(w, c, ZL_ERR_REPLY, "wrong reply: %s", what);
}

/*
 * How many requests a reply may answer now: those in flight whose last
 * byte has gone out. A request still (partly) in out_len cannot have been
 * read by the server; a reply that claims to answer it is a second reply
 * to an earlier one.
 */
static unsigned conn_answerable(const struct zl_run *run,
                                const struct zl_conn *c)
{
    size_t unsent = (c->out_len + run->req_len - 1) / run->req_len;

    return c->inflight - (unsigned)unsent;
}

/*
 * Take n bytes just read: replies arrive cut anywhere, so each is gathered
 * in c->in until it is whole. The header is checked as soon as it is in,
 * because a wrong DataLen means we cannot even tell where the reply ends;
 * the body once all of it is. Returns 0, or -1 when c was closed for an
 * error (a wrong reply leaves the stream out of step for good).
 */
static int conn_take(struct zl_worker *w, struct zl_conn *c,
                     const unsigned char *p, size_t n, uint64_t now)
{
    const struct zl_run *run = w->run;

    while (n > 0) {
        size_t goal = c->in_len < ZN_FRAME_HEADER_LEN ? ZN_FRAME_HEADER_LEN
                                                      : run->reply_len;
        size_t take = goal - c->in_len < n ? goal - c->in_len : n;

        if (c->in_len == 0 && conn_answerable(run, c) == 0) {
            conn_fail(w, c, ZL_ERR_REPLY,
                      "%zu bytes arrived with no request sent and "
                      "unanswered",
                      n);
            return -1;
        }
        memcpy(c->in + c->in_len, p, take);
        c->in_len += take;
        p += take;
        n -= take;
        if (goal == ZN_FRAME_HEADER_LEN && c->in_len == ZN_FRAME_HEADER_LEN &&
            memcmp(c->in, run->reply, ZN_FRAME_HEADER_LEN) != 0) {
            conn_bad_reply(w, c, c->in, p, n);
            return -1;
        }
        if (c->in_len < run->reply_len)
            continue;
        if (memcmp(c->in, run->reply, run->reply_len) != 0) {
            conn_bad_reply(w, c, c->in, c->in + ZN_FRAME_HEADER_LEN,
                           run->reply_len - ZN_FRAME_HEADER_LEN);
            return -1;
        }
        conn_reply_done(w, c, now);
    }
    return 0;
}

/*
 * The socket is readable (or closed, or failed). One read per wake-up:
 * epoll is level-triggered, so whatever is left wakes us again. With
 * edge-triggered epoll we would have to read until EAGAIN every time, one
 * more system call per round trip in lockstep, where the first read nearly
 * always gets the whole reply.
 */
static void conn_on_readable(struct zl_worker *w, struct zl_conn *c)
{
    ssize_t n = recv(c->fd, w->rbuf, ZL_READ_BUF, 0);
    uint64_t now;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        conn_fail(w, c, ZL_ERR_CLOSED, "recv: %s (%u requests in flight)",
                  zn_strerror(errno), c->inflight);
        return;
    }
    if (n == 0) {
        conn_fail(w, c, ZL_ERR_CLOSED,
                  "closed by the server (%u requests in flight)", c->inflight);
        return;
    }
    now = now_ns();
    worker_tick(w, now);
    if (conn_take(w, c, w->rbuf, (size_t)n, now) == 0 && c->out_len > 0)
        conn_flush(w, c);
}

/* The drain time is up: a connection still owed replies is an error. */
static void worker_drain_expired(struct zl_worker *w)
{
    for (size_t i = 0; i < w->nconns; i++) {
        struct zl_conn *c = &w->conns[i];

        if (c->state == ZL_OPEN && c->inflight > 0)
            conn_fail(w, c, ZL_ERR_LATE,
                      "replies missing: %u, %" PRIu64
                      " s after the end of the run",
                      c->inflight, ZL_DRAIN_LIMIT_NS / ZL_NS_PER_SEC);
    }
}

static void worker_handle(struct zl_worker *w, const struct epoll_event *ev)
{
    struct zl_conn *c = ev->data.ptr;

    if (ev->data.ptr == &stop_tag) {
        w->stop = true;
        return;
    }
    if (ev->data.ptr == &done_tag)
        return; /* worker_tick() sees count_reached */
    if (c->state != ZL_OPEN)
        return; /* closed by an earlier event of this batch */
    if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_on_readable(w, c);
    if (c->state == ZL_OPEN && (ev->events & EPOLLOUT))
        conn_flush(w, c);
}

/*
 * A load thread: put -k requests on each of its connections, then answer
 * every reply with the next request until the measured part is over, then
 * wait for the replies still due. Every wait has a timeout that ends at the
 * next deadline, so nothing spins and nothing waits forever.
 */
static void *worker_main(void *arg)
{
    struct zl_worker *w = arg;
    const struct zl_run *run = w->run;
    struct epoll_event evs[ZL_EVENTS];
    uint64_t now = now_ns();

    for (size_t i = 0; i < w->nconns; i++) {
        struct zl_conn *c = &w->conns[i];

        if (c->state != ZL_OPEN)
            continue;
        for (unsigned long k = 0; k < run->o->inflight; k++)
            conn_queue(w, c, now);
        conn_flush(w, c);
    }
    while (!w->stop && w->open > 0 && (w->sending || w->outstanding > 0)) {
        int n;

        now = now_ns();
        worker_tick(w, now);
        if (now >= run->drain_end) {
            worker_drain_expired(w);
            break;
        }
        n = epoll_wait(
            w->epfd, evs, ZL_EVENTS,
            ms_until(w->sending ? run->measure_end : run->drain_end, now));
        if (n < 0 && errno != EINTR) {
            perror("zn-load: epoll_wait");
            w->errors++;
            break;
        }
        for (int i = 0; i < n; i++)
            worker_handle(w, &evs[i]);
    }
    worker_stop_sending(w, now_ns());
    return NULL;
}

/* Give w its slice of the connections and an epoll that watches them. */
static int worker_init(struct zl_worker *w, struct zl_run *run,
                       struct zl_conn *conns, size_t n)
{
    struct epoll_event ev = {.events = EPOLLIN};

    *w = (struct zl_worker){
        .run = run, .conns = conns, .nconns = n, .sending = true};
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->rbuf = malloc(ZL_READ_BUF);
    if (w->epfd < 0 || w->rbuf == NULL || hist_init(&w->hist) < 0)
        return -1;
    ev.data.ptr = &stop_tag;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, stop_pipe[0], &ev) < 0)
        return -1;
    ev.data.ptr = &done_tag;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, run->done_pipe[0], &ev) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (conns[i].state != ZL_OPEN)
            continue;
        ev.data.ptr = &conns[i];
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0)
            return -1;
        w->open++;
    }
    return 0;
}

static void worker_free(struct zl_worker *w)
{
    if (w->epfd >= 0)
        close(w->epfd);
    free(w->rbuf);
    free(w->hist.counts);
}

/* ------------------------------------------------------------------ */
/* The run                                                            */
/* ------------------------------------------------------------------ */

/* Everything the report needs, merged from all threads. */
struct zl_result {
    struct zl_hist hist; /* measured latencies */
    uint64_t warmup; /* replies in the warm-up */
    uint64_t errors; /* every kind */
    double seconds; /* measured wall time */
};

/*
 * Build the bytes that never change: -k copies of the request, so that any
 * run of up to -k queued requests is one contiguous slice, and the one
 * right reply. Returns 0 or -ENOMEM.
 */
static int run_init(struct zl_run *run, const struct zl_opts *o)
{
    size_t k = o->inflight;

    *run = (struct zl_run){.o = o, .done_pipe = {-1, -1}};
    run->req_len = ZN_FRAME_HEADER_LEN + o->body;
    run->reply_len = ZN_FRAME_HEADER_LEN + o->expect_len;
    run->requests = malloc(run->req_len * k);
    run->reply = frame_new(o->reply_id, o->expect, o->expect_len);
    if (run->requests == NULL || run->reply == NULL)
        return -ENOMEM;
    for (size_t r = 0; r < k; r++) {
        unsigned char *p = run->requests + r * run->req_len;

        zn_frame_put_header(p, o->req_id, (uint32_t)o->body);
        for (size_t i = 0; i < o->body; i++)
            p[ZN_FRAME_HEADER_LEN + i] = (unsigned char)('a' + i % 26);
    }
    return zn_fd_pipe(run->done_pipe) < 0 ? -errno : 0;
}

static void run_free(struct zl_run *run)
{
    free(run->requests);
    free(run->reply);
    for (int i = 0; i < 2; i++)
        if (run->done_pipe[i] >= 0)
            close(run->done_pipe[i]);
}

/*
 * Start the load threads with SIGINT and SIGTERM blocked, so the handler
 * always runs on the main thread, which just waits in pthread_join().
 * Returns how many started.
 */
static size_t start_workers(struct zl_worker *ws, size_t n)
{
    sigset_t block, old;
    size_t started = 0;

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (; started < n; started++) {
        int rc = pthread_create(&ws[started].thread, NULL, worker_main,
                                &ws[started]);

        if (rc != 0) {
            fprintf(stderr, "zn-load: pthread_create: %s\n", zn_strerror(rc));
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

/*
 * The load: split the connections among -t threads, run them, merge what
 * they measured. Returns 0, or -1 when the threads could not be set up.
 */
static int run_load(const struct zl_opts *o, struct zl_conn *conns,
                    struct zl_result *res)
{
    struct zl_run run;
    struct zl_worker *ws = calloc(o->threads, sizeof(*ws));
    size_t nw = 0, started = 0;
    uint64_t start, end = 0;
    int rc = -1;

    if (ws == NULL || run_init(&run, o) < 0) {
        fprintf(stderr, "zn-load: out of memory\n");
        free(ws);
        if (ws != NULL)
            run_free(&run);
        return -1;
    }
    for (; nw < o->threads; nw++) {
        size_t from = nw * o->conns / o->threads;
        size_t to = (nw + 1) * o->conns / o->threads;

        if (worker_init(&ws[nw], &run, conns + from, to - from) < 0) {
            perror("zn-load: setting up a load thread");
            nw++; /* free this one too */
            goto out;
        }
    }

    start = now_ns();
    run.warm_end = start + (uint64_t)(o->warmup * 1e9);
    run.measure_end = run.warm_end + (uint64_t)(o->duration * 1e9);
    run.drain_end = run.measure_end + ZL_DRAIN_LIMIT_NS;
    started = start_workers(ws, nw);
    for (size_t i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        hist_merge(&res->hist, &ws[i].hist);
        res->warmup += ws[i].warmup_replies;
        res->errors += ws[i].errors;
        if (ws[i].stopped_at > end)
            end = ws[i].stopped_at;
    }
    /* -n reached: the measured part ended with that very reply. */
    if (atomic_load(&run.count_reached))
        end = atomic_load(&run.reached_at);
    res->seconds = end > run.warm_end ? (double)(end - run.warm_end) / 1e9 : 0;
    rc = started == nw ? 0 : -1;
out:
    for (size_t i = 0; i < nw; i++)
        worker_free(&ws[i]);
    free(ws);
    run_free(&run);
    return rc;
}

/* Idle mode's line of JSON, flushed: the runner waits for it. */
static void print_idle(const struct zl_opts *o, uint64_t errors)
{
    printf("{\"mode\":\"idle\",\"connections\":%lu,\"errors\":%" PRIu64 "}\n",
           o->conns, errors);
    fflush(stdout);
}

/* Say what the server did to an idle connection: it should do nothing. */
static void idle_event(struct zl_conn *c)
{
    char byte;
    ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

    show_error(ZL_ERR_CLOSED, c, "idle connection %s",
               n > 0    ? "got bytes nobody asked for"
               : n == 0 ? "closed by the server"
                        : zn_strerror(errno));
    close(c->fd);
    c->fd = -1;
}

/*
 * Idle mode: the connections are open; say so, then hold them until -d
 * is up or a signal comes. Anything the server does to them meanwhile
 * (closing them, sending something) is an error. Returns the error count.
 */
static uint64_t hold_idle(const struct zl_opts *o, struct zl_conn *conns,
                          int epfd)
{
    uint64_t errors = 0, end = now_ns() + (uint64_t)(o->duration * 1e9);
    struct epoll_event evs[ZL_EVENTS];

    print_idle(o, 0);
    fprintf(stderr, "zn-load: %lu connections open, holding them\n", o->conns);
    for (size_t i = 0; i < o->conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                 .data.ptr = &conns[i]};

        epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    while (!interrupted) {
        uint64_t now = now_ns();
        int n;

        if (now >= end)
            break;
        n = epoll_wait(epfd, evs, ZL_EVENTS, ms_until(end, now));
        for (int i = 0; i < n; i++) {
            struct zl_conn *c = evs[i].data.ptr;

            if (evs[i].data.ptr == &stop_tag || c->fd < 0)
                continue;
            idle_event(c);
            errors++;
        }
    }
    return errors;
}

/* ------------------------------------------------------------------ */
/* Setup and report                                                   */
/* ------------------------------------------------------------------ */

/*
 * Every connection is a descriptor, and the default soft limit is often
 * 1024. Raise it as far as -c needs; only the hard limit (root's to raise)
 * can stop us.
 */
static int raise_nofile(size_t need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        perror("zn-load: getrlimit");
        return -1;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        fprintf(stderr,
                "zn-load: %zu descriptors needed, but the hard limit is "
                "%llu (see `ulimit -Hn`)\n",
                need, (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        perror("zn-load: setrlimit");
        return -1;
    }
    return 0;
}

/* SIGINT and SIGTERM end the run early; the results are still printed. */
static int catch_signals(void)
{
    struct sigaction sa = {0};

    if (zn_fd_pipe(stop_pipe) < 0) {
        perror("zn-load: pipe");
        return -1;
    }
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return 0;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

/* One line of JSON on stdout, one line for people on stderr. */
static void print_result(const struct zl_opts *o, const struct zl_result *r)
{
    const struct zl_hist *h = &r->hist;
    double rate = r->seconds > 0 ? (double)h->total / r->seconds : 0;

    printf("{\"connections\":%lu,\"inflight\":%lu,\"body\":%lu,"
           "\"threads\":%lu,\"messages\":%" PRIu64
           ",\"warmup_messages\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"seconds\":%.3f,\"rtt_per_sec\":%.1f,\"p50_us\":%.1f,"
           "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
           "\"max_us\":%.1f}\n",
           o->conns, o->inflight, o->body, o->threads, h->total, r->warmup,
           r->errors, r->seconds, rate, us(hist_percentile(h, 500)),
           us(hist_percentile(h, 900)), us(hist_percentile(h, 990)),
           us(hist_percentile(h, 999)), us(h->max));
    fflush(stdout);
    fprintf(stderr,
            "zn-load: %lu conns x %lu in flight, %lu B: %" PRIu64
            " round trips in %.2f s = %.0f/s, p50 %.1f us p99 %.1f us "
            "max %.1f us, %" PRIu64 " errors%s\n",
            o->conns, o->inflight, o->body, h->total, r->seconds, rate,
            us(hist_percentile(h, 500)), us(hist_percentile(h, 990)),
            us(h->max), r->errors, interrupted ? " (interrupted)" : "");
}

/*
 * The connections, each with its share of two big arrays: the reply (or
 * greeting) being received and the ring of send times. Two allocations
 * instead of 40000.
 */
static struct zl_conn *conns_new(const struct zl_opts *o,
                                 unsigned char **in_bufs, uint64_t **rings)
{
    struct zl_conn *conns = calloc(o->conns, sizeof(*conns));
    size_t in_len =
        ZN_FRAME_HEADER_LEN +
        (o->greet_len > o->expect_len ? o->greet_len : o->expect_len);

    *in_bufs = calloc(o->conns, in_len);
    *rings = calloc(o->conns * o->inflight, sizeof(**rings));
    if (conns == NULL || *in_bufs == NULL || *rings == NULL) {
        free(conns);
        free(*in_bufs);
        free(*rings);
        return NULL;
    }
    for (size_t i = 0; i < o->conns; i++) {
        conns[i].fd = -1;
        conns[i].index = (unsigned)i;
        conns[i].in = *in_bufs + i * in_len;
        conns[i].sent = *rings + i * o->inflight;
    }
    return conns;
}

int main(int argc, char **argv)
{
    struct zl_opts o;
    struct zl_dialer d = {.o = &o, .epfd = -1};
    struct zl_result res = {0};
    struct zl_conn *conns = NULL;
    unsigned char *in_bufs = NULL;
    uint64_t *rings = NULL;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &stop_tag};
    int rc = parse_options(argc, argv, &o), status = 1;

    if (rc != 0)
        return rc > 0 ? 0 : 2;
    /* A descriptor per connection and per epoll, stdio, pipes, spares. */
    if (raise_nofile(o.conns + o.threads + 16) < 0 || catch_signals() < 0)
        return 1;
    conns = conns_new(&o, &in_bufs, &rings);
    d.conns = conns;
    d.retry = calloc(o.conns, sizeof(*d.retry));
    d.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (o.greet != NULL) {
        d.greeting = frame_new(o.greet_id, o.greet, o.greet_len);
        d.greeting_len = ZN_FRAME_HEADER_LEN + o.greet_len;
    }
    if (conns == NULL || d.retry == NULL || hist_init(&res.hist) < 0 ||
        (o.greet != NULL && d.greeting == NULL) || d.epfd < 0 ||
        epoll_ctl(d.epfd, EPOLL_CTL_ADD, stop_pipe[0], &ev) < 0) {
        perror("zn-load: setup");
        goto out;
    }

    res.errors = dial_all(&d);
    if (res.errors > 0) {
        fprintf(stderr, "zn-load: %" PRIu64 " of %lu connections failed\n",
                res.errors, o.conns);
        if (o.idle)
            print_idle(&o, res.errors);
        else
            print_result(&o, &res);
    } else if (interrupted) {
        if (!o.idle)
            print_result(&o, &res);
    } else if (o.idle) {
        res.errors = hold_idle(&o, conns, d.epfd);
    } else {
        if (run_load(&o, conns, &res) < 0)
            res.errors++;
        print_result(&o, &res);
    }
    status = res.errors > 0 ? 1 : 0;
out:
    for (size_t i = 0; conns != NULL && i < o.conns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    if (d.epfd >= 0)
        close(d.epfd);
    free(d.retry);
    free(d.greeting);
    free(res.hist.counts);
    free(conns);
    free(in_bufs);
    free(rings);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    return status;
}
