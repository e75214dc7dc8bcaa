/* virtio-balloon, virtio 1.2 section 5.5: device id 5 (5.5.1); features
 * VIRTIO_BALLOON_F_STATS_VQ, F_DEFLATE_ON_OOM and F_PAGE_REPORTING
 * (5.5.3), as configured; the configuration layout of 5.5.4 (num_pages,
 * written by the host, actual, by the driver); inflate and deflate
 * (5.5.6), statistics (5.5.6.3) and free page reporting (5.5.6.7).
 *
 * Queues (5.5.2): inflateq 0, deflateq 1, then statsq if STATS_VQ was
 * negotiated and reporting_vq if PAGE_REPORTING was, each taking the next
 * index: Linux numbers the queues it uses that way (the spec's table
 * gives them fixed places), so a driver that accepts reporting but not
 * statistics has its reporting queue at 2.
 *
 * Decisions where the spec leaves room or the driver misbehaves:
 * - A page (4 KiB, its PFN as le32) is discarded only if it lies in
 *   guest RAM at or above GUEST_BALLOON_FLOOR (layout.h: the first MiB,
 *   where vmlet wrote the boot structures and ACPI tables); any other is
 *   counted as invalid and skipped. Discarding is madvise(MADV_DONTNEED):
 *   the host gets the memory back, and a page the guest touches again
 *   reads as zeros, so a guest that lies about a page only loses its
 *   contents. Duplicates in one request are discarded once; across
 *   requests they are discarded again (harmless) and counted again.
 * - At most VIRTIO_BALLOON_MAX_PFNS page numbers of a request are read,
 *   from its device-readable part; a trailing partial one is ignored.
 * - Deflate is bookkeeping: MUST_TELL_HOST is not offered, the pages
 *   come back by faulting.
 * - A reported range (any descriptor, readable or writable) is discarded
 *   for the whole 4 KiB pages it holds above the floor; used length 0.
 * - Statistics: at most VIRTIO_BALLOON_MAX_STATS entries of a buffer are
 *   read, unknown tags ignored. The device keeps the buffer and returns
 *   it every stats_interval_s seconds to ask for fresh numbers; a second
 *   buffer while one is held sends the first back at once.
 * - A chain the queue code rejects (VIRTQ_BROKEN) makes the device set
 *   NEEDS_RESET and stop serving queues until the driver resets.
 * - Each round serves at most CHAIN_BUDGET chains per queue before it
 *   looks at the stop request again, so no queue can starve the others.
 * - Snapshots (docs/balloon.md): target and actual are saved; the held
 *   statistics buffer goes back to its ring at the stop, so the next run
 *   (the restored VM's too) takes it again and the statistics go on.
 */
#include "virtio/device.h"
#include "virtio/balloon.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include "error.h"
#include "layout.h"

/* The fuzz target lowers the floor to reach its small guest's pages. */
#ifndef BALLOON_FLOOR
#define BALLOON_FLOOR GUEST_BALLOON_FLOOR
#endif

#define BALLOON_QUEUE_MAX 256
#define CHAIN_BUDGET      64 /* chains per queue per round */
#define CONFIG_SIZE       8  /* num_pages, actual: no hint or poison fields */

enum { Q_INFLATE, Q_DEFLATE, Q_STATS, Q_REPORT, Q_ROLES };

struct virtio_balloon {
    struct virtio_device vdev;
    unsigned flags, stats_interval_s;
    uint32_t target_pages, actual_pages; /* relaxed atomics: config space */
    uint64_t ram_pages;                  /* the guest's RAM, 0 if not told: a loaded
                                          * target or actual is checked against it */

    /* Owned by the device thread while it runs; set up by take_queues. */
    const struct guest_memory *mem;
    struct virtq *q[Q_ROLES];
    int kick[Q_ROLES];
    unsigned qindex[Q_ROLES]; /* the transport's queue number of each role */
    bool broken;
    bool stats_held; /* the driver's statistics buffer is ours */
    uint16_t stats_head;
    uint64_t stats_due_ns; /* when to give it back */
    struct virtq_chain chain;
    uint32_t pfns[VIRTIO_BALLOON_MAX_PFNS];

