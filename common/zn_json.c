/*
 * A recursive-descent parser: one function per rule of the RFC 8259 grammar
 * (value, literal, number, string, array, object), each reading from the
 * current position and returning a new tree node, or NULL after recording
 * the first error. Depth is capped at ZN_JSON_MAX_DEPTH, so the recursion
 * cannot run off the stack however the input is nested.
 *
 * Every byte is read through peek(), which returns -1 at the end instead of
 * reading past it: truncated input is just one more error.
 */
#include "zn_json.h"
#include "zn_io.h"
#include "zn_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct parser {
    const unsigned char *text; /* the input, not NUL-terminated */
    size_t len; /* bytes in text */
    size_t pos; /* next byte to read */
    int line, col; /* position of text[pos], 1-based */
    int depth; /* arrays and objects open around pos */
    bool nomem; /* the error is an allocation failure */
    struct zn_json_error err; /* the first error */
};

/* A saved position, for errors reported at the start of a token. */
struct mark {
    int line, col;
};

/* ---- Reading bytes ---- */

/* The byte at the current position, or -1 at the end of the input. */
static int peek(const struct parser *ps)
{
    return ps->pos < ps->len ? ps->text[ps->pos] : -1;
}

/* Step over one byte, keeping line and column in step with it. */
static void advance(struct parser *ps)
{
    if (ps->pos >= ps->len)
        return;
    /* Saturate rather than overflow on a multi-gigabyte line. */
    if (ps->text[ps->pos] == '\n') {
        if (ps->line < INT_MAX)
            ps->line++;
        ps->col = 1;
    } else if (ps->col < INT_MAX) {
        ps->col++;
    }
    ps->pos++;
}

static struct mark here(const struct parser *ps)
{
    return (struct mark){ps->line, ps->col};
}

