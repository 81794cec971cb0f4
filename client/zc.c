/*
 * zc -- talk to a zinc server from the shell, through the client library
 * (zn_client.h).
 *
 *     zc 127.0.0.1:8999 send 1 hi                 one request, its reply
 *     zc 127.0.0.1:8999 send 3 user=ada 4 user    a session, in order
 *     zc 127.0.0.1:8999 watch                     every frame that comes
 *     zc 127.0.0.1:8999 ping -n 1000 -c 4         round trips and latency
 *     zc 127.0.0.1:8999 raw hello                 v0.1-v0.4: plain bytes
 *
 * The messages of one command share one connection, so a v1.0 property set
 * by one is there for the next. A reply is the next frame with the reply id
 * (--reply, else the id sent); `raw` uses no library, as v0.1-v0.4 have no
 * framing.
 *
 * Each subcommand is a row of one table, zc_cmds: the function that runs
 * it, the options it takes besides -t and -v, and whether its operands are
 * ID BODY pairs or one BODY. The arguments are read by getopt_long() with
 * a '-' at the head of the optstring, a GNU extension: each operand then
 * comes back in its place, as the option 1, instead of ending the options
 * (POSIX) or being moved behind them (GNU's default). So options go
 * anywhere (`send 0 hi --reply 1`), and --hex and --file, which stand for a
 * body, stay behind the ID they belong to.
 */
#include "zn_client.h"

#include "zn_addr.h"
#include "zn_io.h"
#include "zn_log.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ZC_MAX_FRAME 65536 /* the library's default max_frame, stated */
#define ZC_TIMEOUT 2.0 /* seconds: connect, and each reply */
#define ZC_RAW_SILENCE 0.5 /* seconds of silence that end `raw` */
#define ZC_MAX_SECONDS 86400.0 /* a day is plenty for any --timeout */
#define ZC_PING_COUNT 100 /* -n by default */
#define ZC_MAX_PING_COUNT 1000000 /* 8 MB of latencies, kept to sort */
#define ZC_MAX_CONNS 1000 /* -c: two threads each, the pinger and reader */
#define ZC_WATCH_QUEUE 1024 /* frames `watch` may fall behind by */

/* --help; its first paragraph is the short usage of an argument error. */
static const char usage_text[] =
    "usage: zc [options] HOST:PORT send ID BODY [ID BODY]...\n"
    "       zc [options] HOST:PORT watch [ID BODY]...\n"
    "       zc [options] HOST:PORT ping [-n N] [-c CONNS] [-i ID] [BODY]\n"
    "       zc [options] HOST:PORT raw BODY\n"
    "\n"
    "  send   send each message (MsgID ID) in turn on one connection, wait\n"
    "         for its reply and print the reply's body on a line\n"
    "  watch  send the messages, if any, then print every frame that\n"
    "         arrives as \"id N, LEN bytes: BODY\", until the server closes\n"
    "         the connection (exit 0), Ctrl-C, or --timeout SEC of silence\n"
    "         (exit 0; without --timeout it waits as long as it takes)\n"
    "  ping   N round trips in all, over CONNS connections, each with its\n"
    "         own client and thread, one request at a time; BODY defaults\n"
    "         to \"ping\". Prints the round trips, the errors, round trips\n"
    "         per second and min/p50/p99/max latency in microseconds. A\n"
    "         connection stops at its first error; exit 1 if any failed\n"
    "  raw    for v0.1-v0.4 (no framing): write BODY's bytes as they are\n"
    "         and print what comes back until the server closes or stays\n"
    "         silent for --timeout SEC (here 0.5 by default)\n"
    "\n"
    "BODY is TEXT, --hex HEX (two hex digits a byte, e.g. 00ff10) or\n"
    "--file F (F = - reads standard input). Put -- before a TEXT that\n"
    "starts with '-': no option is read after it.\n"
    "\n"
    "options (anywhere on the line):\n"
    "  -t, --timeout SEC  wait at most SEC seconds (fractions allowed) to\n"
    "                     connect and for each reply (default 2)\n"
    "  -r, --reply RID    the reply is the next frame with id RID (default:\n"
    "                     the id sent; v0.5's demo answers with id 1)\n"
    "  -i, --id ID        ping: the MsgID to send (default 0)\n"
    "  -n, --count N      ping: round trips in all (default 100, at most\n"
    "                     1000000)\n"
    "  -c, --conns CONNS  ping: connections (default 1, at most 1000)\n"
    "  -v, --verbose      notes on stderr: each exchange's id, size and\n"
    "                     time, frames that are not replies (the greeting\n"
    "                     of v0.9 on), why watch or raw ended\n"
    "  -h, --help         this text\n"
    "\n"
    "A frame whose id is not the reply id is never taken for the reply:\n"
    "send prints it on stderr with -v and ignores it otherwise. Bodies are\n"
    "printed escaped: bytes outside ' '..'~' as \\xHH, a backslash as \\\\\n"
    "(raw keeps line breaks). Frames larger than 65536 bytes are refused\n"
    "both ways. Exit status: 0 success, 1 a failed exchange (refused,\n"
    "timed out, connection lost, a frame too large), 2 bad arguments.\n"
    "Example: zc 127.0.0.1:8999 send 1 hi\n";

