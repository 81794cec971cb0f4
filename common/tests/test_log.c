/*
 * Unit test for zn_log: levels, the line format, that lines written by many
 * threads at once arrive whole, that one call is one line whatever the
 * message holds, zn_log_escape() and the thread-safe zn_strerror().
 */
#include "check.h"
#include "zn_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define LINES 500

static void *spam(void *arg)
{
    long id = (long)arg;

    for (int i = 0; i < LINES; i++)
        zn_info("thread %ld line %d %s", id, i,
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    return NULL;
}

/* The escape as the contract states it, unbounded, for comparison. */
static void escape_ref(const unsigned char *p, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\\')
            out += sprintf(out, "\\\\");
        else if (p[i] >= 0x20 && p[i] <= 0x7e)
            *out++ = (char)p[i];
        else
            out += sprintf(out, "\\x%02x", p[i]);
    }
    *out = '\0';
}

/* Is s the escape of the first k bytes of p, for some k? */
static int whole_escape_prefix(const unsigned char *p, size_t len,
                               const char *s)
{
    char ref[4 * 256 + 1];

    for (size_t k = 0; k <= len; k++) {
        escape_ref(p, k, ref);
        if (strcmp(ref, s) == 0)
            return 1;
    }
    return 0;
}

static void check_escape(void)
{
    unsigned char all[256], bytes[5] = {0x00, 0x0a, 0x7f, 0x80, 0xff};
    char buf[4 * 256 + 1], ref[4 * 256 + 1];
    int bad = 0;

    CHECK(strcmp(zn_log_escape("hello, world ~", 14, buf, sizeof(buf)),
                 "hello, world ~") == 0);
    CHECK(zn_log_escape("x", 1, buf, sizeof(buf)) == buf);
    CHECK(strcmp(zn_log_escape("a\\b", 3, buf, sizeof(buf)), "a\\\\b") == 0);
    CHECK(strcmp(zn_log_escape(bytes, 5, buf, sizeof(buf)),
                 "\\x00\\x0a\\x7f\\x80\\xff") == 0);
    CHECK(strcmp(zn_log_escape("\xab", 1, buf, sizeof(buf)), "\\xab") == 0);
    CHECK(strcmp(zn_log_escape("", 0, buf, sizeof(buf)), "") == 0);
    /* Exactly enough room: no dots. */
    CHECK(strcmp(zn_log_escape("abc", 3, buf, 4), "abc") == 0);
    CHECK(strcmp(zn_log_escape("\n", 1, buf, 5), "\\x0a") == 0);
    /* Too little: whole escapes, then "...", within size. */
    CHECK(strcmp(zn_log_escape("hello world", 11, buf, 8), "hell...") == 0);
    CHECK(strcmp(zn_log_escape("\n\n\n\n", 4, buf, 10), "\\x0a...") == 0);

    /* Every byte value, every buffer size from 4 up: NUL-terminated inside
     * the buffer, and either the whole escape or a prefix of whole escapes
     * followed by "...". */
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    escape_ref(all, 256, ref);
    for (size_t size = 4; size <= strlen(ref) + 1; size++) {
        size_t n;

        memset(buf, 'Z', sizeof(buf));
        zn_log_escape(all, 256, buf, size);
        n = strnlen(buf, size);
        if (n == size) {
            bad++; /* no NUL within size */
            continue;
        }
        if (size == strlen(ref) + 1) {
            bad += strcmp(buf, ref) != 0;
            continue;
        }
        if (n < 3 || strcmp(buf + n - 3, "...") != 0) {
            bad++;
            continue;
        }
        buf[n - 3] = '\0';
        bad += !whole_escape_prefix(all, 256, buf);
    }
    CHECK(bad == 0);
}

/* zn_strerror's text belongs to the calling thread: another thread's call
 * does not change it. */
static void *strerror_spam(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++)
        zn_strerror(i % 2 ? EACCES : EPIPE);
    return NULL;
}

static void check_strerror(void)
{
    char want[128];
    const char *mine;
    pthread_t t;
    int changed = 0;

    snprintf(want, sizeof(want), "%s", strerror(ENOENT));
    mine = zn_strerror(ENOENT);
    CHECK(strcmp(mine, want) == 0);
    pthread_create(&t, NULL, strerror_spam, NULL);
    for (int i = 0; i < 20000; i++)
        changed += strcmp(mine, want) != 0;
    pthread_join(t, NULL);
    CHECK(changed == 0);
    CHECK(strcmp(mine, want) == 0);
    mine = zn_strerror(123456); /* unknown: still some text */
    CHECK(mine != NULL && mine[0] != '\0');
}

int main(void)
{
    char path[] = "/tmp/zn_test_log.XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    pthread_t t[THREADS];
    char buf[2048];
    int counts[THREADS] = {0};
    int bad = 0, debug_lines = 0, warn_lines = 0, long_ok = 0;
    int notice_lines = 0, escaped_lines = 0;

    CHECK(fd >= 0);
    unlink(path);
    setenv("ZN_LOG_LEVEL", "WARN", 1); /* read once, on first use */
    dup2(fd, STDERR_FILENO);

    CHECK(zn_log_get_level() == ZN_LOG_WARN);
    zn_info("hidden: below the threshold from ZN_LOG_LEVEL");
    zn_warn("shown %d", 1);
    zn_log_set_level(ZN_LOG_DEBUG);
    zn_debug("debug now shown");
    zn_log_set_level(ZN_LOG_INFO);
    zn_debug("hidden again");

    char big[3000];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    zn_error("%s", big); /* cut to one line, not overflowed */

    zn_log_set_level(ZN_LOG_ERROR);
    zn_notice("notice shown at any level");
    zn_log_set_level(ZN_LOG_INFO);
    zn_info("%s", "a\nb"); /* one line, the newline escaped */
    zn_info("%s", "c\x7f\r\x1b");

    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, spam, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    dup2(saved, STDERR_FILENO);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    while (fgets(buf, sizeof(buf), f)) {
        long id;
        int line;
        /* "YYYY-MM-DD HH:MM:SS.mmm LEVEL message" */
        if (strlen(buf) < 30 || buf[4] != '-' || buf[19] != '.') {
            bad++;
            continue;
        }
        if (strstr(buf, "hidden"))
            bad++;
        if (strstr(buf, "DEBUG debug now shown"))
            debug_lines++;
        if (strstr(buf, "WARN  shown 1\n"))
            warn_lines++;
        if (strstr(buf, "ERROR yyyy") && strlen(buf) == 1023)
            long_ok++;
        if (strstr(buf, "NOTE  notice shown at any level\n"))
            notice_lines++;
        if (strstr(buf, "INFO  a\\x0ab\n") ||
            strstr(buf, "INFO  c\\x7f\\x0d\\x1b\n"))
            escaped_lines++;
        if (sscanf(buf + 30, "thread %ld line %d", &id, &line) == 2 &&
            id >= 0 && id < THREADS &&
            strstr(buf, " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"))
            counts[id]++;
    }
    fclose(f);

    CHECK(bad == 0);
    CHECK(debug_lines == 1);
    CHECK(warn_lines == 1);
    CHECK(long_ok == 1);
    CHECK(notice_lines == 1);
    CHECK(escaped_lines == 2);
    for (int i = 0; i < THREADS; i++)
        CHECK(counts[i] == LINES);

    check_escape();
    check_strerror();
    return CHECK_DONE();
}