/* RFC 8259 whitespace is exactly these four bytes. */
static void skip_space(struct parser *ps)
{
    for (;;) {
        int c = peek(ps);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        advance(ps);
    }
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* ---- Errors ---- */

/*
 * Record an error at m, unless one is already recorded (the first error is
 * the one the user needs to fix). Always returns NULL, so a rule can say
 * `return fail(...)`.
 */
static void *fail(struct parser *ps, struct mark m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void *fail(struct parser *ps, struct mark m, const char *fmt, ...)
{
    va_list ap;

    if (ps->err.msg[0] != '\0')
        return NULL;
    ps->err.line = m.line;
    ps->err.col = m.col;
    va_start(ap, fmt);
    vsnprintf(ps->err.msg, sizeof(ps->err.msg), fmt, ap);
    va_end(ap);
    return NULL;
}

static void *fail_nomem(struct parser *ps)
{
    ps->nomem = true;
    return fail(ps, here(ps), "out of memory");
}

/*
 * How long the UTF-8 sequence at s[0..avail) is. Returns its length (1 to
 * 4) when it is valid; 0 when it is not, with *bad set to the offset of the
 * first wrong byte; -1 when the input ends inside it. "Valid" follows RFC
 * 3629: no overlong forms, no surrogates (U+D800..DFFF), nothing above
 * U+10FFFF.
 */
static int utf8_check(const unsigned char *s, size_t avail, size_t *bad)
{
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    int n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        if (s[0] == 0xE0)
            lo = 0xA0; /* below: overlong */
        if (s[0] == 0xED)
            hi = 0x9F; /* above: a surrogate */
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        if (s[0] == 0xF0)
            lo = 0x90; /* below: overlong */
        if (s[0] == 0xF4)
            hi = 0x8F; /* above: past U+10FFFF */
    } else {
        *bad = 0; /* a stray continuation byte, C0, C1 or F5..FF */
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((size_t)i >= avail)
            return -1;
        if (s[i] < lo || s[i] > hi) {
            *bad = (size_t)i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return n;
}

/*
 * Describe the byte at the current position for an error message: 'x' for
 * a printable character (a whole UTF-8 character if it is one), otherwise
 * "byte 0x07" or "invalid UTF-8 byte 0xff".
 */
static void describe(const struct parser *ps, char *buf, size_t size)
{
    const unsigned char *s = ps->text + ps->pos;
    size_t bad;
    int n;

    if (s[0] >= 0x20 && s[0] < 0x7F) {
        snprintf(buf, size, "'%c'", s[0]);
    } else if (s[0] < 0x80) {
        snprintf(buf, size, "byte 0x%02x", s[0]);
    } else {
        n = utf8_check(s, ps->len - ps->pos, &bad);
        if (n > 0)
            snprintf(buf, size, "'%.*s'", n, (const char *)s);
        else
            snprintf(buf, size, "invalid UTF-8 byte 0x%02x", s[0]);
    }
}

/*
 * The input does not continue the way the grammar says it must: report what
 * was expected and what came instead, at the current position. The two
 * mistakes people carry over from JavaScript get a message of their own.
 */
static void *unexpected(struct parser *ps, const char *expected)
{
    char got[32];
    int c = peek(ps);

    if (c < 0)
        return fail(ps, here(ps), "unexpected end of input, expected %s",
                    expected);
    if (c == '/')
        return fail(ps, here(ps), "comments are not allowed in JSON");
    if (c == '\'')
        return fail(ps, here(ps), "strings and keys need double quotes, not '");
    describe(ps, got, sizeof(got));
    return fail(ps, here(ps), "expected %s, got %s", expected, got);
}

/* ---- Building nodes ---- */

static struct zn_json *new_node(enum zn_json_type type, struct mark m)
{
    struct zn_json *v = calloc(1, sizeof(*v));

    if (v != NULL) {
        v->type = type;
        v->line = m.line;
        v->col = m.col;
    }
    return v;
}

/* realloc(p) to hold n items of size bytes; NULL on overflow or ENOMEM. */
static void *grow(void *p, size_t n, size_t size)
{
    if (n > SIZE_MAX / size)
        return NULL;
    return realloc(p, n * size);
}

/* ---- The grammar ---- */

static struct zn_json *parse_value(struct parser *ps);

/* literal = "true" / "false" / "null" */
static struct zn_json *parse_literal(struct parser *ps, const char *word,
                                     enum zn_json_type type)
{
    struct mark start = here(ps);
    struct zn_json *v;
    char expected[16];

    snprintf(expected, sizeof(expected), "'%s'", word);
    for (const char *w = word; *w != '\0'; w++) {
        if (peek(ps) != (unsigned char)*w)
            return unexpected(ps, expected);
        advance(ps);
    }
    v = new_node(type, start);
    if (v == NULL)
        return fail_nomem(ps);
    if (type == ZN_JSON_BOOL)
        v->u.boolean = word[0] == 't';
    return v;
}

static void skip_digits(struct parser *ps)
{
    while (is_digit(peek(ps)))
        advance(ps);
}

/*
 * number = [ "-" ] int [ frac ] [ exp ]
 * int    = "0" / digit1-9 *digit
 * frac   = "." 1*digit
 * exp    = ("e" / "E") [ "+" / "-" ] 1*digit
 *
 * The grammar is checked here, byte by byte, because strtod accepts far more
 * ("+1", ".5", "0x1p3", "inf", leading spaces). Only a text that already
 * passed goes to strtod and strtoll. Those two follow the locale's decimal
 * point; zinc never calls setlocale, so it is always the "C" locale's '.'.
 */
static struct zn_json *parse_number(struct parser *ps)
{
    struct mark start = here(ps);
    size_t from = ps->pos, n;
    bool is_int = true;
    char small[64], *buf = small, *end;
    struct zn_json *v;
    double d;

    if (peek(ps) == '-')
        advance(ps);
    if (peek(ps) == '0') {
        advance(ps);
        if (is_digit(peek(ps)))
            return fail(ps, here(ps), "leading zeros are not allowed");
    } else if (is_digit(peek(ps))) {
        skip_digits(ps);
    } else {
        return unexpected(ps, "a digit after '-'");
    }
    if (peek(ps) == '.') {
        is_int = false;
        advance(ps);
        if (!is_digit(peek(ps)))
            return unexpected(ps, "a digit after '.'");
        skip_digits(ps);
    }
    if (peek(ps) == 'e' || peek(ps) == 'E') {
        is_int = false;
        advance(ps);
        if (peek(ps) == '+' || peek(ps) == '-')
            advance(ps);
        if (!is_digit(peek(ps)))
            return unexpected(ps, "a digit in the exponent");
        skip_digits(ps);
    }

    /* strtod wants a NUL-terminated copy; text need not have a NUL. */
    n = ps->pos - from;
    if (n >= sizeof(small) && (buf = malloc(n + 1)) == NULL)
        return fail_nomem(ps);
    memcpy(buf, ps->text + from, n);
    buf[n] = '\0';

    v = new_node(ZN_JSON_NUMBER, start);
    if (v == NULL) {
        fail_nomem(ps);
        goto out;
    }
    errno = 0;
    d = strtod(buf, &end);
    /* Overflow is an error; underflow (1e-400) quietly rounds toward 0. */
    if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) {
        fail(ps, start, "number out of range");
        free(v);
        v = NULL;
        goto out;
    }
    v->u.number.value = d;
    if (is_int) {
        errno = 0;
        v->u.number.int_value = strtoll(buf, &end, 10);
        /* Too big for long long: the caller sees is_int false. */
        v->u.number.is_int = errno != ERANGE;
        if (!v->u.number.is_int)
            v->u.number.int_value = 0;
    }
out:
    if (buf != small)
        free(buf);
    return v;
}

/* Append code point cp to out as UTF-8 and return the bytes written. */
static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The value of one hex digit, or -1 when c is not one. */
static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The four hex digits after "\u", as a number; false after an error. */
static bool parse_hex4(struct parser *ps, unsigned long *cp)
{
    *cp = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_value(peek(ps));

        if (digit < 0) {
            unexpected(ps, "a hex digit in \\u escape");
            return false;
        }
        *cp = *cp * 16 + (unsigned long)digit;
        advance(ps);
    }
    return true;
}

/*
 * A "\uXXXX" escape, the backslash already consumed. Characters outside the
 * Basic Multilingual Plane arrive as a surrogate pair, "\ud83d\ude00", which
 * is one code point (U+1F600) and becomes one 4-byte UTF-8 sequence. A
 * surrogate on its own has no UTF-8 form, so it is an error. Returns the
 * bytes written to out, 0 after an error.
 */
static size_t parse_unicode_escape(struct parser *ps, struct mark esc,
                                   char *out)
{
    unsigned long cp, lo;

    advance(ps); /* the 'u' */
    if (!parse_hex4(ps, &cp))
        return 0;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail(ps, esc, "lone low surrogate \\u%04lx", cp);
        return 0;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        /* A high surrogate: a low one, \uDC00..\uDFFF, must follow. */
        if (peek(ps) == '\\') {
            advance(ps);
            if (peek(ps) == 'u') {
                advance(ps);
                if (!parse_hex4(ps, &lo))
                    return 0;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(ps, esc,
                         "\\u%04lx is not followed by a low "
                         "surrogate (got \\u%04lx)",
                         cp, lo);
                    return 0;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                return put_utf8(out, cp);
            }
        }
        if (peek(ps) < 0)
            unexpected(ps, "a low surrogate \\uXXXX");
        else
            fail(ps, esc, "lone high surrogate \\u%04lx", cp);
        return 0;
    }
    return put_utf8(out, cp);
}

