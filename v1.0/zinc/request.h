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
 * From v0.8 a request may wait in a worker's queue while the reader reads
 * on, so it lives on the heap and owns what it points to: the message and
 * a reference to the connection, which therefore stays valid until the
 * request is freed, even if the client has gone. A request without a
 * message (msg NULL) is the connection's last: see zn_msghandler_submit().
 * The fields are visible, but routers read them through the getters below.
 */
struct zn_request {
    struct zn_conn *conn; /* where the message came from, where to reply */
    struct zn_msg *msg; /* the message read, owned */
};

/*
 * A new request for msg (which it takes over; NULL for the last one) from
 * conn (of which it takes a reference). Returns NULL with errno ENOMEM;
 * msg is then still the caller's.
 */
struct zn_request *zn_request_new(struct zn_conn *conn, struct zn_msg *msg);

/*
 * Free the request and its message, tell the connection one request less
 * is in flight (zn_conn_request_done(), when there is a message), and
 * release the connection.
 */
void zn_request_free(struct zn_request *req);

/* The connection the request arrived on. */
struct zn_conn *zn_request_conn(const struct zn_request *req);

/* The message's data; valid until the request is freed, after the
 * router call. */
const char *zn_request_data(const struct zn_request *req);

/* The length of the message's data in bytes. */
uint32_t zn_request_len(const struct zn_request *req);

/* The message's id. */
uint32_t zn_request_msg_id(const struct zn_request *req);

#endif
