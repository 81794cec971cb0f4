/*
 * testcheck.h -- CHECK() for the single-threaded programs in tests/api:
 * it counts and reports a failed condition without stopping.
 *
 *     CHECK(rc == -ENOTCONN, "stopped: returned %d", rc);
 *     ...
 *     return failures ? 1 : 0;
 */
#ifndef ZN_TESTCHECK_H
#define ZN_TESTCHECK_H

#include <stdio.h>

static int failures; /* how many CHECK()s failed */

/* The condition holds, or one line "FAIL line N: ..." on stderr. */
#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL line %d: ", __LINE__);                       \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            failures++;                                                        \
        }                                                                      \
    } while (0)

#endif
