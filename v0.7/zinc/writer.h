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
 */
#ifndef ZN_WRITER_H
#define ZN_WRITER_H

#include <stddef.h>
#include <stdint.h>

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
 * not take for the writer thread. Waits while the channel is full.
 * Returns 0 once written or queued, -EPIPE once the writer has ended or
 * been aborted, or the negative errno of a write that failed (reported to
 * the callback too). Safe from any thread, while the writer is not freed.
 */
int zn_writer_send(struct zn_writer *w, char *buf, size_t size);

/*
 * The graceful end: no more replies. The thread writes what is queued,
 * then ends; later sends get -EPIPE.
 */
void zn_writer_end(struct zn_writer *w);

/*
 * The abort: no more replies, and the queued ones are dropped unwritten.
 * Wakes the thread and every sender waiting for room. The caller shuts
 * the socket down, which wakes a write blocked in the kernel.
 */
void zn_writer_abort(struct zn_writer *w);

/* Wait for the writer thread to end. */
void zn_writer_join(struct zn_writer *w);

/* Free the writer and the replies still queued. NULL is a no-op. */
void zn_writer_free(struct zn_writer *w);

#endif
