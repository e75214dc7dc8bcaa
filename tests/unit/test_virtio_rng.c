/* Unit tests for virtio-rng (src/virtio/rng.c, virtio 1.2 section 5.4),
 * driven through its virtio_device_ops as a transport would.
 *
 * As in test_virtio_console.c: a malloc'd struct guest_memory with a
 * hand-built split ring (section 2.7), this file as the driver, and the
 * transport calls the device makes defined here and counted. Every wait
 * has a deadline, and alarm() ends a hung run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "memory.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/rng.h"
#include "virtio/virtio.h"

#include "fake_transport.h"
#include "metric_names.h"
#include "fake_guest.h"

/* ---- a stand-in for getrandom(2) ---------------------------------------- */

/* rng.c is linked into this program, so its getrandom() calls land here.
 * Normally the real system call; while pool_not_ready is set, the host's
 * pool behaves as in early boot: GRND_NONBLOCK fails with EAGAIN and a
 * blocking call waits until it is ready, which no signal of ours ends. */
static atomic_bool pool_not_ready;
static atomic_uint getrandom_calls;

ssize_t getrandom(void *buf, size_t len, unsigned flags)
{
    atomic_fetch_add(&getrandom_calls, 1);
    if (atomic_load(&pool_not_ready)) {
        if (flags & GRND_NONBLOCK) {
            errno = EAGAIN;
            return -1;
        }
        while (atomic_load(&pool_not_ready)) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
    }
    return syscall(SYS_getrandom, buf, len, flags);
}

/* ---- the fake guest ----------------------------------------------------- */

#define RAM_SIZE  (16u << 20)
#define QSIZE     64
#define RING_BASE 0x10000ULL
#define DATA_BASE 0x100000ULL

struct fixture {
    struct guest_memory mem;
    struct virtio_transport t;
    struct ring r;
    struct virtio_rng *rng;
    const struct virtio_device_ops *ops;
};

static uint8_t *hva(struct fixture *f, uint64_t gpa)
{
    return f->mem.host + gpa;
}

static void activate(struct fixture *f, bool event_idx)
{
    ring_setup(&f->r, &f->mem, RING_BASE, QSIZE, event_idx);
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 1,
        .q = { &f->r.q },
        .kick_fd = { f->r.kick },
    };
    assert_int_equal(f->ops->activate(f->rng, &qs), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mem.host = aligned_alloc(4096, RAM_SIZE);
    assert_non_null(f->mem.host);
    memset(f->mem.host, 0, RAM_SIZE);
    f->mem.size = f->mem.low_size = RAM_SIZE;
    f->r.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(f->r.kick >= 0);
    vmlet_error err;
    f->rng = virtio_rng_new(&err);
    assert_non_null(f->rng);
    f->ops = &virtio_rng_device(f->rng)->ops;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    virtio_rng_free(f->rng);
    close(f->r.kick);
    free(f->mem.host);
    free(f);
    return 0;
}

/* Random-looking: many distinct byte values, not all one value. */
static unsigned distinct_bytes(const uint8_t *p, size_t len)
{
    bool seen[256] = { false };
    unsigned n = 0;
    for (size_t i = 0; i < len; i++)
        if (!seen[p[i]]) {
            seen[p[i]] = true;
            n++;
        }
    return n;
}

static bool all_equal(const uint8_t *p, size_t len, uint8_t v)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* ---- tests ------------------------------------------------------------- */

static void test_ops(void **state)
{
    (void)state;
    vmlet_error err;
    struct virtio_rng *r = virtio_rng_new(&err);
    assert_non_null(r);
    const struct virtio_device_ops *ops = &virtio_rng_device(r)->ops;
    assert_string_equal(ops->name, "rng");
    assert_int_equal(ops->device_id, 4);
    assert_int_equal(ops->device_id, VIRTIO_ID_RNG);
    assert_int_equal(ops->num_queues, 1);
    assert_int_equal(ops->features, 0);
    assert_int_equal(ops->config_size, 0);
    assert_true(ops->queue_max_size >= 1 && ops->queue_max_size <= VIRTQ_MAX_SIZE);
    /* Saved with no state of its own; any state offered back is refused. */
    uint8_t buf[VIRTIO_STATE_MAX];
    char why[128];
    assert_int_equal(ops->save(r, buf, sizeof buf), 0);
    assert_int_equal(ops->load(r, buf, 0, why, sizeof why), 0);
    assert_int_equal(ops->load(r, buf, 1, why, sizeof why), -1);
    assert_non_null(strstr(why, "1 bytes of state"));
    ops->stop(r); /* without activate: harmless */
    uint8_t cfg[4] = { 0 };
    ops->config_read(r, 0, cfg, 4);
    assert_true(all_equal(cfg, 4, 0xff));
    ops->config_write(r, 0, cfg, 4);
    ops->reset(r); /* without activate: harmless */
    virtio_rng_free(r);
    virtio_rng_free(NULL);
    assert_null(virtio_rng_device(NULL));
}

