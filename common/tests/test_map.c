/*
 * Unit test for zn_map: the three kinds of key zinc uses (u32 ids, strings,
 * and arbitrary bytes), the error returns, the walk, growth to 100000 keys,
 * and that the map copies keys and frees what it is told to free.
 */
#include "check.h"
#include "zn_map.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANY 100000

/* zn_map_new() or give up: every test below needs a map. */
static struct zn_map *new_map(void)
{
    struct zn_map *m = zn_map_new();

    if (m == NULL) {
        perror("zn_map_new");
        exit(1);
    }
    return m;
}

static void test_empty(void)
{
    struct zn_map *m = new_map();

    CHECK(zn_map_len(m) == 0);
    CHECK(zn_map_get_u32(m, 1) == NULL);
    CHECK(zn_map_get_str(m, "") == NULL);
    CHECK(zn_map_get(m, NULL, 0) == NULL);
    CHECK(zn_map_remove_u32(m, 1) == NULL);
    CHECK(zn_map_remove_str(m, "name") == NULL);
    CHECK(zn_map_len(m) == 0);
    zn_map_free(m, NULL);
    zn_map_free(NULL, NULL); /* allowed, like free(NULL) */
}

static void test_u32(void)
{
    struct zn_map *m = new_map();
    int ping = 0, hello = 1, other = 2;

    CHECK(zn_map_add_u32(m, 0, &ping) == 0);
    CHECK(zn_map_add_u32(m, 1, &hello) == 0);
    CHECK(zn_map_add_u32(m, UINT32_MAX, &other) == 0);
    CHECK(zn_map_len(m) == 3);
    CHECK(zn_map_get_u32(m, 0) == &ping);
    CHECK(zn_map_get_u32(m, 1) == &hello);
    CHECK(zn_map_get_u32(m, UINT32_MAX) == &other);
    CHECK(zn_map_get_u32(m, 2) == NULL);

    /* A duplicate is refused and the first value stays. */
    CHECK(zn_map_add_u32(m, 1, &other) == -EEXIST);
    CHECK(zn_map_get_u32(m, 1) == &hello);
    CHECK(zn_map_len(m) == 3);

    CHECK(zn_map_remove_u32(m, 1) == &hello);
    CHECK(zn_map_get_u32(m, 1) == NULL);
    CHECK(zn_map_remove_u32(m, 1) == NULL);
    CHECK(zn_map_len(m) == 2);
    CHECK(zn_map_add_u32(m, 1, &other) == 0); /* free to reuse now */
    CHECK(zn_map_get_u32(m, 1) == &other);
    zn_map_free(m, NULL);
}

static void test_str(void)
{
    struct zn_map *m = new_map();
    int a = 0, b = 1, c = 2;
    void *old = &a;

    CHECK(zn_map_set_str(m, "name", &a, &old) == 0);
    CHECK(old == NULL); /* nothing was replaced */
    CHECK(zn_map_set_str(m, "home", &b, NULL) == 0);
    CHECK(zn_map_set_str(m, "", &c, NULL) == 0); /* the empty key is a key */
    CHECK(zn_map_len(m) == 3);
    CHECK(zn_map_get_str(m, "name") == &a);
    CHECK(zn_map_get_str(m, "home") == &b);
    CHECK(zn_map_get_str(m, "") == &c);
    CHECK(zn_map_get(m, NULL, 0) == &c);
    CHECK(zn_map_get_str(m, "nam") == NULL);
    CHECK(zn_map_get_str(m, "names") == NULL);

    /* set replaces and hands the old value back. */
    CHECK(zn_map_set_str(m, "name", &c, &old) == 0);
    CHECK(old == &a);
    CHECK(zn_map_get_str(m, "name") == &c);
    CHECK(zn_map_len(m) == 3);
    CHECK(zn_map_set_str(m, "name", &b, NULL) == 0); /* old is optional */
    CHECK(zn_map_get_str(m, "name") == &b);

    CHECK(zn_map_remove_str(m, "home") == &b);
    CHECK(zn_map_remove_str(m, "") == &c);
    CHECK(zn_map_get_str(m, "home") == NULL);
    CHECK(zn_map_len(m) == 1);
    zn_map_free(m, NULL);
}