/* One message to send: its MsgID and its body. */
struct zc_msg {
    uint32_t id; /* MsgID (ping: -i; raw: unused) */
    const unsigned char *data; /* the body; NULL while its ID waits for it */
    size_t len; /* bytes of data */
};

/* The command line, parsed. */
struct zc_args {
    const char *addr; /* HOST:PORT as given */
    const struct zc_cmd *cmd; /* the subcommand's row of zc_cmds */
    double timeout; /* -t: seconds, or 0 when not given */
    bool verbose; /* -v */
    int64_t reply; /* -r: the reply id, or -1 for the id sent */
    uint32_t ping_id; /* -i: ping's MsgID */
    unsigned long count; /* -n: ping's round trips */
    unsigned long conns; /* -c: ping's connections */
    struct zc_msg *msgs; /* the messages, in order */
    size_t nmsgs; /* how many */
};

/* The options that not every subcommand takes, as bits of zc_cmd.opts. */
enum { ZC_OPT_REPLY = 1, ZC_OPT_PING = 2 /* -n, -c and -i */ };

/* A subcommand: one row of zc_cmds. */
struct zc_cmd {
    const char *name; /* the word on the command line */
    int (*run)(const struct zc_args *a); /* does it; the exit status */
    unsigned opts; /* ZC_OPT_ bits: the options it takes besides -t, -v */
    bool pairs; /* operands: ID BODY pairs (else one BODY, no ID) */
    unsigned min; /* messages it needs at least: 0 or 1 */
    const char *body; /* the BODY when none is given, or NULL */
};

static int cmd_send(const struct zc_args *a);
static int cmd_watch(const struct zc_args *a);
static int cmd_ping(const struct zc_args *a);
static int cmd_raw(const struct zc_args *a);

static const struct zc_cmd zc_cmds[] = {
    {"send", cmd_send, ZC_OPT_REPLY, true, 1, NULL},
    {"watch", cmd_watch, 0, true, 0, NULL},
    {"ping", cmd_ping, ZC_OPT_REPLY | ZC_OPT_PING, false, 0, "ping"},
    {"raw", cmd_raw, 0, false, 1, NULL},
    {NULL, NULL, 0, false, 0, NULL},
};

/*
 * What getopt_long() returns for an operand (1, for the '-' at the head of
 * zc_optstring), and for --hex and --file, which stand for one. The ':'
 * after the '-': a missing value is ':', and getopt_long() prints nothing.
 */
enum { ZC_WORD = 1, ZC_HEX = 256, ZC_FILE };

static const char zc_optstring[] = "-:t:r:i:n:c:vh";

static const struct option zc_options[] = {
    {"timeout", required_argument, NULL, 't'},
    {"reply", required_argument, NULL, 'r'},
    {"id", required_argument, NULL, 'i'},
    {"count", required_argument, NULL, 'n'},
    {"conns", required_argument, NULL, 'c'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"hex", required_argument, NULL, ZC_HEX},
    {"file", required_argument, NULL, ZC_FILE},
    {NULL, 0, NULL, 0},
};

static uint64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Seconds as whole milliseconds for the library, at least 1. */
static int to_ms(double sec)
{
    double ms = sec * 1000.0 + 0.5;

    return ms < 1.0 ? 1 : (int)ms;
}

/* The --timeout for connecting and for each reply, in ms. */
static int timeout_ms(const struct zc_args *a)
{
    return to_ms(a->timeout > 0 ? a->timeout : ZC_TIMEOUT);
}