/* The metric names are the API's (vmlet_vm_metrics group "rng"). */
static void test_metrics(void **state)
{
    struct fixture *f = *state;
    struct metric_names m = { "", { 0 }, 0 };
    f->ops->metrics(f->rng, collect_metric, &m);
    assert_string_equal(m.text, "requests bytes");
    assert_int_equal(m.values[0], 0);
    assert_int_equal(m.values[1], 0);
}

static void test_fill(void **state)
{
    struct fixture *f = *state;
    activate(f, false);
    uint8_t *a = hva(f, DATA_BASE), *b = hva(f, DATA_BASE + 0x2000);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, 4096, true }, 1);
    expect_used(&f->r, head, 4096);
    head = post(&f->r, &(struct buf){ DATA_BASE + 0x2000, 4096, true }, 1);
    expect_used(&f->r, head, 4096);
    assert_true(distinct_bytes(a, 4096) > 200);
    assert_true(distinct_bytes(b, 4096) > 200);
    assert_memory_not_equal(a, b, 4096);
    assert_true(atomic_load(&f->t.notify[0]) >= 1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* Several writable buffers, one of them empty, are all filled in order;
 * bytes around them are not touched. */
static void test_chain(void **state)
{
    struct fixture *f = *state;
    activate(f, false);
    memset(hva(f, DATA_BASE), 0x5a, 0x4000);
    struct buf b[3] = {
        { DATA_BASE + 0x10, 100, true },
        { DATA_BASE + 0x1000, 0, true },
        { DATA_BASE + 0x2000, 3000, true },
    };
    uint16_t head = post(&f->r, b, 3);
    expect_used(&f->r, head, 3100);
    assert_true(all_equal(hva(f, DATA_BASE), 0x10, 0x5a));
    assert_true(all_equal(hva(f, DATA_BASE + 0x10 + 100), 0x2000 - 0x10 - 100, 0x5a));
    assert_true(all_equal(hva(f, DATA_BASE + 0x2000 + 3000), 0x1000, 0x5a));
    assert_true(distinct_bytes(hva(f, DATA_BASE + 0x10), 100) > 40);
    assert_true(distinct_bytes(hva(f, DATA_BASE + 0x2000), 3000) > 200);
}

/* A request larger than VIRTIO_RNG_MAX_REQUEST gets exactly that many
 * bytes, and the rest of the buffer is left alone. */
static void test_request_cap(void **state)
{
    struct fixture *f = *state;
    virtio_rng_set_rate(f->rng, 0, 0); /* no rate cap for this one */
    activate(f, false);
    const uint32_t len = 200 * 1024;
    memset(hva(f, DATA_BASE), 0x5a, len);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, len, true }, 1);
    expect_used(&f->r, head, VIRTIO_RNG_MAX_REQUEST);
    assert_true(
        all_equal(hva(f, DATA_BASE + VIRTIO_RNG_MAX_REQUEST), len - VIRTIO_RNG_MAX_REQUEST, 0x5a));
    assert_false(all_equal(hva(f, DATA_BASE + VIRTIO_RNG_MAX_REQUEST - 64), 64, 0x5a));
}

/* Zero-length and read-only requests come back with used length 0; a
 * readable head is never written. */
static void test_odd_requests(void **state)
{
    struct fixture *f = *state;
    activate(f, false);
    memset(hva(f, DATA_BASE), 0x11, 0x3000);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, 0, true }, 1);
    expect_used(&f->r, head, 0);
    head = post(&f->r, &(struct buf){ DATA_BASE, 64, false }, 1);
    expect_used(&f->r, head, 0);
    assert_true(all_equal(hva(f, DATA_BASE), 64, 0x11));
    struct buf b[2] = { { DATA_BASE, 64, false }, { DATA_BASE + 0x1000, 32, true } };
    head = post(&f->r, b, 2);
    expect_used(&f->r, head, 32);
    assert_true(all_equal(hva(f, DATA_BASE), 64, 0x11));
    assert_false(all_equal(hva(f, DATA_BASE + 0x1000), 32, 0x11));
    assert_true(all_equal(hva(f, DATA_BASE + 0x1000 + 32), 64, 0x11));
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* Buffers outside guest RAM break the queue (NEEDS_RESET) and nothing is
 * written; the queue is then left alone until a reset, after which the
 * device works again. */
