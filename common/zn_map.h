/*
 * zn_map -- a small hash map, the C stand-in for Go's map.
 *
 * Later stages need three lookup tables: message id -> router (v0.6),
 * connection id -> connection (v0.9) and property name -> value (v1.0). Go
 * has map[K]V built in; C does not, so this one module serves all three.
 *
 * Keys are byte strings of any length, NUL bytes included. The map copies
 * each key when it is inserted, so the caller's buffer may be reused at
 * once. Values are plain `void *` pointers that the map stores but never
 * follows: the caller owns what they point to. A value may not be NULL, so
 * that zn_map_get() returning NULL always means "no such key".
 *
 * The map is NOT thread-safe, on purpose. The code that owns a map knows
 * which lock protects it and how long it must be held: the connection
 * manager, say, holds a pthread_rwlock_t across a lookup *and* the use of
 * the connection it found. A mutex inside the map could not cover that, and
 * would only cost a second lock on every call.
 *
 * Every function below takes a valid map; only zn_map_free() accepts NULL.
 */
#ifndef ZN_MAP_H
#define ZN_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct zn_map; /* opaque: see zn_map.c */

/* A new, empty map. Returns NULL with errno ENOMEM. */
struct zn_map *zn_map_new(void);

/*
 * Free the map and its copies of the keys. When free_value is not NULL it is
 * called once on every value still in the map, so a map that owns its values
 * can be torn down in one call. A NULL map does nothing.
 */
void zn_map_free(struct zn_map *m, void (*free_value)(void *));

/*
 * Insert key -> value; key points to keylen bytes (key may be NULL only when
 * keylen is 0). Returns 0, -EEXIST if the key is already there (the map is
 * unchanged and keeps the old value), -EINVAL for a NULL value, or -ENOMEM.
 */
int zn_map_add(struct zn_map *m, const void *key, size_t keylen, void *value);

/*
 * Insert key -> value, or replace the value if the key is already there.
 * When old is not NULL, *old gets the value that was replaced, or NULL if
 * there was none (or the call failed); the caller owns it again. Returns 0,
 * -EINVAL for a NULL value, or -ENOMEM (the map is then unchanged).
 */
int zn_map_set(struct zn_map *m, const void *key, size_t keylen, void *value,
               void **old);

/* The value stored for key, or NULL if the key is not in the map. */
void *zn_map_get(const struct zn_map *m, const void *key, size_t keylen);

/*
 * Remove key from the map and return its value, which the caller owns
 * again. Returns NULL if the key was not there.
 */
void *zn_map_remove(struct zn_map *m, const void *key, size_t keylen);

/* The number of keys in the map. */
size_t zn_map_len(const struct zn_map *m);

/*
 * Call fn(key, keylen, value, arg) once for every entry, in no particular
 * order. key points into the map's own copy and is valid only during the
 * call. fn returns 0 to go on or non-zero to stop the walk early; that
 * value is what zn_map_foreach() returns (0 when every entry was visited).
 * fn must not add, set or remove keys of this map while it walks.
 */
int zn_map_foreach(const struct zn_map *m,
                   int (*fn)(const void *key, size_t keylen, void *value,
                             void *arg),
                   void *arg);

/*
 * Shorthands for the two key types zinc uses. A uint32_t key (a message id,
 * a connection id) is stored as its 4 bytes in host byte order; a string key
 * (a property name) as its characters without the terminating NUL. Use one
 * kind of key per map: the map sees only bytes, so on a little-endian
 * machine the u32 key 0x64636261 and the string key "abcd" are one key.
 */

/* zn_map_get() with a uint32_t key. */
static inline void *zn_map_get_u32(const struct zn_map *m, uint32_t key)
{
    return zn_map_get(m, &key, sizeof(key));
}

/* zn_map_add() with a uint32_t key: 0, -EEXIST, -EINVAL or -ENOMEM. */
static inline int zn_map_add_u32(struct zn_map *m, uint32_t key, void *value)
{
    return zn_map_add(m, &key, sizeof(key), value);
}

/* zn_map_remove() with a uint32_t key: the value, or NULL if absent. */
static inline void *zn_map_remove_u32(struct zn_map *m, uint32_t key)
{
    return zn_map_remove(m, &key, sizeof(key));
}

/* zn_map_get() with a NUL-terminated string key. */
static inline void *zn_map_get_str(const struct zn_map *m, const char *key)
{
    return zn_map_get(m, key, strlen(key));
}

/* zn_map_set() with a NUL-terminated string key: 0, -EINVAL or -ENOMEM. */
static inline int zn_map_set_str(struct zn_map *m, const char *key, void *value,
                                 void **old)
{
    return zn_map_set(m, key, strlen(key), value, old);
}

/* zn_map_remove() with a NUL-terminated string key. */
static inline void *zn_map_remove_str(struct zn_map *m, const char *key)
{
    return zn_map_remove(m, key, strlen(key));
}

#endif
