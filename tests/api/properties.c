/*
 * Connection properties (v1.0) through the API, on one connection that is
 * never started: test_conn_new() (testconn.h) on one end of a socketpair,
 * with no server.
 *
 * First, one thread checks the contract in connection.h: get hands out a
 * copy (with its length and a NUL after the last byte) that the caller
 * may change and free without touching the connection's value; set
 * copies the caller's bytes (NUL bytes included); set replaces; a missing
 * key is NULL with errno ENOENT; remove twice is -ENOENT; keys are 1..64
 * bytes (-EINVAL otherwise); at most 64 properties (-ENOSPC for a new key,
 * while replacing one still works); foreach visits each property once and
 * stops at the first non-zero return; properties still work once the
 * connection has been stopped.
 *
 * Then several threads share the one connection, each for a bounded number
 * of iterations:
 *   setters  set the shared keys s0..s7 to values that say who wrote them
 *            (a header: key, thread, iteration; then bytes that follow
 *            from it), of lengths 16..600;
 *   getters  get the shared keys: each value must be one that a setter
 *            set for THAT key, whole (same length, same bytes, a NUL after
 *            it), never a mix of two; a missing key is fine (removers);
 *   removers remove shared keys now and then;
 *   fillers  add keys of their own until set says -ENOSPC, then remove
 *            them again: the connection is at its limit again and again;
 *   walkers  foreach: never more than 64 properties, each one whole.
 * After they are joined the survivors are checked once more, removed, and
 * the connection is released (under ASan a leak or a use after free fails
 * the run; under TSan so does a data race, such as one lock too few).
 *
 * Prints what failed on stderr, "ok" on stdout; exit 0 when all held.
 * Built and run by tests/test_properties.py.
 */
#include "testconn.h"
#include "zn_frame.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if ZN_STAGE_MINOR < 10
#error "connection properties come with v1.0"
#endif

#define SHARED 8 /* keys s0..s7 */
#define SETTERS 4
#define GETTERS 2
#define REMOVERS 1
#define FILLERS 2
#define WALKERS 1
#define ITER 20000 /* per setter, getter, remover */
#define FILL_ROUNDS 300 /* per filler */
#define WALKS 2000 /* per walker */
#define HEAD 16 /* value header: magic, key, writer, iteration */
#define MAGIC 0x5a4e5052u /* "ZNPR" */
#define MAXLEN 600

static atomic_int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            atomic_fetch_add(&failures, 1);                                    \
        }                                                                      \
    } while (0)

/* The value writer w sets for shared key k at iteration i; its length. */
static size_t make_value(unsigned char *buf, uint32_t k, uint32_t w, uint32_t i)
{
    size_t len = HEAD + (w * 131u + i * 17u + k * 7u) % (MAXLEN - HEAD + 1);

    zn_put_le32(buf, MAGIC);
    zn_put_le32(buf + 4, k);
    zn_put_le32(buf + 8, w);
    zn_put_le32(buf + 12, i);
    for (size_t j = HEAD; j < len; j++)
        buf[j] = (unsigned char)(k * 59u + w * 37u + i * 11u + j);
    return len;
}

/*
 * Is value (len bytes) one that was set for shared key k: whole, with a
 * NUL after it? Returns NULL or what is wrong.
 */
static const char *bad_value(uint32_t k, const unsigned char *value, size_t len)
{
    unsigned char want[MAXLEN];
    size_t wlen;

    if (len < HEAD || zn_get_le32(value) != MAGIC)
        return "no header: not a value anyone set";
    if (zn_get_le32(value + 4) != k)
        return "the value of another key";
    if (zn_get_le32(value + 8) > SETTERS || zn_get_le32(value + 12) >= ITER)
        return "a header nobody wrote";
    wlen = make_value(want, k, zn_get_le32(value + 8), zn_get_le32(value + 12));
    if (len != wlen)
        return "the length of another value (torn)";
    if (memcmp(value, want, len) != 0)
        return "bytes of another value (torn)";
    if (value[len] != '\0')
        return "no NUL after the value";
    return NULL;
}

static struct zn_conn *conn;

/* ---- single-threaded checks ---------------------------------------- */

struct count {
    int n;
    int stop_after; /* return 7 at this visit (0: never) */
};

static int count_one(const char *key, const void *value, size_t len, void *arg)
{
    struct count *c = arg;
    (void)value;
    (void)len;

    CHECK(key != NULL && key[0] != '\0' && strlen(key) <= 64,
          "foreach: a bad key");
    c->n++;
    return c->n == c->stop_after ? 7 : 0;
}

