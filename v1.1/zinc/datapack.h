/*
 * datapack -- messages to bytes and back, in the zinx course's format.
 *
 *     offset 0   uint32 little-endian   DataLen   length of Data in bytes
 *     offset 4   uint32 little-endian   MsgID
 *     offset 8   DataLen bytes          Data
 *
 * A zinx client and a zinc server speak the same bytes. The integers are
 * written one byte at a time with shifts, never by copying a struct or an
 * int onto the wire: that would depend on the machine's byte order and on
 * the compiler's padding.
 */
#ifndef ZN_DATAPACK_H
#define ZN_DATAPACK_H

#include <stddef.h>
#include <stdint.h>

/* Bytes in a header: DataLen and MsgID. */
#define ZN_HEADER_LEN 8

/*
 * Pack a message into one new buffer: the header, then len bytes of data.
 * *size gets the buffer's length, ZN_HEADER_LEN + len. Returns the buffer,
 * which the caller frees, or NULL with errno ENOMEM (EMSGSIZE when the size
 * does not fit in a size_t). One buffer, so the message can go out in one
 * write.
 */
char *zn_datapack_pack(uint32_t id, const void *data, uint32_t len,
                       size_t *size);

/*
 * The size of a buffer zn_datapack_pack() made: the header and the DataLen
 * it holds. With it a packed message travels as one pointer, as it does
 * through a connection's outgoing channel.
 */
size_t zn_datapack_size(const char *packed);

/*
 * Read a header: *len gets DataLen and *id gets MsgID. Returns 0, or
 * -EMSGSIZE when DataLen is above the configured MaxPacketSize (if that is
 * not 0): the sender is broken or hostile, and the body must not be read.
 */
int zn_datapack_unpack(const unsigned char head[ZN_HEADER_LEN], uint32_t *id,
                       uint32_t *len);

#endif