/*
 * string = '"' *char '"', where char is any Unicode character except '"',
 * '\' and the controls U+0000..U+001F, or an escape. Returns the decoded
 * bytes, NUL-terminated, with their count in *len, or NULL after an error.
 */
static char *parse_string_chars(struct parser *ps, size_t *len)
{
    size_t end = ps->pos + 1, n = 0;
    char *out;

    /*
     * Decoding never makes a string longer (an escape of 2 to 12 bytes
     * yields 1 to 4), so the raw span up to the closing quote, found by a
     * quick scan that hops over escapes, bounds the output.
     */
    while (end < ps->len && ps->text[end] != '"')
        end += ps->text[end] == '\\' ? 2 : 1;
    if (end > ps->len)
        end = ps->len;
    out = malloc(end - ps->pos); /* the body plus a NUL */
    if (out == NULL)
        return fail_nomem(ps);

    advance(ps); /* the opening '"' */
    for (;;) {
        struct mark m = here(ps);
        int c = peek(ps);
        size_t bad, k;
        int u;

        if (c < 0) {
            unexpected(ps, "'\"' to end the string");
            goto err;
        }
        if (c == '"') {
            advance(ps);
            break;
        }
        if (c < 0x20) {
            fail(ps, m, "control character 0x%02x in string (escape it)", c);
            goto err;
        }
        if (c >= 0x80) {
            /* Copy one whole, valid UTF-8 character. */
            u = utf8_check(ps->text + ps->pos, ps->len - ps->pos, &bad);
            if (u < 0) {
                while (peek(ps) >= 0)
                    advance(ps);
                unexpected(ps, "the rest of a UTF-8 character");
                goto err;
            }
            if (u == 0) {
                for (k = 0; k < bad; k++)
                    advance(ps);
                fail(ps, here(ps), "invalid UTF-8 byte 0x%02x in string",
                     peek(ps));
                goto err;
            }
            for (k = 0; k < (size_t)u; k++) {
                out[n++] = (char)peek(ps);
                advance(ps);
            }
            continue;
        }
        advance(ps);
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }

        /* An escape: m is the backslash, c the byte after it. */
        c = peek(ps);
        switch (c) {
        case '"':
        case '\\':
        case '/':
            out[n++] = (char)c;
            break;
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u':
            k = parse_unicode_escape(ps, m, out + n);
            if (k == 0)
                goto err;
            n += k;
            continue; /* already past the escape */
        case -1:
            unexpected(ps, "an escape character after '\\'");
            goto err;
        default:
            fail(ps, m,
                 "invalid escape '\\%c' (valid: \\\" \\\\ \\/ \\b \\f "
                 "\\n \\r \\t \\uXXXX)",
                 c >= 0x20 && c < 0x7F ? c : '?');
            goto err;
        }
        advance(ps);
    }
    out[n] = '\0';
    *len = n;
    return out;