/* Keys are bytes, not C strings: a NUL inside a key is just another byte. */
static void test_binary(void)
{
    struct zn_map *m = new_map();
    static const char k1[] = {'a', '\0', 'b'};
    static const char k2[] = {'a', '\0', 'c'};
    static const char k3[] = {'a', '\0'};
    static const char k4[] = {'\0', '\0', '\0', '\0'};
    int v[5];

    CHECK(zn_map_add(m, k1, sizeof(k1), &v[1]) == 0);
    CHECK(zn_map_add(m, k2, sizeof(k2), &v[2]) == 0);
    CHECK(zn_map_add(m, k3, sizeof(k3), &v[3]) == 0);
    CHECK(zn_map_add(m, k4, sizeof(k4), &v[4]) == 0);
    CHECK(zn_map_add(m, "a", 1, &v[0]) == 0);
    CHECK(zn_map_len(m) == 5);
    CHECK(zn_map_get(m, k1, sizeof(k1)) == &v[1]);
    CHECK(zn_map_get(m, k2, sizeof(k2)) == &v[2]);
    CHECK(zn_map_get(m, k3, sizeof(k3)) == &v[3]);
    CHECK(zn_map_get(m, k4, sizeof(k4)) == &v[4]);
    CHECK(zn_map_get_str(m, "a") == &v[0]);
    CHECK(zn_map_get_u32(m, 0) == &v[4]); /* the same four zero bytes */
    CHECK(zn_map_get(m, k4, 3) == NULL);
    CHECK(zn_map_add(m, k1, sizeof(k1), &v[0]) == -EEXIST);
    CHECK(zn_map_remove(m, k2, sizeof(k2)) == &v[2]);
    CHECK(zn_map_get(m, k1, sizeof(k1)) == &v[1]);
    CHECK(zn_map_get(m, k2, sizeof(k2)) == NULL);
    zn_map_free(m, NULL);
}

/* A NULL value is refused, so that get() returning NULL means "absent". */
static void test_null_value(void)
{
    struct zn_map *m = new_map();
    int a = 0;
    void *old = &a;

    CHECK(zn_map_add_u32(m, 7, NULL) == -EINVAL);
    CHECK(zn_map_set_str(m, "k", NULL, &old) == -EINVAL);
    CHECK(old == NULL);
    CHECK(zn_map_len(m) == 0);

    /* Nor may set() replace a value with NULL. */
    CHECK(zn_map_set_str(m, "k", &a, NULL) == 0);
    CHECK(zn_map_set_str(m, "k", NULL, NULL) == -EINVAL);
    CHECK(zn_map_get_str(m, "k") == &a);
    zn_map_free(m, NULL);
}

/* The caller's key buffer may change after the call: the map has a copy. */
static void test_key_copied(void)
{
    struct zn_map *m = new_map();
    char key[16];
    int a = 0, b = 1;

    strcpy(key, "hello");
    CHECK(zn_map_set_str(m, key, &a, NULL) == 0);
    strcpy(key, "jello");
    CHECK(zn_map_get_str(m, "hello") == &a);
    CHECK(zn_map_get_str(m, key) == NULL);
    CHECK(zn_map_add(m, key, strlen(key), &b) == 0);
    memset(key, 'x', sizeof(key));
    CHECK(zn_map_get_str(m, "jello") == &b);
    CHECK(zn_map_get_str(m, "hello") == &a);
    zn_map_free(m, NULL);
}

struct walk {
    unsigned char seen[1000]; /* times each key was visited */
    int calls; /* fn calls so far */
    int stop_after; /* return 7 on this call; 0 = never stop */
    int bad; /* keys or values that did not match */
};

