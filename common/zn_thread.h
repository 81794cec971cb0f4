/*
 * zn_thread -- starting and naming threads, kept out of the stages because
 * it is the same every time (v0.1 to v0.6 spell it out where they start
 * their one thread: that is where it is taught) and a platform detail.
 *
 * Linux lets each thread carry a short name (at most 15 characters), shown by
 * `top -H`, gdb's `info threads` and /proc/PID/task/TID/comm. zinc names its
 * threads zn-reader-N, zn-writer-N and zn-worker-N so a learner (and the
 * tests) can see which threads exist.
 */
#ifndef ZN_THREAD_H
#define ZN_THREAD_H

#include <pthread.h>
#include <stdbool.h>

/*
 * Start fn(arg) on a new thread the way every zinc thread starts: with a
 * 256 KiB stack, and with SIGINT and SIGTERM blocked, so that only the
 * server's main thread ever runs their handler. Detached, or joinable with
 * its id in *tid. With a name, return only once the new thread carries it
 * (until then it is called like its creator: a writer started by
 * zn-reader-7 would be counted as a reader); with NULL the thread names
 * itself when it likes. Returns 0 or a negative errno (EAGAIN: no more
 * threads).
 */
int zn_thread_start(pthread_t *tid, void *(*fn)(void *), void *arg,
                    bool detached, const char *name);

/*
 * Name the calling thread, printf-style; the result is cut to 15
 * characters. Does nothing on systems without pthread_setname_np.
 */
void zn_thread_set_name(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