    pthread_mutex_t stats_lock; /* the guest's statistics below */
    uint64_t stats[VMLET_BALLOON_STAT_COUNT];
    uint32_t stats_present;
    uint64_t stats_ns; /* when they came */

    struct virtio_balloon_stats counters; /* relaxed atomics */
};
_Static_assert(offsetof(struct virtio_balloon, vdev) == 0, "the device is its virtio_device");

#define COUNT(b, field, n) __atomic_fetch_add(&(b)->counters.field, (n), __ATOMIC_RELAXED)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t le_bytes(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* Gives host memory [p, p + len) back; len a multiple of the page size. */
static void discard(struct virtio_balloon *b, uint8_t *p, size_t len)
{
    if (len && madvise(p, len, MADV_DONTNEED) == 0)
        COUNT(b, returned_bytes, (uint64_t)len);
}

/* The host address of balloon page pfn, or NULL unless it may be
 * discarded: all of it in RAM, none of it below the floor. */
static uint8_t *page_hva(const struct virtio_balloon *b, uint32_t pfn)
{
    uint64_t gpa = (uint64_t)pfn << VIRTIO_BALLOON_PFN_SHIFT;
    if (gpa < BALLOON_FLOOR)
        return NULL;
    return gpa_to_hva(b->mem, gpa, VIRTIO_BALLOON_PAGE_SIZE);
}

/* Shell sort (Ciura's gaps), in place. Not qsort: glibc's may allocate
 * and then ask the kernel for the machine's memory size (sysinfo), which
 * this thread's sandbox does not allow. */
static void sort_u32(uint32_t *a, unsigned n)
{
    static const unsigned gaps[] = { 701, 301, 132, 57, 23, 10, 4, 1 };
    for (unsigned g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        unsigned gap = gaps[g];
        for (unsigned i = gap; i < n; i++) {
            uint32_t v = a[i];
            unsigned j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap)
                a[j] = a[j - gap];
            a[j] = v;
        }
    }
}

/* An inflate or deflate request: its page numbers, sorted so that runs
 * of pages contiguous on the host become one madvise each. */
static void serve_pages(struct virtio_balloon *b, const struct virtq_chain *ch, bool inflate)
{
    uint8_t raw[4 * 256];
    unsigned n = 0;
    size_t off = 0;
    while (n < VIRTIO_BALLOON_MAX_PFNS) {
        size_t want = (size_t)(VIRTIO_BALLOON_MAX_PFNS - n) * 4;
        if (want > sizeof raw)
            want = sizeof raw;
        size_t got = iov_to_buf(ch->iov, ch->n_out, off, raw, want);
        for (size_t i = 0; i + 4 <= got; i += 4)
            b->pfns[n++] = (uint32_t)le_bytes(raw + i, 4);
        off += got;
        if (got < want)
            break;
    }
    sort_u32(b->pfns, n);

    uint64_t valid = 0, invalid = 0;
    uint8_t *run = NULL; /* host range [run, run_end) still to discard */
    uint8_t *run_end = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (i > 0 && b->pfns[i] == b->pfns[i - 1])
            continue;
        uint8_t *p = page_hva(b, b->pfns[i]);
        if (!p) {
            invalid++;
            continue;
        }
        valid++;
        if (!inflate)
            continue;
        if (p != run_end) {
            discard(b, run, (size_t)(run_end - run));
            run = p;
        }
        run_end = p + VIRTIO_BALLOON_PAGE_SIZE;
    }
    if (inflate) {
        discard(b, run, (size_t)(run_end - run));
        COUNT(b, inflated_pages, valid);
    } else {
        COUNT(b, deflated_pages, valid);
    }
    COUNT(b, invalid_pages, invalid);
}

/* A free page report: every buffer of the chain is a range of free guest
 * memory. Its whole pages above the floor are discarded. The queue code
 * put each buffer inside one RAM region, so its host offset says where
 * it is: low RAM starts at guest address 0. */
