/*
 * zn_frame -- the frame header of the wire format (DESIGN.md section 3),
 * for the code outside the stages: the client library, the benchmark's
 * programs and the tests. The stages teach the same bytes in their own
 * zinc/datapack.[ch] and do not use this header.
 *
 *     offset 0   uint32 little-endian   DataLen   length of the body
 *     offset 4   uint32 little-endian   MsgID
 *     offset 8   DataLen bytes          the body
 *
 * The integers are written and read one byte at a time with shifts, never
 * by copying an integer or a struct: the bytes are the same on every CPU.
 * Each helper touches exactly the bytes it names (4 for an integer,
 * ZN_FRAME_HEADER_LEN for a header) and nothing around them. Decoding
 * checks nothing: a DataLen too large for the reader is the caller's to
 * refuse, before it reads the body.
 */
#ifndef ZN_FRAME_H
#define ZN_FRAME_H

#include <stdint.h>

/* Bytes in a frame header: DataLen, then MsgID. */
#define ZN_FRAME_HEADER_LEN 8

/* Write v at p[0..3], least significant byte first. */
static inline void zn_put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* The uint32 at p[0..3], least significant byte first. */
static inline uint32_t zn_get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/*
 * Write the header of a frame with id and a body of len bytes into
 * head[0..7]. The body, if any, goes right after it, from head + 8.
 */
static inline void zn_frame_put_header(unsigned char *head, uint32_t id,
                                       uint32_t len)
{
    zn_put_le32(head, len);
    zn_put_le32(head + 4, id);
}

/* Read the header at head[0..7]: *id gets MsgID and *len gets DataLen. */
static inline void zn_frame_get_header(const unsigned char *head, uint32_t *id,
                                       uint32_t *len)
{
    *len = zn_get_le32(head);
    *id = zn_get_le32(head + 4);
}

#endif
