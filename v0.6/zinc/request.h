/*
 * request -- what a router is handed: the connection a message came from,
 * and the message.
 */
#ifndef ZN_REQUEST_H
#define ZN_REQUEST_H

#include <stdint.h>

#include "zinc/message.h"

struct zn_conn;

/*
 * The server builds one request per message, on the stack of the reader
 * thread that read it, and passes it to the router; the message lives
 * only until the router returns. The fields are visible so the request
 * needs no malloc, but routers read them through the getters below.
 */
struct zn_request {
    struct zn_conn *conn; /* where the message came from, where to reply */
    struct zn_msg *msg; /* the message read, owned by the reader */
};

/* The connection the request arrived on. */
struct zn_conn *zn_request_conn(const struct zn_request *req);

/* The message's data; valid only during the router call. */
const char *zn_request_data(const struct zn_request *req);

/* The length of the message's data in bytes. */
uint32_t zn_request_len(const struct zn_request *req);

/* The message's id. */
uint32_t zn_request_msg_id(const struct zn_request *req);

#endif
