/*
 * request_internal -- what the framework does with a request and a user
 * never does: the message handler makes one for every message and frees
 * it once handled. A user's code includes request.h only.
 */
#ifndef ZN_REQUEST_INTERNAL_H
#define ZN_REQUEST_INTERNAL_H

#include "zinc/request.h"

/*
 * A new request for msg, which it takes over, from conn. The message
 * handler makes it and holds a reference to conn for as long as the
 * request lives. Returns NULL with errno ENOMEM; msg is then still the
 * caller's.
 */
struct zn_request *zn__request_new(struct zn_conn *conn, struct zn_msg *msg);

/* Free the request and its message. NULL is a no-op. */
void zn__request_free(struct zn_request *req);

#endif
