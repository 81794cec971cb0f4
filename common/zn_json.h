/*
 * zn_json -- a small, strict JSON reader (RFC 8259) for the configuration.
 *
 * Why carry our own instead of a library: zinc depends on nothing but libc
 * and pthreads, so a learner can build it anywhere with one command; the
 * config loader must say *where* a file is wrong ("conf/zinc.json:3:17:
 * expected ',' or '}' after object member"), which needs line and column;
 * and one function per grammar rule is small enough to read in one sitting.
 *
 * It is a reader only. It is strict on purpose: no comments, no trailing
 * commas, no single quotes, no NaN, only valid UTF-8. A config file that some
 * other JSON tool would refuse should not quietly work here either.
 *
 * Limits that keep hostile input harmless: at most ZN_JSON_MAX_DEPTH nested
 * arrays and objects, and files of at most ZN_JSON_MAX_FILE bytes.
 */
#ifndef ZN_JSON_H
#define ZN_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define ZN_JSON_MAX_DEPTH 64 /* nested arrays + objects */
#define ZN_JSON_MAX_FILE (1L << 20) /* bytes zn_json_parse_file reads */

enum zn_json_type {
    ZN_JSON_NULL,
    ZN_JSON_BOOL,
    ZN_JSON_NUMBER,
    ZN_JSON_STRING,
    ZN_JSON_ARRAY,
    ZN_JSON_OBJECT,
};

/* One value of the tree. The tree owns every pointer below. */
struct zn_json {
    enum zn_json_type type;
    int line, col; /* where the value starts, 1-based */
    union {
        bool boolean; /* ZN_JSON_BOOL */
        struct {
            double value; /* always set */
            bool is_int; /* no fraction or exponent, fits long long */
            long long int_value; /* exact value when is_int */
        } number;
        struct {
            char *chars; /* UTF-8, NUL-terminated */
            size_t len; /* bytes; the truth when "\u0000" put NULs inside */
        } string;
        struct {
            struct zn_json **items; /* in document order */
            size_t len;
        } array;
        struct {
            char **keys; /* in document order, all distinct */
            struct zn_json **values; /* values[i] belongs to keys[i] */
            size_t len;
        } object;
    } u;
};

/* Where and why parsing failed. */
struct zn_json_error {
    int line, col; /* 1-based; 0 when the file could not be read */
    char msg[128]; /* "expected ',' or '}' after object member" */
};

/*
 * Parse exactly one JSON value from text[0..len), with only whitespace around
 * it. text need not be NUL-terminated; nothing past text[len - 1] is read.
 * Returns the tree, which the caller frees with zn_json_free. On failure
 * returns NULL with errno EINVAL (bad JSON) or ENOMEM and, unless err is
 * NULL, fills *err with the position of the offending byte, or of the end of
 * the input when the text stops too early.
 *
 * Strings may contain "\u0000", but object keys may not: keys are plain C
 * strings, and a key with a NUL inside could not be looked up.
 */
struct zn_json *zn_json_parse(const char *text, size_t len,
                              struct zn_json_error *err);

/*
 * Read the file at path (at most ZN_JSON_MAX_FILE bytes) and parse it. On
 * failure returns NULL with errno set: the open(2) or read(2) error (ENOENT
 * for a missing file) or EFBIG for a file that is too large, with err->line
 * 0 and err->msg saying why; or EINVAL/ENOMEM as zn_json_parse.
 */
struct zn_json *zn_json_parse_file(const char *path, struct zn_json_error *err);

/* Free v and everything under it. NULL is fine. */
void zn_json_free(struct zn_json *v);

/*
 * The value stored under key in obj, or NULL when obj is NULL, is not an
 * object, or has no such key. The result points into obj's tree.
 */
const struct zn_json *zn_json_get(const struct zn_json *obj, const char *key);

/*
 * "null", "boolean", "number", "string", "array" or "object", for messages
 * such as "TcpPort: expected number, got string".
 */
const char *zn_json_type_name(enum zn_json_type t);

#endif
