/* Unit tests for split virtqueues (src/virtio/queue.c, virtio 1.2
 * section 2.7): rings built by hand in a fake guest memory, normal and
 * indirect chains, 16-bit index wrap-around, notification suppression
 * (flags and EVENT_IDX), and every malformed ring or chain the device must
 * refuse with VIRTQ_BROKEN instead of reading outside guest RAM. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "memory.h"
#include "virtio/queue.h"

#define F_NEXT     1
#define F_WRITE    2
#define F_INDIRECT 4

#define RAM_SIZE  (1u << 20) /* low RAM only, unless a test adds high RAM */
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x6000
#define USED_GPA  0x8000
#define TABLE_GPA 0x10000 /* indirect tables */
#define DATA_GPA  0x40000

struct ring {
    struct guest_memory mem;
    struct virtq q;
    struct virtq_chain chain;
};

static int setup(void **state)
{
    struct ring *r = calloc(1, sizeof *r);
    r->mem.host = aligned_alloc(4096, 2 * RAM_SIZE); /* room for a high-RAM test */
    memset(r->mem.host, 0, 2 * RAM_SIZE);
    r->mem.size = RAM_SIZE;
    r->mem.low_size = RAM_SIZE;
    r->q = (struct virtq){ .mem = &r->mem,
                           .size = 16,
                           .desc_gpa = DESC_GPA,
                           .avail_gpa = AVAIL_GPA,
                           .used_gpa = USED_GPA,
                           .ready = true };
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct ring *r = *state;
    free(r->mem.host);
    free(r);
    return 0;
}

static uint8_t *hva(struct ring *r, uint64_t gpa)
{
    return r->mem.host + gpa;
}

static void put_desc(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t *d = table + 16 * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void desc(struct ring *r, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next)
{
    put_desc(hva(r, DESC_GPA), i, addr, len, flags, next);
}

static uint16_t get16(struct ring *r, uint64_t gpa)
{
    uint16_t v;
    memcpy(&v, hva(r, gpa), 2);
    return v;
}
static uint32_t get32(struct ring *r, uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, hva(r, gpa), 4);
    return v;
}
static void set16(struct ring *r, uint64_t gpa, uint16_t v)
{
    memcpy(hva(r, gpa), &v, 2);
}

static uint16_t avail_idx(struct ring *r)
{
    return get16(r, AVAIL_GPA + 2);
}
static void set_avail_idx(struct ring *r, uint16_t v)
{
    set16(r, AVAIL_GPA + 2, v);
}
static uint16_t used_idx(struct ring *r)
{
    return get16(r, USED_GPA + 2);
}
static uint64_t used_event_gpa(struct ring *r)
{
    return AVAIL_GPA + 4 + 2 * r->q.size;
}
static uint64_t avail_event_gpa(struct ring *r)
{
    return USED_GPA + 4 + 8 * r->q.size;
}

/* Makes head available, as a driver would. */
static void offer(struct ring *r, uint16_t head)
{
    uint16_t idx = avail_idx(r);
    set16(r, AVAIL_GPA + 4 + 2 * (idx % r->q.size), head);
    set_avail_idx(r, idx + 1);
}

static enum virtq_pop_result pop(struct ring *r)
{
    return virtq_pop(&r->q, &r->chain);
}

static void assert_broken(struct ring *r)
{
    assert_int_equal(pop(r), VIRTQ_BROKEN);
}

/* ---- well-formed chains ------------------------------------------------ */

static void empty_queue_pops_nothing(void **state)
{
    struct ring *r = *state;
    assert_true(virtq_rings_valid(&r->q));
    assert_int_equal(pop(r), VIRTQ_EMPTY);
    r->q.ready = false;
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_EMPTY); /* not ready: not looked at */
}

