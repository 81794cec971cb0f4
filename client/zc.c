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
 * `zc --help` prints the whole usage (each command's line from zc_cmds,
 * then usage_text). Every message of one zc command goes over one
 * connection, so a v1.0 property set by one `send` is there for the next
 * message of the same command, not for the next command.
 *
 * The reply to a message is the next frame with the reply id (--reply,
 * by default the id sent): the library hands every other frame, such as
 * the greeting of v0.9 on (id 2, sent on connect), to a callback that
 * prints it on stderr with -v and otherwise ignores it. `watch` takes
 * every frame instead, from the library's queue of unsolicited frames
 * (zn_client_recv()). `raw` does not use the library: v0.1-v0.4 have no
 * framing, so it writes the bytes on a plain socket and prints what comes
 * back until the server closes or stays silent for --timeout seconds.
 *
 * Bodies are printed escaped, as zinc's servers log client bytes: bytes
 * outside ' '..'~' as \xHH and a backslash as \\ (zn_log_escape()), so a
 * body with a NUL or an escape sequence cannot garble the terminal and a
 * printed line is always exactly one frame.
 *
 * Exit status: 0 success, 1 a failed exchange (refused, timed out,
 * connection lost, a frame over the size limit), 2 bad arguments.
 *
 * Each subcommand is a row of one table, zc_cmds: the function that runs
 * it, the options it takes besides -t and -v, whether its operands are
 * ID BODY pairs or one BODY, and its line of the usage. The subcommand is
 * looked up there once; the rest reads the row.
 *
 * The arguments are read by getopt_long() with a '-' at the head of the
 * optstring, a GNU extension: every operand then comes back in its place,
 * as the option 1, rather than ending the options (POSIX) or being moved
 * behind them (GNU's default). So options go anywhere (`send 0 hi --reply
 * 1`), and a body (TEXT, --hex HEX or --file F) stays behind the ID it
 * belongs to. `--` ends the options: what follows are operands, even when
 * they start with '-'. What getopt_long() would guess at (--time for
 * --timeout, -vt 2 for -v -t 2) zc refuses, as it always has
 * (find_option()).
 */
#include "zn_client.h"

#include "zn_addr.h"
#include "zn_io.h"
#include "zn_log.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* The usage after the commands' lines (zc_cmds[].usage). */
static const char usage_text[] =
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

/* One message to send: its MsgID (not for ping and raw) and body. */
struct zc_msg {
    uint32_t id; /* MsgID */
    unsigned char *data; /* the body, malloc()ed */
    size_t len; /* bytes of data */
};

/*
 * A word of the command line that is no option, or the value of --hex or
 * --file, which stand for a body: kind is what getopt_long() returns for
 * it (1 for a word, by the '-' at the head of the optstring).
 */
enum zc_item_kind { ZC_WORD = 1, ZC_HEX = 256, ZC_FILE };

struct zc_item {
    enum zc_item_kind kind;
    const char *text; /* the word, or --hex's or --file's value */
};

/* The command line, parsed. */
struct zc_args {
    const char *addr; /* HOST:PORT as given, for messages */
    const struct zc_cmd *cmd; /* the subcommand's row of zc_cmds */
    double timeout; /* -t: seconds, or -1 when not given */
    bool verbose; /* -v */
    bool has_reply; /* -r given */
    uint32_t reply; /* -r: the reply id */
    uint32_t ping_id; /* -i: ping's MsgID */
    unsigned long count; /* -n: ping's round trips */
    unsigned long conns; /* -c: ping's connections */
    struct zc_msg *msgs; /* the messages, in order */
    size_t nmsgs; /* how many */
    /* The words while parsing: kept here, where exit(2) still reaches them
     * (main's frame), so that LeakSanitizer does not report them. */
    struct zc_item *items;
};

/* The options that not every subcommand takes, as bits of zc_cmd.opts. */
enum {
    ZC_OPT_REPLY = 1, /* -r */
    ZC_OPT_PING = 2, /* -n, -c and -i */
};

/* A subcommand: one row of zc_cmds. */
struct zc_cmd {
    const char *name; /* the word on the command line */
    int (*run)(const struct zc_args *a); /* does it; the exit status */
    unsigned opts; /* ZC_OPT_ bits: the options it takes besides -t, -v */
    bool pairs; /* operands: ID BODY pairs (else one BODY, no ID) */
    unsigned min; /* messages it needs at least: 0 or 1 */
    const char *body; /* the BODY when none is given, or NULL */
    const char *usage; /* its line of the usage, after HOST:PORT */
};

static int cmd_send(const struct zc_args *a);
static int cmd_watch(const struct zc_args *a);
static int cmd_ping(const struct zc_args *a);
static int cmd_raw(const struct zc_args *a);

static const struct zc_cmd zc_cmds[] = {
    /* name, run, opts, pairs, min, body, usage */
    {"send", cmd_send, ZC_OPT_REPLY, true, 1, NULL,
     "send ID BODY [ID BODY]..."},
    {"watch", cmd_watch, 0, true, 0, NULL, "watch [ID BODY]..."},
    {"ping", cmd_ping, ZC_OPT_REPLY | ZC_OPT_PING, false, 0, "ping",
     "ping [-n N] [-c CONNS] [-i ID] [BODY]"},
    {"raw", cmd_raw, 0, false, 1, NULL, "raw BODY"},
    {NULL, NULL, 0, false, 0, NULL, NULL},
};

/*
 * Every option but -h, which wants_help() looks for first. After the '-',
 * a ':' makes getopt_long() return ':' for a missing value and print
 * nothing: zc says what is wrong itself.
 */
static const char zc_optstring[] = "-:t:r:i:n:c:v";

static const struct option zc_options[] = {
    {"timeout", required_argument, NULL, 't'},
    {"reply", required_argument, NULL, 'r'},
    {"id", required_argument, NULL, 'i'},
    {"count", required_argument, NULL, 'n'},
    {"conns", required_argument, NULL, 'c'},
    {"verbose", no_argument, NULL, 'v'},
    {"hex", required_argument, NULL, ZC_HEX},
    {"file", required_argument, NULL, ZC_FILE},
    {NULL, 0, NULL, 0},
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */
/* ------------------------------------------------------------------ */

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

/*
 * Print len bytes escaped (zn_log_escape()), a piece at a time so that no
 * buffer grows with the body. With keep_newlines a '\n' is printed as a
 * line break rather than \x0a (raw's text of v0.3's three lines).
 */
static void print_escaped(FILE *out, const unsigned char *p, size_t len,
                          bool keep_newlines)
{
    char buf[4 * 256 + 1]; /* \xHH for each of 256 bytes, and the NUL */

    while (len > 0) {
        size_t n = len < 256 ? len : 256;
        const unsigned char *nl = keep_newlines ? memchr(p, '\n', n) : NULL;

        if (nl != NULL)
            n = (size_t)(nl - p);
        fputs(zn_log_escape(p, n, buf, sizeof(buf)), out);
        if (nl != NULL) {
            fputc('\n', out);
            n++;
        }
        p += n;
        len -= n;
    }
}

/* The usage's first lines, one for each subcommand. */
static void print_synopsis(FILE *out)
{
    for (const struct zc_cmd *c = zc_cmds; c->name != NULL; c++)
        fprintf(out, "%s zc [options] HOST:PORT %s\n",
                c == zc_cmds ? "usage:" : "      ", c->usage);
}

/* ------------------------------------------------------------------ */
/* Parsing the command line                                           */
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
    fputc('\n', stderr);
    print_synopsis(stderr);
    fputs("Run zc --help for more.\n", stderr);
    exit(2);
}

/*
 * A whole decimal number in [min, max]: digits only, since strtoul()
 * alone takes " 5", "-1" (as a huge number) and "5x".
 */
static bool parse_ulong(const char *s, unsigned long min, unsigned long max,
                        unsigned long *out)
{
    unsigned long long v = 0;

    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long long)(*s - '0');
        if (v > max)
            return false;
    }
    if (v < min)
        return false;
    *out = (unsigned long)v;
    return true;
}

static uint32_t parse_id(const char *s, const char *what)
{
    unsigned long v;

    if (!parse_ulong(s, 0, UINT32_MAX, &v))
        bad_args("%s '%s': want a MsgID, 0 to 4294967295", what, s);
    return (uint32_t)v;
}

/* Seconds, fractions allowed, more than 0 and at most a day. */
static double parse_seconds(const char *s)
{
    char *end = NULL;
    double v = -1;

    /* strtod() would take a sign, "inf", "nan" and hex: refuse them. */
    if (((*s >= '0' && *s <= '9') || *s == '.') && strpbrk(s, "xX") == NULL)
        v = strtod(s, &end);
    if (end == NULL || *end != '\0' || !(v > 0 && v <= ZC_MAX_SECONDS))
        bad_args("--timeout '%s': want seconds, more than 0 and at most "
                 "86400",
                 s);
    return v;
}

/* The body --hex HEX names: two hex digits a byte, nothing else. */
static void parse_hex(const char *s, struct zc_msg *m)
{
    size_t n = strlen(s), ok = strspn(s, "0123456789abcdefABCDEF");

    if (n % 2 != 0)
        bad_args("--hex '%s': an odd number of hex digits", s);
    if (ok < n)
        bad_args("--hex '%s': '%c' is not a hex digit", s, s[ok]);
    m->len = n / 2;
    m->data = malloc(m->len + 1); /* + 1: never malloc(0) */
    if (m->data == NULL)
        bad_args("out of memory");
    for (size_t i = 0; i < m->len; i++)
        sscanf(s + 2 * i, "%2hhx", &m->data[i]);
}

/*
 * The body --file F names ("-": standard input, which a command line may
 * name once). A file larger than a frame may be is read only that far:
 * the exchange fails with exit 1 (too large), after the arguments are
 * known to be right.
 */
static void read_body_file(const char *path, struct zc_msg *m)
{
    static bool stdin_used;
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "r");

    if (is_stdin && stdin_used)
        bad_args("--file - reads standard input, once only");
    stdin_used |= is_stdin;
    if (f == NULL)
        bad_args("--file %s: %s", path, zn_strerror(errno));
    m->data = malloc((size_t)ZC_MAX_FRAME + 1);
    if (m->data == NULL)
        bad_args("out of memory");
    m->len = fread(m->data, 1, (size_t)ZC_MAX_FRAME + 1, f);
    if (ferror(f))
        bad_args("--file %s: %s", path, zn_strerror(errno));
    if (!is_stdin)
        fclose(f);
}

/* Turn a body item into m's body. */
static void take_body(const struct zc_item *it, struct zc_msg *m)
{
    if (it->kind == ZC_HEX) {
        parse_hex(it->text, m);
    } else if (it->kind == ZC_FILE) {
        read_body_file(it->text, m);
    } else {
        m->len = strlen(it->text);
        m->data = (unsigned char *)strdup(it->text);
        if (m->data == NULL)
            bad_args("out of memory");
    }
}

/*
 * HOST:PORT that can be dialled: a port from 1 to 65535 and a host that
 * resolves, checked now so that a typo is an argument error (exit 2)
 * rather than a failed exchange.
 */
static void check_addr(const char *addr)
{
    struct addrinfo hints = {0}, *res;
    const char *colon = strrchr(addr, ':');
    char host[ZN_ADDR_STRLEN];
    size_t hlen = colon != NULL ? (size_t)(colon - addr) : 0;
    uint16_t port;
    int rc;

    if (colon == NULL || zn_addr_parse_port(colon + 1, &port) < 0 ||
        port == 0 || hlen == 0 || hlen >= sizeof(host))
        bad_args("bad address '%s': want HOST:PORT, e.g. 127.0.0.1:8999", addr);
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        addr++; /* "[::1]:8999" */
        hlen -= 2;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0)
        bad_args("bad address '%s': %s", host, gai_strerror(rc));
    freeaddrinfo(res);
}

/*
 * The option that the word w ("-t", "-t5", "--timeout", "--timeout=5")
 * names in full, or NULL; *end is where its name ends in w. getopt_long()
 * also takes a long name cut short (--time) and short options run
 * together (-vt5); zc never has, so that a typo is an error, not a guess.
 */
static const struct option *find_option(const char *w, int *end)
{
    bool is_long = w[1] == '-';
    size_t len = is_long ? strcspn(w + 2, "=") : 1;

    *end = is_long ? 2 + (int)len : 2;
    for (const struct option *o = zc_options; o->name != NULL; o++) {
        if (!is_long && o->val == w[1])
            return o;
        if (is_long && strncmp(w + 2, o->name, len) == 0 &&
            o->name[len] == '\0')
            return o;
    }
    return NULL;
}

/*
 * -h anywhere before "--" (and not as an option's value) asks for the
 * usage, whatever else the line holds: this pass comes before
 * getopt_long()'s, which stops at the first mistake.
 */
static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const struct option *o = NULL;
        int end;

        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            o = find_option(argv[i], &end);
        if (o != NULL && o->has_arg && argv[i][end] == '\0')
            i++; /* its value is the next word */
    }
    return false;
}

/*
 * Exit 2 unless w, the word getopt_long() took an option from (returning
 * c, or ':' for a missing value), is an option zc takes, as zc spells it.
 */
static void check_option(const char *w, int c)
{
    int end;
    const struct option *o = find_option(w, &end);

    if (o == NULL)
        bad_args("unknown option '%s'", w);
    if (!o->has_arg && w[end] != '\0')
        bad_args("%.*s takes no value", end, w);
    if (c == ':')
        bad_args("%s needs a value", w);
}

/*
 * Read the options into a, and the words that are not options (and --hex
 * and --file, which stand for a body) into a->items, in order; returns
 * how many items. *given gets the ZC_OPT_ bit of each option given.
 */
static size_t read_options(int argc, char **argv, struct zc_args *a,
                           unsigned *given)
{
    size_t n = 0;
    int c, at = optind; /* the word getopt_long() reads next */

    while ((c = getopt_long(argc, argv, zc_optstring, zc_options, NULL)) !=
           -1) {
        if (c != ZC_WORD)
            check_option(argv[at], c);
        switch (c) {
        case ZC_WORD:
        case ZC_HEX:
        case ZC_FILE:
            a->items[n++] = (struct zc_item){(enum zc_item_kind)c, optarg};
            break;
        case 't':
            a->timeout = parse_seconds(optarg);
            break;
        case 'r':
            a->reply = parse_id(optarg, "--reply");
            a->has_reply = true;
            *given |= ZC_OPT_REPLY;
            break;
        case 'i':
            a->ping_id = parse_id(optarg, "--id");
            *given |= ZC_OPT_PING;
            break;
        case 'n':
            if (!parse_ulong(optarg, 1, ZC_MAX_PING_COUNT, &a->count))
                bad_args("-n '%s': want 1 to %d round trips", optarg,
                         ZC_MAX_PING_COUNT);
            *given |= ZC_OPT_PING;
            break;
        case 'c':
            if (!parse_ulong(optarg, 1, ZC_MAX_CONNS, &a->conns))
                bad_args("-c '%s': want 1 to %d connections", optarg,
                         ZC_MAX_CONNS);
            *given |= ZC_OPT_PING;
            break;
        case 'v':
            a->verbose = true;
            break;
        }
        at = optind;
    }
    while (optind < argc) /* the words after "--" */
        a->items[n++] = (struct zc_item){ZC_WORD, argv[optind++]};
    return n;
}

/*
 * Parse argv into a: every option first, so that a wrong one is reported
 * before any word; then the address, the subcommand (its row of zc_cmds)
 * and the subcommand's words. Exits 2 on any mistake.
 */
static void parse_args(int argc, char **argv, struct zc_args *a)
{
    const struct zc_cmd *cmd = zc_cmds;
    struct zc_item *items = calloc((size_t)argc, sizeof(*items));
    unsigned given = 0; /* ZC_OPT_ bits of the options given */
    size_t n, k;

    *a = (struct zc_args){
        .timeout = -1, .count = ZC_PING_COUNT, .conns = 1, .items = items};
    if (items == NULL)
        bad_args("out of memory");
    n = read_options(argc, argv, a, &given);
    if (n == 0 || items[0].kind != ZC_WORD)
        bad_args("no HOST:PORT given");
    if (n == 1 || items[1].kind != ZC_WORD)
        bad_args("no subcommand given (send, watch, ping or raw)");
    a->addr = items[0].text;
    while (cmd->name != NULL && strcmp(cmd->name, items[1].text) != 0)
        cmd++;
    if (cmd->name == NULL)
        bad_args("unknown subcommand '%s' (send, watch, ping or raw)",
                 items[1].text);
    a->cmd = cmd;
    if (given & ~cmd->opts & ZC_OPT_PING)
        bad_args("-n, -c and -i are for ping only");
    if (given & ~cmd->opts & ZC_OPT_REPLY)
        bad_args("--reply is for send and ping only");
    check_addr(a->addr);

    a->msgs = calloc((size_t)argc, sizeof(*a->msgs));
    if (a->msgs == NULL)
        bad_args("out of memory");
    if (!cmd->pairs && n > 3)
        bad_args("%s: one BODY only ('%s' is one too many)", cmd->name,
                 items[3].text);
    if (n == 2 && cmd->body != NULL) /* ping's default body */
        items[n++] = (struct zc_item){ZC_WORD, cmd->body};
    for (k = 2; k < n; k++) {
        struct zc_msg *m = &a->msgs[a->nmsgs++];

        m->id = a->ping_id; /* ping and raw: no ID on the line */
        if (cmd->pairs) { /* ID BODY */
            if (items[k].kind != ZC_WORD)
                bad_args("%s: a body (--%s) without an ID before it", cmd->name,
                         items[k].kind == ZC_HEX ? "hex" : "file");
            m->id = parse_id(items[k].text, "ID");
            if (++k == n)
                bad_args("%s: ID %s has no body (TEXT, --hex or --file)",
                         cmd->name, items[k - 1].text);
        }
        take_body(&items[k], m);
    }
    if (a->nmsgs < cmd->min)
        bad_args("%s: no %s given", cmd->name,
                 cmd->pairs ? "ID and BODY" : "BODY");
    free(items);
    a->items = NULL;
}

static void free_args(struct zc_args *a)
{
    for (size_t i = 0; i < a->nmsgs; i++)
        free(a->msgs[i].data);
    free(a->msgs);
}

/* ------------------------------------------------------------------ */
/* Errors in words                                                    */
/* ------------------------------------------------------------------ */

/* When an error happened: how to say it depends on it. */
enum zc_phase {
    ZC_CONNECTING, /* while connecting */
    ZC_WAITING, /* after: sending, or waiting for a reply or a frame */
};

/*
 * Write why an exchange failed (err, a negative errno from the library)
 * into buf, without the "zc: " in front: "connection refused
 * (127.0.0.1:1)", "timed out after 2 s waiting for id 1", ...
 */
static void describe(const struct zc_args *a, int err, enum zc_phase phase,
                     uint32_t reply_id, char *buf, size_t size)
{
    double sec = a->timeout > 0 ? a->timeout : ZC_TIMEOUT;

    switch (-err) {
    case ECONNREFUSED:
        snprintf(buf, size, "connection refused (%s)", a->addr);
        break;
    case ETIMEDOUT:
        if (phase == ZC_CONNECTING)
            snprintf(buf, size, "timed out after %g s connecting to %s", sec,
                     a->addr);
        else
            snprintf(buf, size, "timed out after %g s waiting for id %" PRIu32,
                     sec, reply_id);
        break;
    case ECONNRESET:
        snprintf(buf, size,
                 "connection lost: closed or reset by the server (%s)",
                 a->addr);
        break;
    case EPROTO:
        snprintf(buf, size,
                 "connection lost: the server sent a frame larger than %d "
                 "bytes",
                 ZC_MAX_FRAME);
        break;
    case EMSGSIZE:
        snprintf(buf, size, "a body larger than %d bytes cannot be sent",
                 ZC_MAX_FRAME);
        break;
    default:
        snprintf(buf, size, "%s%s (%s)",
                 phase == ZC_CONNECTING ? "cannot connect: "
                                        : "connection lost: ",
                 zn_strerror(-err), a->addr);
    }
}

static void report(const struct zc_args *a, int err, enum zc_phase phase,
                   uint32_t reply_id)
{
    char msg[256];

    describe(a, err, phase, reply_id, msg, sizeof(msg));
    fprintf(stderr, "zc: %s\n", msg);
}

/* A body over the frame limit fails before any connection (exit 1). */
static bool bodies_fit(const struct zc_args *a)
{
    for (size_t i = 0; i < a->nmsgs; i++) {
        if (a->msgs[i].len > ZC_MAX_FRAME) {
            report(a, -EMSGSIZE, ZC_WAITING, 0);
            return false;
        }
    }
    return true;
}

/* The --timeout for connecting and replies, in ms. */
static int timeout_ms(const struct zc_args *a)
{
    return to_ms(a->timeout > 0 ? a->timeout : ZC_TIMEOUT);
}

/* ------------------------------------------------------------------ */
/* send                                                               */
/* ------------------------------------------------------------------ */

/*
 * The library's on_frame callback: a frame that is no reply (v0.9's
 * greeting, or one with an id nobody waits for). On the reader thread;
 * stderr's lock keeps the line whole.
 */
static void note_frame(const struct zn_frame *f, void *arg)
{
    const struct zc_args *a = arg;

    if (!a->verbose)
        return;
    flockfile(stderr);
    fprintf(stderr,
            "zc: not a reply: id %" PRIu32 ", %" PRIu32 " bytes: ", f->id,
            f->len);
    print_escaped(stderr, f->data, f->len, false);
    fputc('\n', stderr);
    funlockfile(stderr);
}

/*
 * A client with options o, connected: connecting first tells a timeout
 * there apart from a reply's. Returns NULL once the reason is printed.
 */
static struct zn_client *open_client(const struct zc_args *a,
                                     const struct zn_client_options *o)
{
    struct zn_client *c;
    int rc;

    if (!bodies_fit(a))
        return NULL;
    c = zn_client_new(a->addr, o);
    if (c == NULL) {
        fprintf(stderr, "zc: %s\n", zn_strerror(errno));
        return NULL;
    }
    rc = zn_client_connect(c);
    if (rc < 0) {
        report(a, rc, ZC_CONNECTING, 0);
        zn_client_free(c);
        return NULL;
    }
    return c;
}

/* One connection, each message in turn, each reply's body on a line. */
static int cmd_send(const struct zc_args *a)
{
    struct zn_client_options o = {.connect_timeout_ms = timeout_ms(a),
                                  .max_frame = ZC_MAX_FRAME,
                                  .on_frame = note_frame,
                                  .arg = (void *)a};
    struct zn_client *c;
    int rc, status = 0;

    c = open_client(a, &o);
    if (c == NULL)
        return 1;
    for (size_t i = 0; i < a->nmsgs; i++) {
        const struct zc_msg *m = &a->msgs[i];
        uint32_t rid = a->has_reply ? a->reply : m->id;
        struct zn_frame *reply;
        uint64_t t0 = now_ns();

        rc = zn_client_request(c, m->id, m->data, (uint32_t)m->len, rid,
                               timeout_ms(a), &reply);
        if (rc < 0) {
            report(a, rc, ZC_WAITING, rid);
            status = 1;
            break;
        }
        if (a->verbose)
            fprintf(stderr,
                    "zc: id %" PRIu32 ", %zu bytes -> id %" PRIu32 ", %" PRIu32
                    " bytes in %.0f us\n",
                    m->id, m->len, reply->id, reply->len,
                    (double)(now_ns() - t0) / 1e3);
        print_escaped(stdout, reply->data, reply->len, false);
        putchar('\n');
        fflush(stdout);
        free(reply);
    }
    zn_client_free(c);
    return status;
}

/* ------------------------------------------------------------------ */
/* watch                                                              */
/* ------------------------------------------------------------------ */

/* Send the messages, if any, then print every frame as it comes. */
static int cmd_watch(const struct zc_args *a)
{
    struct zn_client_options o = {.connect_timeout_ms = timeout_ms(a),
                                  .max_frame = ZC_MAX_FRAME,
                                  .max_queued = ZC_WATCH_QUEUE};
    int silence = a->timeout > 0 ? to_ms(a->timeout) : -1;
    struct zn_client *c;
    struct zn_frame *f;
    unsigned long dropped;
    int rc = 0, status = 0;

    c = open_client(a, &o);
    if (c == NULL)
        return 1;
    for (size_t i = 0; i < a->nmsgs && rc == 0; i++)
        rc = zn_client_send(c, a->msgs[i].id, a->msgs[i].data,
                            (uint32_t)a->msgs[i].len);
    if (rc < 0) {
        report(a, rc, ZC_WAITING, 0);
        zn_client_free(c);
        return 1;
    }
    /*
     * No waiter ever stands in line here, so every frame, replies
     * included, goes to the queue that zn_client_recv() takes from.
     */
    while ((rc = zn_client_recv(c, silence, &f)) == 0) {
        printf("id %" PRIu32 ", %" PRIu32 " bytes: ", f->id, f->len);
        print_escaped(stdout, f->data, f->len, false);
        putchar('\n');
        fflush(stdout); /* a watcher reads the lines as they come */
        free(f);
    }
    if (rc == -ETIMEDOUT) {
        if (a->verbose)
            fprintf(stderr, "zc: nothing for %g s, done\n", a->timeout);
    } else if (rc == -ECONNRESET) {
        if (a->verbose)
            fprintf(stderr, "zc: the server closed the connection\n");
    } else {
        report(a, rc, ZC_WAITING, 0);
        status = 1;
    }
    dropped = zn_client_dropped(c);
    if (dropped > 0)
        fprintf(stderr, "zc: %lu frames dropped: zc fell %d frames behind\n",
                dropped, ZC_WATCH_QUEUE);
    zn_client_free(c);
    return status;
}

/* ------------------------------------------------------------------ */
/* ping                                                               */
/* ------------------------------------------------------------------ */

/* One connection of a ping, run by its own thread. */
struct zc_pinger {
    const struct zc_args *a;
    struct zn_client *c; /* this connection's own client */
    unsigned idx; /* 0, 1, ... for messages */
    unsigned long share; /* round trips to make */
    uint64_t *lat; /* share slots: the latency of each, in ns */
    unsigned long done; /* round trips made, the first done of lat */
    int err; /* the error that stopped it, or 0 */
    pthread_t thread;
};

static void *pinger_main(void *arg)
{
    struct zc_pinger *p = arg;
    const struct zc_args *a = p->a;
    const struct zc_msg *m = &a->msgs[0];
    uint32_t rid = a->has_reply ? a->reply : m->id;
    struct zn_frame *reply;
    char msg[256];

    while (p->done < p->share) {
        uint64_t t0 = now_ns();
        int rc = zn_client_request(p->c, m->id, m->data, (uint32_t)m->len, rid,
                                   timeout_ms(a), &reply);

        if (rc < 0) { /* this connection stops here */
            p->err = rc;
            describe(a, rc, ZC_WAITING, rid, msg, sizeof(msg));
            fprintf(stderr, "zc: conn %u: %s\n", p->idx, msg);
            break;
        }
        p->lat[p->done++] = now_ns() - t0;
        free(reply);
    }
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

    return a < b ? -1 : a > b;
}

/* The pct-th percentile of n sorted values, nearest rank. */
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
    struct zn_client_options o = {.connect_timeout_ms = timeout_ms(a),
                                  .max_frame = ZC_MAX_FRAME};
    struct zc_pinger *ps = calloc(conns, sizeof(*ps));
    uint64_t *lat = malloc(n * sizeof(*lat));
    unsigned long i, done = 0, errors = 0, started = 0, from = 0;
    uint64_t t0, t1;
    int rc, status = 1;

    if (ps == NULL || lat == NULL) {
        fprintf(stderr, "zc: out of memory\n");
        goto out;
    }
    if (!bodies_fit(a))
        goto out;
    for (i = 0; i < conns; i++) {
        struct zc_pinger *p = &ps[i];

        *p = (struct zc_pinger){.a = a, .idx = (unsigned)i, .lat = lat + from};
        p->share = n / conns + (i < n % conns);
        from += p->share;
        p->c = zn_client_new(a->addr, &o);
        if (p->c == NULL) {
            fprintf(stderr, "zc: %s\n", zn_strerror(errno));
            goto out;
        }
        rc = zn_client_connect(p->c);
        if (rc < 0) {
            report(a, rc, ZC_CONNECTING, 0);
            goto out;
        }
    }

    t0 = now_ns();
    for (; started < conns; started++) {
        rc = pthread_create(&ps[started].thread, NULL, pinger_main,
                            &ps[started]);
        if (rc != 0) {
            fprintf(stderr, "zc: cannot start a thread: %s\n", zn_strerror(rc));
            errors++; /* the rest never run: counted as one error */
            break;
        }
    }
    for (i = 0; i < started; i++)
        pthread_join(ps[i].thread, NULL);
    t1 = now_ns();

    /* Pack the latencies that were measured together, then sort them. */
    for (i = 0; i < started; i++) {
        memmove(lat + done, ps[i].lat, ps[i].done * sizeof(*lat));
        done += ps[i].done;
        errors += ps[i].err != 0;
    }
    qsort(lat, done, sizeof(*lat), cmp_u64);
    printf("%lu of %lu round trips, %lu errors, %lu connections, %.3f s\n",
           done, n, errors, conns, (double)(t1 - t0) / 1e9);
    if (done > 0) {
        printf("rate: %.0f round trips/s\n",
               (double)done / ((double)(t1 - t0) / 1e9));
        printf("latency (us): min %.0f, p50 %.0f, p99 %.0f, max %.0f\n",
               (double)lat[0] / 1e3, pct_us(lat, done, 50),
               pct_us(lat, done, 99), (double)lat[done - 1] / 1e3);
    }
    status = errors > 0 || done < n;
out:
    for (i = 0; ps != NULL && i < conns; i++)
        zn_client_free(ps[i].c);
    free(ps);
    free(lat);
    return status;
}

/* ------------------------------------------------------------------ */
/* raw                                                                */
/* ------------------------------------------------------------------ */

/*
 * No framing, no library: a plain socket, the body's bytes written as
 * they are, and whatever comes back printed until the server closes or
 * is silent for the timeout (0.5 s unless --timeout says otherwise).
 */
static int cmd_raw(const struct zc_args *a)
{
    const struct zc_msg *m = &a->msgs[0];
    int silence = to_ms(a->timeout > 0 ? a->timeout : ZC_RAW_SILENCE);
    struct pollfd pfd = {.events = POLLIN};
    unsigned char buf[4096];
    bool line_open = false; /* printed bytes not ended by a '\n' */
    int fd, n, status = 0;
    ssize_t got;

    fd = zn_addr_dial_timeout(a->addr, timeout_ms(a));
    if (fd < 0) {
        report(a, fd, ZC_CONNECTING, 0);
        return 1;
    }
    if (m->len > 0 && zn_writen(fd, m->data, m->len) < 0) {
        report(a, -errno, ZC_WAITING, 0);
        close(fd);
        return 1;
    }
    pfd.fd = fd;
    for (;;) {
        n = poll(&pfd, 1, silence);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            if (a->verbose)
                fprintf(stderr, "zc: nothing for %g s, done\n",
                        (double)silence / 1e3);
            break;
        }
        got = n < 0 ? -1 : zn_read(fd, buf, sizeof(buf));
        if (got == 0) {
            if (a->verbose)
                fprintf(stderr, "zc: the server closed the connection\n");
            break;
        }
        if (got < 0) {
            report(a, -errno, ZC_WAITING, 0);
            status = 1;
            break;
        }
        print_escaped(stdout, buf, (size_t)got, true);
        line_open = buf[got - 1] != '\n';
        fflush(stdout);
    }
    if (line_open)
        putchar('\n');
    close(fd);
    return status;
}

int main(int argc, char **argv)
{
    struct zc_args a;
    int status;

    if (wants_help(argc, argv)) {
        print_synopsis(stdout);
        fputs(usage_text, stdout);
        return 0;
    }
    parse_args(argc, argv, &a);
    status = a.cmd->run(&a);
    free_args(&a);
    return status;
}
