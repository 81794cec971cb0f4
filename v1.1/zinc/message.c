#include "zinc/message.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct zn_msg {
    uint32_t id; /* MsgID */
    uint32_t len; /* DataLen */
    char data[]; /* len bytes and a NUL: one allocation for the whole */
};

/*
 * The bytes to allocate for a message of len bytes, or 0 when that does
 * not fit in a size_t (possible where size_t has 32 bits). Checked before
 * the arithmetic, which would otherwise wrap to a small number.
 */
static size_t msg_size(uint32_t len)
{
#if SIZE_MAX <= UINT32_MAX
    if (len > SIZE_MAX - sizeof(struct zn_msg) - 1)
        return 0;
#endif
    return sizeof(struct zn_msg) + (size_t)len + 1;
}

struct zn_msg *zn_msg_new(uint32_t id, const void *data, uint32_t len)
{
    size_t size = msg_size(len);
    struct zn_msg *msg = size > 0 ? malloc(size) : NULL;

    if (msg == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    msg->id = id;
    msg->len = len;
    if (len > 0 && data != NULL)
        memcpy(msg->data, data, len);
    msg->data[len] = '\0';
    return msg;
}

struct zn_msg *zn_msg_resize(struct zn_msg *msg, uint32_t len)
{
    size_t size = msg_size(len);
    struct zn_msg *bigger = size > 0 ? realloc(msg, size) : NULL;

    if (bigger == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    bigger->len = len;
    bigger->data[len] = '\0';
    return bigger;
}

void zn_msg_free(struct zn_msg *msg)
{
    free(msg);
}

uint32_t zn_msg_id(const struct zn_msg *msg)
{
    return msg->id;
}

uint32_t zn_msg_len(const struct zn_msg *msg)
{
    return msg->len;
}

char *zn_msg_data(struct zn_msg *msg)
{
    return msg->data;
}