static void pops_a_chain_and_pushes_it_back(void **state)
{
    struct ring *r = *state;
    desc(r, 3, DATA_GPA, 16, F_NEXT, 7);
    desc(r, 7, DATA_GPA + 0x100, 512, F_NEXT, 1);
    desc(r, 1, DATA_GPA + 0x400, 1, F_WRITE, 0);
    offer(r, 3);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    struct virtq_chain *c = &r->chain;
    assert_int_equal(c->head, 3);
    assert_int_equal(c->n_out, 2);
    assert_int_equal(c->n_in, 1);
    assert_int_equal(c->out_len, 528);
    assert_int_equal(c->in_len, 1);
    assert_ptr_equal(c->iov[0].iov_base, hva(r, DATA_GPA));
    assert_int_equal(c->iov[1].iov_len, 512);
    assert_ptr_equal(c->iov[2].iov_base, hva(r, DATA_GPA + 0x400));
    assert_int_equal(pop(r), VIRTQ_EMPTY);

    virtq_push(&r->q, 3, 1);
    assert_int_equal(used_idx(r), 1);
    assert_int_equal(get32(r, USED_GPA + 4), 3);
    assert_int_equal(get32(r, USED_GPA + 8), 1);
}

static void single_writable_descriptor(void **state)
{
    struct ring *r = *state;
    desc(r, 0, DATA_GPA, 4096, F_WRITE, 0);
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_int_equal(r->chain.n_out, 0);
    assert_int_equal(r->chain.n_in, 1);
    assert_int_equal(r->chain.in_len, 4096);
}

static void chain_may_use_every_descriptor(void **state)
{
    struct ring *r = *state;
    for (unsigned i = 0; i < 16; i++)
        desc(r, i, DATA_GPA + i * 16, 16, i < 15 ? F_NEXT : 0, (uint16_t)(i + 1));
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_int_equal(r->chain.n_out, 16);
}

static void indices_wrap_at_65536(void **state)
{
    struct ring *r = *state;
    /* Device and driver both just below the wrap. */
    r->q.last_avail = r->q.used_idx = 65530;
    set_avail_idx(r, 65530);
    set16(r, USED_GPA + 2, 65530);
    desc(r, 5, DATA_GPA, 8, F_WRITE, 0);
    for (unsigned n = 0; n < 12; n++) {
        offer(r, 5);
        assert_int_equal(pop(r), VIRTQ_CHAIN);
        assert_int_equal(r->chain.head, 5);
        uint16_t slot = r->q.used_idx % r->q.size;
        virtq_push(&r->q, 5, (uint32_t)n);
        assert_int_equal(get32(r, USED_GPA + 4 + 8 * slot + 4), n);
        assert_int_equal(pop(r), VIRTQ_EMPTY);
    }
    assert_int_equal(r->q.last_avail, (uint16_t)(65530 + 12));
    assert_int_equal(used_idx(r), (uint16_t)(65530 + 12));

    /* A full ring across the wrap is fine too: exactly size pending. */
    for (unsigned n = 0; n < 16; n++)
        offer(r, 5);
    for (unsigned n = 0; n < 16; n++)
        assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_int_equal(pop(r), VIRTQ_EMPTY);
}

static void indirect_chain(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    put_desc(t, 0, DATA_GPA, 16, F_NEXT, 2);
    put_desc(t, 2, DATA_GPA + 0x100, 4096, F_NEXT | F_WRITE, 1);
    put_desc(t, 1, DATA_GPA + 0x2000, 1, F_WRITE, 0);
    /* The WRITE flag on the table's own descriptor is ignored (2.7.5.3.2). */
    desc(r, 9, TABLE_GPA, 3 * 16, F_INDIRECT | F_WRITE, 0);
    offer(r, 9);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_int_equal(r->chain.head, 9);
    assert_int_equal(r->chain.n_out, 1);
    assert_int_equal(r->chain.n_in, 2);
    assert_int_equal(r->chain.in_len, 4097);
    assert_ptr_equal(r->chain.iov[2].iov_base, hva(r, DATA_GPA + 0x2000));
}

