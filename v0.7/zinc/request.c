#include "zinc/request.h"

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