static void serve_report(struct virtio_balloon *b, const struct virtq_chain *ch)
{
    const struct guest_memory *m = b->mem;
    for (unsigned i = 0; i < ch->n_out + ch->n_in; i++) {
        uint64_t start = (uint64_t)((uint8_t *)ch->iov[i].iov_base - m->host);
        uint64_t end = start + ch->iov[i].iov_len;
        if (start < BALLOON_FLOOR && start < m->low_size) {
            uint64_t below = (end < BALLOON_FLOOR ? end : BALLOON_FLOOR) - start;
            COUNT(b, invalid_pages, below / VIRTIO_BALLOON_PAGE_SIZE);
            start = BALLOON_FLOOR;
        }
        start = (start + VIRTIO_BALLOON_PAGE_SIZE - 1) & ~(uint64_t)(VIRTIO_BALLOON_PAGE_SIZE - 1);
        end &= ~(uint64_t)(VIRTIO_BALLOON_PAGE_SIZE - 1);
        if (end <= start || end > m->size)
            continue;
        COUNT(b, reported_pages, (end - start) / VIRTIO_BALLOON_PAGE_SIZE);
        discard(b, m->host + start, (size_t)(end - start));
    }
}

/* A statistics buffer: tagged values, as many as fit (5.5.6.3). */
static void read_stats(struct virtio_balloon *b, const struct virtq_chain *ch)
{
    uint8_t raw[VIRTIO_BALLOON_MAX_STATS * VIRTIO_BALLOON_STAT_SIZE];
    size_t got = iov_to_buf(ch->iov, ch->n_out, 0, raw, sizeof raw);
    uint64_t vals[VMLET_BALLOON_STAT_COUNT] = { 0 };
    uint32_t present = 0;
    for (size_t i = 0; i + VIRTIO_BALLOON_STAT_SIZE <= got; i += VIRTIO_BALLOON_STAT_SIZE) {
        unsigned tag = (unsigned)le_bytes(raw + i, 2);
        if (tag >= VMLET_BALLOON_STAT_COUNT)
            continue;
        vals[tag] = le_bytes(raw + i + 2, 8);
        present |= 1u << tag;
    }
    pthread_mutex_lock(&b->stats_lock);
    memcpy(b->stats, vals, sizeof vals);
    b->stats_present = present;
    b->stats_ns = now_ns();
    pthread_mutex_unlock(&b->stats_lock);
    COUNT(b, stats_updates, 1);
}

/* Sends the held statistics buffer back: the driver refills it. */
static void stats_request(struct virtio_balloon *b)
{
    struct virtq *q = b->q[Q_STATS];
    b->stats_held = false;
    virtq_push(q, b->stats_head, 0);
    if (virtq_should_notify(q))
        virtio_notify_queue(b->vdev.transport, b->qindex[Q_STATS]);
}

/* Serves up to CHAIN_BUDGET chains of one queue; true if it stopped on
 * the budget (more may be waiting). */
static bool serve_queue(struct virtio_balloon *b, unsigned role)
{
    struct virtq *q = b->q[role];
    if (!q || b->broken)
        return false;
    bool pushed = false, more = false;
    unsigned done = 0;
    virtq_disable_notify(q);
    while (!atomic_load_explicit(&b->vdev.thread.stopping, memory_order_relaxed)) {
        if (done == CHAIN_BUDGET) {
            more = true;
            break;
        }
        if (virtio_device_pop(&b->vdev, q, &b->chain, &b->broken) != VIRTQ_CHAIN)
            break;
        done++;
        switch (role) {
        case Q_INFLATE: serve_pages(b, &b->chain, true); break;
        case Q_DEFLATE: serve_pages(b, &b->chain, false); break;
        case Q_REPORT: serve_report(b, &b->chain); break;
        default: /* Q_STATS */
            read_stats(b, &b->chain);
            if (b->stats_held) { /* the driver sent another: return the old one */
                virtq_push(q, b->stats_head, 0);
                pushed = true;
            }
            b->stats_held = true;
            b->stats_head = b->chain.head;
            b->stats_due_ns = now_ns() + (uint64_t)b->stats_interval_s * 1000000000ULL;
            continue;
        }
        virtq_push(q, b->chain.head, 0);
        pushed = true;
    }
    if (pushed && virtq_should_notify(q))
        virtio_notify_queue(b->vdev.transport, b->qindex[role]);
    return more;
}