/*
 * Print len bytes escaped as zinc's servers log client bytes
 * (zn_log_escape(): outside ' '..'~' as \xHH, a backslash as \\), so that
 * no body can garble the terminal. With keep_newlines (raw) a '\n' stays.
 */
static void print_escaped(FILE *out, const unsigned char *p, size_t len,
                          bool keep_newlines)
{
    char esc[5]; /* \xHH and the NUL */

    for (size_t i = 0; i < len; i++) {
        if (keep_newlines && p[i] == '\n')
            fputc('\n', out);
        else
            fputs(zn_log_escape(&p[i], 1, esc, sizeof(esc)), out);
    }
}

/*
 * Print frame f on a line and flush: prefix and "id N, LEN bytes: " unless
 * prefix is NULL, then the body; whole even when threads print at once.
 */
static void print_frame(FILE *out, const char *prefix, const struct zn_frame *f)
{
    flockfile(out);
    if (prefix != NULL)
        fprintf(out, "%sid %" PRIu32 ", %" PRIu32 " bytes: ", prefix, f->id,
                f->len);
    print_escaped(out, f->data, f->len, false);
    fputc('\n', out);
    fflush(out);
    funlockfile(out);
}

/* ------------------------------------------------------------------ */
/* The command line                                                   */
/* ------------------------------------------------------------------ */

/* Print why the arguments are wrong, and the short usage; exit 2. */
static void bad_args(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void bad_args(const char *fmt, ...)
{
    va_list ap;

    fputs("zc: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%.*sRun zc --help for more.\n",
            (int)(strstr(usage_text, "\n\n") + 1 - usage_text), usage_text);
    exit(2);
}

/*
 * A whole decimal number from min to max, without the sign, space or junk
 * that strtoull() alone takes; else exit 2: "OPT 'S': want WHAT, MIN to
 * MAX".
 */
static unsigned long parse_num(const char *opt, const char *s,
                               unsigned long min, unsigned long max,
                               const char *what)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < min ||
        v > max)
        bad_args("%s '%s': want %s, %lu to %lu", opt, s, what, min, max);
    return (unsigned long)v;
}

static uint32_t parse_id(const char *opt, const char *s)
{
    return (uint32_t)parse_num(opt, s, 0, UINT32_MAX, "a MsgID");
}

/*
 * Make text, an operand of kind ZC_WORD, ZC_HEX or ZC_FILE, m's body. A
 * file ("-": standard input) is read up to a byte over a frame: too large,
 * which zc says (exit 1) once the arguments are known to be right.
 */
static void take_body(int kind, const char *text, struct zc_msg *m)
{
    size_t n = strlen(text), ok = strspn(text, "0123456789abcdefABCDEF");
    unsigned char *p;
    FILE *f;

    m->data = (const unsigned char *)text;
    m->len = n;
    if (kind == ZC_HEX) { /* two hex digits a byte */
        if (n % 2 != 0)
            bad_args("--hex '%s': an odd number of hex digits", text);
        if (ok < n)
            bad_args("--hex '%s': '%c' is not a hex digit", text, text[ok]);
        m->data = p = malloc(n / 2 + 1); /* + 1: never malloc(0) */
        if (p == NULL)
            bad_args("out of memory");
        for (m->len = 0; m->len < n / 2; m->len++)
            sscanf(text + 2 * m->len, "%2hhx", &p[m->len]);
    } else if (kind == ZC_FILE) {
        f = strcmp(text, "-") == 0 ? stdin : fopen(text, "r");
        if (f == NULL)
            bad_args("--file %s: %s", text, zn_strerror(errno));
        m->data = p = malloc(ZC_MAX_FRAME + 1);
        if (p == NULL)
            bad_args("out of memory");
        m->len = fread(p, 1, ZC_MAX_FRAME + 1, f);
        if (ferror(f))
            bad_args("--file %s: %s", text, zn_strerror(errno));
        if (f != stdin)
            fclose(f);
    }
}

/* Exit 2 unless HOST:PORT and the subcommand have been read. */
static void need_cmd(const struct zc_args *a)
{
    if (a->addr == NULL)
        bad_args("no HOST:PORT given");
    if (a->cmd == NULL)
        bad_args("no subcommand given (send, watch, ping or raw)");
}

