/* pthread_setname_np is a GNU extension: ask glibc to declare it. */
#define _GNU_SOURCE
#include "zn_thread.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

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
