/* pthread_setname_np is a GNU extension: ask glibc to declare it. */
#define _GNU_SOURCE
#include "zn_thread.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

/*
 * A small stack. The default (8 MiB on Linux) is only address space until
 * touched, but with thousands of clients it adds up to gigabytes of
 * reservations; zinc's threads keep their messages on the heap and need a
 * few KiB. 256 KiB leaves room for libc and the sanitizers.
 */
#define ZN_THREAD_STACK (256 * 1024)

int zn_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg,
                    bool detached)
{
    pthread_attr_t attr;
    sigset_t block, old;
    int rc;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, ZN_THREAD_STACK);
    if (detached)
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /*
     * A new thread inherits its creator's signal mask: block SIGINT and
     * SIGTERM around pthread_create() and the new thread never runs their
     * handler (which could otherwise write to the server's wake-up pipe
     * while main closes it at exit).
     */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(tid, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return -rc;
}

/* Name thread t, printf-style, cut to what the kernel keeps. */
static void name_thread(pthread_t t, const char *fmt, va_list ap)
{
    char name[16]; /* the kernel's limit, with the terminating NUL */

    vsnprintf(name, sizeof(name), fmt, ap);
#if defined(__linux__)
    pthread_setname_np(t, name);
#else
    (void)t;
    (void)name;
#endif
}

void zn_thread_set_name(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    name_thread(pthread_self(), fmt, ap);
    va_end(ap);
}

void zn_thread_name(pthread_t t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    name_thread(t, fmt, ap);
    va_end(ap);
}
