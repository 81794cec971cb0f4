/*
 * Unit test of the connection manager (zinc/connmgr.h, v0.9+), built by
 * tests/test_connmgr.py against a stage's build/libzinc.a and run there,
 * also under the suite's sanitizer builds.
 *
 * The connections are made with test_conn_new() (testconn.h) on one end
 * of a socketpair and never started: no thread reads them, so the manager alone
 * decides what happens to them. The other end tells whether the
 * connection's socket was shut down (reads EOF) and fcntl() whether its
 * descriptor was closed (the last reference went).
 *
 *   basics     add, len, get (a reference: the caller's release), get of
 *              an unknown id, duplicate ids (-EEXIST, no reference taken),
 *              remove of a listed and of an unlisted connection (the same
 *              id as a listed one included), free with connections still
 *              listed drops their references.
 *   clear      stops every listed connection and returns how many; they
 *              stay listed until removed.
 *   zinx       clear() while zn_conn_stop() calls zn_connmgr_remove(), as
 *              zinx's Stop() calls Remove(): no deadlock, because clear()
 *              holds no lock while it calls into a connection (Linux only:
 *              the test catches zn_conn_stop()'s shutdown() call).
 *   threads    owners add, get and remove connections of their own id
 *              range, getters look up everybody's ids and use what they
 *              get, a clearer clears, len() is called all along; bounded
 *              iterations. Run under ThreadSanitizer by the suite's TSan
 *              build, under ASan (a get without its reference would be a
 *              use after free) by the ASan build.
 *
 * Prints one line per failed check and a summary; exits 1 on any failure,
 * or after 30 s (a deadlock).
 */
#define _GNU_SOURCE /* syscall(), for the shutdown() catcher below */

#include "zinc/config.h"
#include "zinc/connmgr.h"

#include "zn_log.h"

#include "testconn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/syscall.h>
#endif

#define WATCHDOG_S 30 /* a deadlock fails the run after this long */
#define OWNERS 4 /* threads adding and removing their own ids */
#define GETTERS 2 /* threads looking up everybody's ids */
#define PER_OWNER 8 /* connections an owner has listed at a time */
#define ROUNDS 1000 /* add-get-remove rounds per owner */
#define CLEARS 500 /* clear() calls by the clearer */

static atomic_int failures;
static atomic_int checks;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        atomic_fetch_add(&checks, 1);                                          \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FAIL line %d: ", __LINE__);                       \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            atomic_fetch_add(&failures, 1);                                    \
        }                                                                      \
    } while (0)

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL: still running after 30 s: a deadlock?\n";
    (void)sig;

    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* exiting anyway */
    }
    _exit(1);
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* True when the peer of the socket whose other end is `peer` shut it down
 * or closed it: a read returns EOF (or an error) at once. */
static bool peer_ended(int peer)
{
    char c;
    ssize_t n = recv(peer, &c, 1, MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/*
 * A connection with this id, never started, on a new socketpair; *peer is
 * the other end (the "client"). The caller holds the one reference.
 */
static struct zn_conn *new_conn(uint32_t id, int *peer)
{
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)(40000 + id))};
    struct zn_conn *c;
    int sv[2];

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        exit(1);
    }
    c = test_conn_new(sv[0], id, (struct sockaddr *)&addr, sizeof(addr), NULL);
    if (c == NULL) {
        perror("test_conn_new");
        exit(1);
    }
    *peer = sv[1];
    return c;
}

/* ---- basics ---- */

