#include "zinc/properties.h"

#include "zn_map.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct zn_properties {
    pthread_rwlock_t lock; /* readers: get, foreach; writers: the rest */
    struct zn_map *map; /* key -> struct zn_prop *, owned */
};

/* A property's value, with its key (the map's copy has no NUL). */
struct zn_prop {
    size_t len; /* bytes in value */
    char key[ZN_MAX_PROPERTY_KEY + 1]; /* NUL-terminated */
    unsigned char value[]; /* len bytes and a NUL */
};

struct zn_properties *zn_properties_new(void)
{
    struct zn_properties *m = malloc(sizeof(*m));

    if (m == NULL)
        goto err;
    m->map = zn_map_new();
    if (m->map == NULL)
        goto err_free;
    if (pthread_rwlock_init(&m->lock, NULL) != 0)
        goto err_map;
    return m;
err_map:
    zn_map_free(m->map, NULL);
err_free:
    free(m);
err:
    errno = ENOMEM;
    return NULL;
}

void zn_properties_free(struct zn_properties *m)
{
    if (m == NULL)
        return;
    zn_map_free(m->map, free);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

int zn_properties_set(struct zn_properties *m, const char *key,
                      const void *value, size_t len)
{
    size_t keylen = strlen(key);
    struct zn_prop *p, *old = NULL;
    int rc;

    if (keylen == 0 || keylen > ZN_MAX_PROPERTY_KEY)
        return -EINVAL;
    /* The copy is made before the lock: nobody waits for a malloc. */
    p = malloc(sizeof(*p) + len + 1);
    if (p == NULL)
        return -ENOMEM;
    p->len = len;
    memcpy(p->key, key, keylen + 1);
    if (len > 0)
        memcpy(p->value, value, len);
    p->value[len] = '\0';

    pthread_rwlock_wrlock(&m->lock);
    if (zn_map_len(m->map) >= ZN_MAX_PROPERTIES &&
        zn_map_get_str(m->map, key) == NULL)
        rc = -ENOSPC; /* a new key, and no room for it */
    else
        rc = zn_map_set_str(m->map, key, p, (void **)&old);
    pthread_rwlock_unlock(&m->lock);
    free(rc == 0 ? old : p); /* the value replaced, or ours unused */
    return rc;
}

void *zn_properties_get(struct zn_properties *m, const char *key, size_t *len)
{
    struct zn_prop *p;
    void *copy = NULL;
    int err = ENOENT;

    pthread_rwlock_rdlock(&m->lock);
    p = zn_map_get_str(m->map, key);
    if (p != NULL) {
        /* Copied under the lock: a set or remove may free p right after. */
        copy = malloc(p->len + 1);
        if (copy != NULL) {
            memcpy(copy, p->value, p->len + 1);
            *len = p->len;
        }
        err = ENOMEM;
    }
    pthread_rwlock_unlock(&m->lock);
    if (copy == NULL)
        errno = err;
    return copy;
}

int zn_properties_remove(struct zn_properties *m, const char *key)
{
    struct zn_prop *p;

    pthread_rwlock_wrlock(&m->lock);
    p = zn_map_remove_str(m->map, key);
    pthread_rwlock_unlock(&m->lock);
    free(p);
    return p != NULL ? 0 : -ENOENT;
}

/* zn_properties_foreach()'s walk: the caller's function, its argument. */
struct prop_walk {
    zn_property_fn fn;
    void *arg;
};

static int visit(const void *key, size_t keylen, void *value, void *arg)
{
    struct prop_walk *w = arg;
    struct zn_prop *p = value;
    (void)key;
    (void)keylen;

    return w->fn(p->key, p->value, p->len, w->arg);
}

int zn_properties_foreach(struct zn_properties *m, zn_property_fn fn, void *arg)
{
    struct prop_walk w = {fn, arg};
    int rc;

    pthread_rwlock_rdlock(&m->lock);
    rc = zn_map_foreach(m->map, visit, &w);
    pthread_rwlock_unlock(&m->lock);
    return rc;
}
