#include "zinc/datapack.h"

#include "zinc/config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Little-endian: the least significant byte first. */
static void put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

char *zn_datapack_pack(uint32_t id, const void *data, uint32_t len,
                       size_t *size)
{
    char *buf;

#if SIZE_MAX <= UINT32_MAX
    /* A 32-bit size_t: ZN_HEADER_LEN + len could wrap to a small number. */
    if (len > SIZE_MAX - ZN_HEADER_LEN) {
        errno = EMSGSIZE;
        return NULL;
    }
#endif
    buf = malloc(ZN_HEADER_LEN + (size_t)len);
    if (buf == NULL)
        return NULL;
    put_u32le((unsigned char *)buf, len);
    put_u32le((unsigned char *)buf + 4, id);
    if (len > 0)
        memcpy(buf + ZN_HEADER_LEN, data, len);
    *size = ZN_HEADER_LEN + (size_t)len;
    return buf;
}

size_t zn_datapack_size(const char *packed)
{
    return ZN_HEADER_LEN + (size_t)get_u32le((const unsigned char *)packed);
}

int zn_datapack_unpack(const unsigned char head[ZN_HEADER_LEN], uint32_t *id,
                       uint32_t *len)
{
    *len = get_u32le(head);
    *id = get_u32le(head + 4);
    if (zn_global.max_packet_size > 0 && *len > zn_global.max_packet_size)
        return -EMSGSIZE;
    return 0;
}
