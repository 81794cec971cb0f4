/*
 * Unit test for zn_json: every kind of value, every kind of mistake (with
 * the line and column the user would be shown), truncation at every length,
 * nesting limits, files, and a fixed-seed fuzz loop over mutated documents.
 *
 * Every parse goes through parse_n(), which copies the text into a buffer of
 * exactly its length with no NUL after it, so a read one byte too far is
 * caught by AddressSanitizer or valgrind.
 */
#include "check.h"
#include "zn_json.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parse text[0..len) from an exact-size copy of it. */
static struct zn_json *parse_n(const char *text, size_t len,
                               struct zn_json_error *err)
{
    char *copy = malloc(len > 0 ? len : 1);
    struct zn_json *v;
    int e;

    memcpy(copy, text, len);
    v = zn_json_parse(copy, len, err);
    e = errno;
    free(copy);
    errno = e;
    return v;
}

static struct zn_json *parse(const char *text)
{
    struct zn_json_error err;
    struct zn_json *v = parse_n(text, strlen(text), &err);

    if (v == NULL)
        fprintf(stderr, "  rejected %s: %d:%d: %s\n", text, err.line, err.col,
                err.msg);
    return v;
}

/*
 * True when text[0..len) is refused with EINVAL at line:col and a message
 * that contains part (any message when part is NULL). Says why if not.
 */
static bool fails_at_n(const char *text, size_t len, int line, int col,
                       const char *part)
{
    struct zn_json_error err;
    struct zn_json *v;

    errno = 0;
    v = parse_n(text, len, &err);
    if (v != NULL) {
        fprintf(stderr, "  accepted: %.*s\n", (int)len, text);
        zn_json_free(v);
        return false;
    }
    if (errno != EINVAL || err.line != line || err.col != col ||
        err.msg[0] == '\0' || (part != NULL && !strstr(err.msg, part))) {
        fprintf(stderr, "  %.*s -> errno %d, %d:%d: %s\n", (int)len, text,
                errno, err.line, err.col, err.msg);
        return false;
    }
    return true;
}

static bool fails_at(const char *text, int line, int col, const char *part)
{
    return fails_at_n(text, strlen(text), line, col, part);
}

/* A number document's value, checked for type. */
static bool number_is(const char *text, double value, bool is_int,
                      long long int_value)
{
    struct zn_json *v = parse(text);
    bool ok = v != NULL && v->type == ZN_JSON_NUMBER &&
              v->u.number.value == value && v->u.number.is_int == is_int &&
              (!is_int || v->u.number.int_value == int_value);

    if (!ok)
        fprintf(stderr, "  number %s misread\n", text);
    zn_json_free(v);
    return ok;
}

/* A string document decodes to exactly bytes[0..len). */
static bool string_is(const char *text, const char *bytes, size_t len)
{
    struct zn_json *v = parse(text);
    bool ok = v != NULL && v->type == ZN_JSON_STRING &&
              v->u.string.len == len &&
              memcmp(v->u.string.chars, bytes, len) == 0 &&
              v->u.string.chars[len] == '\0';

    if (!ok)
        fprintf(stderr, "  string %s misread\n", text);
    zn_json_free(v);
    return ok;
}