static void *balloon_thread(void *arg)
{
    struct virtio_balloon *b = arg;
    pthread_setname_np(pthread_self(), "virtio-balloon");

    while (!atomic_load(&b->vdev.thread.stopping)) {
        bool more = false;
        for (unsigned r = 0; r < Q_ROLES; r++)
            more |= serve_queue(b, r);
        if (atomic_load(&b->vdev.thread.stopping))
            break;

        int timeout = more ? 0 : -1;
        if (b->stats_held && !b->broken) {
            uint64_t now = now_ns();
            if (now >= b->stats_due_ns) {
                stats_request(b);
            } else if (!more) {
                uint64_t ms = (b->stats_due_ns - now) / 1000000 + 1;
                timeout = ms > 60000 ? 60000 : (int)ms;
            }
        }

        struct pollfd p[1 + Q_ROLES] = { { .fd = b->vdev.thread.stop_fd, .events = POLLIN } };
        unsigned role_of[1 + Q_ROLES];
        nfds_t n = 1;
        for (unsigned r = 0; r < Q_ROLES && !b->broken; r++)
            if (b->q[r] && b->kick[r] >= 0) {
                role_of[n] = r;
                p[n++] = (struct pollfd){ .fd = b->kick[r], .events = POLLIN };
            }
        int res = poll(p, n, timeout);
        if (res < 0) {
            if (errno != EINTR)
                thread_wait_failed();
            continue;
        }
        if (p[0].revents)
            break;
        for (nfds_t i = 1; i < n; i++)
            if (p[i].revents)
                virtio_take_kick(&b->kick[role_of[i]], p[i].revents);
    }
    return NULL;
}

/* ---- virtio_device_ops ------------------------------------------------ */

static void balloon_config_read(void *dev, size_t offset, uint8_t *data, size_t len)
{
    struct virtio_balloon *b = dev;
    uint8_t image[CONFIG_SIZE];
    put_le32(image, __atomic_load_n(&b->target_pages, __ATOMIC_RELAXED));
    put_le32(image + 4, __atomic_load_n(&b->actual_pages, __ATOMIC_RELAXED));
    config_copy_out(image, sizeof image, offset, data, len, 0);
}

/* Only actual is the driver's; a write of part of it changes those bytes. */
static void balloon_config_write(void *dev, size_t offset, const uint8_t *data, size_t len)
{
    struct virtio_balloon *b = dev;
    if (offset >= CONFIG_SIZE || len > CONFIG_SIZE - offset)
        return;
    uint8_t image[4];
    put_le32(image, __atomic_load_n(&b->actual_pages, __ATOMIC_RELAXED));
    for (size_t i = 0; i < len; i++)
        if (offset + i >= 4)
            image[offset + i - 4] = data[i];
    __atomic_store_n(&b->actual_pages, (uint32_t)le_bytes(image, 4), __ATOMIC_RELAXED);
}

/* Activation (lock held, thread not running): the roles get the queues
 * in the order the driver numbered them (see the top of this file). */
static int balloon_take_queues(void *dev, const struct virtio_queues *qs)
{
    struct virtio_balloon *b = dev;
    bool want[Q_ROLES] = {
        true,
        true,
        qs->features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ),
        qs->features & (1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING),
    };
    unsigned next = 0;
    b->mem = NULL;
    for (unsigned r = 0; r < Q_ROLES; r++) {
        b->q[r] = NULL;
        b->kick[r] = -1;
        if (!want[r])
            continue;
        unsigned i = next++;
        b->qindex[r] = i;
        if (i < qs->count && qs->q[i]) {
            b->q[r] = qs->q[i];
            b->kick[r] = qs->kick_fd[i];
            b->mem = qs->q[i]->mem;
        }
    }
    b->broken = false;
    b->stats_held = false;
    return 0;
}

/* The thread is gone: a held statistics buffer is the driver's again. It
 * is always the last chain popped from the statistics queue (a second one
 * sends the first back), so it goes back to the ring: after a snapshot
 * the device takes it again, reads the statistics it holds and asks for
 * fresh ones stats_interval_s later, as at the driver's start. */