static void test_basics(void)
{
    struct zn_connmgr *m = zn_connmgr_new();
    struct zn_conn *c[5], *got, *twin, *stranger;
    int peer[5], fd[5], twin_peer, stranger_peer, twin_fd, rc;

    CHECK(m != NULL, "zn_connmgr_new() returned NULL");
    if (m == NULL)
        return;
    CHECK(zn_connmgr_len(m) == 0, "a new manager has %zu connections",
          zn_connmgr_len(m));
    CHECK(zn_connmgr_get(m, 0) == NULL, "get(0) of an empty manager");
    CHECK(zn_connmgr_clear(m) == 0, "clear() of an empty manager is not 0");

    for (uint32_t i = 0; i < 5; i++) {
        c[i] = new_conn(i, &peer[i]);
        fd[i] = zn_conn_fd(c[i]);
        rc = zn_connmgr_add(m, c[i]);
        CHECK(rc == 0, "add(conn %u) returned %d", i, rc);
        CHECK(zn_connmgr_len(m) == i + 1, "len() is %zu after %u adds",
              zn_connmgr_len(m), i + 1);
    }
    for (uint32_t i = 0; i < 5; i++) {
        got = zn_connmgr_get(m, i);
        CHECK(got == c[i], "get(%u) returned %p, not conn %u", i, (void *)got,
              i);
        zn_conn_release(got);
    }
    CHECK(zn_connmgr_get(m, 5) == NULL, "get(5) of an unlisted id");
    CHECK(zn_connmgr_get(m, UINT32_MAX) == NULL, "get(UINT32_MAX)");

    /*
     * get() hands out a reference: take conn 2, remove it from the
     * manager and drop the creator's reference. Ours is the last one: the
     * connection must still be there until we drop it too.
     */
    got = zn_connmgr_get(m, 2);
    zn_connmgr_remove(m, c[2]);
    if (!fd_is_open(fd[2])) {
        /* Going on would use freed memory: stop here. */
        fprintf(stderr,
                "FAIL line %d: get() took no reference: remove() "
                "freed conn 2 while the creator and the getter hold it\n",
                __LINE__);
        exit(1);
    }
    CHECK(zn_connmgr_len(m) == 4, "len() is %zu after a remove",
          zn_connmgr_len(m));
    CHECK(zn_connmgr_get(m, 2) == NULL, "get(2) after remove(conn 2)");
    zn_conn_release(c[2]);
    CHECK(got != NULL && fd_is_open(fd[2]),
          "the connection got from get() was freed under its holder");
    CHECK(got != NULL && zn_conn_id(got) == 2 && !zn_conn_is_closed(got),
          "the connection got from get() changed");
    zn_conn_release(got);
    CHECK(!fd_is_open(fd[2]),
          "conn 2's socket still open after its last reference went");
    CHECK(peer_ended(peer[2]), "conn 2's peer does not see the end");

    /* A second add of an id: -EEXIST, the first stays, no reference kept. */
    rc = zn_connmgr_add(m, c[0]);
    CHECK(rc == -EEXIST, "a second add(conn 0) returned %d, not -EEXIST", rc);
    twin = new_conn(0, &twin_peer);
    twin_fd = zn_conn_fd(twin);
    rc = zn_connmgr_add(m, twin);
    CHECK(rc == -EEXIST,
          "add() of another conn with id 0 returned %d, not "
          "-EEXIST",
          rc);
    CHECK(zn_connmgr_len(m) == 4, "len() is %zu after two failed adds",
          zn_connmgr_len(m));
    got = zn_connmgr_get(m, 0);
    CHECK(got == c[0], "get(0) no longer returns the first conn 0");
    zn_conn_release(got);

    /* Removing what is not listed does nothing, even with a listed id. */
    zn_connmgr_remove(m, twin);
    CHECK(zn_connmgr_len(m) == 4,
          "remove() of an unlisted conn with a "
          "listed id: len() is %zu",
          zn_connmgr_len(m));
    got = zn_connmgr_get(m, 0);
    CHECK(got == c[0], "remove() of an unlisted twin took conn 0 away");
    zn_conn_release(got);
    stranger = new_conn(77, &stranger_peer);
    zn_connmgr_remove(m, stranger);
    CHECK(zn_connmgr_len(m) == 4, "remove() of an unlisted id: len() is %zu",
          zn_connmgr_len(m));
    zn_conn_release(stranger);
    zn_conn_release(twin); /* the failed add took no reference: freed */
    CHECK(!fd_is_open(twin_fd),
          "a failed add() kept a reference (the socket is still open)");

    /* Remove a listed one, then again: the second does nothing. */
    zn_connmgr_remove(m, c[1]);
    CHECK(zn_connmgr_len(m) == 3, "len() is %zu after remove(conn 1)",
          zn_connmgr_len(m));
    zn_connmgr_remove(m, c[1]);
    CHECK(zn_connmgr_len(m) == 3, "a second remove(conn 1): len() is %zu",
          zn_connmgr_len(m));
    CHECK(fd_is_open(fd[1]), "remove() freed a connection its creator "
                             "still holds");
    zn_conn_release(c[1]);
    CHECK(!fd_is_open(fd[1]), "remove() kept its reference to conn 1");
    CHECK(!zn_conn_is_closed(c[0]) && !zn_conn_is_closed(c[3]) &&
              !zn_conn_is_closed(c[4]),
          "a listed connection was stopped by add/get/remove");

    /* free() drops the manager's reference to every connection listed:
     * with ours gone first, it is the last one. */
    for (int i = 0; i < 5; i++)
        if (i != 1 && i != 2)
            zn_conn_release(c[i]);
    CHECK(fd_is_open(fd[0]) && fd_is_open(fd[3]) && fd_is_open(fd[4]),
          "a listed connection was freed while the manager holds it");
    zn_connmgr_free(m);
    CHECK(!fd_is_open(fd[0]) && !fd_is_open(fd[3]) && !fd_is_open(fd[4]),
          "zn_connmgr_free() kept its references");
    for (int i = 0; i < 5; i++)
        close(peer[i]);
    close(twin_peer);
    close(stranger_peer);
}