err:
    free(out);
    return NULL;
}

static struct zn_json *parse_string(struct parser *ps)
{
    struct mark start = here(ps);
    struct zn_json *v;
    size_t len;
    char *s = parse_string_chars(ps, &len);

    if (s == NULL)
        return NULL;
    v = new_node(ZN_JSON_STRING, start);
    if (v == NULL) {
        free(s);
        return fail_nomem(ps);
    }
    v->u.string.chars = s;
    v->u.string.len = len;
    return v;
}

/* Entering an array or object: one level deeper, if that is allowed. */
static bool enter(struct parser *ps)
{
    if (ps->depth >= ZN_JSON_MAX_DEPTH) {
        fail(ps, here(ps), "nesting too deep (more than %d arrays/objects)",
             ZN_JSON_MAX_DEPTH);
        return false;
    }
    ps->depth++;
    advance(ps); /* the '[' or '{' */
    skip_space(ps);
    return true;
}

/*
 * After an array element or object member: either the closing bracket
 * (left for the caller to consume) or a comma that is not a trailing one.
 * Returns 1 when another item follows, 0 at the closing bracket, -1 on an
 * error (already recorded).
 */
static int next_item(struct parser *ps, char close, const char *expected)
{
    struct mark comma;

    skip_space(ps);
    if (peek(ps) == close)
        return 0;
    if (peek(ps) != ',') {
        unexpected(ps, expected);
        return -1;
    }
    comma = here(ps);
    advance(ps);
    skip_space(ps);
    if (peek(ps) == close) {
        fail(ps, comma, "trailing comma before '%c'", close);
        return -1;
    }
    return 1;
}