static void balloon_release_queues(void *dev)
{
    struct virtio_balloon *b = dev;
    if (b->stats_held && b->q[Q_STATS])
        virtq_unpop(b->q[Q_STATS], 1);
    b->stats_held = false;
}

/* Snapshots: the two page counts of the configuration space (le32 target,
 * le32 actual). The flags and the statistics interval are the device's
 * record; inflated pages are already zero in guest memory; a held
 * statistics buffer went back to its ring at the stop. */
#define BALLOON_STATE_SIZE 8

static int balloon_save(void *dev, uint8_t *buf, size_t cap)
{
    struct virtio_balloon *b = dev;
    if (cap < BALLOON_STATE_SIZE)
        return -1;
    put_le32(buf, __atomic_load_n(&b->target_pages, __ATOMIC_RELAXED));
    put_le32(buf + 4, __atomic_load_n(&b->actual_pages, __ATOMIC_RELAXED));
    return BALLOON_STATE_SIZE;
}

static int balloon_load(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
    struct virtio_balloon *b = dev;
    if (len != BALLOON_STATE_SIZE) {
        snprintf(why, whylen, "balloon state of %zu bytes, not %u", len, BALLOON_STATE_SIZE);
        return -1;
    }
    uint32_t target = (uint32_t)le_bytes(buf, 4), actual = (uint32_t)le_bytes(buf + 4, 4);
    /* More pages than the guest has: vmlet_vm_set_balloon never sets such
     * a target, and no driver gives more than it has. */
    if (b->ram_pages && (target > b->ram_pages || actual > b->ram_pages)) {
        snprintf(why, whylen,
                 "balloon state: target %u / actual %u pages, more than the guest's %llu", target,
                 actual, (unsigned long long)b->ram_pages);
        return -1;
    }
    __atomic_store_n(&b->target_pages, target, __ATOMIC_RELAXED);
    __atomic_store_n(&b->actual_pages, actual, __ATOMIC_RELAXED);
    return 0;
}

static void balloon_metrics(void *dev, virtio_metric_fn fn, void *opaque)
{
    struct virtio_balloon *b = dev;
    struct virtio_balloon_stats s;
    virtio_balloon_get_stats(b, &s);
    fn(opaque, "target_pages", __atomic_load_n(&b->target_pages, __ATOMIC_RELAXED));
    fn(opaque, "actual_pages", __atomic_load_n(&b->actual_pages, __ATOMIC_RELAXED));
    fn(opaque, "inflated_pages", s.inflated_pages);
    fn(opaque, "deflated_pages", s.deflated_pages);
    fn(opaque, "reported_pages", s.reported_pages);
    fn(opaque, "returned_bytes", s.returned_bytes);
    fn(opaque, "invalid_pages", s.invalid_pages);
    fn(opaque, "stats_updates", s.stats_updates);
}

static void balloon_free(void *dev)
{
    struct virtio_balloon *b = dev;
    if (!b)
        return;
    virtio_device_destroy(&b->vdev);
    pthread_mutex_destroy(&b->stats_lock);
    free(b);
}

/* The page discards are madvise, which every thread may already make
 * (malloc's own); poll and clocks are common too. */
static const struct sandbox_rules balloon_rules = { .kind = "virtio-balloon" };

static const struct virtio_device_hooks balloon_hooks = {
    .sandbox = &balloon_rules,
    .thread_fn = balloon_thread,
    .take_queues = balloon_take_queues,
    .release_queues = balloon_release_queues,
};

/* ---- life cycle ------------------------------------------------------- */