/*
 * Take the next operand, a word (ZC_WORD) or a body (ZC_HEX, ZC_FILE), in
 * its place: HOST:PORT, the subcommand, then what the subcommand's row
 * says, ID BODY pairs or one BODY.
 */
static void operand(struct zc_args *a, int kind, const char *text)
{
    struct zc_msg *last = a->nmsgs > 0 ? &a->msgs[a->nmsgs - 1] : NULL;

    if (kind == ZC_WORD && a->addr == NULL) {
        a->addr = text;
    } else if (kind == ZC_WORD && a->cmd == NULL) {
        for (a->cmd = zc_cmds; a->cmd->name != NULL; a->cmd++)
            if (strcmp(a->cmd->name, text) == 0)
                return;
        bad_args("unknown subcommand '%s' (send, watch, ping or raw)", text);
    } else if (a->cmd == NULL) { /* a body */
        need_cmd(a);
    } else if (!a->cmd->pairs) {
        if (last != NULL)
            bad_args("%s: one BODY only ('%s' is one too many)", a->cmd->name,
                     text);
        take_body(kind, text, &a->msgs[a->nmsgs++]);
    } else if (last != NULL && last->data == NULL) { /* the ID's BODY */
        take_body(kind, text, last);
    } else if (kind == ZC_WORD) { /* an ID */
        a->msgs[a->nmsgs++].id = parse_id("ID", text);
    } else {
        bad_args("%s: a body (--%s) without an ID before it", a->cmd->name,
                 kind == ZC_HEX ? "hex" : "file");
    }
}

/* Parse argv into a; exit 2 on any mistake, and 0 after the usage for -h. */
static void parse_args(int argc, char **argv, struct zc_args *a)
{
    bool ping_opt = false; /* -n, -c or -i given */
    const char *colon;
    struct zc_msg *last;
    uint16_t port;
    char *end;
    int c;

    *a = (struct zc_args){.reply = -1, .count = ZC_PING_COUNT, .conns = 1};
    a->msgs = calloc((size_t)argc, sizeof(*a->msgs));
    if (a->msgs == NULL)
        bad_args("out of memory");
    /* at: the word getopt_long() reads, for the messages */
    for (int at = optind;
         (c = getopt_long(argc, argv, zc_optstring, zc_options, NULL)) != -1;
         at = optind) {
        ping_opt |= c == 'n' || c == 'c' || c == 'i';
        switch (c) {
        case ZC_WORD:
        case ZC_HEX:
        case ZC_FILE:
            operand(a, c, optarg);
            break;
        case 't':
            a->timeout = strtod(optarg, &end);
            if (end == optarg || *end != '\0' ||
                !(a->timeout > 0 && a->timeout <= ZC_MAX_SECONDS))
                bad_args("--timeout '%s': want seconds, more than 0 and at "
                         "most %g",
                         optarg, ZC_MAX_SECONDS);
            break;
        case 'r':
            a->reply = parse_id("--reply", optarg);
            break;
        case 'i':
            a->ping_id = parse_id("--id", optarg);
            break;
        case 'n':
            a->count =
                parse_num("-n", optarg, 1, ZC_MAX_PING_COUNT, "round trips");
            break;
        case 'c':
            a->conns = parse_num("-c", optarg, 1, ZC_MAX_CONNS, "connections");
            break;
        case 'v':
            a->verbose = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            exit(0);
        case ':':
            bad_args("%s needs a value", argv[at]);
        default: /* '?': not an option of zc's, or --verbose=X */
            if (argv[at][1] != '-')
                bad_args("unknown option '-%c'", optopt);
            if (optopt != 0)
                bad_args("%.*s takes no value", (int)strcspn(argv[at], "="),
                         argv[at]);
            bad_args("unknown option '%s'", argv[at]);
        }
    }
    while (optind < argc) /* the words after "--" */
        operand(a, ZC_WORD, argv[optind++]);

    need_cmd(a);
    last = a->nmsgs > 0 ? &a->msgs[a->nmsgs - 1] : NULL;
    if (last != NULL && last->data == NULL)
        bad_args("%s: ID %" PRIu32 " has no body (TEXT, --hex or --file)",
                 a->cmd->name, last->id);
    if (a->nmsgs == 0 && a->cmd->body != NULL) /* ping's default body */
        take_body(ZC_WORD, a->cmd->body, &a->msgs[a->nmsgs++]);
    if (a->nmsgs < a->cmd->min)
        bad_args("%s: no %s given", a->cmd->name,
                 a->cmd->pairs ? "ID and BODY" : "BODY");
    if (ping_opt && !(a->cmd->opts & ZC_OPT_PING))
        bad_args("-n, -c and -i are for ping only");
    if (a->reply >= 0 && !(a->cmd->opts & ZC_OPT_REPLY))
        bad_args("--reply is for send and ping only");
    colon = strrchr(a->addr, ':'); /* the host is looked up on connecting */
    if (colon == NULL || colon == a->addr ||
        zn_addr_parse_port(colon + 1, &port) < 0 || port == 0)
        bad_args("bad address '%s': want HOST:PORT, e.g. 127.0.0.1:8999",
                 a->addr);
    if (!a->cmd->pairs)
        a->msgs[0].id = a->ping_id;
}