/* array = "[" [ value *( "," value ) ] "]" */
static struct zn_json *parse_array(struct parser *ps)
{
    struct zn_json *v = new_node(ZN_JSON_ARRAY, here(ps));
    size_t cap = 0;

    if (v == NULL)
        return fail_nomem(ps);
    if (!enter(ps))
        goto err;
    if (peek(ps) == ']')
        goto done;
    for (;;) {
        struct zn_json *item = parse_value(ps);

        if (item == NULL)
            goto err;
        if (v->u.array.len == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            struct zn_json **items =
                grow(v->u.array.items, ncap, sizeof(*items));
            if (items == NULL) {
                zn_json_free(item);
                fail_nomem(ps);
                goto err;
            }
            v->u.array.items = items;
            cap = ncap;
        }
        v->u.array.items[v->u.array.len++] = item;

        int more = next_item(ps, ']', "',' or ']' after array element");
        if (more < 0)
            goto err;
        if (more == 0)
            break;
    }
done:
    advance(ps); /* the ']' */
    ps->depth--;
    return v;
err:
    zn_json_free(v);
    return NULL;
}

/* Sort key for the duplicate check: a key and where it came in the object. */
struct key_ref {
    const char *key;
    size_t index;
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int r = strcmp(x->key, y->key);

    if (r != 0)
        return r;
    return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Two members with the same key are an error: RFC 8259 leaves the meaning
 * open, and in a config file it is almost always a copy-paste slip. Sorting
 * a copy of the keys finds them in O(n log n), so an object with 100,000
 * members cannot stall the parser the way comparing every pair would. The
 * error points at the earliest key that repeats an earlier one.
 */
static bool check_duplicates(struct parser *ps, const struct zn_json *v,
                             const struct mark *where)
{
    size_t n = v->u.object.len, first = SIZE_MAX;
    struct key_ref *refs;

    if (n < 2)
        return true;
    refs = grow(NULL, n, sizeof(*refs));
    if (refs == NULL) {
        fail_nomem(ps);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (struct key_ref){v->u.object.keys[i], i};
    qsort(refs, n, sizeof(*refs), key_ref_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i - 1].key, refs[i].key) == 0 && refs[i].index < first)
            first = refs[i].index;
    }
    free(refs);
    if (first == SIZE_MAX)
        return true;

    /* Quote at most 40 bytes of the key, cut on a UTF-8 boundary. */
    const char *key = v->u.object.keys[first];
    int cut = 0;
    while (cut < 40 && key[cut] != '\0')
        cut++;
    if (key[cut] != '\0')
        while (cut > 0 && ((unsigned char)key[cut] & 0xC0) == 0x80)
            cut--;
    fail(ps, where[first], "duplicate key \"%.*s%s\"", cut, key,
         key[cut] != '\0' ? "..." : "");
    return false;
}

/*
 * object = "{" [ member *( "," member ) ] "}"
 * member = string ":" value
 */
static struct zn_json *parse_object(struct parser *ps)
{
    struct zn_json *v = new_node(ZN_JSON_OBJECT, here(ps));
    struct mark *where = NULL; /* where each key starts, for errors */
    char *key = NULL; /* parsed, not yet stored in v */
    size_t cap = 0, key_len;