/* ---- clear ---- */

static void test_clear(void)
{
    struct zn_connmgr *m = zn_connmgr_new();
    struct zn_conn *c[6];
    int peer[6], rc;

    for (uint32_t i = 0; i < 6; i++) {
        c[i] = new_conn(100 + i, &peer[i]);
        if (i < 4) /* 4 and 5 are not listed */
            CHECK(zn_connmgr_add(m, c[i]) == 0, "add(conn %u)", 100 + i);
    }
    rc = zn_connmgr_clear(m);
    CHECK(rc == 4, "clear() of 4 connections returned %d", rc);
    for (int i = 0; i < 4; i++) {
        CHECK(zn_conn_is_closed(c[i]), "conn %d not stopped by clear()",
              100 + i);
        CHECK(peer_ended(peer[i]),
              "conn %d: the client does not see the end after clear()",
              100 + i);
    }
    for (int i = 4; i < 6; i++)
        CHECK(!zn_conn_is_closed(c[i]) && !peer_ended(peer[i]),
              "clear() stopped conn %d, which is not listed", 100 + i);
    /* Stopped, not removed: their readers would remove them. */
    CHECK(zn_connmgr_len(m) == 4, "len() is %zu after clear(), not 4",
          zn_connmgr_len(m));
    for (int i = 0; i < 4; i++)
        zn_connmgr_remove(m, c[i]);
    CHECK(zn_connmgr_len(m) == 0, "len() is %zu after removing all",
          zn_connmgr_len(m));
    CHECK(zn_connmgr_clear(m) == 0, "clear() of an emptied manager");
    for (int i = 0; i < 6; i++) {
        zn_conn_release(c[i]);
        close(peer[i]);
    }
    zn_connmgr_free(m);
}

/* ---- zinx: a stop that removes, called by clear() ---- */

#if defined(__linux__) && defined(SYS_shutdown)
#define ZINX_FDS 1024
static struct zn_connmgr *_Atomic removing_from; /* set: see shutdown() */
static struct zn_conn *by_fd[ZINX_FDS]; /* written before removing_from */