static void direct_descriptors_then_indirect(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    put_desc(t, 0, DATA_GPA + 0x100, 512, F_NEXT | F_WRITE, 1);
    put_desc(t, 1, DATA_GPA + 0x300, 1, F_WRITE, 0);
    desc(r, 0, DATA_GPA, 16, F_NEXT, 4);
    desc(r, 4, TABLE_GPA, 32, F_INDIRECT, 0);
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_int_equal(r->chain.n_out, 1);
    assert_int_equal(r->chain.n_in, 2);
}

static void indirect_table_at_odd_address(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA + 3);
    put_desc(t, 0, DATA_GPA, 16, F_NEXT, 1);
    put_desc(t, 1, DATA_GPA + 0x100, 1, F_WRITE, 0);
    desc(r, 0, TABLE_GPA + 3, 32, F_INDIRECT, 0);
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_int_equal(r->chain.out_len, 16);
    assert_int_equal(r->chain.in_len, 1);
}

static void indirect_chain_of_max_length(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    for (unsigned i = 0; i < VIRTQ_MAX_CHAIN; i++)
        put_desc(t, i, DATA_GPA, 4, i + 1 < VIRTQ_MAX_CHAIN ? F_NEXT : F_WRITE, (uint16_t)(i + 1));
    desc(r, 0, TABLE_GPA, VIRTQ_MAX_CHAIN * 16, F_INDIRECT, 0);
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_int_equal(r->chain.n_out + r->chain.n_in, VIRTQ_MAX_CHAIN);
}

static void zero_length_buffers_are_kept(void **state)
{
    struct ring *r = *state;
    desc(r, 0, DATA_GPA, 0, F_NEXT, 1);
    desc(r, 1, DATA_GPA, 1, F_WRITE, 0);
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_int_equal(r->chain.n_out, 1);
    assert_int_equal(r->chain.out_len, 0);
}

static void high_ram_is_reachable(void **state)
{
    struct ring *r = *state;
    r->mem.size = 2 * RAM_SIZE;
    r->mem.high_size = RAM_SIZE;
    desc(r, 0, GUEST_HIGH_RAM_START + 0x100, 64, F_NEXT, 1);
    desc(r, 1, RAM_SIZE - 1, 1, F_WRITE, 0); /* the last low byte */
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_ptr_equal(r->chain.iov[0].iov_base, r->mem.host + RAM_SIZE + 0x100);
}

/* ---- notification suppression ----------------------------------------- */

static void notify_without_event_idx_follows_flags(void **state)
{
    struct ring *r = *state;
    desc(r, 0, DATA_GPA, 1, F_WRITE, 0);
    assert_false(virtq_should_notify(&r->q)); /* nothing pushed yet */

    virtq_push(&r->q, 0, 1);
    assert_true(virtq_should_notify(&r->q));
    assert_false(virtq_should_notify(&r->q)); /* nothing new since */

    set16(r, AVAIL_GPA, 1); /* VRING_AVAIL_F_NO_INTERRUPT */
    virtq_push(&r->q, 0, 1);
    assert_false(virtq_should_notify(&r->q));
    set16(r, AVAIL_GPA, 0);
    virtq_push(&r->q, 0, 1);
    assert_true(virtq_should_notify(&r->q));
}