    if (v == NULL)
        return fail_nomem(ps);
    if (!enter(ps))
        goto err;
    if (peek(ps) == '}')
        goto done;
    for (;;) {
        struct mark key_at = here(ps);
        struct zn_json *value;

        if (peek(ps) != '"') {
            unexpected(ps, "'\"' to start an object key");
            goto err;
        }
        key = parse_string_chars(ps, &key_len);
        if (key == NULL)
            goto err;
        if (strlen(key) != key_len) {
            fail(ps, key_at, "object key contains \\u0000");
            goto err;
        }
        skip_space(ps);
        if (peek(ps) != ':') {
            unexpected(ps, "':' after object key");
            goto err;
        }
        advance(ps);
        skip_space(ps);
        value = parse_value(ps);
        if (value == NULL)
            goto err;

        if (v->u.object.len == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            char **keys = grow(v->u.object.keys, ncap, sizeof(*keys));
            if (keys != NULL)
                v->u.object.keys = keys;
            struct zn_json **values =
                grow(v->u.object.values, ncap, sizeof(*values));
            if (values != NULL)
                v->u.object.values = values;
            struct mark *w = grow(where, ncap, sizeof(*w));
            if (w != NULL)
                where = w;
            if (keys == NULL || values == NULL || w == NULL) {
                zn_json_free(value);
                fail_nomem(ps);
                goto err;
            }
            cap = ncap;
        }
        where[v->u.object.len] = key_at;
        v->u.object.keys[v->u.object.len] = key;
        v->u.object.values[v->u.object.len++] = value;
        key = NULL;

        int more = next_item(ps, '}', "',' or '}' after object member");
        if (more < 0)
            goto err;
        if (more == 0)
            break;
    }
done:
    if (!check_duplicates(ps, v, where))
        goto err;
    advance(ps); /* the '}' */
    ps->depth--;
    free(where);
    return v;
err:
    free(key);
    free(where);
    zn_json_free(v);
    return NULL;
}

/*
 * value = literal / number / string / array / object. The first byte says
 * which; whitespace before it is already skipped.
 */
static struct zn_json *parse_value(struct parser *ps)
{
    int c = peek(ps);

    if (c == '-' || is_digit(c))
        return parse_number(ps);
    switch (c) {
    case '{':
        return parse_object(ps);
    case '[':
        return parse_array(ps);
    case '"':
        return parse_string(ps);
    case 't':
        return parse_literal(ps, "true", ZN_JSON_BOOL);
    case 'f':
        return parse_literal(ps, "false", ZN_JSON_BOOL);
    case 'n':
        return parse_literal(ps, "null", ZN_JSON_NULL);
    case '+':
        return fail(ps, here(ps), "numbers cannot start with '+'");
    case '.':
        return fail(ps, here(ps), "numbers need a digit before '.'");
    default:
        return unexpected(ps, "a value");
    }
}

/* ---- The public interface ---- */

struct zn_json *zn_json_parse(const char *text, size_t len,
                              struct zn_json_error *err)
{
    struct parser ps = {
        .text = (const unsigned char *)text,
        .len = text != NULL ? len : 0,
        .line = 1,
        .col = 1,
    };
    int saved_errno = errno; /* strtod may set ERANGE on success */
    struct zn_json *v = NULL;

    if (err != NULL)
        memset(err, 0, sizeof(*err));
    skip_space(&ps);
    if (ps.len - ps.pos >= 3 &&
        memcmp(ps.text + ps.pos, "\xEF\xBB\xBF", 3) == 0) {
        /* RFC 8259 lets a reader skip it; strict means say so instead. */
        fail(&ps, here(&ps), "byte order mark (BOM): save as UTF-8 without it");
    } else if (peek(&ps) < 0) {
        fail(&ps, here(&ps),
             ps.len == 0 ? "empty input" : "no value, only whitespace");
    } else if ((v = parse_value(&ps)) != NULL) {
        skip_space(&ps);
        if (peek(&ps) >= 0) {
            unexpected(&ps, "end of input after the value");
            zn_json_free(v);
            v = NULL;
        }
    }
    if (v == NULL) {
        if (err != NULL)
            *err = ps.err;
        errno = ps.nomem ? ENOMEM : EINVAL;
        return NULL;
    }
    errno = saved_errno;
    return v;
}