static int count_props(void)
{
    struct count c = {0, 0};

    CHECK(zn_conn_foreach_property(conn, count_one, &c) == 0,
          "foreach without a stop must return 0");
    return c.n;
}

static void check_get(const char *key, const void *want, size_t wlen)
{
    size_t len = (size_t)-1;
    unsigned char *v = zn_conn_get_property(conn, key, &len);

    CHECK(v != NULL, "get %s: NULL (errno %d)", key, errno);
    if (v == NULL)
        return;
    CHECK(len == wlen, "get %s: length %zu, want %zu", key, len, wlen);
    CHECK(len != wlen || memcmp(v, want, wlen) == 0, "get %s: other bytes",
          key);
    CHECK(len != wlen || v[wlen] == '\0', "get %s: no NUL after the value",
          key);
    free(v);
}

static void check_missing(const char *key)
{
    size_t len = 12345;
    void *v;

    errno = 0;
    v = zn_conn_get_property(conn, key, &len);
    CHECK(v == NULL, "get %s: a value, want none", key);
    CHECK(v != NULL || errno == ENOENT, "get %s: errno %d, want ENOENT", key,
          errno);
    free(v);
}

static void single_thread(void)
{
    unsigned char src[8] = {'a', 0, 'b', 0xff, '=', '\\', '\n', 0};
    unsigned char *v1, *v2;
    char key[80];
    size_t len;
    struct count stop = {0, 3};

    CHECK(count_props() == 0, "a new connection has properties");
    check_missing("x");
    CHECK(zn_conn_remove_property(conn, "x") == -ENOENT,
          "remove of a missing key must be -ENOENT");

    /* Set copies the caller's bytes, NUL bytes included. */
    CHECK(zn_conn_set_property(conn, "k", src, sizeof(src)) == 0, "set k");
    memset(src, 'z', sizeof(src));
    check_get("k", "a\0b\xff=\\\n", 8);

    /* Get hands out a copy: two gets, two buffers; changing one changes
     * neither the other nor the property. */
    v1 = zn_conn_get_property(conn, "k", &len);
    v2 = zn_conn_get_property(conn, "k", &len);
    CHECK(v1 != NULL && v2 != NULL && v1 != v2,
          "two gets must hand out two copies");
    if (v1 != NULL && v2 != NULL && v1 != v2) {
        memset(v1, 'q', 8);
        CHECK(memcmp(v2, "a\0b\xff=\\\n", 8) == 0,
              "changing one copy changed another");
        check_get("k", "a\0b\xff=\\\n", 8);
    }
    free(v1);
    free(v2);

    /* Set replaces, longer and shorter; an empty value is a value. */
    CHECK(zn_conn_set_property(conn, "k", "a longer value", 14) == 0,
          "replace k");
    check_get("k", "a longer value", 14);
    CHECK(zn_conn_set_property(conn, "k", "s", 1) == 0, "replace k again");
    check_get("k", "s", 1);
    CHECK(zn_conn_set_property(conn, "empty", "", 0) == 0, "set empty");
    check_get("empty", "", 0);
    CHECK(count_props() == 2, "k and empty: want 2 properties");

    /* Remove, then it is gone; a second remove is -ENOENT. */
    CHECK(zn_conn_remove_property(conn, "k") == 0, "remove k");
    check_missing("k");
    CHECK(zn_conn_remove_property(conn, "k") == -ENOENT, "remove k twice");
    CHECK(zn_conn_remove_property(conn, "empty") == 0, "remove empty");

    /* Keys: 1..64 bytes. */
    memset(key, 'K', 64);
    key[64] = '\0';
    CHECK(zn_conn_set_property(conn, key, "64", 2) == 0,
          "a 64-byte key must be accepted");
    check_get(key, "64", 2);
    CHECK(zn_conn_remove_property(conn, key) == 0, "remove the 64-byte key");
    memset(key, 'K', 65);
    key[65] = '\0';
    CHECK(zn_conn_set_property(conn, key, "65", 2) == -EINVAL,
          "a 65-byte key must be -EINVAL");
    check_missing(key);
    CHECK(zn_conn_set_property(conn, "", "e", 1) == -EINVAL,
          "an empty key must be -EINVAL");
    CHECK(count_props() == 0, "refused keys must not count");

    /* At most 64 properties. */
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        CHECK(zn_conn_set_property(conn, key, key, strlen(key)) == 0,
              "set %s (of 64)", key);
    }
    CHECK(count_props() == 64, "want 64 properties");
    CHECK(zn_conn_set_property(conn, "p64", "x", 1) == -ENOSPC,
          "a 65th property must be -ENOSPC");
    check_missing("p64");
    CHECK(zn_conn_set_property(conn, "p10", "new", 3) == 0,
          "replacing a property at the limit must work");
    check_get("p10", "new", 3);
    CHECK(zn_conn_remove_property(conn, "p0") == 0, "remove p0");
    CHECK(zn_conn_set_property(conn, "p64", "x", 1) == 0,
          "after a remove a new key must fit");
    CHECK(zn_conn_set_property(conn, "p65", "x", 1) == -ENOSPC,
          "full again: want -ENOSPC");
    CHECK(count_props() == 64, "want 64 properties again");

    /* foreach stops at the first non-zero return and returns it. */
    CHECK(zn_conn_foreach_property(conn, count_one, &stop) == 7,
          "foreach must return what fn returned");
    CHECK(stop.n == 3, "foreach went on after fn returned non-zero (%d)",
          stop.n);

    for (int i = 1; i <= 64; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        CHECK(zn_conn_remove_property(conn, key) == 0, "remove %s", key);
    }
    CHECK(count_props() == 0, "all removed: want none");
}

