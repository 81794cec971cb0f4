/*
 * check.h -- the smallest unit-test harness that does the job.
 *
 * CHECK(cond) records a failure with file and line but keeps going, so one
 * run shows every broken expectation. CHECK_DONE() prints the closing line
 * "N passed, N failed" and yields the exit status for main().
 */
#ifndef ZN_CHECK_H
#define ZN_CHECK_H

#include <stdio.h>

static int check_passed; /* expectations that held */
static int check_failed; /* expectations that did not */

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            check_passed++;                                                    \
        } else {                                                               \
            check_failed++;                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

#define CHECK_DONE()                                                           \
    (printf("%s: %d passed, %d failed\n", __FILE__, check_passed,              \
            check_failed),                                                     \
     check_failed ? 1 : 0)

#endif