/* ------------------------------------------------------------------ */
/* Talking to the server                                              */
/* ------------------------------------------------------------------ */

/*
 * Say on stderr why an exchange failed (err, a negative errno), on one
 * line: "zc: connection refused (127.0.0.1:1)", "zc: conn 2: timed out
 * after 2 s waiting for id 0" (conn: ping's connection, or -1), ...
 */
static void report(const struct zc_args *a, int conn, int err, bool connecting,
                   uint32_t reply_id)
{
    double sec = a->timeout > 0 ? a->timeout : ZC_TIMEOUT;

    flockfile(stderr); /* ping's threads may report at once */
    fputs("zc: ", stderr);
    if (conn >= 0)
        fprintf(stderr, "conn %d: ", conn);
    if (err == -ECONNREFUSED)
        fprintf(stderr, "connection refused (%s)\n", a->addr);
    else if (err == -ETIMEDOUT && connecting)
        fprintf(stderr, "timed out after %g s connecting to %s\n", sec,
                a->addr);
    else if (err == -ETIMEDOUT)
        fprintf(stderr, "timed out after %g s waiting for id %" PRIu32 "\n",
                sec, reply_id);
    else if (err == -EINVAL && connecting) /* from getaddrinfo() */
        fprintf(stderr, "cannot connect: no such host (%s)\n", a->addr);
    else if (err == -ECONNRESET)
        fprintf(stderr, "connection lost: closed or reset by the server (%s)\n",
                a->addr);
    else if (err == -EPROTO)
        fprintf(stderr,
                "connection lost: the server sent a frame larger than %d "
                "bytes\n",
                ZC_MAX_FRAME);
    else
        fprintf(stderr, "%s: %s (%s)\n",
                connecting ? "cannot connect" : "connection lost",
                zn_strerror(-err), a->addr);
    funlockfile(stderr);
}

/*
 * A client with the options o, the timeout and the frame limit, connected
 * (so that a timeout there is not taken for a reply's), or NULL once the
 * reason is printed.
 */
static struct zn_client *open_client(const struct zc_args *a,
                                     struct zn_client_options o)
{
    struct zn_client *c;
    int rc;

    o.connect_timeout_ms = timeout_ms(a);
    o.max_frame = ZC_MAX_FRAME;
    c = zn_client_new(a->addr, &o);
    rc = c == NULL ? -errno : zn_client_connect(c);
    if (rc < 0) {
        report(a, -1, rc, true, 0);
        zn_client_free(c);
        return NULL;
    }
    return c;
}

/*
 * Send m on c and wait for its reply, the next frame with --reply's id or
 * m's. Returns 0 with the reply (the caller's to free) and the time it
 * took in *ns, or the error, once reported (conn as for report()).
 */
static int request(const struct zc_args *a, struct zn_client *c, int conn,
                   const struct zc_msg *m, struct zn_frame **reply,
                   uint64_t *ns)
{
    uint32_t rid = a->reply >= 0 ? (uint32_t)a->reply : m->id;
    uint64_t t0 = now_ns();
    int rc = zn_client_request(c, m->id, m->data, (uint32_t)m->len, rid,
                               timeout_ms(a), reply);

    *ns = now_ns() - t0;
    if (rc < 0)
        report(a, conn, rc, false, rid);
    return rc;
}

