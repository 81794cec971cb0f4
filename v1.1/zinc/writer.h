/*
 * writer -- the outbound half of a connection: its output queue.
 *
 * Until v1.0 the writer was a thread per connection that blocked in
 * write() for as long as its client needed. In v1.1 nothing blocks: the
 * socket is non-blocking, and the writer is a queue of packed replies
 * that the connection's loop writes out as the socket takes them.
 *
 * A reply sent on the loop's thread while nothing waits is written at
 * once (the socket's buffer nearly always has room); what the socket does
 * not take waits in the queue, oldest first, and the loop writes it when
 * the poller says the socket is writable again (zn_writer_flush(), with
 * one sendmsg() for many small replies). A reply sent from
 * another thread is only queued, under the writer's lock, and its loop is
 * woken to write it (connection.c): two threads never write one socket.
 *
 * The writer knows the socket and nothing else; the connection decides
 * what a full queue or a failed write means (slow consumers, below).
 *
 * Slow consumers (from v0.8, on a loop since v1.1). A loop serves many
 * connections and waits for none:
 *   - while ZN_WRITER_BUSY(MaxMsgChanLen) replies wait, the connection
 *     reads no more requests from its client (backpressure on that client
 *     only), and reads again once fewer than half that wait;
 *   - a send from a loop's thread that finds ZN_WRITER_LIMIT(MaxMsgChanLen)
 *     replies waiting anyway (a router answering one request with many
 *     replies) fails with -ENOBUFS;
 *   - a thread that is no loop's serves nobody else, so its send waits
 *     while MaxMsgChanLen replies wait, as in v1.0, at most
 *     ZN_SEND_WAIT_MS, then fails with -ETIMEDOUT;
 *   - a client that takes no byte for ZN_WRITE_TIMEOUT_MS while replies
 *     wait for it is stopped.
 * The last three stop the connection as too slow.
 */
#ifndef ZN_WRITER_H
#define ZN_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Replies waiting that stop a connection's reading (cap: MaxMsgChanLen). */
#define ZN_WRITER_BUSY(cap) (cap)

/* Replies waiting that make a send fail: the client is too slow. */
#define ZN_WRITER_LIMIT(cap) (4 * (size_t)(cap))

/*
 * How long a send from a thread that runs no loop waits for room while
 * MaxMsgChanLen replies wait, before it gives up on the client as too
 * slow.
 */
#define ZN_SEND_WAIT_MS 100

/*
 * How long a client may take no byte of the replies that wait for it
 * before it is stopped as too slow.
 */
#define ZN_WRITE_TIMEOUT_MS 500

/* Who sends, and so what zn_writer_send() may do. */
enum zn_send_mode {
    ZN_SEND_NOW, /* the connection's loop: write at once, never wait */
    ZN_SEND_QUEUE, /* another loop: queue for the connection's, never wait */
    ZN_SEND_WAIT, /* any other thread: queue, waiting for room if need be */
};

struct zn_writer;

/*
 * The output queue of the non-blocking socket fd (which stays the
 * caller's), for a connection whose MaxMsgChanLen is cap (the limits
 * above). It allocates nothing until a reply has to wait. Returns NULL
 * with errno ENOMEM.
 */
struct zn_writer *zn_writer_new(int fd, size_t cap);

/*
 * Send one packed reply of size bytes, taking buf (malloc'ed) over. With
 * ZN_SEND_NOW and nothing waiting, write it at once; otherwise, and for
 * what the socket does not take, queue it (ZN_SEND_WAIT first waits for
 * room, see above). Returns 0 once it is all written, 1 when (some of) it
 * waits (the loop must flush), -EPIPE once the writer has ended, -ENOBUFS
 * or -ETIMEDOUT when there is no room (see above), -ENOMEM, or the
 * negative errno of a write that failed. Safe from any thread, while the
 * writer is not freed.
 */
int zn_writer_send(struct zn_writer *w, char *buf, size_t size,
                   enum zn_send_mode mode);

/*
 * Write what waits, as much as the socket takes. On the loop's thread.
 * Returns 0 when nothing waits any more, 1 when some still does, or the
 * negative errno of a write that failed.
 */
int zn_writer_flush(struct zn_writer *w);

/* How many replies wait, whole or in part. */
size_t zn_writer_queued(struct zn_writer *w);

/*
 * How many bytes the client has taken so far: written to the socket and
 * no longer in its send queue (Linux: SIOCOUTQ; elsewhere, written). The
 * kernel says a full socket is writable again only once a third of its
 * buffer is free, which takes seconds for a client that reads slowly but
 * steadily; this counter moves all along.
 */
uint64_t zn_writer_taken(struct zn_writer *w);

/*
 * No more replies: later sends, and those waiting for room, fail with
 * -EPIPE. With drop (an abort), what waits is freed unwritten; without,
 * it is still to be flushed.
 */
void zn_writer_end(struct zn_writer *w, bool drop);

/* Free the writer and the replies still queued. NULL is a no-op. */
void zn_writer_free(struct zn_writer *w);

#endif