static int walk_fn(const void *key, size_t keylen, void *value, void *arg)
{
    struct walk *w = arg;
    uint32_t id;

    if (keylen != sizeof(id)) {
        w->bad++;
        return 0;
    }
    memcpy(&id, key, sizeof(id));
    if (id >= 1000 || *(uint32_t *)value != id)
        w->bad++;
    else
        w->seen[id]++;
    w->calls++;
    return w->calls == w->stop_after ? 7 : 0;
}

static void test_foreach(void)
{
    struct zn_map *m = new_map();
    static uint32_t ids[1000];
    struct walk w = {0};
    int once = 1, fail = 0;

    CHECK(zn_map_foreach(m, walk_fn, &w) == 0);
    CHECK(w.calls == 0);

    for (uint32_t i = 0; i < 1000; i++) {
        ids[i] = i;
        fail += zn_map_add_u32(m, i, &ids[i]) != 0;
    }
    CHECK(fail == 0);
    CHECK(zn_map_foreach(m, walk_fn, &w) == 0);
    CHECK(w.calls == 1000);
    CHECK(w.bad == 0);
    for (int i = 0; i < 1000; i++)
        once &= w.seen[i] == 1;
    CHECK(once);

    /* A non-zero return stops the walk and comes back to the caller. */
    memset(&w, 0, sizeof(w));
    w.stop_after = 3;
    CHECK(zn_map_foreach(m, walk_fn, &w) == 7);
    CHECK(w.calls == 3);
    zn_map_free(m, NULL);
}

/* Enough keys to grow the table many times; slow chains would show here. */
static void test_many(void)
{
    struct zn_map *m = new_map();
    static uint32_t vals[MANY];
    int add_fail = 0, get_fail = 0, rm_fail = 0, gone_fail = 0;

    for (uint32_t i = 0; i < MANY; i++) {
        vals[i] = i;
        add_fail += zn_map_add_u32(m, i * 7919u, &vals[i]) != 0;
    }
    CHECK(add_fail == 0);
    CHECK(zn_map_len(m) == MANY);
    for (uint32_t i = 0; i < MANY; i++)
        get_fail += zn_map_get_u32(m, i * 7919u) != &vals[i];
    CHECK(get_fail == 0);
    CHECK(zn_map_get_u32(m, 1) == NULL); /* not a multiple of 7919 */

    /* Remove the even ones; the odd ones must not notice. */
    for (uint32_t i = 0; i < MANY; i += 2)
        rm_fail += zn_map_remove_u32(m, i * 7919u) != &vals[i];
    CHECK(rm_fail == 0);
    CHECK(zn_map_len(m) == MANY / 2);
    get_fail = 0;
    for (uint32_t i = 0; i < MANY; i++) {
        if (i % 2 == 0)
            gone_fail += zn_map_get_u32(m, i * 7919u) != NULL;
        else
            get_fail += zn_map_get_u32(m, i * 7919u) != &vals[i];
    }
    CHECK(gone_fail == 0);
    CHECK(get_fail == 0);
    zn_map_free(m, NULL);
}

static int freed; /* values passed to count_free */

static void count_free(void *value)
{
    freed++;
    free(value);
}

/* zn_map_free hands every remaining value to free_value; valgrind checks. */
static void test_free_values(void)
{
    struct zn_map *m = new_map();
    char name[32];
    int fail = 0;

    for (int i = 0; i < 100; i++) {
        int *v = malloc(sizeof(*v));

        if (v == NULL) {
            fail++;
            continue;
        }
        *v = i;
        snprintf(name, sizeof(name), "prop-%d", i);
        fail += zn_map_set_str(m, name, v, NULL) != 0;
    }
    CHECK(fail == 0);
    free(zn_map_remove_str(m, "prop-42")); /* removed: ours to free */
    zn_map_free(m, count_free);
    CHECK(freed == 99);
}

int main(void)
{
    test_empty();
    test_u32();
    test_str();
    test_binary();
    test_null_value();
    test_key_copied();
    test_foreach();
    test_many();
    test_free_values();
    return CHECK_DONE();
}