/* ---- many threads, one connection --------------------------------- */

static void *setter(void *arg)
{
    uint32_t w = (uint32_t)(uintptr_t)arg;
    unsigned char buf[MAXLEN];
    char key[8];

    for (uint32_t i = 0; i < ITER; i++) {
        uint32_t k = (i * 5u + w) % SHARED;
        size_t len = make_value(buf, k, w, i);
        int rc;

        snprintf(key, sizeof(key), "s%u", (unsigned)k);
        rc = zn_conn_set_property(conn, key, buf, len);
        /* -ENOSPC: the fillers took every place and s<k> was removed. */
        CHECK(rc == 0 || rc == -ENOSPC, "set %s: %d", key, rc);
    }
    return NULL;
}

static void *getter(void *arg)
{
    uint32_t g = (uint32_t)(uintptr_t)arg;
    char key[8];

    for (uint32_t i = 0; i < ITER; i++) {
        uint32_t k = (i * 3u + g) % SHARED;
        size_t len = 0;
        unsigned char *v;
        const char *why;

        snprintf(key, sizeof(key), "s%u", (unsigned)k);
        errno = 0;
        v = zn_conn_get_property(conn, key, &len);
        if (v == NULL) {
            CHECK(errno == ENOENT, "get %s: NULL with errno %d", key, errno);
            continue;
        }
        why = bad_value(k, v, len);
        CHECK(why == NULL, "get %s (%zu bytes): %s", key, len, why);
        free(v);
    }
    return NULL;
}

static void *remover(void *arg)
{
    char key[8];
    (void)arg;

    for (uint32_t i = 0; i < ITER; i++) {
        int rc;

        if (i % 4 != 0)
            continue; /* now and then: the setters must win mostly */
        snprintf(key, sizeof(key), "s%u", (unsigned)(i / 4 % SHARED));
        rc = zn_conn_remove_property(conn, key);
        CHECK(rc == 0 || rc == -ENOENT, "remove %s: %d", key, rc);
    }
    return NULL;
}

static void *filler(void *arg)
{
    uint32_t f = (uint32_t)(uintptr_t)arg;
    char key[24];

    for (int r = 0; r < FILL_ROUNDS; r++) {
        int added = 0, rc;

        for (int n = 0; n <= ZN_MAX_PROPERTIES; n++) {
            snprintf(key, sizeof(key), "f%u-%d", (unsigned)f, n);
            rc = zn_conn_set_property(conn, key, key, strlen(key));
            if (rc == -ENOSPC)
                break;
            CHECK(rc == 0, "set %s: %d", key, rc);
            added++;
        }
        CHECK(added < ZN_MAX_PROPERTIES + 1,
              "filler %u added %d new keys without -ENOSPC", (unsigned)f,
              added);
        for (int n = 0; n < added; n++) {
            snprintf(key, sizeof(key), "f%u-%d", (unsigned)f, n);
            rc = zn_conn_remove_property(conn, key);
            CHECK(rc == 0, "remove %s, which this filler set: %d", key, rc);
        }
    }
    return NULL;
}

