#include "zinc/message.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct zn_msg {
    uint32_t id; /* MsgID */
    uint32_t len; /* DataLen */
    char data[]; /* len bytes and a NUL: one allocation for the whole */
};

struct zn_msg *zn_msg_new(uint32_t id, const void *data, uint32_t len)
{
    struct zn_msg *msg = malloc(sizeof(*msg) + (size_t)len + 1);

    if (msg == NULL)
        return NULL;
    msg->id = id;
    msg->len = len;
    if (len > 0 && data != NULL)
        memcpy(msg->data, data, len);
    msg->data[len] = '\0';
    return msg;
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
