/*
 * properties -- a connection's properties (Go: SetProperty and friends):
 * a map from string keys to byte-string values, for the routers and hooks
 * to remember things about a client (a name, a session, what it asked
 * for).
 *
 * Routers and hooks run on the connection's loop, but any thread that
 * holds a reference may use them too, so the map sits behind
 * a read-write lock (Go: sync.RWMutex), and no pointer into it ever
 * leaves the lock: get hands out a copy. Users reach it through the
 * zn_conn_*_property() calls of connection.h.
 */
#ifndef ZN_PROPERTIES_H
#define ZN_PROPERTIES_H

#include <stddef.h>

/*
 * The limits, per connection: properties are set from what clients send,
 * and a client must not grow its connection without bound.
 */
#define ZN_MAX_PROPERTIES 64
#define ZN_MAX_PROPERTY_KEY 64 /* bytes, without the NUL */

/*
 * Called for one property by a walk over them all: its key, value and
 * length, and the walk's arg. Returns 0 to go on, non-zero to stop.
 */
typedef int (*zn_property_fn)(const char *key, const void *value, size_t len,
                              void *arg);

struct zn_properties;

/* An empty map. Returns NULL with errno ENOMEM. */
struct zn_properties *zn_properties_new(void);

/* Free the map and every value. NULL is a no-op. */
void zn_properties_free(struct zn_properties *props);

/*
 * Set key (a non-empty string of at most ZN_MAX_PROPERTY_KEY bytes) to a
 * copy of the len bytes at value (any bytes, NUL included), replacing any
 * value it had. Returns 0, -EINVAL for an empty or too long key, -ENOSPC
 * when ZN_MAX_PROPERTIES others are set already, or -ENOMEM. Takes the
 * write lock.
 */
int zn_properties_set(struct zn_properties *props, const char *key,
                      const void *value, size_t len);

/*
 * A copy of key's value, which the caller frees with free(), with its
 * length in *len and a NUL after its last byte (not counted). Returns NULL
 * with errno ENOENT when there is no such key, or ENOMEM. Takes the read
 * lock.
 */
void *zn_properties_get(struct zn_properties *props, const char *key,
                        size_t *len);

/* Remove key. Returns 0, or -ENOENT when there is none. Takes the write
 * lock. */
int zn_properties_remove(struct zn_properties *props, const char *key);

/*
 * Call fn(key, value, len, arg) for every property, in no particular
 * order, under the read lock: the pointers are valid only during the call,
 * and fn must not set or remove properties of this map (that would wait
 * for the lock it is called under). Returns what the last fn returned.
 */
int zn_properties_foreach(struct zn_properties *props, zn_property_fn fn,
                          void *arg);

#endif
