/*
 * zn_log -- a small thread-safe logger.
 *
 * Every line goes to standard error as one write, so lines from different
 * threads never interleave:
 *
 *     2026-11-21 22:30:01.123 INFO  conn 0 started, remote 127.0.0.1:50748
 *
 * The threshold comes from the environment variable ZN_LOG_LEVEL (debug,
 * info, warn or error; default info), read once on first use.
 *
 * One call is always exactly one line: control characters in the message
 * (a newline from a client or a config file) are written as \xHH, so nobody
 * can forge a second line. Bytes from a client are best passed through
 * zn_log_escape() first, which also makes binary data readable.
 */
#ifndef ZN_LOG_H
#define ZN_LOG_H

#include <stddef.h>

enum zn_log_level {
    ZN_LOG_DEBUG,
    ZN_LOG_INFO,
    ZN_LOG_WARN,
    ZN_LOG_ERROR,
    ZN_LOG_NOTICE, /* printed whatever the threshold: "listening on" */
};

/*
 * Log one line at `level` if it is at or above the threshold (NOTICE always
 * is). The message is formatted like printf; a trailing newline is added.
 * Lines longer than 1 KiB are cut. Safe to call from any thread. A reader
 * of standard error that has gone away (a closed pipe) loses the line but
 * never kills the process with SIGPIPE.
 */
void zn_log(enum zn_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Override the threshold from ZN_LOG_LEVEL; safe from any thread. */
void zn_log_set_level(enum zn_log_level level);

/* The threshold in force now. */
enum zn_log_level zn_log_get_level(void);

#define zn_debug(...) zn_log(ZN_LOG_DEBUG, __VA_ARGS__)
#define zn_info(...) zn_log(ZN_LOG_INFO, __VA_ARGS__)
#define zn_warn(...) zn_log(ZN_LOG_WARN, __VA_ARGS__)
#define zn_error(...) zn_log(ZN_LOG_ERROR, __VA_ARGS__)
#define zn_notice(...) zn_log(ZN_LOG_NOTICE, __VA_ARGS__)

/*
 * Make len bytes of untrusted data printable: bytes from ' ' to '~' stay as
 * they are, a backslash becomes two, and every other byte becomes \xHH.
 * Writes a NUL-terminated string into buf, which holds size bytes; when not
 * everything fits it stops at a whole escape and ends with "...". Returns
 * buf.
 */
char *zn_log_escape(const void *data, size_t len, char *buf, size_t size);

/*
 * strerror() that is safe from many threads at once: the text lives in a
 * buffer of the calling thread, valid until its next call.
 */
const char *zn_strerror(int err);

#endif
