/*
 * Unit test for zn_frame.h: the exact bytes of a header on the wire
 * (DataLen first, each integer least significant byte first), the largest
 * values, round trips of many values, and that the helpers touch their 4
 * or 8 bytes and nothing next to them. The last check puts headers next
 * to inaccessible pages: a helper that wrote or read one byte past either
 * end would crash the test.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include "check.h"
#include "zn_frame.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint32_t rnd(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static void check_bytes(void)
{
    unsigned char head[ZN_FRAME_HEADER_LEN];
    const unsigned char want[ZN_FRAME_HEADER_LEN] = {0x01, 0x02, 0x03, 0x04,
                                                     0x05, 0x06, 0x07, 0x08};
    /* The v0.6 demo's ping reply: DataLen 18, MsgID 0. */
    const unsigned char ping[ZN_FRAME_HEADER_LEN] = {18, 0, 0, 0, 0, 0, 0, 0};
    unsigned char four[4];
    uint32_t id, len;

    CHECK(ZN_FRAME_HEADER_LEN == 8);
    zn_put_le32(four, 0x12345678u);
    CHECK(four[0] == 0x78 && four[1] == 0x56 && four[2] == 0x34 &&
          four[3] == 0x12);
    CHECK(zn_get_le32(four) == 0x12345678u);

    zn_frame_put_header(head, 0x08070605u, 0x04030201u);
    CHECK(memcmp(head, want, sizeof(head)) == 0);
    zn_frame_get_header(want, &id, &len);
    CHECK(len == 0x04030201u && id == 0x08070605u);

    zn_frame_get_header(ping, &id, &len);
    CHECK(len == 18 && id == 0);
    zn_frame_put_header(head, 0, 18);
    CHECK(memcmp(head, ping, sizeof(head)) == 0);

    /* Each byte weighs what its place says, and no more. */
    for (int i = 0; i < 4; i++) {
        memset(four, 0, sizeof(four));
        four[i] = 0xff;
        CHECK(zn_get_le32(four) == (uint32_t)0xff << (8 * i));
    }
}

static void check_limits(void)
{
    unsigned char head[ZN_FRAME_HEADER_LEN];
    uint32_t id = 1, len = 1;

    zn_frame_put_header(head, UINT32_MAX, UINT32_MAX);
    for (int i = 0; i < ZN_FRAME_HEADER_LEN; i++)
        CHECK(head[i] == 0xff);
    zn_frame_get_header(head, &id, &len);
    CHECK(id == UINT32_MAX && len == UINT32_MAX);

    zn_frame_put_header(head, 0, 0);
    for (int i = 0; i < ZN_FRAME_HEADER_LEN; i++)
        CHECK(head[i] == 0);
    zn_frame_get_header(head, &id, &len);
    CHECK(id == 0 && len == 0);

    /* The top bit, where a signed shift would go wrong. */
    zn_frame_put_header(head, 0x80000000u, 0x80000000u);
    CHECK(head[3] == 0x80 && head[7] == 0x80);
    zn_frame_get_header(head, &id, &len);
    CHECK(id == 0x80000000u && len == 0x80000000u);
}

static void check_round_trips(void)
{
    uint32_t seed = 2463534242u;
    int bad = 0;

    for (int i = 0; i < 100000; i++) {
        unsigned char head[ZN_FRAME_HEADER_LEN], four[4];
        uint32_t id = rnd(&seed), len = rnd(&seed), got_id, got_len;

        zn_frame_put_header(head, id, len);
        zn_frame_get_header(head, &got_id, &got_len);
        zn_put_le32(four, id);
        /* The header is the two integers, DataLen first. */
        if (got_id != id || got_len != len || zn_get_le32(four) != id ||
            zn_get_le32(head) != len || zn_get_le32(head + 4) != id)
            bad++;
    }
    CHECK(bad == 0);
}

/* Writing a header changes its 8 bytes and none on either side. */
static void check_write_bounds(void)
{
    unsigned char buf[4 + ZN_FRAME_HEADER_LEN + 4], want[sizeof(buf)];

    memset(buf, 0xaa, sizeof(buf));
    memset(want, 0xaa, sizeof(want));
    zn_frame_put_header(buf + 4, 0x08070605u, 0x04030201u);
    for (int i = 0; i < ZN_FRAME_HEADER_LEN; i++)
        want[4 + i] = (unsigned char)(i + 1);
    CHECK(memcmp(buf, want, sizeof(buf)) == 0);

    memset(buf, 0xaa, sizeof(buf));
    zn_put_le32(buf + 4, 0);
    CHECK(buf[3] == 0xaa && buf[8] == 0xaa);
}

/*
 * Writing and reading a header touch its 8 bytes and none on either side:
 * one header ends where an inaccessible page begins, another starts where
 * one ends.
 */
static void check_read_bounds(void)
{
    long page = sysconf(_SC_PAGESIZE);
    unsigned char *map, *first, *last;
    uint32_t id, len;

    map = mmap(NULL, 3 * (size_t)page, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    if (mprotect(map, (size_t)page, PROT_NONE) < 0 ||
        mprotect(map + 2 * page, (size_t)page, PROT_NONE) < 0) {
        perror("mprotect");
        exit(1);
    }
    first = map + page;
    last = map + 2 * page - ZN_FRAME_HEADER_LEN;
    zn_frame_put_header(first, 7, 1234);
    zn_frame_put_header(last, UINT32_MAX, 0x01020304u);
    zn_frame_get_header(first, &id, &len);
    CHECK(id == 7 && len == 1234);
    zn_frame_get_header(last, &id, &len);
    CHECK(id == UINT32_MAX && len == 0x01020304u);
    CHECK(zn_get_le32(last + 4) == UINT32_MAX);
    munmap(map, 3 * (size_t)page);
}

int main(void)
{
    check_bytes();
    check_limits();
    check_round_trips();
    check_write_bounds();
    check_read_bounds();
    return CHECK_DONE();
}