/* With -v, say why watch or raw ended (no error). */
static void note_end(const struct zc_args *a, bool closed, double silence)
{
    if (a->verbose && closed)
        fputs("zc: the server closed the connection\n", stderr);
    else if (a->verbose)
        fprintf(stderr, "zc: nothing for %g s, done\n", silence);
}

/* ------------------------------------------------------------------ */
/* The subcommands                                                    */
/* ------------------------------------------------------------------ */

/* send's on_frame: a frame that is no reply (v0.9's greeting, ...). */
static void note_frame(const struct zn_frame *f, void *arg)
{
    const struct zc_args *a = arg;

    if (a->verbose)
        print_frame(stderr, "zc: not a reply: ", f);
}

/* One connection, each message in turn, each reply's body on a line. */
static int cmd_send(const struct zc_args *a)
{
    struct zn_client *c =
        open_client(a, (struct zn_client_options){.on_frame = note_frame,
                                                  .arg = (void *)a});
    struct zn_frame *reply;
    uint64_t ns;
    int status = c == NULL;

    for (size_t i = 0; c != NULL && i < a->nmsgs; i++) {
        const struct zc_msg *m = &a->msgs[i];

        if (request(a, c, -1, m, &reply, &ns) < 0) {
            status = 1;
            break;
        }
        if (a->verbose)
            fprintf(stderr,
                    "zc: id %" PRIu32 ", %zu bytes -> id %" PRIu32 ", %" PRIu32
                    " bytes in %.0f us\n",
                    m->id, m->len, reply->id, reply->len, (double)ns / 1e3);
        print_frame(stdout, NULL, reply);
        free(reply);
    }
    zn_client_free(c);
    return status;
}

/*
 * Send the messages, if any, then print every frame as it comes. No
 * waiter ever stands in line here, so every frame, replies included, goes
 * to the queue that zn_client_recv() takes from.
 */
static int cmd_watch(const struct zc_args *a)
{
    struct zn_client *c = open_client(
        a, (struct zn_client_options){.max_queued = ZC_WATCH_QUEUE});
    int silence = a->timeout > 0 ? to_ms(a->timeout) : -1;
    struct zn_frame *f;
    unsigned long dropped;
    int rc = 0;

    if (c == NULL)
        return 1;
    for (size_t i = 0; i < a->nmsgs && rc == 0; i++)
        rc = zn_client_send(c, a->msgs[i].id, a->msgs[i].data,
                            (uint32_t)a->msgs[i].len);
    if (rc == 0) {
        while ((rc = zn_client_recv(c, silence, &f)) == 0) {
            print_frame(stdout, "", f);
            free(f);
        }
        if (rc == -ETIMEDOUT || rc == -ECONNRESET) { /* silence, or closed */
            note_end(a, rc == -ECONNRESET, a->timeout);
            rc = 0;
        }
    }
    if (rc < 0)
        report(a, -1, rc, false, 0);
    dropped = zn_client_dropped(c);
    if (dropped > 0)
        fprintf(stderr, "zc: %lu frames dropped: zc fell %d frames behind\n",
                dropped, ZC_WATCH_QUEUE);
    zn_client_free(c);
    return rc < 0;
}

/* One connection of a ping, run by its own thread. */
struct zc_pinger {
    const struct zc_args *a;
    struct zn_client *c; /* this connection's own client */
    int idx; /* 0, 1, ... for messages */
    unsigned long share; /* round trips to make */
    uint64_t *lat; /* share slots: the latency of each, in ns */
    unsigned long done; /* round trips made, the first done of lat */
    pthread_t thread;
};

/* Make one connection's round trips, up to its first error. */
static void *pinger_main(void *arg)
{
    struct zc_pinger *p = arg;
    struct zn_frame *reply;

    while (p->done < p->share && request(p->a, p->c, p->idx, &p->a->msgs[0],
                                         &reply, &p->lat[p->done]) == 0) {
        p->done++;
        free(reply);
    }
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

    return a < b ? -1 : a > b;
}

/* The pct-th percentile of n sorted values in us, nearest rank. */
static double pct_us(const uint64_t *v, unsigned long n, unsigned pct)
{
    unsigned long rank =
        (unsigned long)(((unsigned long long)pct * n + 99) / 100);

    return (double)v[rank > 0 ? rank - 1 : 0] / 1e3;
}

