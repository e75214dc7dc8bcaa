/* Split virtqueues, device side (virtio 1.2 section 2.7):
 *   2.7     ring layout and alignment (virtq_rings_valid)
 *   2.7.4   message framing: any descriptor layout, readable before writable
 *   2.7.5   descriptor table, 2.7.5.3 indirect descriptors
 *   2.7.6   available ring, 2.7.8 used ring
 *   2.7.7   used buffer notification suppression (virtq_should_notify)
 *   2.7.10  available buffer notification suppression (virtq_enable_notify)
 *
 * The driver is hostile and runs concurrently on other vCPUs: every ring
 * field and descriptor is read exactly once into a local (atomic loads,
 * so the compiler cannot re-read guest memory after a check), every
 * address goes through gpa_to_hva(), and every malformed structure makes
 * virtq_pop() return VIRTQ_BROKEN instead of guessing. */
#include <endian.h>
#include <string.h>
#include "virtio/queue.h"

#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

#define DESC_SIZE 16u

/* Byte sizes of the three parts (2.7, table "Virtqueue Part"); the event
 * fields are counted whether or not EVENT_IDX is negotiated. */
static uint64_t desc_bytes(uint16_t size)
{
    return (uint64_t)DESC_SIZE * size;
}
static uint64_t avail_bytes(uint16_t size)
{
    return 6 + 2 * (uint64_t)size;
}
static uint64_t used_bytes(uint16_t size)
{
    return 6 + 8 * (uint64_t)size;
}

/* Host views of the rings. Recomputed on every call: gpa_to_hva is a few
 * compares, and this way nothing stale survives a transport change. */
struct rings {
    uint8_t *desc, *avail, *used;
};