/*
 * zn_conn_stop() shuts its socket down: this definition takes the place of
 * the C library's in this program, so that, during test_zinx() only, a
 * stop also takes its connection off the manager, as zinx's Stop() calls
 * ConnManager.Remove(). A clear() that held the manager's lock while
 * calling zn_conn_stop() would wait here for itself forever.
 */
int shutdown(int fd, int how)
{
    struct zn_connmgr *m = atomic_load(&removing_from);

    if (m != NULL && fd >= 0 && fd < ZINX_FDS && by_fd[fd] != NULL)
        zn_connmgr_remove(m, by_fd[fd]);
    return (int)syscall(SYS_shutdown, fd, how);
}

static void test_zinx(void)
{
    struct zn_connmgr *m = zn_connmgr_new();
    struct zn_conn *c[4];
    int peer[4], rc;

    for (uint32_t i = 0; i < 4; i++) {
        c[i] = new_conn(200 + i, &peer[i]);
        if (zn_conn_fd(c[i]) < ZINX_FDS)
            by_fd[zn_conn_fd(c[i])] = c[i];
        CHECK(zn_connmgr_add(m, c[i]) == 0, "add(conn %u)", 200 + i);
    }
    atomic_store(&removing_from, m);
    rc = zn_connmgr_clear(m); /* a deadlock here ends in the watchdog */
    atomic_store(&removing_from, NULL);
    CHECK(rc == 4, "clear() returned %d, not 4", rc);
    CHECK(zn_connmgr_len(m) == 0,
          "len() is %zu: the stops did not remove their connections",
          zn_connmgr_len(m));
    for (int i = 0; i < 4; i++) {
        CHECK(zn_conn_is_closed(c[i]), "conn %d not stopped", 200 + i);
        by_fd[zn_conn_fd(c[i])] = NULL;
        zn_conn_release(c[i]);
        close(peer[i]);
    }
    zn_connmgr_free(m);
}
#else
static void test_zinx(void)
{
    printf("zinx: skipped (needs Linux's SYS_shutdown)\n");
}
#endif

/* ---- threads ---- */

static struct zn_connmgr *shared;
static atomic_bool owners_done;
static int base_fd = -1; /* every connection here wraps a dup() of it */

static uint32_t owner_id(int owner, int k)
{
    return 1000u * (uint32_t)(owner + 1) + (uint32_t)k;
}

static struct zn_conn *new_dup_conn(uint32_t id)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    int fd = fcntl(base_fd, F_DUPFD_CLOEXEC, 0);
    struct zn_conn *c;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0) {
        perror("dup");
        exit(1);
    }
    c = test_conn_new(fd, id, (struct sockaddr *)&addr, sizeof(addr), NULL);
    if (c == NULL) {
        perror("test_conn_new");
        exit(1);
    }
    return c;
}

/*
 * An owner: each round it lists PER_OWNER new connections of its id range
 * and drops its own reference to them (the manager's is then the only
 * one), looks each up, checks len(), and removes them again. Only it adds
 * or removes these ids, so a pointer it made is listed until it removes it.
 */
static void *owner(void *arg)
{
    int me = (int)(intptr_t)arg;
    struct zn_conn *c[PER_OWNER], *got;
    size_t n;

    for (int round = 0; round < ROUNDS; round++) {
        for (int k = 0; k < PER_OWNER; k++) {
            c[k] = new_dup_conn(owner_id(me, k));
            CHECK(zn_connmgr_add(shared, c[k]) == 0, "owner %d: add(%u)", me,
                  owner_id(me, k));
            zn_conn_release(c[k]);
        }
        n = zn_connmgr_len(shared);
        CHECK(n >= PER_OWNER && n <= OWNERS * PER_OWNER,
              "owner %d: len() is %zu with %d listed by me", me, n, PER_OWNER);
        for (int k = 0; k < PER_OWNER; k++) {
            got = zn_connmgr_get(shared, owner_id(me, k));
            CHECK(got == c[k], "owner %d: get(%u) is not what I added", me,
                  owner_id(me, k));
            zn_conn_release(got);
        }
        for (int k = 0; k < PER_OWNER; k++) {
            zn_connmgr_remove(shared, c[k]); /* may free it */
            CHECK(zn_connmgr_get(shared, owner_id(me, k)) == NULL,
                  "owner %d: get(%u) after its remove", me, owner_id(me, k));
        }
    }
    return NULL;
}

