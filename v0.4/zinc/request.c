#include "zinc/request.h"

struct zn_conn *zn_request_conn(const struct zn_request *req)
{
    return req->conn;
}

const char *zn_request_data(const struct zn_request *req)
{
    return req->data;
}

size_t zn_request_len(const struct zn_request *req)
{
    return req->len;
}