static bool aligned(const void *p, uintptr_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

static bool size_valid(uint16_t size)
{
    return size >= 1 && size <= VIRTQ_MAX_SIZE && (size & (size - 1)) == 0;
}

static bool get_rings(const struct virtq *q, struct rings *r)
{
    if (!q->mem || !size_valid(q->size))
        return false;
    /* Alignment of the guest address (2.7.1) and of the host pointer, so
     * the atomic accesses below are naturally aligned. */
    if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
        return false;
    r->desc = gpa_to_hva(q->mem, q->desc_gpa, desc_bytes(q->size));
    r->avail = gpa_to_hva(q->mem, q->avail_gpa, avail_bytes(q->size));
    r->used = gpa_to_hva(q->mem, q->used_gpa, used_bytes(q->size));
    return r->desc && r->avail && r->used && aligned(r->desc, 8) && aligned(r->avail, 2) &&
           aligned(r->used, 4);
}

/* Guest-memory accessors. The driver writes these concurrently, so they
 * are atomics: relaxed unless an ordering is needed (see callers). */
static uint16_t ld16(const uint8_t *p, int order)
{
    return le16toh(__atomic_load_n((const uint16_t *)p, order));
}

static void st16(uint8_t *p, uint16_t v, int order)
{
    __atomic_store_n((uint16_t *)p, htole16(v), order);
}

static void st32(uint8_t *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

static uint8_t *avail_idx_p(const struct rings *r)
{
    return r->avail + 2;
}
static uint8_t *avail_ring_p(const struct rings *r, unsigned i)
{
    return r->avail + 4 + 2 * i;
}
static uint8_t *used_event_p(const struct virtq *q, const struct rings *r)
{
    return r->avail + 4 + 2 * (size_t)q->size;
}
static uint8_t *used_idx_p(const struct rings *r)
{
    return r->used + 2;
}
static uint8_t *used_elem_p(const struct rings *r, unsigned i)
{
    return r->used + 4 + 8 * i;
}
static uint8_t *avail_event_p(const struct virtq *q, const struct rings *r)
{
    return r->used + 4 + 8 * (size_t)q->size;
}

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

/* Reads one descriptor exactly once. Main-table entries are 16-byte
 * aligned; an indirect table may sit at any address the driver chose, so
 * the unaligned case copies bytewise through a volatile pointer (a plain
 * memcpy could legally be re-read by the compiler after our checks). */
static void read_desc(const uint8_t *p, struct desc *d)
{
    if (aligned(p, 8)) {
        d->addr = le64toh(__atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED));
        d->len = le32toh(__atomic_load_n((const uint32_t *)(p + 8), __ATOMIC_RELAXED));
        d->flags = le16toh(__atomic_load_n((const uint16_t *)(p + 12), __ATOMIC_RELAXED));
        d->next = le16toh(__atomic_load_n((const uint16_t *)(p + 14), __ATOMIC_RELAXED));
        return;
    }
    uint8_t b[DESC_SIZE];
    const volatile uint8_t *v = p;
    for (unsigned i = 0; i < DESC_SIZE; i++)
        b[i] = v[i];
    uint64_t a;
    uint32_t l;
    uint16_t f, n;
    memcpy(&a, b, 8);
    memcpy(&l, b + 8, 4);
    memcpy(&f, b + 12, 2);
    memcpy(&n, b + 14, 2);
    d->addr = le64toh(a);
    d->len = le32toh(l);
    d->flags = le16toh(f);
    d->next = le16toh(n);
}

void virtq_reset(struct virtq *q)
{
    q->last_avail = 0;
    q->used_idx = 0;
    q->signalled_used = 0;
    q->signalled_valid = false;
}

bool virtq_rings_valid(const struct virtq *q)
{
    struct rings r;
    return get_rings(q, &r);
}

/* Appends one buffer to the chain, enforcing "readable before writable"
 * (2.7.4.2) and the total descriptor limit. */
static bool add_buffer(const struct virtq *q, struct virtq_chain *c, const struct desc *d)
{
    if (c->n_out + c->n_in >= VIRTQ_MAX_CHAIN)
        return false;
    /* gpa_to_hva rejects ranges outside one RAM region, including ones
     * whose end would wrap past 2^64. */
    void *p = gpa_to_hva(q->mem, d->addr, d->len);
    if (!p)
        return false;
    struct iovec *iov = &c->iov[c->n_out + c->n_in];
    iov->iov_base = p;
    iov->iov_len = d->len;
    if (d->flags & VIRTQ_DESC_F_WRITE) {
        c->n_in++;
        c->in_len += d->len;
    } else {
        if (c->n_in)
            return false; /* readable after writable */
        c->n_out++;
        c->out_len += d->len;
    }
    return true;
}

/* Walks the chain starting at head. The main table is walked at most
 * q->size times and an indirect table at most len/16 times, so a loop in
 * either is caught by counting; the total is also capped by
 * VIRTQ_MAX_CHAIN via add_buffer. */
static bool walk_chain(const struct virtq *q, const struct rings *r, uint16_t head,
                       struct virtq_chain *c)
{
    const uint8_t *table = r->desc;
    uint32_t table_len = q->size;
    uint32_t idx = head, steps = 0;
    bool in_indirect = false;

    for (;;) {
        if (idx >= table_len || ++steps > table_len)
            return false; /* index out of range, or a loop */
        struct desc d;
        read_desc(table + (size_t)idx * DESC_SIZE, &d);

        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            /* 2.7.5.3: only if negotiated, never nested, never with NEXT
             * (so it ends the main chain), and a whole number of
             * non-zero descriptors. Its WRITE flag is ignored. */
            if (!q->indirect || in_indirect || (d.flags & VIRTQ_DESC_F_NEXT) || d.len == 0 ||
                d.len % DESC_SIZE)
                return false;
            const uint8_t *t = gpa_to_hva(q->mem, d.addr, d.len);
            if (!t)
                return false;
            table = t;
            table_len = d.len / DESC_SIZE;
            idx = 0;
            steps = 0;
            in_indirect = true;
            continue;
        }
        if (!add_buffer(q, c, &d))
            return false;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return true;
        idx = d.next;
    }
}