/* foreach: every property whole, the count at most 64. */
static int check_one(const char *key, const void *value, size_t len, void *arg)
{
    int *n = arg;
    const unsigned char *v = value;
    size_t klen = strlen(key);

    (*n)++;
    CHECK(klen >= 1 && klen <= ZN_MAX_PROPERTY_KEY, "foreach: key of %zu",
          klen);
    if (key[0] == 's' && klen == 2) {
        const char *why = bad_value((uint32_t)(key[1] - '0'), v, len);
        CHECK(why == NULL, "foreach %s (%zu bytes): %s", key, len, why);
    } else if (key[0] == 'f') {
        CHECK(len == klen && memcmp(v, key, len) == 0 && v[len] == '\0',
              "foreach %s: not its own name", key);
    } else {
        CHECK(0, "foreach: a key nobody set: %s", key);
    }
    return 0;
}

static void *walker(void *arg)
{
    (void)arg;

    for (int i = 0; i < WALKS; i++) {
        int n = 0;

        CHECK(zn_conn_foreach_property(conn, check_one, &n) == 0,
              "foreach must return 0");
        CHECK(n <= ZN_MAX_PROPERTIES, "foreach saw %d properties", n);
    }
    return NULL;
}

static void many_threads(void)
{
    enum { N = SETTERS + GETTERS + REMOVERS + FILLERS + WALKERS };
    void *(*fn[N])(void *);
    uintptr_t a[N];
    pthread_t t[N];
    unsigned char buf[MAXLEN];
    int n = 0, left = 0;
    char key[8];

    for (int i = 0; i < SETTERS; i++, n++)
        fn[n] = setter, a[n] = (uintptr_t)i;
    for (int i = 0; i < GETTERS; i++, n++)
        fn[n] = getter, a[n] = (uintptr_t)i;
    for (int i = 0; i < REMOVERS; i++, n++)
        fn[n] = remover, a[n] = (uintptr_t)i;
    for (int i = 0; i < FILLERS; i++, n++)
        fn[n] = filler, a[n] = (uintptr_t)i;
    for (int i = 0; i < WALKERS; i++, n++)
        fn[n] = walker, a[n] = (uintptr_t)i;

    /* Every shared key has a value to start with (writer SETTERS). */
    for (uint32_t k = 0; k < SHARED; k++) {
        snprintf(key, sizeof(key), "s%u", (unsigned)k);
        CHECK(zn_conn_set_property(conn, key, buf,
                                   make_value(buf, k, SETTERS, 0)) == 0,
              "set %s", key);
    }
    for (int i = 0; i < N; i++) {
        int rc = pthread_create(&t[i], NULL, fn[i], (void *)a[i]);

        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            exit(1);
        }
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);

    /* What is left: only shared keys (the fillers removed theirs), each
     * whole. */
    walker(NULL);
    for (uint32_t k = 0; k < SHARED; k++) {
        snprintf(key, sizeof(key), "s%u", (unsigned)k);
        if (zn_conn_remove_property(conn, key) == 0)
            left++;
    }
    CHECK(count_props() == 0,
          "%d properties left after the shared keys "
          "were removed",
          count_props());
    printf("%d shared keys were left\n", left);
}

int main(void)
{
    struct sockaddr_in peer = {.sin_family = AF_INET};
    int sv[2];

    alarm(120); /* a watchdog: a lost wake-up must not hang the suite */
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    peer.sin_port = htons(9);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return perror("socketpair"), 1;
    /* Never started: no reader, no writer; this program owns it. */
    conn =
        test_conn_new(sv[0], 7, (struct sockaddr *)&peer, sizeof(peer), NULL);
    if (conn == NULL)
        return perror("test_conn_new"), 1;

    single_thread();
    many_threads();

    /* Properties outlive the end of the connection (on_conn_stop reads
     * them): still there after a stop, until the last release. */
    CHECK(zn_conn_set_property(conn, "after", "stop", 4) == 0, "set after");
    zn_conn_stop(conn);
    check_get("after", "stop", 4);
    CHECK(zn_conn_set_property(conn, "later", "yes", 3) == 0,
          "set after the stop");
    CHECK(count_props() == 2, "want 2 properties after the stop");

    zn_conn_release(conn); /* frees them: ASan reports any leak */
    close(sv[1]);
    if (atomic_load(&failures) != 0) {
        fprintf(stderr, "%d checks failed\n", atomic_load(&failures));
        return 1;
    }
    printf("ok\n");
    return 0;
}
