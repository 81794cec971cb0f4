#include "zn_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define ZN_LOG_LINE_MAX 1024

static atomic_int log_level = ZN_LOG_INFO; /* threshold */
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static const char *const log_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

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

void zn_log(enum zn_log_level level, const char *fmt, ...)
{
    char line[ZN_LOG_LINE_MAX];
    struct timespec now;
    struct tm tm;
    size_t n;
    va_list ap;
    int len;

    if (level < zn_log_get_level() || level > ZN_LOG_ERROR)
        return;

    clock_gettime(CLOCK_REALTIME, &now);
    localtime_r(&now.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - n, ".%03ld %s ",
                  now.tv_nsec / 1000000, log_names[level]);

    va_start(ap, fmt);
    len = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    /* vsnprintf returns the length it wanted; cut to what fits. */
    if (len < 0)
        len = 0;
    n += (size_t)len;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';

    /*
     * One write(2) per line: the kernel appends it as a unit, so there is
     * no lock and no stdio buffer that could mix two threads' lines.
     */
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0)
            return; /* nowhere left to report it */
        p += w;
        n -= (size_t)w;
    }
}
