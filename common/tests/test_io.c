/*
 * Unit test for zn_io: a signal that interrupts a blocked read or write
 * (EINTR) is not an error. A timer sends SIGALRM to this thread every 2 ms,
 * through a handler installed WITHOUT SA_RESTART, so every blocking call is
 * interrupted again and again; a helper thread (SIGALRM blocked) writes or
 * reads only after a delay, so each call has to block and be interrupted.
 * zn_writevn gets the same treatment with a buffer cut into pieces, and
 * is resumed after a write that timed out.
 */
#include "check.h"
#include "zn_io.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define DELAY_MS 80
#define BIG (4u << 20) /* far more than a socket buffer holds */

static atomic_int alarms; /* SIGALRMs handled */

static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&alarms, 1);
}

/* SIGALRM every 2 ms, or never again (on = 0). */
static void timer(int on)
{
    struct itimerval it = {{0, on ? 2000 : 0}, {0, on ? 2000 : 0}};

    setitimer(ITIMER_REAL, &it, NULL);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* What the helper thread does at the other end of the socket pair. */
struct peer {
    int fd;
    int job; /* 0: write "hello"; 1: write in two parts; 2: read BIG */
    size_t got; /* job 2: bytes read */
    int intact; /* job 2: every byte was the expected pattern */
};

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 12));
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;

    sleep_ms(DELAY_MS); /* the main thread blocks meanwhile */
    if (p->job == 0) {
        (void)!write(p->fd, "hello", 5);
    } else if (p->job == 1) {
        (void)!write(p->fd, "0123", 4);
        sleep_ms(DELAY_MS / 2);
        (void)!write(p->fd, "456789", 6);
    } else {
        static unsigned char buf[65536];
        ssize_t r;

        p->intact = 1;
        while (p->got < BIG && (r = read(p->fd, buf, sizeof(buf))) > 0) {
            for (ssize_t i = 0; i < r; i++)
                if (buf[i] != pattern(p->got + (size_t)i))
                    p->intact = 0;
            p->got += (size_t)r;
        }
    }
    return NULL;
}

/* Start the helper with SIGALRM blocked, so the signal hits main only. */
static pthread_t start_peer(struct peer *p)
{
    sigset_t alrm, old;
    pthread_t t;

    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, &old);
    pthread_create(&t, NULL, peer_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL); /* the thread keeps it */
    return t;
}

int main(void)
{
    struct sigaction sa;
    int sv[2];
    char buf[16] = {0};
    unsigned char *big;
    struct peer p;
    pthread_t t;
    ssize_t r;
    int before;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocked calls fail with EINTR */
    sigaction(SIGALRM, &sa, NULL);

    /* zn_read on an empty socket returns the data that arrives later. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    p = (struct peer){.fd = sv[1], .job = 0};
    t = start_peer(&p);
    before = atomic_load(&alarms);
    timer(1);
    r = zn_read(sv[0], buf, sizeof(buf));
    timer(0);
    pthread_join(t, NULL);
    CHECK(atomic_load(&alarms) - before >= 5); /* it really was interrupted */
    CHECK(r == 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    close(sv[0]);
    close(sv[1]);

    /* zn_readn waits through signals and short counts for all n bytes. */
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    memset(buf, 0, sizeof(buf));
    p = (struct peer){.fd = sv[1], .job = 1};
    t = start_peer(&p);
    before = atomic_load(&alarms);
    timer(1);
    r = zn_readn(sv[0], buf, 10);
    timer(0);
    pthread_join(t, NULL);
    CHECK(atomic_load(&alarms) - before >= 5);
    CHECK(r == 10);
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    close(sv[0]);
    close(sv[1]);

    /* zn_writen of a few MiB into a peer that reads only later: every byte
     * arrives, in order, once. */
    big = malloc(BIG);
    CHECK(big != NULL);
    if (big == NULL)
        return CHECK_DONE();
    for (size_t i = 0; i < BIG; i++)
        big[i] = pattern(i);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    p = (struct peer){.fd = sv[0], .job = 2};
    t = start_peer(&p);
    before = atomic_load(&alarms);
    timer(1);
    r = zn_writen(sv[1], big, BIG);
    timer(0);
    shutdown(sv[1], SHUT_WR); /* even after a failed write the peer ends */
    pthread_join(t, NULL);
    CHECK(atomic_load(&alarms) - before >= 5);
    CHECK(r == (ssize_t)BIG);
    CHECK(p.got == BIG);
    CHECK(p.intact);
    close(sv[0]);
    close(sv[1]);

    /* zn_writevn of the same bytes cut into buffers of uneven sizes (1 byte
     * up to 1 MiB), so that short counts end inside a buffer and exactly at
     * a boundary: every byte arrives, in order, once. */
    {
        static const size_t cuts[] = {1, 7, 8, 4089, 65536, 1 << 20, 0};
        struct iovec iov[64];
        size_t at = 0;
        int cnt = 0;

        for (; at < BIG && cnt < 64; cnt++) {
            size_t n = cuts[cnt % 7] ? cuts[cnt % 7] : 3;

            if (n > BIG - at || cnt == 63)
                n = BIG - at;
            iov[cnt] = (struct iovec){.iov_base = big + at, .iov_len = n};
            at += n;
        }
        CHECK(at == BIG);
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        p = (struct peer){.fd = sv[0], .job = 2};
        t = start_peer(&p);
        before = atomic_load(&alarms);
        timer(1);
        r = zn_writevn(sv[1], iov, cnt);
        timer(0);
        shutdown(sv[1], SHUT_WR);
        pthread_join(t, NULL);
        CHECK(atomic_load(&alarms) - before >= 5);
        CHECK(r == (ssize_t)BIG);
        CHECK(p.got == BIG);
        CHECK(p.intact);
        close(sv[0]);
        close(sv[1]);
    }

    /* zn_writevn is resumable: with SO_SNDTIMEO, a write into a peer that
     * does not read fails with EAGAIN part-way; called again with the same
     * iov once the peer reads, it sends exactly the rest. */
    {
        struct timeval tmo = {0, 50000};
        struct iovec iov[3];
        ssize_t r2;

        iov[0] = (struct iovec){.iov_base = big, .iov_len = 1000};
        iov[1] = (struct iovec){.iov_base = big + 1000, .iov_len = BIG / 2};
        iov[2] = (struct iovec){.iov_base = big + 1000 + BIG / 2,
                                .iov_len = BIG / 2 - 1000};
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        CHECK(setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo)) ==
              0);
        r = zn_writevn(sv[1], iov, 3);
        CHECK(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        p = (struct peer){.fd = sv[0], .job = 2};
        t = start_peer(&p);
        tmo.tv_sec = 10; /* the peer reads after DELAY_MS: plenty */
        setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
        r2 = zn_writevn(sv[1], iov, 3);
        shutdown(sv[1], SHUT_WR);
        pthread_join(t, NULL);
        CHECK(r2 > 0 && r2 < (ssize_t)BIG); /* only the rest */
        CHECK(p.got == BIG);
        CHECK(p.intact);
        close(sv[0]);
        close(sv[1]);
    }

    free(big);
    return CHECK_DONE();
}
