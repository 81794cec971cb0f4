/*
 * connmgr -- the connection manager: every live connection of a server,
 * by id (zinx: ConnManager).
 *
 * The server adds a connection when it accepts it and removes it when
 * the connection's loop has ended it, so len() is the number of
 * connections a loop still serves: what MaxConn limits. At stop, clear()
 * stops them all.
 *
 * A map from id to connection behind a pthread_rwlock_t, Go's
 * sync.RWMutex: get() and len() only read and may run side by side,
 * add() and remove() write. The manager holds a reference to every
 * connection it lists (connection.h).
 *
 * The rule that keeps it free of deadlocks: no function here calls into a
 * connection or a hook while it holds the lock. zinx's ClearConn calls
 * Stop() on each connection under the lock, and Stop() calls Remove(),
 * which takes the same lock: the server hangs at its own shutdown. clear()
 * below copies the list under the lock and stops the connections after
 * releasing it.
 */
#ifndef ZN_CONNMGR_H
#define ZN_CONNMGR_H

#include <stddef.h>
#include <stdint.h>

struct zn_conn;
struct zn_connmgr;

/* A new, empty manager. Returns NULL with errno ENOMEM. */
struct zn_connmgr *zn_connmgr_new(void);

/*
 * Free the manager and drop its reference to every connection still in
 * it. Call it once no other thread uses the manager. NULL is a no-op.
 */
void zn_connmgr_free(struct zn_connmgr *m);

/*
 * List conn under its id, taking a reference to it. Returns 0, -EEXIST
 * when that id is listed already, or -ENOMEM.
 */
int zn_connmgr_add(struct zn_connmgr *m, struct zn_conn *conn);

/*
 * Take conn off the list and drop the manager's reference. Does nothing
 * when it is not listed.
 */
void zn_connmgr_remove(struct zn_connmgr *m, struct zn_conn *conn);

/*
 * The connection with this id, with a reference taken for the caller (who
 * drops it with zn_conn_release()), or NULL when there is none. The
 * reference is what makes the pointer safe to use after the lock is gone:
 * the connection may end meanwhile, but it is not freed under the caller.
 */
struct zn_conn *zn_connmgr_get(struct zn_connmgr *m, uint32_t id);

/* How many connections are listed. */
size_t zn_connmgr_len(struct zn_connmgr *m);

/*
 * Stop (abort) every listed connection: copy the list, with a reference
 * each, under the read lock, then call zn_conn_stop() on each with no lock
 * held. The connections stay listed until their loops have ended them.
 * Returns the number of connections stopped, or -ENOMEM when the copy
 * could not be made (nothing was stopped; try again).
 */
int zn_connmgr_clear(struct zn_connmgr *m);

#endif
