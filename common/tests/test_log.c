/*
 * Unit test for zn_log: levels, the line format, and that lines written by
 * many threads at once arrive whole.
 */
#include "check.h"
#include "zn_log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define LINES   500

static void *spam(void *arg)
{
    long id = (long)arg;

    for (int i = 0; i < LINES; i++)
        zn_info("thread %ld line %d %s", id, i,
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    return NULL;
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
    for (int i = 0; i < THREADS; i++)
        CHECK(counts[i] == LINES);
    return CHECK_DONE();
}
