#include "zinc/connmgr.h"

#include "zinc/connection.h"

#include "zn_map.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct zn_connmgr {
    pthread_rwlock_t lock; /* readers: get, len, clear; writers: add, remove */
    struct zn_map *conns; /* uint32_t id -> struct zn_conn *, one ref each */
};

struct zn_connmgr *zn_connmgr_new(void)
{
    struct zn_connmgr *m = malloc(sizeof(*m));

    if (m == NULL)
        return NULL;
    m->conns = zn_map_new();
    if (m->conns == NULL || pthread_rwlock_init(&m->lock, NULL) != 0) {
        zn_map_free(m->conns, NULL);
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    return m;
}

static void release(void *conn)
{
    zn_conn_release(conn);
}

void zn_connmgr_free(struct zn_connmgr *m)
{
    if (m == NULL)
        return;
    zn_map_free(m->conns, release);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

int zn_connmgr_add(struct zn_connmgr *m, struct zn_conn *conn)
{
    int rc;

    pthread_rwlock_wrlock(&m->lock);
    rc = zn_map_add_u32(m->conns, zn_conn_id(conn), conn);
    pthread_rwlock_unlock(&m->lock);
    if (rc == 0)
        zn_conn_hold(conn);
    return rc;
}

void zn_connmgr_remove(struct zn_connmgr *m, struct zn_conn *conn)
{
    struct zn_conn *found;

    pthread_rwlock_wrlock(&m->lock);
    found = zn_map_get_u32(m->conns, zn_conn_id(conn));
    if (found == conn)
        zn_map_remove_u32(m->conns, zn_conn_id(conn));
    pthread_rwlock_unlock(&m->lock);
    /* After the unlock: the last release runs into the connection. */
    if (found == conn)
        zn_conn_release(conn);
}

struct zn_conn *zn_connmgr_get(struct zn_connmgr *m, uint32_t id)
{
    struct zn_conn *conn;

    pthread_rwlock_rdlock(&m->lock);
    conn = zn_map_get_u32(m->conns, id);
    if (conn != NULL)
        zn_conn_hold(conn); /* a counter, not a call into its logic */
    pthread_rwlock_unlock(&m->lock);
    return conn;
}

size_t zn_connmgr_len(struct zn_connmgr *m)
{
    size_t n;

    pthread_rwlock_rdlock(&m->lock);
    n = zn_map_len(m->conns);
    pthread_rwlock_unlock(&m->lock);
    return n;
}

/* Where clear() copies the list to. */
struct snapshot {
    struct zn_conn **conns;
    size_t n;
};

static int take(const void *key, size_t keylen, void *value, void *arg)
{
    struct snapshot *snap = arg;
    (void)key;
    (void)keylen;

    zn_conn_hold(value);
    snap->conns[snap->n++] = value;
    return 0;
}

int zn_connmgr_clear(struct zn_connmgr *m)
{
    struct snapshot snap = {NULL, 0};

    pthread_rwlock_rdlock(&m->lock);
    snap.conns = malloc((zn_map_len(m->conns) + 1) * sizeof(*snap.conns));
    if (snap.conns != NULL)
        zn_map_foreach(m->conns, take, &snap);
    pthread_rwlock_unlock(&m->lock);
    if (snap.conns == NULL)
        return -ENOMEM;

    /*
     * No lock held: stopping a connection wakes its reader, which removes
     * it from this manager (a write lock) while we are still going.
     */
    for (size_t i = 0; i < snap.n; i++) {
        zn_conn_stop(snap.conns[i]);
        zn_conn_release(snap.conns[i]);
    }
    free(snap.conns);
    return (int)snap.n;
}
