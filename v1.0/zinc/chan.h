/*
 * chan -- a bounded blocking queue of pointers: Go's channel, in C.
 *
 * zinx hands replies from the reader goroutine to the writer goroutine over
 * a Go channel, `make(chan []byte, n)`. C has no channel, so zinc builds
 * one the way CS:APP builds its sbuf: a ring of slots, a mutex, and two
 * condition variables, one for "not full" and one for "not empty". Add a
 * `closed` flag and it behaves like Go's:
 *
 *     Go                      zinc
 *     ch <- v                 zn_chan_send(ch, v)        blocks while full
 *     select { case ch <- v:  zn_chan_try_send(ch, v)    -EAGAIN when full
 *              default: }
 *     ... case <-time.After   zn_chan_send_timed(ch, v, ms)
 *     v, ok := <-ch           zn_chan_recv(ch, &v)       blocks while empty
 *     close(ch)               zn_chan_close(ch)          wakes every waiter
 *
 * Two differences, both deliberate. Sending on a closed channel panics in
 * Go; here it returns -EPIPE and the item stays the sender's, because in a
 * server the receiver going away is an everyday event, not a bug. And the
 * items are pointers whose owner is whoever holds them: the sender until
 * the send succeeds, the receiver after; zn_chan_free() hands any left
 * over to a callback, so nothing queued is leaked.
 *
 * Every function is safe from any number of threads at once, except
 * zn_chan_free(), which must come after every other thread is done with
 * the channel.
 */
#ifndef ZN_CHAN_H
#define ZN_CHAN_H

#include <stddef.h>

struct zn_chan;

/*
 * A new, open, empty channel with room for capacity items (at least 1).
 * Returns NULL with errno EINVAL (capacity 0) or ENOMEM.
 */
struct zn_chan *zn_chan_new(size_t capacity);

/*
 * Put item at the tail, waiting while the channel is full. Returns 0, or
 * -EPIPE when the channel is closed (before or while waiting): the item was
 * not queued and is still the caller's.
 */
int zn_chan_send(struct zn_chan *ch, void *item);

/* As zn_chan_send(), but -EAGAIN at once instead of waiting when full. */
int zn_chan_try_send(struct zn_chan *ch, void *item);

/*
 * As zn_chan_send(), but waits at most timeout_ms milliseconds for room,
 * then returns -ETIMEDOUT (the item is still the caller's). Measured on
 * CLOCK_MONOTONIC, so setting the clock does not stretch the wait.
 */
int zn_chan_send_timed(struct zn_chan *ch, void *item, unsigned timeout_ms);

/*
 * Take the item at the head into *item, waiting while the channel is empty
 * and open. A closed channel still hands out what it holds, in order, as a
 * closed Go channel does; only once it is closed and empty does this
 * return -EPIPE. Returns 0 or -EPIPE.
 */
int zn_chan_recv(struct zn_chan *ch, void **item);

/* As zn_chan_recv(), but -EAGAIN at once instead of waiting when empty. */
int zn_chan_try_recv(struct zn_chan *ch, void **item);

/*
 * Close the channel: later sends fail with -EPIPE, and every thread waiting
 * in a send or a recv wakes up. What is queued stays for the receivers.
 * Closing a closed channel does nothing (in Go it panics).
 */
void zn_chan_close(struct zn_chan *ch);

/*
 * Free the channel. Items still queued are passed to drop (free(), say),
 * unless drop is NULL. No other thread may be using the channel. NULL is a
 * no-op.
 */
void zn_chan_free(struct zn_chan *ch, void (*drop)(void *item));

#endif