static void test_scalars(void)
{
    struct zn_json *v;

    v = parse("null");
    CHECK(v != NULL && v->type == ZN_JSON_NULL && v->line == 1 && v->col == 1);
    zn_json_free(v);
    v = parse(" \t\r\n  true \n");
    CHECK(v != NULL && v->type == ZN_JSON_BOOL && v->u.boolean &&
          v->line == 2 && v->col == 3);
    zn_json_free(v);
    v = parse("false");
    CHECK(v != NULL && v->type == ZN_JSON_BOOL && !v->u.boolean);
    zn_json_free(v);

    CHECK(string_is("\"\"", "", 0));
    CHECK(string_is("\"plain text\"", "plain text", 10));
    CHECK(string_is("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8));
    CHECK(string_is("\"\\u00e9\"", "\xC3\xA9", 2));
    CHECK(string_is("\"\\u00E9\"", "\xC3\xA9", 2));
    CHECK(string_is("\"\\u0041\\u20AC\"", "A\xE2\x82\xAC", 4));
    CHECK(string_is("\"\\ud83d\\ude00\"", "\xF0\x9F\x98\x80", 4));
    CHECK(string_is("\"\\uDBFF\\uDFFF\"", "\xF4\x8F\xBF\xBF", 4));
    CHECK(string_is("\"a\\u0000b\"", "a\0b", 3));
    /* Raw UTF-8 passes through unchanged. */
    CHECK(string_is("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"",
                    "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9));

    /* A NULL text is the empty input; err may be NULL. */
    CHECK(zn_json_parse(NULL, 0, NULL) == NULL && errno == EINVAL);
    CHECK(zn_json_parse("[", 1, NULL) == NULL && errno == EINVAL);

    CHECK(strcmp(zn_json_type_name(ZN_JSON_NULL), "null") == 0);
    CHECK(strcmp(zn_json_type_name(ZN_JSON_BOOL), "boolean") == 0);
    CHECK(strcmp(zn_json_type_name(ZN_JSON_NUMBER), "number") == 0);
    CHECK(strcmp(zn_json_type_name(ZN_JSON_STRING), "string") == 0);
    CHECK(strcmp(zn_json_type_name(ZN_JSON_ARRAY), "array") == 0);
    CHECK(strcmp(zn_json_type_name(ZN_JSON_OBJECT), "object") == 0);
}

static void test_numbers(void)
{
    struct zn_json *v;
    char big[400];

    CHECK(number_is("0", 0, true, 0));
    CHECK(number_is("-0", 0, true, 0));
    v = parse("-0");
    CHECK(v != NULL && signbit(v->u.number.value));
    zn_json_free(v);
    CHECK(number_is("-0.0", 0, false, 0));
    CHECK(number_is("1.5e3", 1500, false, 0));
    CHECK(number_is("1.5E+3", 1500, false, 0));
    CHECK(number_is("25e-1", 2.5, false, 0));
    CHECK(number_is("1e2", 100, false, 0)); /* an exponent: not an int */
    CHECK(number_is("0.5", 0.5, false, 0));
    CHECK(number_is("-12", -12, true, -12));
    CHECK(number_is("8999", 8999, true, 8999));
    CHECK(number_is("9223372036854775807", 9223372036854775807.0, true,
                    LLONG_MAX));
    CHECK(number_is("-9223372036854775808", -9223372036854775808.0, true,
                    LLONG_MIN));
    CHECK(number_is("9223372036854775808", 9223372036854775808.0, false, 0));
    CHECK(number_is("-9223372036854775809", -9223372036854775808.0, false, 0));
    CHECK(number_is("1e-400", 0, false, 0)); /* underflow rounds to 0 */
    CHECK(number_is("1.7976931348623157e308", DBL_MAX, false, 0));

    CHECK(fails_at("1e400", 1, 1, "out of range"));
    CHECK(fails_at("-1e400", 1, 1, "out of range"));
    CHECK(fails_at("[1, -1e400]", 1, 5, "out of range"));
    CHECK(fails_at("1.8e308", 1, 1, "out of range"));

    /* A 300-digit integer is a fine double but no long long. */
    memset(big, '9', 300);
    big[300] = '\0';
    v = parse(big);
    CHECK(v != NULL && v->type == ZN_JSON_NUMBER && !v->u.number.is_int &&
          v->u.number.value > 9.9e299);
    zn_json_free(v);
    /* 310 digits is past the largest double. */
    memset(big, '9', 310);
    big[310] = '\0';
    CHECK(fails_at(big, 1, 1, "out of range"));
    /* Many digits after the point are fine. */
    memset(big, '0', sizeof(big));
    memcpy(big, "1.", 2);
    big[sizeof(big) - 2] = '5';
    big[sizeof(big) - 1] = '\0';
    v = parse(big);
    CHECK(v != NULL && v->u.number.value == 1.0 && !v->u.number.is_int);
    zn_json_free(v);

    /* Success leaves errno alone even though strtod set ERANGE inside. */
    errno = EBADF;
    v = zn_json_parse("1e-400", 6, NULL);
    CHECK(v != NULL && errno == EBADF);
    zn_json_free(v);
}

static void test_containers(void)
{
    const char *doc = "{\n"
                      "  \"b\": 1,\n"
                      "  \"a\": [true, \"two\", [3], {}],\n"
                      "  \"c\": {\"server\": {\"ports\": [8999, 9000]}},\n"
                      "  \"\": null\n"
                      "}";
    const struct zn_json *a, *c, *ports;
    struct zn_json *v = parse(doc);

    CHECK(v != NULL && v->type == ZN_JSON_OBJECT && v->u.object.len == 4);
    if (v == NULL)
        return;
    /* Keys stay in document order. */
    CHECK(strcmp(v->u.object.keys[0], "b") == 0);
    CHECK(strcmp(v->u.object.keys[1], "a") == 0);
    CHECK(strcmp(v->u.object.keys[2], "c") == 0);
    CHECK(strcmp(v->u.object.keys[3], "") == 0);

    CHECK(zn_json_get(v, "b")->u.number.int_value == 1);
    CHECK(zn_json_get(v, "")->type == ZN_JSON_NULL);
    CHECK(zn_json_get(v, "missing") == NULL);
    CHECK(zn_json_get(v, "B") == NULL);
    CHECK(zn_json_get(NULL, "b") == NULL);

    a = zn_json_get(v, "a");
    CHECK(a != NULL && a->type == ZN_JSON_ARRAY && a->u.array.len == 4);
    CHECK(a->line == 3 && a->col == 8);
    CHECK(zn_json_get(a, "b") == NULL); /* not an object */
    CHECK(a->u.array.items[0]->type == ZN_JSON_BOOL);
    CHECK(strcmp(a->u.array.items[1]->u.string.chars, "two") == 0);
    CHECK(a->u.array.items[1]->line == 3 && a->u.array.items[1]->col == 15);
    CHECK(a->u.array.items[2]->u.array.len == 1);
    CHECK(a->u.array.items[2]->u.array.items[0]->u.number.int_value == 3);
    CHECK(a->u.array.items[3]->type == ZN_JSON_OBJECT &&
          a->u.array.items[3]->u.object.len == 0);

    c = zn_json_get(v, "c");
    ports = zn_json_get(zn_json_get(c, "server"), "ports");
    CHECK(ports != NULL && ports->type == ZN_JSON_ARRAY &&
          ports->u.array.len == 2);
    CHECK(ports->u.array.items[1]->u.number.int_value == 9000);
    CHECK(ports->line == 4 && ports->col == 29);
    zn_json_free(v);

    v = parse("[ ]");
    CHECK(v != NULL && v->type == ZN_JSON_ARRAY && v->u.array.len == 0);
    zn_json_free(v);
    v = parse("{ }");
    CHECK(v != NULL && v->type == ZN_JSON_OBJECT && v->u.object.len == 0);
    zn_json_free(v);

    /* The shape the config loader reads. */
    v = parse("{\"Name\": \"x\", \"TcpPort\": 8999, \"MaxConn\": 12000}");
    CHECK(v != NULL);
    CHECK(strcmp(zn_json_get(v, "Name")->u.string.chars, "x") == 0);
    CHECK(zn_json_get(v, "TcpPort")->u.number.is_int);
    CHECK(zn_json_get(v, "TcpPort")->u.number.int_value == 8999);
    CHECK(zn_json_get(v, "MaxConn")->u.number.int_value == 12000);
    zn_json_free(v);
}

static void test_errors(void)
{
    /* Nothing there. */
    CHECK(fails_at("", 1, 1, "empty"));
    CHECK(fails_at("  \n\t ", 2, 3, "whitespace"));

    /* Commas, colons, keys. */
    CHECK(fails_at("[1,2,]", 1, 5, "trailing comma"));
    CHECK(fails_at("{\"a\":1,}", 1, 7, "trailing comma"));
    CHECK(fails_at("[,]", 1, 2, "expected a value"));
    CHECK(fails_at("{\"a\" 1}", 1, 6, "':'"));
    CHECK(fails_at("{\"a\"}", 1, 5, "':'"));
    CHECK(fails_at("[1 2]", 1, 4, "',' or ']'"));
    CHECK(fails_at("{\"a\":1 \"b\":2}", 1, 8, "',' or '}'"));
    CHECK(fails_at("{a:1}", 1, 2, "object key"));
    CHECK(fails_at("{1:1}", 1, 2, "object key"));
    CHECK(fails_at("[1,,2]", 1, 4, NULL));
    CHECK(fails_at("]", 1, 1, NULL));
    CHECK(fails_at("{\"a\":}", 1, 6, "value"));

    /* JavaScript habits. */
    CHECK(fails_at("'x'", 1, 1, "double quotes"));
    CHECK(fails_at("{'a': 1}", 1, 2, "double quotes"));
    CHECK(fails_at("[1] // note", 1, 5, "comments"));
    CHECK(fails_at("/* note */ 1", 1, 1, "comments"));
    CHECK(fails_at("{\"a\": 1 # note\n}", 1, 9, NULL));
    CHECK(fails_at("NaN", 1, 1, NULL));
    CHECK(fails_at("Infinity", 1, 1, NULL));
    CHECK(fails_at("-Infinity", 1, 2, "digit"));
    CHECK(fails_at("True", 1, 1, NULL));
    CHECK(fails_at("[tRue]", 1, 3, "'true'"));
    CHECK(fails_at("tru e", 1, 4, "'true'"));
    CHECK(fails_at("nul", 1, 4, "end of input"));

    /* Numbers. */
    CHECK(fails_at("01", 1, 2, "leading zero"));
    CHECK(fails_at("-01", 1, 3, "leading zero"));
    CHECK(fails_at("[00]", 1, 3, "leading zero"));
    CHECK(fails_at("+1", 1, 1, "'+'"));
    CHECK(fails_at(".5", 1, 1, "'.'"));
    CHECK(fails_at("1.", 1, 3, "digit after '.'"));
    CHECK(fails_at("1.e3", 1, 3, "digit after '.'"));
    CHECK(fails_at("-", 1, 2, "digit"));
    CHECK(fails_at("- 1", 1, 2, "digit"));
    CHECK(fails_at("1e", 1, 3, "exponent"));
    CHECK(fails_at("1e+", 1, 4, "exponent"));
    CHECK(fails_at("0x10", 1, 2, "end of input after the value"));
    CHECK(fails_at("1 000", 1, 3, "end of input after the value"));

    /* Escapes and surrogates. */
    CHECK(fails_at("\"\\x\"", 1, 2, "invalid escape"));
    CHECK(fails_at("\"ab\\'\"", 1, 4, "invalid escape"));
    CHECK(fails_at("\"\\U0041\"", 1, 2, "invalid escape"));
    CHECK(fails_at("\"\\u12G4\"", 1, 6, "hex digit"));
    CHECK(fails_at("\"\\u12\"", 1, 6, "hex digit"));
    CHECK(fails_at("\"\\ud83d\"", 1, 2, "lone high surrogate"));
    CHECK(fails_at("\"\\ud83dx\"", 1, 2, "lone high surrogate"));
    CHECK(fails_at("\"\\ud83d\\n\"", 1, 2, "lone high surrogate"));
    CHECK(fails_at("\"\\ud83d\\u0041\"", 1, 2, "low surrogate"));
    CHECK(fails_at("\"\\ud83d\\ud83d\"", 1, 2, "low surrogate"));
    CHECK(fails_at("\"x\\ude00\"", 1, 3, "lone low surrogate"));
    CHECK(fails_at("{\"a\\u0000\": 1}", 1, 2, "\\u0000"));

    /* Control characters must be escaped. */
    CHECK(fails_at("\"a\tb\"", 1, 3, "control character"));
    CHECK(fails_at("[\"a\nb\"]", 1, 4, "control character"));
    CHECK(fails_at_n("\"a\0b\"", 5, 1, 3, "control character"));
    CHECK(fails_at_n("[1,\0]", 5, 1, 4, "byte 0x00"));
    CHECK(fails_at("\"\x1f\"", 1, 2, "control character"));
    CHECK(string_is("\"\x7f\"", "\x7f", 1)); /* DEL is not a control here */

    /* Invalid UTF-8: every kind RFC 3629 forbids. */
    CHECK(fails_at("\"\xff\"", 1, 2, "invalid UTF-8"));
    CHECK(fails_at("\"ok \x80\"", 1, 5, "invalid UTF-8"));
    CHECK(fails_at("\"\xC3\x28\"", 1, 3, "invalid UTF-8")); /* bad 2nd */
    CHECK(fails_at("\"\xC0\xAF\"", 1, 2, "invalid UTF-8")); /* overlong */
    CHECK(fails_at("\"\xE0\x80\xAF\"", 1, 3, "invalid UTF-8")); /* overlong */
    CHECK(fails_at("\"\xED\xA0\x80\"", 1, 3, "invalid UTF-8")); /* D800 */
    CHECK(fails_at("\"\xF4\x90\x80\x80\"", 1, 3, "invalid UTF-8"));
    CHECK(fails_at("\"\xF0\x9F\x98\"", 1, 5, "invalid UTF-8")); /* short */
    CHECK(fails_at("\xEF\xBB\xBF{}", 1, 1, "byte order mark"));
    CHECK(fails_at("\xff", 1, 1, "invalid UTF-8"));
    CHECK(fails_at("[1, \xC3\xA9]", 1, 5, "got '\xC3\xA9'"));

    /* Something after the value. */
    CHECK(fails_at("{} x", 1, 4, "after the value"));
    CHECK(fails_at("1 2", 1, 3, "after the value"));
    CHECK(fails_at("truex", 1, 5, "after the value"));
    CHECK(fails_at("[1]]", 1, 4, "after the value"));
    CHECK(fails_at("{}\n\n  {}", 3, 3, "after the value"));

    /* Duplicate keys: at the second copy, even when far apart. */
    CHECK(fails_at("{\"a\":1,\"b\":2,\"a\":3}", 1, 14, "duplicate key \"a\""));
    CHECK(fails_at("{\"x\":{\"k\":1,\n \"k\":2}}", 2, 2, "duplicate key"));
    CHECK(fails_at("{\"b\":1,\"a\":1,\"a\":2,\"b\":2}", 1, 14,
                   "duplicate key \"a\""));
    CHECK(fails_at("{\"\\u00e9\":1,\"\xC3\xA9\":2}", 1, 13, "duplicate"));

    /* Unterminated strings: the error is at the end. */
    CHECK(fails_at("\"abc", 1, 5, "end of input"));
    CHECK(fails_at("{\"a\":\"x", 1, 8, "end of input"));
    CHECK(fails_at("\"abc\\", 1, 6, "end of input"));
    CHECK(fails_at("\"\\u00", 1, 6, "end of input"));
    CHECK(fails_at("\"\\ud83d\\", 1, 9, "end of input"));
    CHECK(fails_at("\"\xC3", 1, 3, "end of input"));

    /* A mistake on a later line is reported there. */
    CHECK(fails_at("{\n  \"a\": 1,\n  \"b\" 2\n}", 3, 7, "':'"));
    CHECK(fails_at("[\r\n1,\r\n2,\r\n]", 3, 2, "trailing comma"));
}

/* Where the end of text[0..len) is, as a line and column. */
static void end_position(const char *text, size_t len, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

static const char sample[] =
    "{\n"
    "  \"Name\": \"zinc \\\"demo\\\" \\u00e9\\ud83d\\ude00 \xC3\xA9"
    "\xF0\x9F\x98\x80\",\n"
    "  \"TcpPort\": 8999,\n"
    "  \"Ratio\": -12.5e-3,\n"
    "  \"Big\": 12345678901234567890,\n"
    "  \"Tags\": [\"a\", \"b\\n\", [], {}, [[1E+2, 0]]],\n"
    "  \"Nested\": {\"ok\": true, \"no\": false, \"nothing\": null},\n"
    "  \"Esc\": \"\\/\\\\\\b\\f\\r\\t\\u0000\"\n"
    "}\n";

/* Every proper prefix of a valid document fails, at its end, cleanly. */
static void test_truncation(void)
{
    size_t len = strlen(sample);
    struct zn_json *v = parse(sample);
    int bad = 0;

    CHECK(v != NULL && v->type == ZN_JSON_OBJECT && v->u.object.len == 7);
    CHECK(zn_json_get(zn_json_get(v, "Esc"), "x") == NULL);
    CHECK(zn_json_get(v, "Esc") != NULL &&
          zn_json_get(v, "Esc")->u.string.len == 7);
    zn_json_free(v);

    /* The last byte is a newline; without the closing '}' it must fail. */
    for (size_t n = 0; n < len - 1; n++) {
        int line, col;

        end_position(sample, n, &line, &col);
        if (!fails_at_n(sample, n, line, col, NULL))
            bad++;
    }
    CHECK(bad == 0);
}

static void test_nesting(void)
{
    enum { HUGE_DEPTH = 100000 };
    char *text = malloc(2 * HUGE_DEPTH);
    struct zn_json *v;
    int depth;

    /* 64 arrays: fine. 65: refused at the 65th '['. */
    for (int i = 0; i < ZN_JSON_MAX_DEPTH; i++) {
        text[i] = '[';
        text[2 * ZN_JSON_MAX_DEPTH - 1 - i] = ']';
    }
    v = parse_n(text, 2 * ZN_JSON_MAX_DEPTH, NULL);
    depth = 0;
    for (const struct zn_json *p = v; p != NULL; depth++) {
        if (p->type != ZN_JSON_ARRAY || p->u.array.len > 1)
            break;
        p = p->u.array.len == 1 ? p->u.array.items[0] : NULL;
    }
    CHECK(depth == ZN_JSON_MAX_DEPTH);
    CHECK(v != NULL);
    zn_json_free(v);
    for (int i = 0; i <= ZN_JSON_MAX_DEPTH; i++) {
        text[i] = '[';
        text[2 * (ZN_JSON_MAX_DEPTH + 1) - 1 - i] = ']';
    }
    CHECK(fails_at_n(text, 2 * (ZN_JSON_MAX_DEPTH + 1), 1, 65, "too deep"));

    /* Objects count too: {"a":{"a":...}} 65 deep. */
    size_t n = 0;
    for (int i = 0; i <= ZN_JSON_MAX_DEPTH; i++) {
        memcpy(text + n, "{\"a\":", 5);
        n += 5;
    }
    text[n++] = '1';
    memset(text + n, '}', ZN_JSON_MAX_DEPTH + 1);
    n += ZN_JSON_MAX_DEPTH + 1;
    CHECK(fails_at_n(text, n, 1, 5 * ZN_JSON_MAX_DEPTH + 1, "too deep"));
    v = parse_n(text + 5, n - 6, NULL); /* one level less: fine */
    CHECK(v != NULL);
    zn_json_free(v);

    /* 100,000 '[' with and without the closing half: no stack overflow. */
    memset(text, '[', HUGE_DEPTH);
    CHECK(fails_at_n(text, HUGE_DEPTH, 1, 65, "too deep"));
    memset(text + HUGE_DEPTH, ']', HUGE_DEPTH);
    CHECK(fails_at_n(text, 2 * HUGE_DEPTH, 1, 65, "too deep"));
    free(text);
}

/* Big inputs stay fast: a 100,000-member object, a 100,000-digit number. */
static void test_big(void)
{
    enum { MEMBERS = 100000 };
    char *text = malloc((size_t)MEMBERS * 16 + 16);
    size_t n = 0;
    struct zn_json *v;
    int line, col;

    text[n++] = '{';
    for (int i = 0; i < MEMBERS; i++)
        n += (size_t)sprintf(text + n, "%s\"k%d\":%d", i ? "," : "", i, i);
    text[n++] = '}';
    v = parse_n(text, n, NULL);
    CHECK(v != NULL && v->u.object.len == MEMBERS);
    CHECK(zn_json_get(v, "k99999") != NULL &&
          zn_json_get(v, "k99999")->u.number.int_value == 99999);
    zn_json_free(v);

    /* The same with "k5" again at the end. */
    n--;
    end_position(text, n, &line, &col);
    n += (size_t)sprintf(text + n, ",\"k5\":0}");
    CHECK(fails_at_n(text, n, line, col + 1, "duplicate key \"k5\""));

    memset(text, '1', MEMBERS);
    CHECK(fails_at_n(text, MEMBERS, 1, 1, "out of range"));
    text[0] = '0';
    text[1] = '.';
    v = parse_n(text, MEMBERS, NULL);
    CHECK(v != NULL && v->u.number.value > 0.11 && v->u.number.value < 0.12);
    zn_json_free(v);
    free(text);
}

/* Write text to a new temporary file; returns its path in path[]. */
static bool write_temp(char *path, const char *text, size_t len)
{
    int fd;

    strcpy(path, "/tmp/zn_test_json.XXXXXX");
    fd = mkstemp(path);
    if (fd < 0)
        return false;
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        return false;
    }
    return close(fd) == 0;
}

static void test_files(void)
{
    const char *bad = "{\n"
                      "  \"Name\": \"zinc\",\n"
                      "  \"TcpPort\": 8999\n"
                      "  \"MaxConn\": 12000\n"
                      "}\n";
    const char *good = "{\"Name\": \"zinc\", \"TcpPort\": 0}\n";
    struct zn_json_error err;
    struct zn_json *v;
    char path[64];
    char *big;

    errno = 0;
    v = zn_json_parse_file("/nonexistent/zinc.json", &err);
    CHECK(v == NULL && errno == ENOENT && err.line == 0 && err.msg[0]);
    v = zn_json_parse_file("/", &err); /* a directory: read(2) fails */
    CHECK(v == NULL && errno == EISDIR && err.line == 0);
    v = zn_json_parse_file("/nonexistent/zinc.json", NULL);
    CHECK(v == NULL && errno == ENOENT);

    CHECK(write_temp(path, bad, strlen(bad)));
    errno = 0;
    v = zn_json_parse_file(path, &err);
    CHECK(v == NULL && errno == EINVAL);
    CHECK(err.line == 4 && err.col == 3 && strstr(err.msg, "','"));
    unlink(path);

    CHECK(write_temp(path, good, strlen(good)));
    v = zn_json_parse_file(path, &err);
    CHECK(v != NULL && zn_json_get(v, "TcpPort")->u.number.int_value == 0);
    zn_json_free(v);
    unlink(path);

    /* Exactly the limit is fine; one byte more is not. */
    big = malloc(ZN_JSON_MAX_FILE + 1);
    memset(big, ' ', ZN_JSON_MAX_FILE + 1);
    big[ZN_JSON_MAX_FILE - 1] = '7';
    CHECK(write_temp(path, big, ZN_JSON_MAX_FILE));
    v = zn_json_parse_file(path, &err);
    CHECK(v != NULL && v->u.number.int_value == 7);
    zn_json_free(v);
    unlink(path);
    CHECK(write_temp(path, big, ZN_JSON_MAX_FILE + 1));
    errno = 0;
    v = zn_json_parse_file(path, &err);
    CHECK(v == NULL && errno == EFBIG && err.line == 0 &&
          strstr(err.msg, "too large"));
    unlink(path);
    free(big);
}

/* ---- Fuzzing ---- */

static uint32_t rng_state = 20261121; /* fixed: every run is the same */

static uint32_t rng(void)
{
    /* xorshift32: small, fast, good enough to shuffle bytes. */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Bytes that steer the parser into its corners. */
static const char spicy[] = "{}[]:,\"\\/'u0123456789abcdefABCDEF.eE+- \n\t"
                            "tfnrl\x01\x7f\x80\xBF\xC3\xE0\xED\xF0\xF4\xFF";

/* A tree that came back must be well formed; true if so. */
static bool well_formed(const struct zn_json *v, int depth)
{
    if (depth > ZN_JSON_MAX_DEPTH || v->line < 1 || v->col < 1)
        return false;
    switch (v->type) {
    case ZN_JSON_NULL:
    case ZN_JSON_BOOL:
    case ZN_JSON_NUMBER:
        return true;
    case ZN_JSON_STRING:
        return v->u.string.chars[v->u.string.len] == '\0';
    case ZN_JSON_ARRAY:
        for (size_t i = 0; i < v->u.array.len; i++)
            if (!well_formed(v->u.array.items[i], depth + 1))
                return false;
        return true;
    case ZN_JSON_OBJECT:
        for (size_t i = 0; i < v->u.object.len; i++) {
            if (zn_json_get(v, v->u.object.keys[i]) != v->u.object.values[i])
                return false; /* a duplicate slipped through */
            if (!well_formed(v->u.object.values[i], depth + 1))
                return false;
        }
        return true;
    }
    return false;
}

/* The error lies inside text[0..len] (the end counts). */
static bool error_in_range(const char *text, size_t len,
                           const struct zn_json_error *err)
{
    size_t i = 0;

    if (err->line < 1 || err->col < 1 || err->msg[0] == '\0')
        return false;
    for (int line = 1; line < err->line; line++) {
        while (i < len && text[i] != '\n')
            i++;
        if (i == len)
            return false;
        i++;
    }
    return i + (size_t)(err->col - 1) <= len;
}

static void test_fuzz(void)
{
    enum { ROUNDS = 20000, CAP = 1024 };
    size_t sample_len = strlen(sample);
    char buf[CAP];
    int accepted = 0, rejected = 0, broken = 0;

    for (int round = 0; round < 2 * ROUNDS; round++) {
        struct zn_json_error err;
        struct zn_json *v;
        size_t len;

        if (round < ROUNDS) {
            /* 1 to 4 mutations of the sample document. */
            memcpy(buf, sample, sample_len);
            len = sample_len;
            for (int m = 1 + (int)(rng() % 4); m > 0 && len > 0; m--) {
                size_t at = rng() % len, k;

                switch (rng() % 5) {
                case 0: /* replace a byte */
                    buf[at] = spicy[rng() % (sizeof(spicy) - 1)];
                    break;
                case 1: /* replace with any byte */
                    buf[at] = (char)(rng() & 0xFF);
                    break;
                case 2: /* delete a short run */
                    k = 1 + rng() % 8;
                    if (k > len - at)
                        k = len - at;
                    memmove(buf + at, buf + at + k, len - at - k);
                    len -= k;
                    break;
                case 3: /* insert a byte */
                    if (len < CAP) {
                        memmove(buf + at + 1, buf + at, len - at);
                        buf[at] = spicy[rng() % (sizeof(spicy) - 1)];
                        len++;
                    }
                    break;
                default: /* repeat a run */
                    k = 1 + rng() % 32;
                    if (k > len - at)
                        k = len - at;
                    if (len + k <= CAP) {
                        memmove(buf + at + k, buf + at, len - at);
                        len += k;
                    }
                    break;
                }
            }
        } else {
            /* Short random strings over the spicy alphabet. */
            len = rng() % 48;
            for (size_t i = 0; i < len; i++)
                buf[i] = spicy[rng() % (sizeof(spicy) - 1)];
        }

        errno = 0;
        v = parse_n(buf, len, &err);
        if (v != NULL) {
            accepted++;
            if (!well_formed(v, 0))
                broken++;
            zn_json_free(v);
        } else {
            rejected++;
            if (errno != EINVAL || !error_in_range(buf, len, &err))
                broken++;
        }
    }
    printf("fuzz: %d accepted, %d rejected\n", accepted, rejected);
    CHECK(broken == 0);
    CHECK(accepted > 100); /* the mutations do not only break things */
    CHECK(rejected > 100);
}

int main(void)
{
    test_scalars();
    test_numbers();
    test_containers();
    test_errors();
    test_truncation();
    test_nesting();
    test_big();
    test_files();
    test_fuzz();
    return CHECK_DONE();
}
