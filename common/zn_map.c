/*
 * zn_map -- a hash map with separate chaining.
 *
 * The map is an array of buckets. Each bucket heads a singly linked list
 * (a "chain") of the entries whose key hashes to it:
 *
 *     buckets[0] -> NULL
 *     buckets[1] -> {"name", v1} -> {"42", v2} -> NULL
 *     buckets[2] -> {"port", v3} -> NULL
 *     ...
 *
 * Every operation is the same three steps: hash the key, pick its bucket,
 * walk that short chain. We chose chaining over open addressing because it
 * reads fastest: removing a key is just unlinking a node (open addressing
 * needs tombstones or moving neighbours back), and growing the table only
 * relinks nodes, so it cannot fail halfway. Open addressing is kinder to the
 * cache, but zinc's maps hold thousands of entries, not millions, and are
 * never the bottleneck next to a system call per message.
 *
 * The number of buckets is a power of two, so "hash modulo buckets" is a
 * cheap mask. When the entries would outnumber 3/4 of the buckets, the
 * bucket array doubles: chains stay about one entry long on average, and a
 * lookup costs the same with ten keys or a hundred thousand. The map never
 * shrinks; a table that once held many keys keeps its (small) bucket array.
 */
#include "zn_map.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ZN_MAP_MIN_BUCKETS 8 /* a power of two */

struct zn_map_entry {
    struct zn_map_entry *next; /* next entry in the same bucket, or NULL */
    uint64_t hash; /* hash of key, kept so growing never rehashes
                      and most mismatches skip the memcmp */
    void *value; /* the caller's pointer, never NULL */
    size_t keylen; /* bytes in key */
    unsigned char key[]; /* the map's own copy of the key */
};

struct zn_map {
    struct zn_map_entry **buckets; /* nbuckets chain heads */
    size_t nbuckets; /* always a power of two */
    size_t len; /* entries in the map */
};

/*
 * FNV-1a, 64-bit: for each byte, xor it in, then multiply by the FNV prime.
 * It is a few lines, has no tables, and spreads even sequential ids
 * (connection 1, 2, 3...) evenly over the low bits we mask with.
 */
static uint64_t map_hash(const void *key, size_t keylen)
{
    const unsigned char *p = key;
    uint64_t h = 14695981039346656037u; /* FNV offset basis */

    for (size_t i = 0; i < keylen; i++) {
        h ^= p[i];
        h *= 1099511628211u; /* FNV prime */
    }
    return h;
}

/*
 * Find key in its chain. Returns the address of the link that points to the
 * matching entry -- the bucket head or the previous entry's next field --
 * or the address of the NULL link at the end of the chain when the key is
 * absent. Holding the link rather than the entry lets remove unlink it
 * without a separate "previous" pointer.
 */
static struct zn_map_entry **map_find(const struct zn_map *m, const void *key,
                                      size_t keylen, uint64_t hash)
{
    struct zn_map_entry **link = &m->buckets[hash & (m->nbuckets - 1)];

    for (; *link != NULL; link = &(*link)->next) {
        const struct zn_map_entry *e = *link;

        /* memcmp must not see a NULL pointer, even for 0 bytes. */
        if (e->hash == hash && e->keylen == keylen &&
            (keylen == 0 || memcmp(e->key, key, keylen) == 0))
            return link;
    }
    return link;
}

/*
 * Double the bucket array and relink every entry into its new bucket. If
 * the new array cannot be allocated, nothing changes: the chains just get
 * longer than we like, every lookup still works, and the next insert tries
 * again. That is why a failed grow is not an error.
 */
static void map_grow(struct zn_map *m)
{
    size_t n = m->nbuckets * 2;
    struct zn_map_entry **buckets = calloc(n, sizeof(*buckets));

    if (buckets == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct zn_map_entry *e = m->buckets[i], *next;

        for (; e != NULL; e = next) {
            size_t j = e->hash & (n - 1);

            next = e->next;
            e->next = buckets[j];
            buckets[j] = e;
        }
    }
    free(m->buckets);
    m->buckets = buckets;
    m->nbuckets = n;
}

