/* Unit tests for virtio-balloon (src/virtio/balloon.c, virtio 1.2 section
 * 5.5), driven through its virtio_device_ops as a transport would.
 *
 * Guest RAM is a private anonymous mapping, as in a VM, so a discarded
 * page really reads as zeros afterwards: 24 MiB of low RAM and 8 MiB
 * above 4 GiB. Each page under test is filled with a pattern first; a
 * page the device must not discard still has it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"
#include "memory.h"
#include "virtio/balloon.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/virtio.h"

#include "fake_transport.h"
#include "metric_names.h"
#include "fake_guest.h"

#define LOW_SIZE  (24u << 20)
#define HIGH_SIZE (8u << 20)
#define QSIZE     64
#define RING_BASE 0x200000ULL /* ring i at RING_BASE + i * 64 KiB */
#define DATA_BASE 0x300000ULL /* page numbers, statistics */
#define PAGES     0x400000ULL /* the pages under test */
#define PAGE      4096u

struct fixture {
    struct guest_memory mem;
    struct virtio_transport t;
    struct ring r[4]; /* in transport order */
    unsigned nq;
    struct virtio_balloon *b;
    const struct virtio_device_ops *ops;
};

static uint8_t *hva(struct fixture *f, uint64_t gpa)
{
    uint8_t *p = gpa_to_hva(&f->mem, gpa, 1);
    assert_non_null(p);
    return p;
}

static void fill(struct fixture *f, uint64_t gpa, size_t len, uint8_t v)
{
    memset(hva(f, gpa), v, len);
}

static bool all_equal(const uint8_t *p, size_t len, uint8_t v)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* A device with these settings, activated with features (the driver's
 * choice among what it offers): its queues get rings in order. */