/* A getter: look up everybody's ids and use what comes back, then drop it
 * (a connection whose owner removed it meanwhile must still be there). */
static void *getter(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    long found = 0;

    for (long i = 0; i < (long)ROUNDS * PER_OWNER * 4; i++) {
        int owner = (int)((seed = seed * 1103515245u + 12345u) >> 16) % OWNERS;
        int k = (int)(seed >> 8) % PER_OWNER;
        uint32_t id = owner_id(owner, k);
        struct zn_conn *c = zn_connmgr_get(shared, id);

        if (c != NULL) {
            found++;
            CHECK(zn_conn_id(c) == id, "get(%u) returned conn %u", id,
                  zn_conn_id(c));
            (void)zn_conn_is_closed(c);
            (void)zn_conn_remote_addr(c)[0];
            zn_conn_release(c);
        }
        if (atomic_load(&owners_done))
            break;
    }
    return (void *)(intptr_t)found;
}

/* The clearer: clear() and len() while the others work. */
static void *clearer(void *arg)
{
    (void)arg;
    for (int i = 0; i < CLEARS && !atomic_load(&owners_done); i++) {
        int n = zn_connmgr_clear(shared);
        size_t len = zn_connmgr_len(shared);

        CHECK(n >= 0 && n <= OWNERS * PER_OWNER, "clear() returned %d", n);
        CHECK(len <= OWNERS * PER_OWNER, "len() is %zu", len);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t owners[OWNERS], getters[GETTERS], clear_thread;
    int sv[2];
    long found = 0;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        exit(1);
    }
    base_fd = sv[0];
    shared = zn_connmgr_new();
    /* Every clear() stops connections, and each stop logs a line. */
    zn_log_set_level(ZN_LOG_WARN);
    for (int i = 0; i < OWNERS; i++)
        pthread_create(&owners[i], NULL, owner, (void *)(intptr_t)i);
    for (int i = 0; i < GETTERS; i++)
        pthread_create(&getters[i], NULL, getter, (void *)(intptr_t)(i + 7));
    pthread_create(&clear_thread, NULL, clearer, NULL);
    for (int i = 0; i < OWNERS; i++)
        pthread_join(owners[i], NULL);
    atomic_store(&owners_done, true);
    for (int i = 0; i < GETTERS; i++) {
        void *ret;

        pthread_join(getters[i], &ret);
        found += (long)(intptr_t)ret;
    }
    pthread_join(clear_thread, NULL);
    zn_log_set_level(ZN_LOG_INFO);

    CHECK(zn_connmgr_len(shared) == 0, "len() is %zu after every remove",
          zn_connmgr_len(shared));
    for (int o = 0; o < OWNERS; o++)
        for (int k = 0; k < PER_OWNER; k++)
            CHECK(zn_connmgr_get(shared, owner_id(o, k)) == NULL,
                  "get(%u) after every remove", owner_id(o, k));
    zn_connmgr_free(shared);
    close(sv[0]);
    close(sv[1]);
    printf("threads: %d owners x %d rounds x %d connections, getters found "
           "%ld\n",
           OWNERS, ROUNDS, PER_OWNER, found);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    alarm(WATCHDOG_S);
    test_basics();
    printf("basics: done\n");
    test_clear();
    printf("clear: done\n");
    test_zinx();
    printf("zinx: done\n");
    test_threads();
    printf("%d checks, %d failed\n", atomic_load(&checks),
           atomic_load(&failures));
    return atomic_load(&failures) == 0 ? 0 : 1;
}
