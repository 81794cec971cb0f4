/*
 * zn_thread -- naming threads, kept out of the stages because it is a
 * platform detail.
 *
 * Linux lets each thread carry a short name (at most 15 characters), shown by
 * `top -H`, gdb's `info threads` and /proc/PID/task/TID/comm. zinc names its
 * threads zn-reader-N, zn-writer-N and zn-worker-N so a learner (and the
 * tests) can see which threads exist.
 */
#ifndef ZN_THREAD_H
#define ZN_THREAD_H

/*
 * Name the calling thread, printf-style; the result is cut to 15
 * characters. Does nothing on systems without pthread_setname_np.
 */
void zn_thread_set_name(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
