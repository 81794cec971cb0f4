/*
 * testclock.h -- the monotonic clock for the programs in tests/api:
 * now_ms() reads it, sleep_ms() waits on it.
 *
 *     double end = now_ms() + WAIT_MS;
 *     while (!done() && now_ms() < end)
 *         sleep_ms(1);
 */
#ifndef ZN_TESTCLOCK_H
#define ZN_TESTCLOCK_H

#include <time.h>

static inline double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static inline void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&t, NULL);
}

#endif
