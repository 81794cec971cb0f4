/* pthread_setname_np is a GNU extension: ask glibc to declare it. */
#define _GNU_SOURCE
#include "zn_thread.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
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

/* What a thread started with a name needs, on its creator's stack. */
struct named_start {
    void *(*fn)(void *); /* the thread's work */
    void *arg; /* its argument */
    const char *name; /* the name to take first */
    sem_t named; /* posted once it has taken it */
};

/*
 * Take the name, tell the creator, then do the work. The thread names
 * itself (prctl() on Linux); naming another thread means writing to
 * /proc/self/task/TID/comm, which needs a descriptor, and a server out of
 * descriptors must not fail at that.
 */
static void *start_named(void *p)
{
    struct named_start *st = p;
    void *(*fn)(void *) = st->fn;
    void *arg = st->arg;

    zn_thread_set_name("%s", st->name);
    sem_post(&st->named); /* st is gone after this: the creator returns */
    return fn(arg);
}

int zn_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg,
                    bool detached, const char *name)
{
    struct named_start st = {.fn = fn, .arg = arg, .name = name};
    pthread_attr_t attr;
    sigset_t block, old;
    int rc;

    if (name != NULL && sem_init(&st.named, 0, 0) < 0)
        return -errno;

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
    if (name == NULL)
        rc = pthread_create(tid, &attr, fn, arg);
    else
        rc = pthread_create(tid, &attr, start_named, &st);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (name != NULL) {
        while (rc == 0 && sem_wait(&st.named) < 0 && errno == EINTR)
            ;
        sem_destroy(&st.named);
    }
    return -rc;
}

void zn_thread_set_name(const char *fmt, ...)
{
    char name[16]; /* the kernel's limit, with the terminating NUL */
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
#if defined(__linux__)
    pthread_setname_np(pthread_self(), name);
#else
    (void)name;
#endif
}
