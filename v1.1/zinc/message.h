/*
 * message -- one TLV message: an id, a length and that many bytes of data.
 *
 * TCP delivers a stream of bytes, not messages: two sends may arrive as one
 * read ("sticky packets") and one send may arrive as several reads ("split
 * packets"). From v0.5 every message travels with its length in front, so
 * the receiver always knows where one ends and the next begins. datapack.h
 * turns messages into bytes and back.
 */
#ifndef ZN_MESSAGE_H
#define ZN_MESSAGE_H

#include <stdint.h>

struct zn_msg;

/*
 * A new message with the given id and a copy of len bytes of data. With
 * data NULL the len bytes are left for the caller to fill: the reader reads
 * a body straight into them. Returns NULL with errno ENOMEM. Free with
 * zn_msg_free().
 */
struct zn_msg *zn_msg_new(uint32_t id, const void *data, uint32_t len);

/*
 * Change the length of msg's data to len bytes, keeping what fits (like
 * realloc). Returns the message, which may have moved, or NULL with errno
 * ENOMEM; msg is then unchanged and still the caller's.
 */
struct zn_msg *zn_msg_resize(struct zn_msg *msg, uint32_t len);

/* Free a message; NULL is a no-op. */
void zn_msg_free(struct zn_msg *msg);

/* The message id: which router handles it (from v0.6). */
uint32_t zn_msg_id(const struct zn_msg *msg);

/* The length of the data in bytes (DataLen on the wire). */
uint32_t zn_msg_len(const struct zn_msg *msg);

/*
 * The data: zn_msg_len() bytes, followed by a NUL that is not part of the
 * message, so text payloads can be printed with %s.
 */
char *zn_msg_data(struct zn_msg *msg);

#endif