static void test_out_of_range(void **state)
{
    struct fixture *f = *state;
    activate(f, false);
    post(&f->r, &(struct buf){ RAM_SIZE - 16, 32, true }, 1);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) == 0 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 1);
    assert_int_equal(used_idx(&f->r), 0);
    post(&f->r, &(struct buf){ DATA_BASE, 32, true }, 1);
    sleep_ms(50);
    assert_int_equal(used_idx(&f->r), 0);
    f->ops->reset(f->rng);

    activate(f, false);
    post(&f->r, &(struct buf){ UINT64_MAX - 7, 16, true }, 1); /* wraps */
    end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) < 2 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 2);
    f->ops->reset(f->rng);

    activate(f, false);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, 32, true }, 1);
    expect_used(&f->r, head, 32);
    assert_int_equal(atomic_load(&f->t.needs_reset), 2);
}

/* The token bucket: a burst at once, then the rate, sleeping in between. */
static void test_rate_limit(void **state)
{
    struct fixture *f = *state;
    virtio_rng_set_rate(f->rng, 256 * 1024, 16 * 1024);
    activate(f, false);
    uint64_t t0 = now_ms(), c0 = cpu_ms();
    for (unsigned i = 0; i < 8; i++)
        post(&f->r, &(struct buf){ DATA_BASE + i * 0x4000ULL, 0x4000, true }, 1);
    for (unsigned i = 0; i < 8; i++)
        expect_used(&f->r, (uint16_t)i, 0x4000);
    uint64_t elapsed = now_ms() - t0;
    /* 112 KiB past the burst at 256 KiB/s: about 440 ms. */
    assert_true(elapsed >= 350);
    assert_true(elapsed < 3000);
    assert_true(cpu_ms() - c0 < 150); /* slept, did not spin */
}

/* A request larger than the burst gets the burst. */
static void test_burst_bounds_request(void **state)
{
    struct fixture *f = *state;
    virtio_rng_set_rate(f->rng, 1024 * 1024, 1000);
    activate(f, false);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, 4096, true }, 1);
    expect_used(&f->r, head, 1000);
}

/* Reset while a request waits for the bucket returns at once and leaves
 * the request unanswered; the bucket is not refilled by the reset. */
static void test_reset_while_throttled(void **state)
{
    struct fixture *f = *state;
    virtio_rng_set_rate(f->rng, 1024, 1024);
    activate(f, false);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, 1024, true }, 1);
    expect_used(&f->r, head, 1024);
    memset(hva(f, DATA_BASE + 0x1000), 0x5a, 1024);
    post(&f->r, &(struct buf){ DATA_BASE + 0x1000, 1024, true }, 1);
    sleep_ms(100);
    uint64_t t0 = now_ms();
    f->ops->reset(f->rng);
    assert_true(now_ms() - t0 < 200);
    sleep_ms(1100);
    assert_int_equal(used_idx(&f->r), 1);
    assert_true(all_equal(hva(f, DATA_BASE + 0x1000), 1024, 0x5a));

    /* After the pause above the bucket is full again: one request at once,
     * the next only after about a second. */
    activate(f, false);
    head = post(&f->r, &(struct buf){ DATA_BASE, 1024, true }, 1);
    expect_used(&f->r, head, 1024);
    f->ops->reset(f->rng);
    activate(f, false); /* a reset does not refill */
    t0 = now_ms();
    head = post(&f->r, &(struct buf){ DATA_BASE, 1024, true }, 1);
    expect_used(&f->r, head, 1024);
    assert_true(now_ms() - t0 >= 700);
}

static void *pool_ready_later(void *arg)
{
    (void)arg;
    sleep_ms(3000);
    atomic_store(&pool_not_ready, false);
    return NULL;
}

/* The host's pool not ready yet: the request waits (nothing is returned
 * unfilled), a reset still returns at once, and once the pool is ready
 * the request is answered in full. */