/* Fill *err for a file that could not be read, and leave errno set. */
/* Fail with errno e and the message "what: why" (why NULL: errno's text). */
static void *file_error(struct zn_json_error *err, int e, const char *what,
                        const char *why)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
        snprintf(err->msg, sizeof(err->msg), "%s: %s", what,
                 why != NULL ? why : zn_strerror(e));
    }
    errno = e;
    return NULL;
}

struct zn_json *zn_json_parse_file(const char *path, struct zn_json_error *err)
{
    const size_t limit = (size_t)ZN_JSON_MAX_FILE;
    size_t used = 0, cap = 4096;
    const char *what = "cannot read";
    struct zn_json *v;
    char *buf = NULL, *p;
    struct stat st;
    ssize_t r;
    int fd, e;

    /*
     * O_NONBLOCK: opening a FIFO with no writer would otherwise wait
     * forever. Only a regular file is read; the flag changes nothing for
     * one.
     */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return file_error(err, errno, "cannot open", NULL);
    if (fstat(fd, &st) < 0)
        goto err;
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return file_error(err, S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
                          "cannot read", "not a regular file");
    }
    if ((buf = malloc(cap)) == NULL) {
        errno = ENOMEM;
        goto err;
    }
    /*
     * Read until EOF into a buffer that doubles as needed, up to limit + 1
     * bytes: filling that last byte proves the file is too large without
     * reading the rest of it.
     */
    for (;;) {
        if (used == cap) {
            if (cap > limit) {
                errno = EFBIG;
                what = "file too large (over 1 MiB)";
                goto err;
            }
            cap = 2 * cap <= limit ? 2 * cap : limit + 1;
            if ((p = realloc(buf, cap)) == NULL) {
                errno = ENOMEM;
                goto err;
            }
            buf = p;
        }
        r = zn_read(fd, buf + used, cap - used);
        if (r < 0)
            goto err;
        if (r == 0)
            break;
        used += (size_t)r;
    }
    close(fd);
    v = zn_json_parse(buf, used, err);
    e = errno;
    free(buf);
    errno = e;
    return v;

err:
    e = errno;
    free(buf);
    close(fd);
    return file_error(err, e, what, NULL);
}

/*
 * Recursion is safe here for the same reason as in the parser: no tree is
 * deeper than ZN_JSON_MAX_DEPTH.
 */
void zn_json_free(struct zn_json *v)
{
    if (v == NULL)
        return;
    switch (v->type) {
    case ZN_JSON_STRING:
        free(v->u.string.chars);
        break;
    case ZN_JSON_ARRAY:
        for (size_t i = 0; i < v->u.array.len; i++)
            zn_json_free(v->u.array.items[i]);
        free(v->u.array.items);
        break;
    case ZN_JSON_OBJECT:
        for (size_t i = 0; i < v->u.object.len; i++) {
            free(v->u.object.keys[i]);
            zn_json_free(v->u.object.values[i]);
        }
        free(v->u.object.keys);
        free(v->u.object.values);
        break;
    default:
        break;
    }
    free(v);
}

/* A linear scan: config objects have a handful of keys. */
const struct zn_json *zn_json_get(const struct zn_json *obj, const char *key)
{
    if (obj == NULL || obj->type != ZN_JSON_OBJECT || key == NULL)
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    }
    return NULL;
}

const char *zn_json_type_name(enum zn_json_type t)
{
    switch (t) {
    case ZN_JSON_NULL:
        return "null";
    case ZN_JSON_BOOL:
        return "boolean";
    case ZN_JSON_NUMBER:
        return "number";
    case ZN_JSON_STRING:
        return "string";
    case ZN_JSON_ARRAY:
        return "array";
    case ZN_JSON_OBJECT:
        return "object";
    }
    return "unknown";
}
