#include "zn_log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define ZN_LOG_LINE_MAX 1024

static atomic_int log_level = ZN_LOG_INFO; /* threshold */
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static const char *const log_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR",
                                        "NOTE "};

static void log_read_env(void)
{
    static const char *const env_names[] = {"debug", "info", "warn", "error"};
    const char *v = getenv("ZN_LOG_LEVEL");

    /* An unset or unknown value keeps the default, info. */
    for (int i = ZN_LOG_DEBUG; v != NULL && i <= ZN_LOG_ERROR; i++) {
        if (strcasecmp(v, env_names[i]) == 0)
            atomic_store(&log_level, i);
    }
}

void zn_log_set_level(enum zn_log_level level)
{
    pthread_once(&log_once, log_read_env);
    atomic_store(&log_level, level);
}

enum zn_log_level zn_log_get_level(void)
{
    pthread_once(&log_once, log_read_env);
    return atomic_load(&log_level);
}

/*
 * Write one whole line to standard error. When the reader of a pipe has
 * gone away, write(2) fails with EPIPE and also raises SIGPIPE, whose
 * default action kills the process: a server must not die because its log
 * shipper restarted. A library should not change the process's signal
 * dispositions either, so, as PostgreSQL's libpq does, block SIGPIPE in
 * this thread for the write and take back the one the write raised.
 */
static void log_write(const char *p, size_t n)
{
    static const struct timespec no_wait = {0, 0};
    sigset_t pipe_set, pending, old;
    bool was_pending;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE); /* not ours to take */

    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            if (errno == EPIPE && !was_pending)
                sigtimedwait(&pipe_set, NULL, &no_wait);
            break; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Write byte ch as printable text into out; returns 1, 2 or 4. */
static size_t escape_byte(unsigned char ch, char out[4])
{
    static const char hex[] = "0123456789abcdef";

    if (ch == '\\') {
        out[0] = out[1] = '\\';
        return 2;
    }
    if (ch >= 0x20 && ch < 0x7f) {
        out[0] = (char)ch;
        return 1;
    }
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[ch >> 4];
    out[3] = hex[ch & 0xf];
    return 4;
}

void zn_log(enum zn_log_level level, const char *fmt, ...)
{
    char msg[ZN_LOG_LINE_MAX], line[ZN_LOG_LINE_MAX];
    struct timespec now;
    struct tm tm;
    size_t n;
    va_list ap;
    int saved = errno; /* callers may still want theirs */

    if (level < zn_log_get_level() || level > ZN_LOG_NOTICE)
        return;

    clock_gettime(CLOCK_REALTIME, &now);
    localtime_r(&now.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ld %s ",
                          now.tv_nsec / 1000000, log_names[level]);

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); /* cut when too long */
    va_end(ap);

    /* Copy the message with control characters as \xHH: one call, one
     * line. Keep room for the newline. */
    for (const char *p = msg; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        bool control = ch < 0x20 || ch == 0x7f;

        if (n + (control ? 4 : 1) > sizeof(line) - 2)
            break;
        if (control)
            n += escape_byte(ch, line + n); /* \xHH */
        else
            line[n++] = (char)ch;
    }
    line[n++] = '\n';

    /*
     * One write(2) per line: the kernel appends it as a unit, so there is
     * no lock and no stdio buffer that could mix two threads' lines.
     */
    log_write(line, n);
    errno = saved;
}

char *zn_log_escape(const void *data, size_t len, char *buf, size_t size)
{
    const unsigned char *p = data;
    size_t need = 0, room, n = 0;
    char esc[4];

    if (size == 0)
        return buf;
    /* Does all of it fit? Stop counting as soon as it cannot. */
    for (size_t i = 0; i < len && need < size; i++)
        need += escape_byte(p[i], esc);
    /* If not, keep room for "..." (and always for the NUL). */
    room = need < size ? size - 1 : size > 4 ? size - 4 : 0;
    for (size_t i = 0; i < len; i++) {
        size_t k = escape_byte(p[i], esc);

        if (n + k > room)
            break;
        memcpy(buf + n, esc, k);
        n += k;
    }
    if (need >= size) {
        size_t dots = size - 1 - n < 3 ? size - 1 - n : 3; /* tiny buffers */

        memcpy(buf + n, "...", dots);
        n += dots;
    }
    buf[n] = '\0';
    return buf;
}

const char *zn_strerror(int err)
{
    static _Thread_local char buf[128];

    /* The XSI strerror_r: with _POSIX_C_SOURCE it returns an int. */
    if (strerror_r(err, buf, sizeof(buf)) != 0)
        snprintf(buf, sizeof(buf), "error %d", err);
    return buf;
}
