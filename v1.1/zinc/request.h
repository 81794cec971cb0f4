/*
 * request -- what a router is handed: the connection a message came from,
 * and the message.
 *
 * From v0.8 a request could wait in a worker's queue, so it lives on the
 * heap, and nobody outside request.c needs to know what is in it: the
 * struct is opaque, read through the getters below. (In v1.1 the loop
 * that reads it handles it at once.)
 */
#ifndef ZN_REQUEST_H
#define ZN_REQUEST_H

#include <stdint.h>

#include "zinc/message.h"

struct zn_conn;
struct zn_request;

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