static void notify_with_event_idx_uses_used_event(void **state)
{
    struct ring *r = *state;
    r->q.event_idx = true;
    set16(r, AVAIL_GPA, 1); /* must be ignored with EVENT_IDX */

    /* First push after reset: always notify (no previous state). */
    set16(r, used_event_gpa(r), 0);
    virtq_push(&r->q, 0, 1); /* used idx 0 -> 1 */
    assert_true(virtq_should_notify(&r->q));

    /* Driver wants an interrupt once entry 3 is used (idx reaches 4). */
    set16(r, used_event_gpa(r), 3);
    virtq_push(&r->q, 0, 1); /* 1 -> 2 */
    assert_false(virtq_should_notify(&r->q));
    virtq_push(&r->q, 0, 1); /* 2 -> 3 */
    assert_false(virtq_should_notify(&r->q));
    virtq_push(&r->q, 0, 1); /* 3 -> 4: crosses 3 */
    assert_true(virtq_should_notify(&r->q));

    /* Several pushes at once that step over used_event: one notify. */
    set16(r, used_event_gpa(r), 5);
    virtq_push(&r->q, 0, 1);
    virtq_push(&r->q, 0, 1);
    virtq_push(&r->q, 0, 1); /* 4 -> 7, covers 5 */
    assert_true(virtq_should_notify(&r->q));
    /* used_event already behind: no more interrupts. */
    virtq_push(&r->q, 0, 1);
    assert_false(virtq_should_notify(&r->q));

    /* Across the 16-bit wrap. */
    r->q.used_idx = 65534;
    r->q.signalled_used = 65534;
    set16(r, used_event_gpa(r), 65535);
    virtq_push(&r->q, 0, 1); /* 65534 -> 65535 */
    assert_false(virtq_should_notify(&r->q));
    virtq_push(&r->q, 0, 1); /* 65535 -> 0: crosses 65535 */
    assert_true(virtq_should_notify(&r->q));
    assert_int_equal(used_idx(r), 0);

    virtq_reset(&r->q);
    assert_false(r->q.signalled_valid);
}

static void enable_notify_without_event_idx(void **state)
{
    struct ring *r = *state;
    virtq_disable_notify(&r->q);
    assert_int_equal(get16(r, USED_GPA), 1); /* VRING_USED_F_NO_NOTIFY */
    assert_false(virtq_enable_notify(&r->q));
    assert_int_equal(get16(r, USED_GPA), 0);

    /* A chain that slipped in while notifications were off is reported. */
    virtq_disable_notify(&r->q);
    desc(r, 0, DATA_GPA, 1, F_WRITE, 0);
    offer(r, 0);
    assert_true(virtq_enable_notify(&r->q));
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_false(virtq_enable_notify(&r->q));
}

/* Quiet: off until enabled again, with EVENT_IDX even right after an
 * enable: avail_event one behind, which a driver's next buffers never
 * step over (2.7.10: notify iff new - event - 1 < new - old). */
static void quiet_notify(void **state)
{
    struct ring *r = *state;
    virtq_quiet_notify(&r->q);
    assert_int_equal(get16(r, USED_GPA), 1);
    assert_false(virtq_enable_notify(&r->q));
    assert_int_equal(get16(r, USED_GPA), 0);

    r->q.event_idx = true;
    desc(r, 0, DATA_GPA, 1, F_WRITE, 0);
    offer(r, 0);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_false(virtq_enable_notify(&r->q));
    uint16_t old = 1, event = get16(r, avail_event_gpa(r));
    assert_true((uint16_t)(old + 1 - event - 1) < 1); /* enabled: one more notifies */
    virtq_quiet_notify(&r->q);
    assert_int_equal(get16(r, USED_GPA), 0); /* flags stay 0 with EVENT_IDX */
    event = get16(r, avail_event_gpa(r));
    for (uint16_t n = 1; n <= 8; n++) /* a batch of n from old */
        assert_false((uint16_t)(old + n - event - 1) < n);
}

static void enable_notify_with_event_idx(void **state)
{
    struct ring *r = *state;
    r->q.event_idx = true;
    desc(r, 0, DATA_GPA, 1, F_WRITE, 0);
    offer(r, 0);
    offer(r, 0);
    virtq_disable_notify(&r->q);
    assert_int_equal(get16(r, USED_GPA), 0); /* flags stay 0 with EVENT_IDX */
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_true(virtq_enable_notify(&r->q)); /* one more is waiting */
    assert_int_equal(get16(r, avail_event_gpa(r)), 1);
    assert_int_equal(pop(r), VIRTQ_CHAIN);
    assert_false(virtq_enable_notify(&r->q));
    assert_int_equal(get16(r, avail_event_gpa(r)), 2);
}