struct virtio_balloon *virtio_balloon_new(unsigned flags, unsigned stats_interval_s,
                                          vmlet_error *err)
{
    struct virtio_device_ops ops = {
        .name = "balloon",
        .device_id = VIRTIO_ID_BALLOON,
        .num_queues = 2,
        .queue_max_size = BALLOON_QUEUE_MAX,
        .config_size = CONFIG_SIZE,
        .config_read = balloon_config_read,
        .config_write = balloon_config_write,
        .metrics = balloon_metrics,
        .free = balloon_free,
        .save = balloon_save,
        .load = balloon_load,
    };
    if (stats_interval_s) {
        ops.features |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
        ops.num_queues++;
    }
    if (flags & VMLET_BALLOON_DEFLATE_ON_OOM)
        ops.features |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
    if (flags & VMLET_BALLOON_FREE_PAGE_REPORTING) {
        ops.features |= 1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING;
        ops.num_queues++;
    }
    struct virtio_balloon *b = virtio_device_new(sizeof *b, &ops, &balloon_hooks, err);
    if (!b)
        return NULL;
    int e = pthread_mutex_init(&b->stats_lock, NULL);
    if (e != 0) {
        virtio_device_free(b);
        set_error(err, VMLET_ERR_HOST, "balloon: cannot set up the device: %s", strerror(e));
        return NULL;
    }
    b->flags = flags;
    b->stats_interval_s = stats_interval_s;
    for (unsigned r = 0; r < Q_ROLES; r++)
        b->kick[r] = -1;
    return b;
}

void virtio_balloon_set_ram(struct virtio_balloon *b, uint64_t bytes)
{
    b->ram_pages = bytes >> VIRTIO_BALLOON_PFN_SHIFT;
}

void virtio_balloon_free(struct virtio_balloon *b)
{
    balloon_free(b);
}

struct virtio_device *virtio_balloon_device(struct virtio_balloon *b)
{
    return b ? &b->vdev : NULL;
}

struct virtio_balloon *virtio_balloon_of(struct virtio_device *d)
{
    return d && d->ops.device_id == VIRTIO_ID_BALLOON ? (struct virtio_balloon *)d : NULL;
}

void virtio_balloon_set_target(struct virtio_balloon *b, uint32_t pages)
{
    pthread_mutex_lock(&b->vdev.lock);
    bool changed = __atomic_exchange_n(&b->target_pages, pages, __ATOMIC_RELAXED) != pages;
    struct virtio_transport *t = changed && b->vdev.thread.running ? b->vdev.transport : NULL;
    pthread_mutex_unlock(&b->vdev.lock);
    if (t)
        virtio_notify_config(t);
}

void virtio_balloon_get_info(struct virtio_balloon *b, vmlet_balloon_info *info)
{
    memset(info, 0, sizeof *info);
    info->target_bytes = (uint64_t)__atomic_load_n(&b->target_pages, __ATOMIC_RELAXED)
                         << VIRTIO_BALLOON_PFN_SHIFT;
    info->actual_bytes = (uint64_t)__atomic_load_n(&b->actual_pages, __ATOMIC_RELAXED)
                         << VIRTIO_BALLOON_PFN_SHIFT;
    info->flags = b->flags;
    info->stats_interval_s = b->stats_interval_s;
    info->stats_updates = __atomic_load_n(&b->counters.stats_updates, __ATOMIC_RELAXED);
    pthread_mutex_lock(&b->stats_lock);
    memcpy(info->stats, b->stats, sizeof info->stats);
    info->stats_present = b->stats_present;
    uint64_t when = b->stats_ns;
    pthread_mutex_unlock(&b->stats_lock);
    if (when)
        info->stats_age_ms = (now_ns() - when) / 1000000;
}

void virtio_balloon_get_stats(const struct virtio_balloon *b, struct virtio_balloon_stats *s)
{
    s->inflated_pages = __atomic_load_n(&b->counters.inflated_pages, __ATOMIC_RELAXED);
    s->deflated_pages = __atomic_load_n(&b->counters.deflated_pages, __ATOMIC_RELAXED);
    s->reported_pages = __atomic_load_n(&b->counters.reported_pages, __ATOMIC_RELAXED);
    s->returned_bytes = __atomic_load_n(&b->counters.returned_bytes, __ATOMIC_RELAXED);
    s->invalid_pages = __atomic_load_n(&b->counters.invalid_pages, __ATOMIC_RELAXED);
    s->stats_updates = __atomic_load_n(&b->counters.stats_updates, __ATOMIC_RELAXED);
}
