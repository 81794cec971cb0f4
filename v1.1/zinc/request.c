#include "zinc/request_internal.h"

#include <errno.h>
#include <stdlib.h>

struct zn_request {
    struct zn_conn *conn; /* where the message came from, where to reply */
    struct zn_msg *msg; /* the message read, owned */
};

struct zn_request *zn__request_new(struct zn_conn *conn, struct zn_msg *msg)
{
    struct zn_request *req = malloc(sizeof(*req));

    if (req == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    req->conn = conn;
    req->msg = msg;
    return req;
}

void zn__request_free(struct zn_request *req)
{
    if (req == NULL)
        return;
    zn_msg_free(req->msg);
    free(req);
}

struct zn_conn *zn_request_conn(const struct zn_request *req)
{
    return req->conn;
}

const char *zn_request_data(const struct zn_request *req)
{
    return zn_msg_data(req->msg);
}

uint32_t zn_request_len(const struct zn_request *req)
{
    return zn_msg_len(req->msg);
}

uint32_t zn_request_msg_id(const struct zn_request *req)
{
    return zn_msg_id(req->msg);
}
