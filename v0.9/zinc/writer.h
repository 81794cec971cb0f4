/*
 * writer -- the outbound half of a connection: its outgoing channel and
 * its writer thread (Go: the writer goroutine and its msgChan).
 *
 * The connection packs each reply and hands it to zn_writer_send(). When
 * no earlier reply is waiting, the reply is written at once, without
 * blocking: the socket's buffer nearly always has room, and a reply that
 * goes out on the sender's own thread saves the hop to the writer thread
 * (a wake-up and a context switch). What the socket cannot take now waits
 * in the channel, and the writer thread writes it, whole and in order,
 * for as long as the client needs. The thread exists for what the socket
 * cannot take now.
 *
 * The writer knows the socket and nothing else of the connection: a
 * write that fails is reported through the callback it was made with, and
 * the connection decides what that means.
 *
 * Slow consumers (v0.8). From v0.8 replies are sent by workers, each of
 * which serves many connections, so no send may wait long for one client,
 * and a client that reads nothing must not keep its writer forever. Three
 * rules, all here:
 *   - the reader reserves room for a request's reply before it hands the
 *     request on (zn_writer_reserve()), and waits while its requests in
 *     flight and the queued replies fill half the channel: a client that
 *     pipelines faster than it reads is simply not read from for a while,
 *     so a worker almost never finds the channel full;
 *   - a send that finds the channel full anyway (a request answered with
 *     many replies) waits at most ZN_SEND_WAIT_MS, then fails with
 *     ETIMEDOUT;
 *   - the writer thread fails with EAGAIN once the client has taken no
 *     byte for ZN_WRITE_TIMEOUT_MS.
 * Either failure goes to the callback, which stops the connection as too
 * slow.
 */
#ifndef ZN_WRITER_H
#define ZN_WRITER_H

#include <stddef.h>
#include <stdint.h>

/*
 * How long zn_writer_send() waits for room in a full channel before it
 * gives up on the client as too slow.
 */
#define ZN_SEND_WAIT_MS 100

/*
 * How long the writer thread waits for the client to take a byte before
 * it gives up on it as too slow.
 */
#define ZN_WRITE_TIMEOUT_MS 500

struct zn_writer;

/*
 * A write to the socket failed with err (an errno value), on the thread
 * that wrote: the writer thread, or a sender's.
 */
typedef void (*zn_writer_failed_fn)(int err, void *data);

/*
 * A writer for the socket fd (which stays the caller's) of connection id,
 * with a channel of cap replies, reporting failed writes to
 * failed(err, data). Returns NULL with errno ENOMEM.
 */
struct zn_writer *zn_writer_new(int fd, uint32_t id, size_t cap,
                                zn_writer_failed_fn failed, void *data);

/*
 * Start the writer thread, named zn-writer-<id>. Returns 0 or a negative
 * errno. Whoever starts it joins it with zn_writer_join() after
 * zn_writer_end() or zn_writer_abort().
 */
int zn_writer_start(struct zn_writer *w);

/*
 * Send one packed reply of size bytes, taking buf (malloc'ed) over: write
 * it at once when nothing waits before it, and queue what the socket does
 * not take for the writer thread. Waits at most ZN_SEND_WAIT_MS while the
 * channel is full. Returns 0 once written or queued, -EPIPE once the
 * writer has ended or been aborted, -ETIMEDOUT when the channel stayed
 * full, or the negative errno of a write that failed (both reported to the
 * callback too). Safe from any thread, while the writer is not freed.
 */
int zn_writer_send(struct zn_writer *w, char *buf, size_t size);

/*
 * Reserve room for the reply of one request about to be handed on: wait
 * while the reservations and the queued replies fill half the channel.
 * Returns 0, or -EPIPE once the writer has been aborted. The reader calls
 * it; the wait is its own client's.
 */
int zn_writer_reserve(struct zn_writer *w);

/* The request of one reservation has been handled, or dropped. */
void zn_writer_unreserve(struct zn_writer *w);

/*
 * The graceful end: no more replies. Waits until every reservation has been
 * given back (the requests in flight have been handled and their replies
 * sent or queued), unless the writer is aborted meanwhile; then the thread
 * writes what is queued and ends, and later sends get -EPIPE.
 */
void zn_writer_end(struct zn_writer *w);

/*
 * The abort: no more replies, and the queued ones are dropped unwritten.
 * Wakes the thread, every sender waiting for room and a reader waiting in
 * zn_writer_reserve() or zn_writer_end(). The caller shuts
 * the socket down, which wakes a write blocked in the kernel.
 */
void zn_writer_abort(struct zn_writer *w);

/* Wait for the writer thread to end. */
void zn_writer_join(struct zn_writer *w);

/* Free the writer and the replies still queued. NULL is a no-op. */
void zn_writer_free(struct zn_writer *w);

#endif
