/*
 * zn_client -- a client for zinc servers: one connection, shared by many
 * threads, that speaks the TLV wire format (DESIGN §3).
 *
 * Every thread may call every function at once. A reader thread, started
 * with each connection, reads every frame the server sends and hands it
 * to whoever waits for it:
 *
 *   - zn_client_request() sends a frame and waits for the next frame with
 *     the reply id it names. Waiters for the same id are served in the
 *     order their requests went out (a server answers one connection in
 *     order: zinc does, per connection, in every stage).
 *   - A frame nobody waits for (a greeting, a push) is unsolicited: it
 *     goes to the on_frame callback if there is one, or else to a bounded
 *     queue that zn_client_recv() takes from.
 *
 * Nothing waits without a bound. A request that times out returns
 * -ETIMEDOUT and leaves the connection usable: its reply, when it comes
 * late, is recognised and dropped (see zn_client_request()). A lost
 * connection (the server closed, reset or sent a frame larger than
 * max_frame) fails every waiter at once with that reason, and the next
 * call connects again, no sooner than the back-off allows: a failed
 * connect doubles the wait before the next try, from backoff_min_ms up to
 * backoff_max_ms, and a call made before then fails at once with the last
 * error instead of sleeping (no thread ever sleeps holding the client).
 *
 * Errors are negative errno values: -ECONNREFUSED, -ETIMEDOUT,
 * -ECONNRESET (the server closed or reset the connection), -EPROTO (it
 * sent a frame larger than max_frame), -EMSGSIZE (a frame to send is
 * larger than max_frame), -EINVAL (a malformed address), -ENOMEM.
 */
#ifndef ZN_CLIENT_H
#define ZN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct zn_client;

/* A frame from the server: its id and body, followed by a NUL (not
 * counted in len) so that a text body can be used as a string. */
struct zn_frame {
    uint32_t id;
    uint32_t len;
    unsigned char data[];
};

/* Settings; a zero field takes the default in brackets. */
struct zn_client_options {
    int connect_timeout_ms; /* a connect() that takes longer fails [5000] */
    uint32_t max_frame; /* the largest body sent or accepted [65536] */
    int backoff_min_ms; /* the wait after the first failed connect [100] */
    int backoff_max_ms; /* the longest wait, >= backoff_min_ms [5000] */
    size_t max_queued; /* unsolicited frames kept for recv [64] */
    /*
     * When set, unsolicited frames go to on_frame(frame, arg) on the
     * reader thread instead of the queue; the frame is valid during the
     * call only. It must not call back into the client and wait for a
     * reply (the reader is the thread that would deliver it). A call it
     * makes never connects: once the connection is lost, it fails with
     * the reason.
     */
    void (*on_frame)(const struct zn_frame *frame, void *arg);
    void *arg;
};

/*
 * A client of the server at "HOST:PORT" ("[::1]:PORT" for IPv6), with
 * options (NULL: every default). It connects at the first call that needs
 * the connection, or at zn_client_connect(). Returns NULL with errno
 * EINVAL (a malformed address) or ENOMEM.
 */
struct zn_client *zn_client_new(const char *addr,
                                const struct zn_client_options *opts);

/*
 * Connect now, unless connected already. Returns 0, or the negative errno
 * of this attempt, or of the last one while the back-off lasts.
 */
int zn_client_connect(struct zn_client *c);

/*
 * Send one frame and wait for nothing. Returns 0 once it is written, or a
 * negative errno (the connection is then closed, and waiters failed).
 */
int zn_client_send(struct zn_client *c, uint32_t id, const void *data,
                   uint32_t len);

/*
 * Send frame id with data and wait at most timeout_ms (negative: no
 * limit) for the next frame with reply_id. Returns 0 with the reply in
 * *reply, which the caller frees with free(), or a negative errno:
 * -ETIMEDOUT, the reason the connection was lost, or why the request
 * could not go out. After a timeout the request stays in line: the next
 * frame with reply_id is taken as its late reply and dropped, so that the
 * request after it gets its own reply, not this one's. The price: when a
 * server never answers one request, each later request for that reply id
 * takes the reply of the one before it, drops it and times out in turn,
 * until 1,024 late requests give the connection up (or it is lost)
 * and the next call starts afresh. timeout_ms bounds the wait for the
 * reply; connecting first, when needed, and a write to a server that
 * reads nothing may each take up to connect_timeout_ms more.
 */
int zn_client_request(struct zn_client *c, uint32_t id, const void *data,
                      uint32_t len, uint32_t reply_id, int timeout_ms,
                      struct zn_frame **reply);

/*
 * Wait at most timeout_ms (negative: no limit) for the next unsolicited
 * frame (without an on_frame callback). Connects first when needed.
 * Returns 0 with the frame in *frame (the caller frees it), -ETIMEDOUT,
 * or the reason the connection was lost (to every call waiting then, or
 * else to the next one; the call after connects again). When the queue
 * was full, the oldest frames were dropped:
 * zn_client_dropped() counts them.
 */
int zn_client_recv(struct zn_client *c, int timeout_ms,
                   struct zn_frame **frame);

/* Unsolicited frames dropped so far because the queue was full. */
unsigned long zn_client_dropped(struct zn_client *c);

/*
 * Close the connection and free the client. Every call still waiting in
 * another thread must have returned first: close it from the thread that
 * owns the client, once the others are done with it.
 */
void zn_client_free(struct zn_client *c);

#endif
