/*
 * zn_log -- a small thread-safe logger.
 *
 * Every line goes to standard error as one write, so lines from different
 * threads never interleave:
 *
 *     2026-11-21 22:30:01.123 INFO  listening on 127.0.0.1:8999
 *
 * The threshold comes from the environment variable ZN_LOG_LEVEL (debug,
 * info, warn or error; default info), read once on first use.
 */
#ifndef ZN_LOG_H
#define ZN_LOG_H

enum zn_log_level {
    ZN_LOG_DEBUG,
    ZN_LOG_INFO,
    ZN_LOG_WARN,
    ZN_LOG_ERROR,
};

/*
 * Log one line at `level` if it is at or above the threshold. The message is
 * formatted like printf; a trailing newline is added. Lines longer than 1 KiB
 * are cut. Safe to call from any thread.
 */
void zn_log(enum zn_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Override the threshold from ZN_LOG_LEVEL; safe from any thread. */
void zn_log_set_level(enum zn_log_level level);

/* The threshold in force now. */
enum zn_log_level zn_log_get_level(void);

#define zn_debug(...) zn_log(ZN_LOG_DEBUG, __VA_ARGS__)
#define zn_info(...)  zn_log(ZN_LOG_INFO, __VA_ARGS__)
#define zn_warn(...)  zn_log(ZN_LOG_WARN, __VA_ARGS__)
#define zn_error(...) zn_log(ZN_LOG_ERROR, __VA_ARGS__)

#endif