/* ---- malformed rings and chains: all VIRTQ_BROKEN ---------------------- */

static void avail_idx_too_far_ahead(void **state)
{
    struct ring *r = *state;
    desc(r, 0, DATA_GPA, 1, F_WRITE, 0);
    set_avail_idx(r, 17); /* 17 pending in a 16-entry ring */
    assert_broken(r);
    set_avail_idx(r, 0xffff); /* "behind": 65535 ahead */
    assert_broken(r);
}

static void head_out_of_range(void **state)
{
    struct ring *r = *state;
    offer(r, 16);
    assert_broken(r);
}

static void next_out_of_range(void **state)
{
    struct ring *r = *state;
    desc(r, 0, DATA_GPA, 16, F_NEXT, 16);
    offer(r, 0);
    assert_broken(r);
}

static void loop_in_chain(void **state)
{
    struct ring *r = *state;
    desc(r, 0, DATA_GPA, 16, F_NEXT, 1);
    desc(r, 1, DATA_GPA, 16, F_NEXT, 2);
    desc(r, 2, DATA_GPA, 16, F_NEXT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void self_loop(void **state)
{
    struct ring *r = *state;
    desc(r, 4, DATA_GPA, 16, F_NEXT | F_WRITE, 4);
    offer(r, 4);
    assert_broken(r);
}

static void descriptor_outside_ram(void **state)
{
    struct ring *r = *state;
    desc(r, 0, RAM_SIZE, 1, F_WRITE, 0); /* just past low RAM */
    offer(r, 0);
    assert_broken(r);
}

static void descriptor_crossing_end_of_ram(void **state)
{
    struct ring *r = *state;
    desc(r, 0, RAM_SIZE - 8, 9, F_WRITE, 0);
    offer(r, 0);
    assert_broken(r);
}

static void descriptor_in_mmio_hole(void **state)
{
    struct ring *r = *state;
    r->mem.size = 2 * RAM_SIZE;
    r->mem.high_size = RAM_SIZE;
    desc(r, 0, GUEST_MMIO_HOLE_START, 16, F_WRITE, 0);
    offer(r, 0);
    assert_broken(r);
}

static void descriptor_address_wraps(void **state)
{
    struct ring *r = *state;
    desc(r, 0, 0xfffffffffffff000ull, 0x2000, 0, 0);
    offer(r, 0);
    assert_broken(r);
}

static void high_descriptor_past_high_ram(void **state)
{
    struct ring *r = *state;
    r->mem.size = 2 * RAM_SIZE;
    r->mem.high_size = RAM_SIZE;
    desc(r, 0, GUEST_HIGH_RAM_START + RAM_SIZE - 4, 8, F_WRITE, 0);
    offer(r, 0);
    assert_broken(r);
}

static void readable_after_writable(void **state)
{
    struct ring *r = *state;
    desc(r, 0, DATA_GPA, 16, F_NEXT | F_WRITE, 1);
    desc(r, 1, DATA_GPA + 16, 16, 0, 0);
    offer(r, 0);
    assert_broken(r);
}

static void readable_after_writable_in_indirect_table(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    put_desc(t, 0, DATA_GPA, 16, F_NEXT | F_WRITE, 1);
    put_desc(t, 1, DATA_GPA, 16, 0, 0);
    desc(r, 0, TABLE_GPA, 32, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void readable_indirect_after_writable_direct(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    put_desc(hva(r, TABLE_GPA), 0, DATA_GPA, 16, 0, 0);
    desc(r, 0, DATA_GPA, 1, F_NEXT | F_WRITE, 1);
    desc(r, 1, TABLE_GPA, 16, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void indirect_not_negotiated(void **state)
{
    struct ring *r = *state;
    put_desc(hva(r, TABLE_GPA), 0, DATA_GPA, 1, F_WRITE, 0);
    desc(r, 0, TABLE_GPA, 16, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void indirect_zero_length(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    desc(r, 0, TABLE_GPA, 0, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void indirect_length_not_multiple_of_16(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    put_desc(hva(r, TABLE_GPA), 0, DATA_GPA, 1, F_WRITE, 0);
    desc(r, 0, TABLE_GPA, 24, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void indirect_table_outside_ram(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    desc(r, 0, RAM_SIZE - 16, 32, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void indirect_with_next(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    put_desc(hva(r, TABLE_GPA), 0, DATA_GPA, 1, F_WRITE, 0);
    desc(r, 0, TABLE_GPA, 16, F_INDIRECT | F_NEXT, 1);
    desc(r, 1, DATA_GPA, 1, F_WRITE, 0);
    offer(r, 0);
    assert_broken(r);
}

static void nested_indirect(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    put_desc(t, 0, DATA_GPA, 16, F_NEXT, 1);
    put_desc(t, 1, TABLE_GPA + 0x100, 16, F_INDIRECT, 0);
    put_desc(hva(r, TABLE_GPA + 0x100), 0, DATA_GPA, 1, F_WRITE, 0);
    desc(r, 0, TABLE_GPA, 32, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void indirect_next_out_of_table(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    put_desc(t, 0, DATA_GPA, 16, F_NEXT, 2); /* table has 2 entries */
    put_desc(t, 1, DATA_GPA, 1, F_WRITE, 0);
    desc(r, 0, TABLE_GPA, 32, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void indirect_loop(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    put_desc(t, 0, DATA_GPA, 16, F_NEXT, 1);
    put_desc(t, 1, DATA_GPA, 16, F_NEXT, 0);
    desc(r, 0, TABLE_GPA, 32, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void indirect_chain_longer_than_max(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    unsigned n = VIRTQ_MAX_CHAIN + 1;
    for (unsigned i = 0; i < n; i++)
        put_desc(t, i, DATA_GPA, 4, i + 1 < n ? F_NEXT : F_WRITE, (uint16_t)(i + 1));
    desc(r, 0, TABLE_GPA, n * 16, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void direct_plus_indirect_longer_than_max(void **state)
{
    struct ring *r = *state;
    r->q.indirect = true;
    uint8_t *t = hva(r, TABLE_GPA);
    unsigned n = VIRTQ_MAX_CHAIN; /* + 1 direct = one too many */
    for (unsigned i = 0; i < n; i++)
        put_desc(t, i, DATA_GPA, 4, i + 1 < n ? F_NEXT | F_WRITE : F_WRITE, (uint16_t)(i + 1));
    desc(r, 0, DATA_GPA, 16, F_NEXT, 1);
    desc(r, 1, TABLE_GPA, n * 16, F_INDIRECT, 0);
    offer(r, 0);
    assert_broken(r);
}

static void rings_outside_ram_or_misaligned(void **state)
{
    struct ring *r = *state;
    desc(r, 0, DATA_GPA, 1, F_WRITE, 0);
    offer(r, 0);
    struct virtq good = r->q;

    r->q.used_gpa = RAM_SIZE - 8; /* used ring runs off RAM */
    assert_false(virtq_rings_valid(&r->q));
    assert_broken(r);
    r->q = good;
    r->q.avail_gpa = RAM_SIZE - 6 - 2 * 16 + 2; /* 2 bytes too far */
    assert_false(virtq_rings_valid(&r->q));
    assert_broken(r);
    r->q = good;
    r->q.desc_gpa = GUEST_MMIO_HOLE_START;
    assert_false(virtq_rings_valid(&r->q));
    assert_broken(r);
    r->q = good;
    r->q.desc_gpa = DESC_GPA + 8; /* needs 16-byte alignment */
    assert_false(virtq_rings_valid(&r->q));
    r->q = good;
    r->q.avail_gpa = AVAIL_GPA + 1; /* needs 2 */
    assert_false(virtq_rings_valid(&r->q));
    r->q = good;
    r->q.used_gpa = USED_GPA + 2; /* needs 4 */
    assert_false(virtq_rings_valid(&r->q));
    assert_broken(r);
    r->q = good;
    r->q.size = 12; /* not a power of two */
    assert_false(virtq_rings_valid(&r->q));
    r->q.size = 0;
    assert_false(virtq_rings_valid(&r->q));
    r->q.size = 2048; /* above VIRTQ_MAX_SIZE */
    assert_false(virtq_rings_valid(&r->q));
    r->q = good;
    r->q.avail_gpa = RAM_SIZE - 6 - 2 * 16; /* exactly fits */
    assert_true(virtq_rings_valid(&r->q));
}

/* ---- iovec helpers ---------------------------------------------------- */

static void iov_copies_cross_segments(void **state)
{
    (void)state;
    uint8_t a[3], b[5], c[4];
    struct iovec iov[3] = { { a, 3 }, { b, 5 }, { c, 4 } };
    uint8_t src[12], dst[12];
    for (unsigned i = 0; i < 12; i++)
        src[i] = (uint8_t)(i + 1);
    assert_int_equal(iov_from_buf(iov, 3, 0, src, 12), 12);
    assert_int_equal(a[2], 3);
    assert_int_equal(b[0], 4);
    assert_int_equal(c[3], 12);
    memset(dst, 0, sizeof dst);
    assert_int_equal(iov_to_buf(iov, 3, 2, dst, 12), 10); /* bounded by the iovecs */
    assert_int_equal(dst[0], 3);
    assert_int_equal(dst[9], 12);
    assert_int_equal(iov_to_buf(iov, 3, 12, dst, 4), 0);
    assert_int_equal(iov_from_buf(iov, 3, 7, src, 2), 2);
    assert_int_equal(b[4], 1);
    assert_int_equal(c[0], 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(empty_queue_pops_nothing),
        T(pops_a_chain_and_pushes_it_back),
        T(single_writable_descriptor),
        T(chain_may_use_every_descriptor),
        T(indices_wrap_at_65536),
        T(indirect_chain),
        T(direct_descriptors_then_indirect),
        T(indirect_table_at_odd_address),
        T(indirect_chain_of_max_length),
        T(zero_length_buffers_are_kept),
        T(high_ram_is_reachable),
        T(notify_without_event_idx_follows_flags),
        T(notify_with_event_idx_uses_used_event),
        T(enable_notify_without_event_idx),
        T(enable_notify_with_event_idx),
        T(quiet_notify),
        T(avail_idx_too_far_ahead),
        T(head_out_of_range),
        T(next_out_of_range),
        T(loop_in_chain),
        T(self_loop),
        T(descriptor_outside_ram),
        T(descriptor_crossing_end_of_ram),
        T(descriptor_in_mmio_hole),
        T(descriptor_address_wraps),
        T(high_descriptor_past_high_ram),
        T(readable_after_writable),
        T(readable_after_writable_in_indirect_table),
        T(readable_indirect_after_writable_direct),
        T(indirect_not_negotiated),
        T(indirect_zero_length),
        T(indirect_length_not_multiple_of_16),
        T(indirect_table_outside_ram),
        T(indirect_with_next),
        T(nested_indirect),
        T(indirect_next_out_of_table),
        T(indirect_loop),
        T(indirect_chain_longer_than_max),
        T(direct_plus_indirect_longer_than_max),
        T(rings_outside_ram_or_misaligned),
        cmocka_unit_test(iov_copies_cross_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