enum virtq_pop_result virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
    if (!q->ready)
        return VIRTQ_EMPTY;
    struct rings r;
    if (!get_rings(q, &r))
        return VIRTQ_BROKEN;

    /* Acquire: the ring entry and descriptors the driver wrote before
     * bumping idx must be visible to the reads below. */
    uint16_t avail_idx = ld16(avail_idx_p(&r), __ATOMIC_ACQUIRE);
    uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
    if (pending == 0)
        return VIRTQ_EMPTY;
    if (pending > q->size)
        return VIRTQ_BROKEN; /* more available than the ring holds */

    uint16_t head = ld16(avail_ring_p(&r, q->last_avail & (q->size - 1)), __ATOMIC_RELAXED);
    if (head >= q->size)
        return VIRTQ_BROKEN;

    chain->head = head;
    chain->n_out = chain->n_in = 0;
    chain->out_len = chain->in_len = 0;
    if (!walk_chain(q, &r, head, chain))
        return VIRTQ_BROKEN;
    q->last_avail++;
    return VIRTQ_CHAIN;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
    struct rings r;
    if (!get_rings(q, &r))
        return;
    uint8_t *e = used_elem_p(&r, q->used_idx & (q->size - 1));
    st32(e, head);
    st32(e + 4, len);
    q->used_idx++;
    /* Release: the element, and everything written into the buffers
     * (status byte, read data), is visible before the new idx. */
    st16(used_idx_p(&r), q->used_idx, __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *q)
{
    struct rings r;
    if (!get_rings(q, &r))
        return false;
    /* Full barrier: our used idx store must be visible before we read the
     * driver's suppression fields, or we could miss a driver that
     * re-enabled interrupts just after checking the used ring. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    uint16_t old = q->signalled_used, new = q->used_idx;
    bool valid = q->signalled_valid;
    q->signalled_used = new;
    q->signalled_valid = true;
    if (old == new)
        return false; /* nothing pushed since last time */

    if (q->event_idx) {
        /* 2.7.7: notify when used idx stepped over used_event, i.e.
         * used_event lies in [old, new) (all mod 2^16). */
        uint16_t ev = ld16(used_event_p(q, &r), __ATOMIC_RELAXED);
        return !valid || (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
    }
    return !(ld16(r.avail, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

void virtq_disable_notify(struct virtq *q)
{
    struct rings r;
    /* With EVENT_IDX flags must stay 0 (2.7.10); leaving avail_event at
     * its old value already tells the driver not to notify. */
    if (q->event_idx || !get_rings(q, &r))
        return;
    st16(r.used, VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

void virtq_quiet_notify(struct virtq *q)
{
    struct rings r;
    if (!get_rings(q, &r))
        return;
    if (!q->event_idx) {
        st16(r.used, VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
        return;
    }
    /* One behind what we consumed: a driver adding buffers from there
     * never steps over it (2.7.10's vring_need_event), until its index
     * has wrapped all the way round: one stray notification at most. */
    st16(avail_event_p(q, &r), (uint16_t)(q->last_avail - 1), __ATOMIC_RELAXED);
}

bool virtq_enable_notify(struct virtq *q)
{
    struct rings r;
    if (!get_rings(q, &r))
        return false;
    if (q->event_idx)
        st16(avail_event_p(q, &r), q->last_avail, __ATOMIC_RELAXED);
    else
        st16(r.used, 0, __ATOMIC_RELAXED);
    /* Full barrier: the driver may have added buffers after our last pop
     * but before it could see notifications enabled; re-reading idx after
     * the store catches exactly that case (no lost wakeup). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return ld16(avail_idx_p(&r), __ATOMIC_ACQUIRE) != q->last_avail;
}

void virtq_unpop(struct virtq *q, uint16_t n)
{
    q->last_avail = (uint16_t)(q->last_avail - n);
}
