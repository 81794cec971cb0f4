/*
 * request -- what a router is handed: the connection a chunk of data came
 * from, and the data.
 */
#ifndef ZN_REQUEST_H
#define ZN_REQUEST_H

#include <stddef.h>

struct zn_conn;

/*
 * The reader thread builds one request per chunk it reads, on its own
 * stack, and passes it to the router; the data lives only until the router
 * returns. The fields are visible so the request needs no malloc, but
 * routers read them through the getters below.
 */
struct zn_request {
    struct zn_conn *conn; /* where the data came from, and where to reply */
    const char *data; /* the bytes read, owned by the reader */
    size_t len; /* how many */
};

/* The connection the request arrived on. */
struct zn_conn *zn_request_conn(const struct zn_request *req);

/* The request's data; valid only during the router call. */
const char *zn_request_data(const struct zn_request *req);

/* The length of the request's data in bytes. */
size_t zn_request_len(const struct zn_request *req);

#endif
