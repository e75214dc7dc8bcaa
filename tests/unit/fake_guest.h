/* The driver's side of a split virtqueue (virtio 1.2 section 2.7), built
 * by hand in a test's guest memory, for the device tests: descriptors
 * written one by one, chains made available and kicked, used entries
 * waited for with a deadline. Include after fake_transport.h and
 * virtio/queue.h; link with cmocka. */
#ifndef VMLET_TEST_FAKE_GUEST_H
#define VMLET_TEST_FAKE_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define F_NEXT  1
#define F_WRITE 2

/* One queue: the device-side state a transport would own (q), where its
 * three parts lie in the test's memory, and the driver's own indices. */
struct ring {
    struct virtq q;
    uint16_t size;
    uint8_t *desc, *avail, *used;
    uint16_t avail_idx; /* the driver's next avail idx */
    uint16_t last_used; /* used entries consumed so far */
    uint16_t next_desc; /* descriptors are taken round-robin */
    int kick;           /* the queue's eventfd; kept across setups */
};

/* One buffer of a chain: where, how long, device-writable or not. */
struct buf {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

/* Lays a fresh queue of size entries out at base (descriptors, then the
 * available ring at +4 KiB and the used ring at +8 KiB, 64 KiB cleared). */
static inline void ring_setup(struct ring *r, struct guest_memory *mem, uint64_t base,
                              uint16_t size, bool event_idx)
{
    memset(mem->host + base, 0, 0x10000);
    int kick = r->kick;
    memset(r, 0, sizeof *r);
    r->kick = kick;
    r->size = size;
    r->q.mem = mem;
    r->q.size = size;
    r->q.desc_gpa = base;
    r->q.avail_gpa = base + 0x1000;
    r->q.used_gpa = base + 0x2000;
    r->q.ready = true;
    r->q.event_idx = event_idx;
    virtq_reset(&r->q);
    r->desc = mem->host + r->q.desc_gpa;
    r->avail = mem->host + r->q.avail_gpa;
    r->used = mem->host + r->q.used_gpa;
}

/* Writes raw descriptor i. */
static inline void put_desc(struct ring *r, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                            uint16_t next)
{
    uint8_t *d = r->desc + 16 * (size_t)i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

/* Makes head available (the driver side of 2.7.13). */
static inline void publish(struct ring *r, uint16_t head)
{
    uint16_t *ring = (uint16_t *)(r->avail + 4);
    ring[r->avail_idx % r->size] = head;
    r->avail_idx++;
    __atomic_store_n((uint16_t *)(r->avail + 2), r->avail_idx, __ATOMIC_RELEASE);
}

static inline void kick(struct ring *r)
{
    uint64_t one = 1;
    assert_int_equal(write(r->kick, &one, sizeof one), sizeof one);
}

/* Writes one chain of n buffers and makes it available, without kicking. */
static inline uint16_t post_nokick(struct ring *r, const struct buf *b, unsigned n)
{
    uint16_t head = r->next_desc;
    for (unsigned i = 0; i < n; i++) {
        unsigned d = (head + i) % r->size;
        uint16_t flags = (b[i].write ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0);
        put_desc(r, d, b[i].gpa, b[i].len, flags, (uint16_t)((d + 1) % r->size));
    }
    r->next_desc = (uint16_t)((head + n) % r->size);
    publish(r, head);
    return head;
}

/* The same, then a kick; returns the chain's head. */
static inline uint16_t post(struct ring *r, const struct buf *b, unsigned n)
{
    uint16_t head = post_nokick(r, b, n);
    kick(r);
    return head;
}

static inline uint16_t used_idx(struct ring *r)
{
    return __atomic_load_n((uint16_t *)(r->used + 2), __ATOMIC_ACQUIRE);
}

/* Waits for the next used entry; false on timeout. */
static inline bool wait_used(struct ring *r, uint16_t *id, uint32_t *len, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (used_idx(r) == r->last_used) {
        if (now_ms() > end)
            return false;
        sleep_ms(1);
    }
    const uint8_t *e = r->used + 4 + 8 * (size_t)(r->last_used % r->size);
    uint32_t i32;
    memcpy(&i32, e, 4);
    memcpy(len, e + 4, 4);
    *id = (uint16_t)i32;
    r->last_used++;
    return true;
}

/* The next used entry is head with len bytes written. */
static inline void expect_used(struct ring *r, uint16_t head, uint32_t len)
{
    uint16_t id;
    uint32_t l;
    assert_true(wait_used(r, &id, &l, WAIT_MS));
    assert_int_equal(id, head);
    assert_int_equal(l, len);
}

/* Nothing more is used within ms. */
static inline void expect_no_used(struct ring *r, unsigned ms)
{
    sleep_ms(ms);
    assert_int_equal(used_idx(r), r->last_used);
}

#endif