static void test_reset_while_pool_not_ready(void **state)
{
    struct fixture *f = *state;
    atomic_store(&pool_not_ready, true);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pool_ready_later, NULL), 0);
    activate(f, false);
    memset(hva(f, DATA_BASE), 0x5a, 64);
    unsigned calls = atomic_load(&getrandom_calls);
    post(&f->r, &(struct buf){ DATA_BASE, 64, true }, 1);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&getrandom_calls) < calls + 2 && now_ms() < end)
        sleep_ms(1);
    sleep_ms(50);
    assert_int_equal(used_idx(&f->r), 0); /* held, not answered empty */
    uint64_t t0 = now_ms();
    f->ops->reset(f->rng);
    uint64_t took = now_ms() - t0;
    pthread_join(t, NULL); /* the pool is ready from here on */
    assert_true(took < 500);
    assert_int_equal(used_idx(&f->r), 0);
    assert_true(all_equal(hva(f, DATA_BASE), 64, 0x5a));

    /* Not ready, then ready while the request waits: it is answered. */
    atomic_store(&pool_not_ready, true);
    activate(f, false);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, 64, true }, 1);
    sleep_ms(150);
    assert_int_equal(used_idx(&f->r), 0);
    atomic_store(&pool_not_ready, false);
    expect_used(&f->r, head, 64);
    assert_false(all_equal(hva(f, DATA_BASE), 64, 0x5a));
}

/* A stop for a snapshot while a request is held (the pool not ready):
 * the request goes back to the ring unanswered, and the run that
 * resumes (the same process, or a restored one) answers it once. */
static void test_stop_gives_back_held_request(void **state)
{
    struct fixture *f = *state;
    atomic_store(&pool_not_ready, true);
    activate(f, true);
    memset(hva(f, DATA_BASE), 0x5a, 64);
    unsigned calls = atomic_load(&getrandom_calls);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, 64, true }, 1);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&getrandom_calls) < calls + 1 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(f->r.q.last_avail, 1); /* taken and held */
    f->ops->stop(f->rng);
    assert_int_equal(f->r.q.last_avail, 0); /* given back */
    assert_int_equal(used_idx(&f->r), 0);
    assert_true(all_equal(hva(f, DATA_BASE), 64, 0x5a));
    atomic_store(&pool_not_ready, false);
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 1,
        .q = { &f->r.q },
        .kick_fd = { f->r.kick },
        .features = 1ULL << VIRTIO_F_EVENT_IDX,
        .resume = true,
    };
    assert_int_equal(f->ops->activate(f->rng, &qs), 0);
    expect_used(&f->r, head, 64);
    assert_int_equal(f->r.q.last_avail, 1);
    expect_no_used(&f->r, 50); /* answered once */
}

/* The defaults let a normal request through at once. */
static void test_default_rate(void **state)
{
    struct fixture *f = *state;
    activate(f, false);
    uint64_t t0 = now_ms();
    for (unsigned i = 0; i < 4; i++) {
        uint16_t head = post(&f->r, &(struct buf){ DATA_BASE + i * 0x10000ULL, 0x10000, true }, 1);
        expect_used(&f->r, head, 0x10000);
    }
    assert_true(now_ms() - t0 < 500);
}

/* Many small requests, the ring wrapping several times, with and without
 * EVENT_IDX. */
static void run_many(struct fixture *f, bool event_idx)
{
    activate(f, event_idx);
    for (unsigned i = 0; i < 5 * QSIZE; i++) {
        uint64_t gpa = DATA_BASE + (i % QSIZE) * 64ULL;
        uint16_t head = post(&f->r, &(struct buf){ gpa, 64, true }, 1);
        expect_used(&f->r, head, 64);
    }
    /* And a full ring at once. */
    for (unsigned i = 0; i < QSIZE; i++)
        post(&f->r, &(struct buf){ DATA_BASE + i * 64ULL, 64, true }, 1);
    for (unsigned i = 0; i < QSIZE; i++) {
        uint16_t id;
        uint32_t len;
        assert_true(wait_used(&f->r, &id, &len, WAIT_MS));
        assert_int_equal(len, 64);
    }
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

static void test_many(void **state)
{
    run_many(*state, false);
}
static void test_many_event_idx(void **state)
{
    run_many(*state, true);
}

/* Activate twice without a reset, then reset twice: all harmless. */
static void test_lifecycle(void **state)
{
    struct fixture *f = *state;
    activate(f, false);
    struct virtio_queues qs = {
        /* DRIVER_OK again, same ring */
        .transport = &f->t,
        .count = 1,
        .q = { &f->r.q },
        .kick_fd = { f->r.kick },
    };
    assert_int_equal(f->ops->activate(f->rng, &qs), 0);
    uint16_t head = post(&f->r, &(struct buf){ DATA_BASE, 16, true }, 1);
    expect_used(&f->r, head, 16);
    f->ops->reset(f->rng);
    f->ops->reset(f->rng);
}

int main(void)
{
    /* A hang anywhere ends the run (SIGALRM) rather than blocking CI. */
    alarm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_bounds_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_pool_not_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_gives_back_held_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
    };
    return cmocka_run_group_tests_name("virtio_rng", tests, NULL, NULL);
}