/*
 * Connect every client first (a handshake is not a round trip), then
 * start one thread per connection, each making its share of the round
 * trips, and merge what they measured.
 */
static int cmd_ping(const struct zc_args *a)
{
    unsigned long n = a->count, conns = a->conns < n ? a->conns : n;
    struct zc_pinger *ps = calloc(conns, sizeof(*ps));
    uint64_t *lat = malloc(n * sizeof(*lat));
    unsigned long i, started = 0, done = 0, errors, from = 0;
    uint64_t t0;
    double sec;
    int rc = 0;

    if (ps == NULL || lat == NULL) {
        fprintf(stderr, "zc: out of memory\n");
        goto out;
    }
    for (i = 0; i < conns; i++) {
        ps[i] = (struct zc_pinger){.a = a, .idx = (int)i, .lat = lat + from};
        ps[i].share = n / conns + (i < n % conns);
        from += ps[i].share;
        ps[i].c = open_client(a, (struct zn_client_options){0});
        if (ps[i].c == NULL)
            goto out;
    }
    t0 = now_ns();
    while (started < conns &&
           (rc = pthread_create(&ps[started].thread, NULL, pinger_main,
                                &ps[started])) == 0)
        started++;
    if (rc != 0)
        fprintf(stderr, "zc: cannot start a thread: %s\n", zn_strerror(rc));
    errors = started < conns; /* the threads not started: one error */
    for (i = 0; i < started; i++)
        pthread_join(ps[i].thread, NULL);
    sec = (double)(now_ns() - t0) / 1e9;
    for (i = 0; i < started; i++) { /* the latencies measured, together */
        memmove(lat + done, ps[i].lat, ps[i].done * sizeof(*lat));
        done += ps[i].done;
        errors += ps[i].done < ps[i].share;
    }
    qsort(lat, done, sizeof(*lat), cmp_u64);
    printf("%lu of %lu round trips, %lu errors, %lu connections, %.3f s\n",
           done, n, errors, conns, sec);
    if (done > 0)
        printf("rate: %.0f round trips/s\n"
               "latency (us): min %.0f, p50 %.0f, p99 %.0f, max %.0f\n",
               (double)done / sec, pct_us(lat, done, 0), pct_us(lat, done, 50),
               pct_us(lat, done, 99), pct_us(lat, done, 100));
out:
    for (i = 0; ps != NULL && i < conns; i++)
        zn_client_free(ps[i].c);
    free(ps);
    free(lat);
    return done < n;
}

/*
 * No framing, no library: a plain socket, the body's bytes written as they
 * are, and whatever comes back printed until the server closes or is
 * silent for the timeout (0.5 s unless --timeout says otherwise).
 */
static int cmd_raw(const struct zc_args *a)
{
    double silence = a->timeout > 0 ? a->timeout : ZC_RAW_SILENCE;
    int fd = zn_addr_dial_timeout(a->addr, timeout_ms(a)), n = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    unsigned char buf[4096];
    bool line_open = false; /* printed bytes not ended by a '\n' */
    ssize_t got;

    if (fd < 0) {
        report(a, -1, fd, true, 0);
        return 1;
    }
    got = zn_writen(fd, a->msgs[0].data, a->msgs[0].len);
    while (got >= 0 && (n = poll(&pfd, 1, to_ms(silence))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        got = n < 0 ? -1 : zn_read(fd, buf, sizeof(buf));
        if (got <= 0) /* closed, or an error */
            break;
        print_escaped(stdout, buf, (size_t)got, true);
        line_open = buf[got - 1] != '\n';
        fflush(stdout);
    }
    if (got < 0)
        report(a, -1, -errno, false, 0);
    else
        note_end(a, n > 0, silence); /* n == 0: silence */
    if (line_open)
        putchar('\n');
    close(fd);
    return got < 0;
}

/*
 * The arguments are static, so that what parse_args() allocated is still
 * reachable when it exits: LeakSanitizer then reports no leak.
 */
int main(int argc, char **argv)
{
    static struct zc_args a;

    parse_args(argc, argv, &a);
    for (size_t i = 0; i < a.nmsgs; i++) {
        if (a.msgs[i].len > ZC_MAX_FRAME) {
            fprintf(stderr, "zc: a body larger than %d bytes cannot be sent\n",
                    ZC_MAX_FRAME);
            return 1;
        }
    }
    return a.cmd->run(&a);
}