/*
 * Add a new entry for a key known to be absent. The only allocation comes
 * first, so on -ENOMEM the map has not been touched.
 */
static int map_insert(struct zn_map *m, const void *key, size_t keylen,
                      uint64_t hash, void *value)
{
    struct zn_map_entry *e;
    size_t i;

    if (keylen > SIZE_MAX - sizeof(*e)) /* the size would wrap around */
        return -ENOMEM;
    e = malloc(sizeof(*e) + keylen);
    if (e == NULL)
        return -ENOMEM;
    e->hash = hash;
    e->value = value;
    e->keylen = keylen;
    if (keylen > 0)
        memcpy(e->key, key, keylen);

    /* Grow before linking, so the entry goes straight to its final bucket. */
    if (m->len + 1 > m->nbuckets / 4 * 3)
        map_grow(m);
    i = hash & (m->nbuckets - 1);
    e->next = m->buckets[i];
    m->buckets[i] = e;
    m->len++;
    return 0;
}

struct zn_map *zn_map_new(void)
{
    struct zn_map *m = malloc(sizeof(*m));

    if (m == NULL)
        goto err;
    m->buckets = calloc(ZN_MAP_MIN_BUCKETS, sizeof(*m->buckets));
    if (m->buckets == NULL)
        goto err;
    m->nbuckets = ZN_MAP_MIN_BUCKETS;
    m->len = 0;
    return m;

err:
    free(m);
    errno = ENOMEM;
    return NULL;
}

void zn_map_free(struct zn_map *m, void (*free_value)(void *))
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct zn_map_entry *e = m->buckets[i], *next;

        for (; e != NULL; e = next) {
            next = e->next;
            if (free_value != NULL)
                free_value(e->value);
            free(e);
        }
    }
    free(m->buckets);
    free(m);
}

int zn_map_add(struct zn_map *m, const void *key, size_t keylen, void *value)
{
    uint64_t hash;

    if (value == NULL)
        return -EINVAL;
    hash = map_hash(key, keylen);
    if (*map_find(m, key, keylen, hash) != NULL)
        return -EEXIST;
    return map_insert(m, key, keylen, hash, value);
}

int zn_map_set(struct zn_map *m, const void *key, size_t keylen, void *value,
               void **old)
{
    struct zn_map_entry *e;
    uint64_t hash;

    if (old != NULL)
        *old = NULL;
    if (value == NULL)
        return -EINVAL;
    hash = map_hash(key, keylen);
    e = *map_find(m, key, keylen, hash);
    if (e != NULL) {
        /* Replacing needs no memory, so it cannot fail. */
        if (old != NULL)
            *old = e->value;
        e->value = value;
        return 0;
    }
    return map_insert(m, key, keylen, hash, value);
}

void *zn_map_get(const struct zn_map *m, const void *key, size_t keylen)
{
    struct zn_map_entry *e = *map_find(m, key, keylen, map_hash(key, keylen));

    return e != NULL ? e->value : NULL;
}

void *zn_map_remove(struct zn_map *m, const void *key, size_t keylen)
{
    struct zn_map_entry **link, *e;
    void *value;

    link = map_find(m, key, keylen, map_hash(key, keylen));
    e = *link;
    if (e == NULL)
        return NULL;
    *link = e->next; /* unlink: whoever pointed at e now skips it */
    value = e->value;
    free(e);
    m->len--;
    return value;
}

size_t zn_map_len(const struct zn_map *m)
{
    return m->len;
}

int zn_map_foreach(const struct zn_map *m,
                   int (*fn)(const void *key, size_t keylen, void *value,
                             void *arg),
                   void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct zn_map_entry *e = m->buckets[i]; e != NULL; e = e->next) {
            int rc = fn(e->key, e->keylen, e->value, arg);

            if (rc != 0)
                return rc;
        }
    }
    return 0;
}