static void start(struct fixture *f, unsigned flags, unsigned stats_s, uint64_t features)
{
    vmlet_error err;
    f->b = virtio_balloon_new(flags, stats_s, &err);
    assert_non_null(f->b);
    f->ops = &virtio_balloon_device(f->b)->ops;
    assert_int_equal(features & ~f->ops->features, 0);
    f->nq = 2 + !!(features & (1ULL << VIRTIO_BALLOON_F_STATS_VQ)) +
            !!(features & (1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING));
    struct virtio_queues qs = { .transport = &f->t,
                                .count = f->ops->num_queues,
                                .features = features };
    for (unsigned i = 0; i < f->nq; i++) {
        ring_setup(&f->r[i], &f->mem, RING_BASE + i * 0x10000ULL, QSIZE, false);
        qs.q[i] = &f->r[i].q;
        qs.kick_fd[i] = f->r[i].kick;
    }
    assert_int_equal(f->ops->activate(f->b, &qs), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mem.host = mmap(NULL, LOW_SIZE + HIGH_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f->mem.host != MAP_FAILED);
    f->mem.size = LOW_SIZE + HIGH_SIZE;
    f->mem.low_size = LOW_SIZE;
    f->mem.high_size = HIGH_SIZE;
    for (unsigned i = 0; i < 4; i++) {
        f->r[i].kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(f->r[i].kick >= 0);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    virtio_balloon_free(f->b);
    for (unsigned i = 0; i < 4; i++)
        close(f->r[i].kick);
    munmap(f->mem.host, f->mem.size);
    free(f);
    return 0;
}

/* Posts page numbers as one readable buffer on ring q and waits for it
 * to come back, used length 0. */
static void send_pfns(struct fixture *f, unsigned q, const uint32_t *pfns, unsigned n)
{
    uint8_t *p = hva(f, DATA_BASE);
    for (unsigned i = 0; i < n; i++)
        put_le32(p + 4 * i, pfns[i]);
    uint16_t head = post(&f->r[q], &(struct buf){ DATA_BASE, 4 * n, false }, 1);
    expect_used(&f->r[q], head, 0);
}

static struct virtio_balloon_stats counters(struct fixture *f)
{
    struct virtio_balloon_stats s;
    virtio_balloon_get_stats(f->b, &s);
    return s;
}

static uint32_t pfn(uint64_t gpa)
{
    return (uint32_t)(gpa >> 12);
}

/* ---- tests ------------------------------------------------------------- */

/* What the transport is told: id 5, queues and features as configured. */
static void test_ops(void **state)
{
    (void)state;
    vmlet_error err;
    struct {
        unsigned flags, stats_s, queues;
        uint64_t features;
    } cases[] = {
        { 0, 0, 2, 0 },
        { VMLET_BALLOON_DEFLATE_ON_OOM, 0, 2, 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM },
        { 0, 5, 3, 1ULL << VIRTIO_BALLOON_F_STATS_VQ },
        { VMLET_BALLOON_FREE_PAGE_REPORTING, 0, 3, 1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING },
        { VMLET_BALLOON_FREE_PAGE_REPORTING | VMLET_BALLOON_DEFLATE_ON_OOM, 1, 4,
          (1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING) | (1ULL << VIRTIO_BALLOON_F_STATS_VQ) |
              (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct virtio_balloon *b = virtio_balloon_new(cases[i].flags, cases[i].stats_s, &err);
        assert_non_null(b);
        const struct virtio_device_ops *ops = &virtio_balloon_device(b)->ops;
        assert_string_equal(ops->name, "balloon");
        assert_int_equal(ops->device_id, 5);
        assert_int_equal(ops->num_queues, cases[i].queues);
        assert_int_equal(ops->features, cases[i].features);
        assert_int_equal(ops->config_size, 8);
        assert_ptr_equal(virtio_balloon_of(virtio_balloon_device(b)), b);
        ops->stop(b); /* without activate: harmless */
        ops->reset(b);
        virtio_balloon_free(b);
    }
    virtio_balloon_free(NULL);
    assert_null(virtio_balloon_device(NULL));
    assert_null(virtio_balloon_of(NULL));
}

/* num_pages is the host's, actual the driver's (5.5.4); a target change
 * interrupts a running driver once. */
static void test_config(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 0, 0);
    uint8_t cfg[12];
    virtio_balloon_set_target(f->b, 0x12345);
    assert_int_equal(atomic_load(&f->t.config), 1);
    virtio_balloon_set_target(f->b, 0x12345); /* unchanged: no interrupt */
    assert_int_equal(atomic_load(&f->t.config), 1);
    f->ops->config_read(f->b, 0, cfg, 8);
    assert_memory_equal(cfg, "\x45\x23\x01\x00\x00\x00\x00\x00", 8);
    /* The driver cannot move the target; it writes actual, whole or part. */
    f->ops->config_write(f->b, 0, (const uint8_t *)"\x01\x02\x03\x04", 4);
    f->ops->config_write(f->b, 4, (const uint8_t *)"\x10\x00\x00\x00", 4);
    f->ops->config_write(f->b, 6, (const uint8_t *)"\x02\x00", 2);
    f->ops->config_write(f->b, 7, (const uint8_t *)"\xff\xff", 2); /* past the end: ignored */
    f->ops->config_write(f->b, SIZE_MAX, (const uint8_t *)"\xff", 1);
    memset(cfg, 0xaa, sizeof cfg);
    f->ops->config_read(f->b, 0, cfg, sizeof cfg);
    assert_memory_equal(cfg, "\x45\x23\x01\x00\x10\x00\x02\x00\x00\x00\x00\x00", 12);
    f->ops->config_read(f->b, 6, cfg, 1);
    assert_int_equal(cfg[0], 2);
    f->ops->config_read(f->b, SIZE_MAX - 1, cfg, 4); /* any offset is safe */
    vmlet_balloon_info info;
    virtio_balloon_get_info(f->b, &info);
    assert_int_equal(info.target_bytes, 0x12345ULL << 12);
    assert_int_equal(info.actual_bytes, 0x20010ULL << 12);
    assert_int_equal(info.stats_updates, 0);
    /* Stopped: the next driver reads the target; no interrupt now. */
    f->ops->reset(f->b);
    virtio_balloon_set_target(f->b, 7);
    assert_int_equal(atomic_load(&f->t.config), 1);
}

/* Inflated pages go back to the host: they read as zeros after. */
static void test_inflate(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 0, 0);
    fill(f, PAGES, 8 * PAGE, 0x5a);
    /* Out of order, one contiguous run of three and two lone pages. */
    uint32_t pfns[] = { pfn(PAGES + 2 * PAGE), pfn(PAGES), pfn(PAGES + PAGE), pfn(PAGES + 6 * PAGE),
                        pfn(PAGES + 4 * PAGE) };
    send_pfns(f, 0, pfns, 5);
    for (unsigned i = 0; i < 8; i++) {
        bool gone = i <= 2 || i == 4 || i == 6;
        assert_true(all_equal(hva(f, PAGES + i * PAGE), PAGE, gone ? 0 : 0x5a));
    }
    struct virtio_balloon_stats s = counters(f);
    assert_int_equal(s.inflated_pages, 5);
    assert_int_equal(s.returned_bytes, 5 * PAGE);
    assert_int_equal(s.invalid_pages, 0);
    assert_true(atomic_load(&f->t.notify[0]) >= 1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* A page twice in one request is discarded and counted once; in the
 * next request again (harmless: it is zero already). */
static void test_inflate_duplicates(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 0, 0);
    fill(f, PAGES, 2 * PAGE, 0x5a);
    uint32_t pfns[] = { pfn(PAGES), pfn(PAGES), pfn(PAGES + PAGE), pfn(PAGES) };
    send_pfns(f, 0, pfns, 4);
    assert_true(all_equal(hva(f, PAGES), 2 * PAGE, 0));
    assert_int_equal(counters(f).inflated_pages, 2);
    send_pfns(f, 0, pfns, 1);
    assert_int_equal(counters(f).inflated_pages, 3);
    assert_int_equal(counters(f).returned_bytes, 3 * PAGE);
}

/* Pages below the floor (boot structures, ACPI tables), in the MMIO
 * hole, past the end of RAM or not RAM at all are skipped and counted;
 * a page above 4 GiB is RAM. */
static void test_inflate_invalid(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 0, 0);
    fill(f, GUEST_BOOT_PARAMS_ADDR, PAGE, 0x11);
    fill(f, GUEST_ACPI_ADDR, PAGE, 0x22);
    fill(f, GUEST_BALLOON_FLOOR - PAGE, PAGE, 0x33);
    fill(f, GUEST_BALLOON_FLOOR, PAGE, 0x44);
    fill(f, LOW_SIZE - PAGE, PAGE, 0x55);
    fill(f, GUEST_HIGH_RAM_START, PAGE, 0x66);
    fill(f, GUEST_HIGH_RAM_START + HIGH_SIZE - PAGE, PAGE, 0x77);
    uint32_t pfns[] = {
        0,
        pfn(GUEST_BOOT_PARAMS_ADDR),
        pfn(GUEST_ACPI_ADDR),
        pfn(GUEST_BALLOON_FLOOR - PAGE),
        pfn(LOW_SIZE), /* just past low RAM */
        pfn(GUEST_MMIO_HOLE_START),
        pfn(GUEST_HIGH_RAM_START + HIGH_SIZE), /* just past high RAM */
        0xffffffffu,
        /* the valid ones */
        pfn(GUEST_BALLOON_FLOOR),
        pfn(LOW_SIZE - PAGE),
        pfn(GUEST_HIGH_RAM_START),
        pfn(GUEST_HIGH_RAM_START + HIGH_SIZE - PAGE),
    };
    send_pfns(f, 0, pfns, 12);
    assert_true(all_equal(hva(f, GUEST_BOOT_PARAMS_ADDR), PAGE, 0x11));
    assert_true(all_equal(hva(f, GUEST_ACPI_ADDR), PAGE, 0x22));
    assert_true(all_equal(hva(f, GUEST_BALLOON_FLOOR - PAGE), PAGE, 0x33));
    assert_true(all_equal(hva(f, GUEST_BALLOON_FLOOR), PAGE, 0));
    assert_true(all_equal(hva(f, LOW_SIZE - PAGE), PAGE, 0));
    assert_true(all_equal(hva(f, GUEST_HIGH_RAM_START), PAGE, 0));
    assert_true(all_equal(hva(f, GUEST_HIGH_RAM_START + HIGH_SIZE - PAGE), PAGE, 0));
    struct virtio_balloon_stats s = counters(f);
    assert_int_equal(s.inflated_pages, 4);
    assert_int_equal(s.invalid_pages, 8);
    /* Low RAM's last page and high RAM's first are next to each other on
     * the host but not in the guest: both went, and nothing else. */
    assert_int_equal(s.returned_bytes, 4 * PAGE);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* Deflating is bookkeeping: nothing is discarded. */
static void test_deflate(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 0, 0);
    fill(f, PAGES, 2 * PAGE, 0x5a);
    uint32_t pfns[] = { pfn(PAGES), pfn(PAGES + PAGE), pfn(GUEST_ACPI_ADDR), 0xffffffffu };
    send_pfns(f, 1, pfns, 4);
    assert_true(all_equal(hva(f, PAGES), 2 * PAGE, 0x5a));
    struct virtio_balloon_stats s = counters(f);
    assert_int_equal(s.deflated_pages, 2);
    assert_int_equal(s.invalid_pages, 2);
    assert_int_equal(s.inflated_pages, 0);
    assert_int_equal(s.returned_bytes, 0);
    assert_true(atomic_load(&f->t.notify[1]) >= 1);
}

/* Only the first VIRTIO_BALLOON_MAX_PFNS page numbers of a request are
 * read; a trailing partial one and a writable buffer are ignored. */
static void test_request_bounds(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 0, 0);
    const unsigned n = VIRTIO_BALLOON_MAX_PFNS + 200;
    fill(f, PAGES, (size_t)n * PAGE, 0x5a);
    uint32_t *pfns = calloc(n, sizeof *pfns);
    for (unsigned i = 0; i < n; i++)
        pfns[i] = pfn(PAGES) + i;
    send_pfns(f, 0, pfns, n);
    free(pfns);
    assert_true(all_equal(hva(f, PAGES), (size_t)VIRTIO_BALLOON_MAX_PFNS * PAGE, 0));
    assert_true(
        all_equal(hva(f, PAGES + (uint64_t)VIRTIO_BALLOON_MAX_PFNS * PAGE), 200 * PAGE, 0x5a));
    assert_int_equal(counters(f).inflated_pages, VIRTIO_BALLOON_MAX_PFNS);

    /* 6 bytes: one page number and half of another. */
    uint64_t next = PAGES + (uint64_t)VIRTIO_BALLOON_MAX_PFNS * PAGE;
    put_le32(hva(f, DATA_BASE), pfn(next));
    put_le32(hva(f, DATA_BASE + 4), pfn(next + PAGE));
    uint16_t head = post(&f->r[0], &(struct buf){ DATA_BASE, 6, false }, 1);
    expect_used(&f->r[0], head, 0);
    assert_true(all_equal(hva(f, next), PAGE, 0));
    assert_true(all_equal(hva(f, next + PAGE), PAGE, 0x5a));
    /* Device-writable: not page numbers the driver gave. */
    head = post(&f->r[0], &(struct buf){ DATA_BASE + 4, 4, true }, 1);
    expect_used(&f->r[0], head, 0);
    assert_true(all_equal(hva(f, next + PAGE), PAGE, 0x5a));
    /* Empty. */
    head = post(&f->r[0], &(struct buf){ DATA_BASE, 0, false }, 1);
    expect_used(&f->r[0], head, 0);
    assert_int_equal(counters(f).inflated_pages, VIRTIO_BALLOON_MAX_PFNS + 1);
}

/* Free page reporting: each buffer is a range; its whole pages above the
 * floor go back. Without statistics the reporting queue is number 2. */
static void test_report(void **state)
{
    struct fixture *f = *state;
    start(f, VMLET_BALLOON_FREE_PAGE_REPORTING, 0, 1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING);
    assert_int_equal(f->nq, 3);
    fill(f, 0, 0x180000, 0x5a);
    fill(f, 0x400000, 0x204000, 0x5a);
    fill(f, GUEST_HIGH_RAM_START, 0x11000, 0x5a);
    struct buf b[4] = {
        { GUEST_HIGH_RAM_START, 0x10000, false }, /* readable works too */
        { 0x400000, 0x200000, true },             /* 2 MiB, as Linux reports */
        { 0x600800, 0x3000, true },               /* unaligned: 2 whole pages inside */
        { 0, 0x180000, true },                    /* over the floor: its top half MiB */
    };
    uint16_t head = post(&f->r[2], b, 4);
    expect_used(&f->r[2], head, 0);
    assert_true(atomic_load(&f->t.notify[2]) >= 1);
    assert_true(all_equal(hva(f, 0x400000), 0x200000, 0));
    assert_true(all_equal(hva(f, 0x600000), 0x1000, 0x5a));
    assert_true(all_equal(hva(f, 0x601000), 0x2000, 0));
    assert_true(all_equal(hva(f, 0x603000), 0x1000, 0x5a));
    assert_true(all_equal(hva(f, 0), GUEST_BALLOON_FLOOR, 0x5a));
    assert_true(all_equal(hva(f, GUEST_BALLOON_FLOOR), 0x80000, 0));
    assert_true(all_equal(hva(f, GUEST_HIGH_RAM_START), 0x10000, 0));
    assert_true(all_equal(hva(f, GUEST_HIGH_RAM_START + 0x10000), PAGE, 0x5a));
    struct virtio_balloon_stats s = counters(f);
    uint64_t pages = 0x200 + 2 + 0x80 + 0x10;
    assert_int_equal(s.reported_pages, pages);
    assert_int_equal(s.returned_bytes, pages * PAGE);
    assert_int_equal(s.invalid_pages, GUEST_BALLOON_FLOOR / PAGE);
    assert_int_equal(s.inflated_pages, 0);

    /* A range outside RAM is the queue code's to refuse: NEEDS_RESET. */
    head = post(&f->r[2], &(struct buf){ GUEST_MMIO_HOLE_START, PAGE, true }, 1);
    sleep_ms(100);
    assert_int_equal(atomic_load(&f->t.needs_reset), 1);
}

static void put_stat(struct fixture *f, uint64_t gpa, uint16_t tag, uint64_t val)
{
    put_le16(hva(f, gpa), tag);
    put_le64(hva(f, gpa + 2), val);
}

/* Statistics: the buffer is read and kept, and given back every
 * interval; with reporting too, the reporting queue is number 3. */
static void test_stats(void **state)
{
    struct fixture *f = *state;
    start(f, VMLET_BALLOON_FREE_PAGE_REPORTING, 1,
          (1ULL << VIRTIO_BALLOON_F_STATS_VQ) | (1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING));
    assert_int_equal(f->nq, 4);
    put_stat(f, DATA_BASE, VMLET_BALLOON_STAT_FREE_MEMORY, 111 << 20);
    put_stat(f, DATA_BASE + 10, 99, 5); /* unknown: ignored */
    put_stat(f, DATA_BASE + 20, VMLET_BALLOON_STAT_TOTAL_MEMORY, 500 << 20);
    put_stat(f, DATA_BASE + 30, 15, 42); /* the last tag vmlet keeps */
    uint64_t t0 = now_ms();
    uint16_t head = post(&f->r[2], &(struct buf){ DATA_BASE, 45, false }, 1); /* 4.5 entries */
    vmlet_balloon_info info;
    do {
        sleep_ms(5);
        virtio_balloon_get_info(f->b, &info);
    } while (info.stats_updates == 0 && now_ms() - t0 < WAIT_MS);
    assert_int_equal(info.stats_updates, 1);
    assert_int_equal(info.stats_present, (1u << VMLET_BALLOON_STAT_FREE_MEMORY) |
                                             (1u << VMLET_BALLOON_STAT_TOTAL_MEMORY) | (1u << 15));
    assert_int_equal(info.stats[VMLET_BALLOON_STAT_FREE_MEMORY], 111 << 20);
    assert_int_equal(info.stats[VMLET_BALLOON_STAT_TOTAL_MEMORY], 500 << 20);
    assert_int_equal(info.stats[15], 42);
    assert_int_equal(info.stats_interval_s, 1);
    /* Held for the interval, then given back for fresh numbers. */
    expect_no_used(&f->r[2], 500);
    expect_used(&f->r[2], head, 0);
    assert_true(now_ms() - t0 >= 1000);
    assert_true(atomic_load(&f->t.notify[2]) >= 1);

    /* A short buffer holds no entry: the last numbers are replaced by none. */
    head = post(&f->r[2], &(struct buf){ DATA_BASE, 9, false }, 1);
    do {
        sleep_ms(5);
        virtio_balloon_get_info(f->b, &info);
    } while (info.stats_updates == 1 && now_ms() - t0 < 2 * WAIT_MS);
    assert_int_equal(info.stats_updates, 2);
    assert_int_equal(info.stats_present, 0);

    /* A second buffer while one is held sends the first back at once. */
    uint16_t second = post(&f->r[2], &(struct buf){ DATA_BASE, 10, false }, 1);
    expect_used(&f->r[2], head, 0);
    /* An oversized one: only the first VIRTIO_BALLOON_MAX_STATS entries. */
    const unsigned n = VIRTIO_BALLOON_MAX_STATS + 10;
    for (unsigned i = 0; i < n; i++)
        put_stat(f, DATA_BASE + 10 * i, i < VIRTIO_BALLOON_MAX_STATS ? 0 : 1, i);
    post(&f->r[2], &(struct buf){ DATA_BASE, 10 * n, false }, 1);
    expect_used(&f->r[2], second, 0);
    virtio_balloon_get_info(f->b, &info);
    assert_int_equal(info.stats_updates, 4);
    assert_int_equal(info.stats_present, 1u << VMLET_BALLOON_STAT_SWAP_IN);
    assert_int_equal(info.stats[0], VIRTIO_BALLOON_MAX_STATS - 1);

    /* The reporting queue, at 3, still works. */
    fill(f, PAGES, PAGE, 0x5a);
    head = post(&f->r[3], &(struct buf){ PAGES, PAGE, true }, 1);
    expect_used(&f->r[3], head, 0);
    assert_true(all_equal(hva(f, PAGES), PAGE, 0));
    /* A reset gives the held buffer back to the driver (nothing used). */
    f->ops->reset(f->b);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* Snapshots: target and actual go into the state and come back; the
 * statistics buffer held at the stop goes back to its ring (nothing in
 * the used ring), so the restored device takes it again and the
 * statistics go on. A state that is the wrong size, or counts more pages
 * than the guest has, is refused naming the field. */
static void test_snapshot(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 60, 1ULL << VIRTIO_BALLOON_F_STATS_VQ);
    virtio_balloon_set_ram(f->b, f->mem.size);
    virtio_balloon_set_target(f->b, 1000);
    uint8_t actual[4];
    put_le32(actual, 500);
    f->ops->config_write(f->b, 4, actual, 4);
    put_stat(f, DATA_BASE, VMLET_BALLOON_STAT_FREE_MEMORY, 111 << 20);
    post(&f->r[2], &(struct buf){ DATA_BASE, 10, false }, 1);
    uint64_t t0 = now_ms();
    vmlet_balloon_info info;
    do {
        sleep_ms(5);
        virtio_balloon_get_info(f->b, &info);
    } while (info.stats_updates == 0 && now_ms() - t0 < WAIT_MS);
    assert_int_equal(info.stats_updates, 1);
    f->ops->stop(f->b);
    assert_int_equal(f->r[2].q.last_avail, 0); /* given back, not used */
    expect_no_used(&f->r[2], 50);
    uint8_t st[VIRTIO_STATE_MAX];
    assert_int_equal(f->ops->save(f->b, st, 4), -1);
    int len = f->ops->save(f->b, st, sizeof st);
    assert_int_equal(len, 8);
    assert_int_equal(get_le64(st), 1000 | (500ULL << 32));
    virtio_balloon_free(f->b);

    /* The restored device: same settings, state loaded, same queues. */
    vmlet_error err;
    f->b = virtio_balloon_new(0, 60, &err);
    assert_non_null(f->b);
    f->ops = &virtio_balloon_device(f->b)->ops;
    virtio_balloon_set_ram(f->b, f->mem.size);
    char why[256];
    assert_int_equal(f->ops->load(f->b, st, 7, why, sizeof why), -1);
    assert_string_equal(why, "balloon state of 7 bytes, not 8");
    uint8_t bad[8];
    put_le32(bad, (uint32_t)(f->mem.size / PAGE) + 1);
    put_le32(bad + 4, 0);
    assert_int_equal(f->ops->load(f->b, bad, 8, why, sizeof why), -1);
    assert_string_equal(why, "balloon state: target 8193 / actual 0 pages, more than the "
                             "guest's 8192");
    put_le32(bad, 0);
    put_le32(bad + 4, UINT32_MAX);
    assert_int_equal(f->ops->load(f->b, bad, 8, why, sizeof why), -1);
    assert_int_equal(f->ops->load(f->b, st, (size_t)len, why, sizeof why), 0);
    virtio_balloon_get_info(f->b, &info);
    assert_int_equal(info.target_bytes, 1000ull * PAGE);
    assert_int_equal(info.actual_bytes, 500ull * PAGE);
    uint8_t cfg[8];
    f->ops->config_read(f->b, 0, cfg, 8);
    assert_int_equal(get_le64(cfg), 1000 | (500ULL << 32));
    put_stat(f, DATA_BASE, VMLET_BALLOON_STAT_FREE_MEMORY, 222 << 20);
    struct virtio_queues qs = { .transport = &f->t,
                                .count = 3,
                                .features = 1ULL << VIRTIO_BALLOON_F_STATS_VQ,
                                .resume = true };
    for (unsigned i = 0; i < 3; i++) {
        qs.q[i] = &f->r[i].q;
        qs.kick_fd[i] = f->r[i].kick;
    }
    assert_int_equal(f->ops->activate(f->b, &qs), 0);
    t0 = now_ms();
    do {
        sleep_ms(5);
        virtio_balloon_get_info(f->b, &info);
    } while (info.stats_updates == 0 && now_ms() - t0 < WAIT_MS);
    assert_int_equal(info.stats_updates, 1);
    assert_int_equal(info.stats[VMLET_BALLOON_STAT_FREE_MEMORY], 222 << 20);
    assert_int_equal(f->r[2].q.last_avail, 1);
}

/* A driver that accepts reporting but not statistics, from a device that
 * offers both, has its reporting queue at 2. */
static void test_queue_numbering(void **state)
{
    struct fixture *f = *state;
    start(f, VMLET_BALLOON_FREE_PAGE_REPORTING, 5, 1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING);
    assert_int_equal(f->ops->num_queues, 4);
    fill(f, PAGES, PAGE, 0x5a);
    uint16_t head = post(&f->r[2], &(struct buf){ PAGES, PAGE, true }, 1);
    expect_used(&f->r[2], head, 0);
    assert_true(all_equal(hva(f, PAGES), PAGE, 0));
    assert_int_equal(counters(f).stats_updates, 0);
}

/* A flood of requests is served, a budget at a time, without NEEDS_RESET. */
static void test_flood(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 0, 0);
    fill(f, PAGES, 1000 * PAGE, 0x5a);
    for (unsigned round = 0; round < 10; round++) {
        uint16_t heads[QSIZE];
        for (unsigned i = 0; i < QSIZE; i++) {
            uint64_t gpa = DATA_BASE + 4 * i;
            put_le32(hva(f, gpa), pfn(PAGES) + (round * QSIZE + i) % 1000);
            heads[i] = post_nokick(&f->r[0], &(struct buf){ gpa, 4, false }, 1);
        }
        kick(&f->r[0]);
        for (unsigned i = 0; i < QSIZE; i++)
            expect_used(&f->r[0], heads[i], 0);
    }
    assert_int_equal(counters(f).inflated_pages, 10 * QSIZE);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* Under its own seccomp allowlist (as in a VM: the worker is spawned
 * sandboxed before activation), every path of the thread runs: a call
 * outside the list would end this test program with status 159. */
static void test_sandboxed(void **state)
{
    struct fixture *f = *state;
    vmlet_error err;
    f->b = virtio_balloon_new(VMLET_BALLOON_FREE_PAGE_REPORTING, 1, &err);
    assert_non_null(f->b);
    f->ops = &virtio_balloon_device(f->b)->ops;
    assert_int_equal(virtio_device_spawn(virtio_balloon_device(f->b), VMLET_SECCOMP_ON, &err), 0);
    uint64_t features = (1ULL << VIRTIO_BALLOON_F_STATS_VQ) |
                        (1ULL << VIRTIO_BALLOON_F_PAGE_REPORTING);
    struct virtio_queues qs = { .transport = &f->t, .count = 4, .features = features };
    for (unsigned i = 0; i < 4; i++) {
        ring_setup(&f->r[i], &f->mem, RING_BASE + i * 0x10000ULL, QSIZE, i == 3);
        qs.q[i] = &f->r[i].q;
        qs.kick_fd[i] = f->r[i].kick;
    }
    assert_int_equal(f->ops->activate(f->b, &qs), 0);
    /* 300 pages, as Linux sends them (256 at most) and more, backwards. */
    fill(f, PAGES, 302 * PAGE, 0x5a);
    uint32_t pfns[301];
    for (unsigned i = 0; i < 300; i++)
        pfns[i] = pfn(PAGES) + 299 - i;
    pfns[300] = 7;
    send_pfns(f, 0, pfns, 301);
    send_pfns(f, 1, pfns, 301);
    uint16_t head = post(&f->r[3], &(struct buf){ PAGES + 300 * PAGE, 2 * PAGE, true }, 1);
    expect_used(&f->r[3], head, 0);
    assert_true(all_equal(hva(f, PAGES), 302 * PAGE, 0));
    put_stat(f, DATA_BASE, VMLET_BALLOON_STAT_AVAILABLE_MEMORY, 1);
    head = post(&f->r[2], &(struct buf){ DATA_BASE, 10, false }, 1);
    expect_used(&f->r[2], head, 0); /* given back after the 1 s interval */
    virtio_balloon_set_target(f->b, 100);
    f->ops->reset(f->b);
    struct virtio_balloon_stats s = counters(f);
    assert_int_equal(s.inflated_pages, 300);
    assert_int_equal(s.deflated_pages, 300);
    assert_int_equal(s.reported_pages, 2);
    assert_int_equal(s.returned_bytes, 302 * PAGE);
    assert_int_equal(s.stats_updates, 1);
}

/* The metric names are the API's (vmlet_vm_metrics group "balloon"). */
static void test_metrics(void **state)
{
    struct fixture *f = *state;
    start(f, 0, 0, 0);
    virtio_balloon_set_target(f->b, 3);
    struct metric_names m = { "", { 0 }, 0 };
    f->ops->metrics(f->b, collect_metric, &m);
    assert_string_equal(m.text, "target_pages actual_pages inflated_pages deflated_pages "
                                "reported_pages returned_bytes invalid_pages stats_updates");
    assert_int_equal(m.values[0], 3);
}

int main(void)
{
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflate_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflate_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deflate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_numbering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandboxed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
