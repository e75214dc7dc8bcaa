/* Unit tests for virtio-console (src/virtio/console.c, virtio 1.2 section
 * 5.3), driven through its virtio_device_ops as a transport would.
 *
 * The "guest" is a malloc'd struct guest_memory with split rings built by
 * hand (section 2.7); this file plays the driver: it posts descriptor
 * chains, kicks the queue's eventfd and reads the used ring. The transport
 * calls the device makes (virtio_notify_queue, virtio_notify_config,
 * virtio_set_needs_reset) are defined here and only counted. Every wait
 * has a deadline, and alarm() ends a hung run, so a bug fails a test
 * instead of hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "memory.h"
#include "virtio/console.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/virtio.h"

#include "fake_transport.h"
#include "metric_names.h"
#include "fake_guest.h"
#include "raw_pty.h"

/* ---- the fake guest: memory and hand-built split rings ---------------- */

#define RAM_SIZE  (32u << 20)
#define QSIZE     256
#define RING_BASE 0x10000ULL  /* queue i's rings at RING_BASE + i * 0x10000 */
#define DATA_BASE 0x100000ULL /* buffers from 1 MiB on */

struct fixture {
    struct guest_memory mem;
    struct virtio_transport t;
    struct ring rx, tx;
    struct virtio_console *con;
    const struct virtio_device_ops *ops;
    int in_r, in_w;   /* host input: test writes in_w */
    int out_r, out_w; /* guest output: test reads out_r */
};

static void ring_init(struct fixture *f, struct ring *r, unsigned index, bool event_idx)
{
    ring_setup(r, &f->mem, RING_BASE + index * 0x10000ULL, QSIZE, event_idx);
}

static uint8_t *hva(struct fixture *f, uint64_t gpa)
{
    return f->mem.host + gpa;
}

/* ---- host side helpers ------------------------------------------------- */

/* Reads exactly len bytes from fd within the deadline. */
static bool read_exact(int fd, uint8_t *buf, size_t len, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    size_t got = 0;
    while (got < len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int left = (int)(end > now_ms() ? end - now_ms() : 0);
        if (poll(&p, 1, left) <= 0)
            return false;
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

static int pending_bytes(int fd)
{
    int n = -1;
    assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* The driver sets DRIVER_OK again without a reset: same rings. */
static void reactivate(struct fixture *f, uint64_t features)
{
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 2,
        .q = { &f->rx.q, &f->tx.q },
        .kick_fd = { f->rx.kick, f->tx.kick },
        .features = features,
    };
    assert_int_equal(f->ops->activate(f->con, &qs), 0);
}

static void activate(struct fixture *f, uint64_t features, bool event_idx)
{
    ring_init(f, &f->rx, 0, event_idx);
    ring_init(f, &f->tx, 1, event_idx);
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 2,
        .q = { &f->rx.q, &f->tx.q },
        .kick_fd = { f->rx.kick, f->tx.kick },
        .features = features,
    };
    assert_int_equal(f->ops->activate(f->con, &qs), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->mem.host = aligned_alloc(4096, RAM_SIZE);
    assert_non_null(f->mem.host);
    memset(f->mem.host, 0, RAM_SIZE);
    f->mem.size = f->mem.low_size = RAM_SIZE;
    f->mem.high_size = 0;

    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    f->in_r = p[0];
    f->in_w = p[1];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    f->out_r = p[0];
    f->out_w = p[1];
    f->rx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->tx.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(f->rx.kick >= 0 && f->tx.kick >= 0);

    vmlet_error err;
    f->con = virtio_console_new(f->in_r, f->out_w, &err);
    assert_non_null(f->con);
    f->ops = &virtio_console_device(f->con)->ops;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    virtio_console_free(f->con);
    int fds[] = { f->in_r, f->in_w, f->out_r, f->out_w, f->rx.kick, f->tx.kick };
    for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(f->mem.host);
    free(f);
    return 0;
}

/* ---- tests ------------------------------------------------------------- */

static void test_ops(void **state)
{
    (void)state;
    vmlet_error err;
    struct virtio_console *c = virtio_console_new(-1, -1, &err);
    assert_non_null(c);
    const struct virtio_device_ops *ops = &virtio_console_device(c)->ops;
    assert_string_equal(ops->name, "console");
    assert_int_equal(ops->device_id, 3);
    assert_int_equal(ops->device_id, VIRTIO_ID_CONSOLE);
    assert_int_equal(ops->num_queues, 2);
    assert_true(ops->queue_max_size >= 2 && ops->queue_max_size <= VIRTQ_MAX_SIZE);
    assert_true(ops->features & (1ULL << VIRTIO_CONSOLE_F_SIZE));
    assert_false(ops->features & (1ULL << VIRTIO_CONSOLE_F_MULTIPORT));
    assert_int_equal(ops->config_size, 12);
    uint8_t st[VIRTIO_STATE_MAX];
    char why[128];
    assert_int_equal(ops->save(c, st, sizeof st), 8);
    assert_int_equal(ops->load(c, st, 8, why, sizeof why), 0);
    assert_int_equal(ops->load(c, st, 9, why, sizeof why), -1);
    assert_string_equal(why, "console state of 9 bytes, not 8");
    /* Reset and stop without activate, and free of NULL, are harmless. */
    ops->reset(c);
    ops->reset(c);
    ops->stop(c);
    virtio_console_free(c);
    virtio_console_free(NULL);
    assert_null(virtio_console_device(NULL));
}

/* The metric names are the API's (vmlet_vm_metrics group "console"). */
static void test_metrics(void **state)
{
    struct fixture *f = *state;
    struct metric_names m = { "", { 0 }, 0 };
    f->ops->metrics(f->con, collect_metric, &m);
    assert_string_equal(m.text, "tx_bytes rx_bytes");
    assert_int_equal(m.values[0], 0);
    assert_int_equal(m.values[1], 0);
}

static void test_config_size(void **state)
{
    struct fixture *f = *state;
    uint8_t cfg[16];
    /* Pipes are no terminal: 0 x 0 until told. */
    f->ops->config_read(f->con, 0, cfg, 4);
    assert_int_equal(cfg[0] | cfg[1] | cfg[2] | cfg[3], 0);

    virtio_console_set_size(f->con, 132, 43);
    assert_int_equal(atomic_load(&f->t.config), 0); /* not active: no notification */
    memset(cfg, 0, sizeof cfg);
    f->ops->config_read(f->con, 0, cfg, 16);
    assert_int_equal(cfg[0] | cfg[1] << 8, 132);
    assert_int_equal(cfg[2] | cfg[3] << 8, 43);
    assert_int_equal(cfg[4] | cfg[5] << 8 | cfg[6] << 16 | (uint32_t)cfg[7] << 24, 1);
    for (unsigned i = 12; i < 16; i++)
        assert_int_equal(cfg[i], 0xff); /* past the end */
    /* Unaligned, and absurd offsets, don't crash. */
    f->ops->config_read(f->con, 3, cfg, 1);
    assert_int_equal(cfg[0], 0);
    f->ops->config_read(f->con, SIZE_MAX - 1, cfg, 4);
    assert_int_equal(cfg[0] & cfg[1] & cfg[2] & cfg[3], 0xff);
    uint8_t w[4] = { 1, 2, 3, 4 };
    f->ops->config_write(f->con, 0, w, 4); /* read-only: ignored */
    f->ops->config_write(f->con, SIZE_MAX, w, 4);
    f->ops->config_read(f->con, 0, cfg, 2);
    assert_int_equal(cfg[0] | cfg[1] << 8, 132);

    /* With F_SIZE accepted, activation announces the size once, and a
     * change sends another notification. */
    activate(f, 1ULL << VIRTIO_CONSOLE_F_SIZE, false);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.config) < 1 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.config), 1);
    virtio_console_set_size(f->con, 80, 25);
    assert_int_equal(atomic_load(&f->t.config), 2);
    virtio_console_set_size(f->con, 80, 25); /* no change: no notification */
    assert_int_equal(atomic_load(&f->t.config), 2);
    f->ops->reset(f->con);

    /* Without F_SIZE: never. */
    activate(f, 0, false);
    virtio_console_set_size(f->con, 100, 30);
    sleep_ms(20);
    assert_int_equal(atomic_load(&f->t.config), 2);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

static void test_tx_exact(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    /* One chain of three buffers, including an empty one. */
    memcpy(hva(f, DATA_BASE), "Hello, ", 7);
    memcpy(hva(f, DATA_BASE + 0x1000), "hvc0!\n", 6);
    struct buf b[3] = {
        { DATA_BASE, 7, false },
        { DATA_BASE + 0x800, 0, false },
        { DATA_BASE + 0x1000, 6, false },
    };
    uint16_t head = post(&f->tx, b, 3);
    expect_used(&f->tx, head, 0);
    uint8_t out[13];
    assert_true(read_exact(f->out_r, out, sizeof out, WAIT_MS));
    assert_memory_equal(out, "Hello, hvc0!\n", 13);
    /* Binary bytes go through untouched. */
    for (unsigned i = 0; i < 256; i++)
        hva(f, DATA_BASE)[i] = (uint8_t)i;
    head = post(&f->tx, &(struct buf){ DATA_BASE, 256, false }, 1);
    expect_used(&f->tx, head, 0);
    uint8_t bin[256];
    assert_true(read_exact(f->out_r, bin, sizeof bin, WAIT_MS));
    assert_memory_equal(bin, hva(f, DATA_BASE), 256);
    assert_true(atomic_load(&f->t.notify[VIRTIO_CONSOLE_TXQ]) >= 1);
    assert_int_equal(pending_bytes(f->out_r), 0);
}

static void test_rx_basic(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    uint8_t *dst = hva(f, DATA_BASE);
    memset(dst, 0xee, 64);
    uint16_t head = post(&f->rx, &(struct buf){ DATA_BASE, 64, true }, 1);
    assert_int_equal(write(f->in_w, "ls -l\n", 6), 6);
    expect_used(&f->rx, head, 6);
    assert_memory_equal(dst, "ls -l\n", 6);
    assert_int_equal(dst[6], 0xee); /* nothing past the used length */
    assert_true(atomic_load(&f->t.notify[VIRTIO_CONSOLE_RXQ]) >= 1);

    /* A chain of two writable buffers is filled in order. */
    memset(hva(f, DATA_BASE + 0x1000), 0, 3);
    memset(hva(f, DATA_BASE + 0x2000), 0, 16);
    struct buf b[2] = { { DATA_BASE + 0x1000, 3, true }, { DATA_BASE + 0x2000, 16, true } };
    head = post(&f->rx, b, 2);
    assert_int_equal(write(f->in_w, "abcdefg", 7), 7);
    expect_used(&f->rx, head, 7);
    assert_memory_equal(hva(f, DATA_BASE + 0x1000), "abc", 3);
    assert_memory_equal(hva(f, DATA_BASE + 0x2000), "defg", 4);
}

/* Backpressure: with no receive buffer posted the device leaves the input
 * where it is; posting one (a kick) lets it through. */
static void test_rx_waits_for_buffers(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    assert_int_equal(write(f->in_w, "hello", 5), 5);
    sleep_ms(100);
    assert_int_equal(pending_bytes(f->in_r), 5);
    assert_int_equal(used_idx(&f->rx), 0);

    /* A buffer takes what fits; the rest stays in the pipe. */
    uint16_t head = post(&f->rx, &(struct buf){ DATA_BASE, 2, true }, 1);
    expect_used(&f->rx, head, 2);
    assert_memory_equal(hva(f, DATA_BASE), "he", 2);
    sleep_ms(50);
    assert_int_equal(pending_bytes(f->in_r), 3);

    head = post(&f->rx, &(struct buf){ DATA_BASE + 0x100, 100, true }, 1);
    expect_used(&f->rx, head, 3);
    assert_memory_equal(hva(f, DATA_BASE + 0x100), "llo", 3);
    assert_int_equal(pending_bytes(f->in_r), 0);

    /* Waiting with no buffers does not spin a core. */
    assert_int_equal(write(f->in_w, "more", 4), 4);
    uint64_t c0 = cpu_ms();
    sleep_ms(300);
    assert_true(cpu_ms() - c0 < 100);
    assert_int_equal(pending_bytes(f->in_r), 4);
}

/* ---- 1 MiB each way through small buffers ------------------------------ */

#define BIG       (1u << 20)
#define SLOTS     16
#define SLOT_SIZE 4096

struct pump {
    int fd;
    uint8_t *buf;
    size_t len;
    size_t done;
    bool ok;
};

static void *reader_thread(void *arg)
{
    struct pump *p = arg;
    p->ok = read_exact(p->fd, p->buf, p->len, 20000);
    return NULL;
}

static void *writer_thread(void *arg)
{
    struct pump *p = arg;
    uint64_t end = now_ms() + 20000;
    while (p->done < p->len && now_ms() < end) {
        size_t chunk = p->len - p->done < 777 ? p->len - p->done : 777;
        ssize_t n = write(p->fd, p->buf + p->done, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p->done += (size_t)n;
    }
    p->ok = p->done == p->len;
    return NULL;
}

static void fill_pattern(uint8_t *b, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (uint8_t)(seed >> 16);
    }
}

static void tx_big(struct fixture *f, bool event_idx)
{
    activate(f, 0, event_idx);
    uint8_t *src = malloc(BIG), *dst = malloc(BIG);
    assert_non_null(src);
    assert_non_null(dst);
    fill_pattern(src, BIG, 7);
    struct pump rd = { .fd = f->out_r, .buf = dst, .len = BIG };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_thread, &rd), 0);

    /* Chains of up to three buffers of odd sizes, SLOTS in flight. */
    size_t off = 0;
    unsigned posted = 0, done = 0;
    uint32_t rnd = 1;
    bool ok = true;
    while ((off < BIG || done < posted) && ok) {
        if (off < BIG && posted - done < SLOTS) {
            uint64_t slot = DATA_BASE + (uint64_t)(posted % SLOTS) * SLOT_SIZE;
            struct buf b[3];
            unsigned n = 0;
            size_t used = 0;
            for (; n < 3 && off < BIG; n++) {
                rnd = rnd * 1103515245u + 12345u;
                size_t len = 1 + (rnd >> 16) % 1300;
                if (len > BIG - off)
                    len = BIG - off;
                memcpy(hva(f, slot + used), src + off, len);
                b[n] = (struct buf){ slot + used, (uint32_t)len, false };
                used += len;
                off += len;
            }
            post(&f->tx, b, n);
            posted++;
            continue;
        }
        uint16_t id;
        uint32_t len;
        ok = wait_used(&f->tx, &id, &len, WAIT_MS) && len == 0;
        done++;
    }
    pthread_join(th, NULL);
    assert_true(ok);
    assert_true(rd.ok);
    assert_memory_equal(dst, src, BIG);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
    free(src);
    free(dst);
}

static void test_tx_1mib(void **state)
{
    tx_big(*state, false);
}
static void test_tx_1mib_event_idx(void **state)
{
    tx_big(*state, true);
}

static void rx_big(struct fixture *f, bool event_idx)
{
    activate(f, 0, event_idx);
    uint8_t *src = malloc(BIG), *dst = malloc(BIG);
    assert_non_null(src);
    assert_non_null(dst);
    fill_pattern(src, BIG, 99);
    struct pump wr = { .fd = f->in_w, .buf = src, .len = BIG };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_thread, &wr), 0);

    /* Receive chains of two small writable buffers (100 + 156 bytes),
     * SLOTS posted at a time, reposted as they come back. The device uses
     * them in order, so the stream is their contents in used order. */
    size_t got = 0;
    unsigned posted = 0;
    bool ok = true;
    for (; posted < SLOTS; posted++) {
        uint64_t slot = DATA_BASE + (uint64_t)posted * SLOT_SIZE;
        struct buf b[2] = { { slot, 100, true }, { slot + 1024, 156, true } };
        post(&f->rx, b, 2);
    }
    unsigned next = 0;
    while (got < BIG && ok) {
        uint16_t id;
        uint32_t len;
        if (!wait_used(&f->rx, &id, &len, WAIT_MS) || len == 0 || len > 256 || got + len > BIG) {
            ok = false;
            break;
        }
        uint64_t slot = DATA_BASE + (uint64_t)(next % SLOTS) * SLOT_SIZE;
        size_t first = len < 100 ? len : 100;
        memcpy(dst + got, hva(f, slot), first);
        memcpy(dst + got + first, hva(f, slot + 1024), len - first);
        got += len;
        next++;
        struct buf b[2] = { { slot, 100, true }, { slot + 1024, 156, true } };
        post(&f->rx, b, 2);
        posted++;
    }
    pthread_join(th, NULL);
    assert_true(ok);
    assert_true(wr.ok);
    assert_int_equal(got, BIG);
    assert_memory_equal(dst, src, BIG);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
    free(src);
    free(dst);
}

static void test_rx_1mib(void **state)
{
    rx_big(*state, false);
}
static void test_rx_1mib_event_idx(void **state)
{
    rx_big(*state, true);
}

/* ---- malformed chains --------------------------------------------------- */

/* Wrong-direction parts are ignored, never written or read. */
static void test_wrong_direction(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);

    /* Transmit with a writable tail: only "abc" goes out, the writable
     * buffer is untouched, used length 0. */
    memcpy(hva(f, DATA_BASE), "abc", 3);
    memset(hva(f, DATA_BASE + 0x1000), 0x5a, 32);
    struct buf tb[2] = { { DATA_BASE, 3, false }, { DATA_BASE + 0x1000, 32, true } };
    uint16_t head = post(&f->tx, tb, 2);
    expect_used(&f->tx, head, 0);
    uint8_t out[3];
    assert_true(read_exact(f->out_r, out, 3, WAIT_MS));
    assert_memory_equal(out, "abc", 3);
    for (unsigned i = 0; i < 32; i++)
        assert_int_equal(hva(f, DATA_BASE + 0x1000)[i], 0x5a);

    /* Transmit with only a writable buffer: nothing goes out. */
    head = post(&f->tx, &(struct buf){ DATA_BASE + 0x1000, 32, true }, 1);
    expect_used(&f->tx, head, 0);
    sleep_ms(20);
    assert_int_equal(pending_bytes(f->out_r), 0);

    /* Receive with only a readable buffer: handed back unused, and the
     * input is not consumed by it. */
    assert_int_equal(write(f->in_w, "xyz", 3), 3);
    memset(hva(f, DATA_BASE + 0x2000), 0x11, 16);
    head = post(&f->rx, &(struct buf){ DATA_BASE + 0x2000, 16, false }, 1);
    expect_used(&f->rx, head, 0);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(hva(f, DATA_BASE + 0x2000)[i], 0x11);
    sleep_ms(20);
    assert_int_equal(pending_bytes(f->in_r), 3);

    /* Receive with a readable head: the data goes only into the writable
     * part. */
    struct buf rb[2] = { { DATA_BASE + 0x2000, 16, false }, { DATA_BASE + 0x3000, 8, true } };
    head = post(&f->rx, rb, 2);
    expect_used(&f->rx, head, 3);
    assert_memory_equal(hva(f, DATA_BASE + 0x3000), "xyz", 3);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(hva(f, DATA_BASE + 0x2000)[i], 0x11);

    /* A zero-length receive buffer is returned at once with length 0. */
    head = post(&f->rx, &(struct buf){ DATA_BASE, 0, true }, 1);
    expect_used(&f->rx, head, 0);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
}

/* A transmit chain pointing outside guest RAM breaks the transmit queue:
 * NEEDS_RESET, nothing written, the queue left alone afterwards, while
 * the receive queue keeps working. A reset brings everything back. */
static void test_tx_out_of_ram(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    post(&f->tx, &(struct buf){ RAM_SIZE - 4, 8, false }, 1);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) == 0 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 1);
    assert_int_equal(used_idx(&f->tx), 0);

    /* Later chains on the broken queue are not served. */
    memcpy(hva(f, DATA_BASE), "late", 4);
    post(&f->tx, &(struct buf){ DATA_BASE, 4, false }, 1);
    expect_no_used(&f->tx, 50);
    assert_int_equal(pending_bytes(f->out_r), 0);

    /* The other queue still works. */
    uint16_t head = post(&f->rx, &(struct buf){ DATA_BASE + 0x1000, 16, true }, 1);
    assert_int_equal(write(f->in_w, "ok", 2), 2);
    expect_used(&f->rx, head, 2);

    f->ops->reset(f->con);
    activate(f, 0, false);
    memcpy(hva(f, DATA_BASE), "again", 5);
    head = post(&f->tx, &(struct buf){ DATA_BASE, 5, false }, 1);
    expect_used(&f->tx, head, 0);
    uint8_t out[5];
    assert_true(read_exact(f->out_r, out, 5, WAIT_MS));
    assert_memory_equal(out, "again", 5);
    assert_int_equal(atomic_load(&f->t.needs_reset), 1);
}

/* More malformations: an address whose end wraps past 2^64, a receive
 * buffer in the MMIO hole, a head index past the ring, a loop. Each breaks
 * its queue and nothing crashes. */
static void test_malformed_rings(void **state)
{
    struct fixture *f = *state;

    activate(f, 0, false);
    post(&f->rx, &(struct buf){ UINT64_MAX - 15, 64, true }, 1);
    assert_int_equal(write(f->in_w, "q", 1), 1);
    uint64_t end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) < 1 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 1);
    sleep_ms(20);
    assert_int_equal(pending_bytes(f->in_r), 1); /* input untouched */
    f->ops->reset(f->con);

    activate(f, 0, false);
    post(&f->rx, &(struct buf){ 0xd0000000ULL, 64, true }, 1);
    end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) < 2 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 2);
    f->ops->reset(f->con);

    activate(f, 0, false);
    publish(&f->tx, QSIZE + 5); /* head out of range */
    kick(&f->tx);
    end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) < 3 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 3);
    f->ops->reset(f->con);

    activate(f, 0, false);
    put_desc(&f->tx, 0, DATA_BASE, 4, F_NEXT, 1); /* 0 -> 1 -> 0 -> ... */
    put_desc(&f->tx, 1, DATA_BASE, 4, F_NEXT, 0);
    publish(&f->tx, 0);
    kick(&f->tx);
    end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) < 4 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 4);
    assert_int_equal(pending_bytes(f->out_r), 0);
    f->ops->reset(f->con);

    /* The driver claiming more available than the ring holds. */
    activate(f, 0, false);
    __atomic_store_n((uint16_t *)(f->rx.avail + 2), (uint16_t)(QSIZE + 1), __ATOMIC_RELEASE);
    kick(&f->rx);
    end = now_ms() + WAIT_MS;
    while (atomic_load(&f->t.needs_reset) < 5 && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(atomic_load(&f->t.needs_reset), 5);
}

/* ---- output trouble --------------------------------------------------- */

/* With the output pipe full and nobody reading, the device waits without
 * spinning, reset() stops it promptly, and it touches nothing after. */
static void test_reset_while_tx_blocked(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    /* 16 chains of 8 KiB: far more than the 64 KiB pipe holds. */
    for (unsigned i = 0; i < 16; i++) {
        memset(hva(f, DATA_BASE + i * 0x2000ULL), 'a' + i, 0x2000);
        post(&f->tx, &(struct buf){ DATA_BASE + i * 0x2000ULL, 0x2000, false }, 1);
    }
    /* Some chains complete, then the device waits for the pipe. */
    uint64_t end = now_ms() + WAIT_MS;
    while (pending_bytes(f->out_r) < 60000 && now_ms() < end)
        sleep_ms(1);
    sleep_ms(50);
    uint16_t before = used_idx(&f->tx);
    assert_true(before < 16);
    uint64_t c0 = cpu_ms();
    sleep_ms(300);
    assert_true(cpu_ms() - c0 < 100); /* sleeping, not spinning */
    assert_int_equal(used_idx(&f->tx), before);

    uint64_t t0 = now_ms();
    f->ops->reset(f->con);
    assert_true(now_ms() - t0 < 1000);

    /* Draining the pipe now wakes nobody: the thread is gone. */
    uint8_t sink[4096];
    while (pending_bytes(f->out_r) > 0)
        assert_true(read(f->out_r, sink, sizeof sink) > 0);
    sleep_ms(100);
    assert_int_equal(used_idx(&f->tx), before);
    assert_int_equal(pending_bytes(f->out_r), 0);
}

/* A stop for a snapshot while output is blocked halfway through a chain:
 * the chain goes back to the ring with the count of its bytes already
 * written in the device's state; a new device (the restored VM's) that
 * loads it writes each byte exactly once, in order. */
static void test_stop_while_tx_blocked_resumes_exactly(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, true);
    /* Written 4 KiB at a time: the pipe's 64 KiB end inside a chain. */
    enum { N = 16, LEN = 0x2800 };
    uint8_t *src = malloc(N * LEN), *dst = malloc(N * LEN);
    assert_non_null(src);
    assert_non_null(dst);
    fill_pattern(src, N * LEN, 11);
    for (unsigned i = 0; i < N; i++) {
        memcpy(hva(f, DATA_BASE + i * (uint64_t)LEN), src + i * LEN, LEN);
        post(&f->tx, &(struct buf){ DATA_BASE + i * (uint64_t)LEN, LEN, false }, 1);
    }
    uint64_t end = now_ms() + WAIT_MS;
    while (pending_bytes(f->out_r) < 60000 && now_ms() < end)
        sleep_ms(1);
    sleep_ms(50);
    f->ops->stop(f->con);
    uint16_t used = used_idx(&f->tx);
    assert_true(used < N);
    assert_int_equal(f->tx.q.last_avail, used); /* the blocked chain went back */
    uint8_t st[VIRTIO_STATE_MAX];
    assert_int_equal(f->ops->save(f->con, st, sizeof st), 8);
    uint64_t written = 0;
    for (unsigned i = 0; i < 8; i++)
        written |= (uint64_t)st[i] << (8 * i);
    assert_true(written > 0 && written < LEN); /* part of a chain */

    vmlet_error err;
    struct virtio_console *c2 = virtio_console_new(f->in_r, f->out_w, &err);
    assert_non_null(c2);
    char why[128];
    assert_int_equal(f->ops->load(c2, st, 8, why, sizeof why), 0);
    struct pump rd = { .fd = f->out_r, .buf = dst, .len = N * LEN };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_thread, &rd), 0);
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 2,
        .q = { &f->rx.q, &f->tx.q },
        .kick_fd = { f->rx.kick, f->tx.kick },
        .features = 1ULL << VIRTIO_F_EVENT_IDX,
        .resume = true,
    };
    assert_int_equal(f->ops->activate(c2, &qs), 0);
    pthread_join(th, NULL);
    assert_true(rd.ok);
    assert_memory_equal(dst, src, (size_t)N * LEN);
    end = now_ms() + WAIT_MS;
    while (used_idx(&f->tx) != N && now_ms() < end)
        sleep_ms(1);
    assert_int_equal(used_idx(&f->tx), N);
    sleep_ms(50);
    assert_int_equal(pending_bytes(f->out_r), 0); /* nothing written twice */
    virtio_console_free(c2);
    free(src);
    free(dst);
}

/* An O_NONBLOCK output gets EAGAIN when full: the device waits for POLLOUT
 * (no spin) and loses nothing. */
static void test_tx_nonblocking_output(void **state)
{
    struct fixture *f = *state;
    fcntl(f->out_w, F_SETFL, fcntl(f->out_w, F_GETFL) | O_NONBLOCK);
    activate(f, 0, false);
    enum { N = 12, LEN = 0x4000 }; /* 192 KiB, three pipefuls */
    uint8_t *src = malloc(N * LEN), *dst = malloc(N * LEN);
    assert_non_null(src);
    assert_non_null(dst);
    fill_pattern(src, N * LEN, 3);
    memcpy(hva(f, DATA_BASE), src, N * LEN);
    for (unsigned i = 0; i < N; i++)
        post(&f->tx, &(struct buf){ DATA_BASE + i * (uint64_t)LEN, LEN, false }, 1);
    sleep_ms(100);
    uint64_t c0 = cpu_ms();
    sleep_ms(300);
    assert_true(cpu_ms() - c0 < 100);
    assert_true(read_exact(f->out_r, dst, N * LEN, WAIT_MS));
    assert_memory_equal(dst, src, N * LEN);
    for (unsigned i = 0; i < N; i++)
        expect_used(&f->tx, (uint16_t)i, 0);
    free(src);
    free(dst);
}

/* The reader of the output went away: EPIPE (SIGPIPE must not kill us),
 * the data is dropped, chains still complete, the guest never stalls. */
static void test_tx_epipe(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    close(f->out_r);
    f->out_r = -1;
    memcpy(hva(f, DATA_BASE), "into the void", 13);
    for (unsigned i = 0; i < 3; i++) {
        uint16_t head = post(&f->tx, &(struct buf){ DATA_BASE, 13, false }, 1);
        expect_used(&f->tx, head, 0);
    }
    /* Receive still works. */
    uint16_t head = post(&f->rx, &(struct buf){ DATA_BASE + 0x100, 16, true }, 1);
    assert_int_equal(write(f->in_w, "in", 2), 2);
    expect_used(&f->rx, head, 2);
    f->ops->reset(f->con);
    /* Dead output stays dead across a device reset, without trouble. */
    activate(f, 0, false);
    head = post(&f->tx, &(struct buf){ DATA_BASE, 13, false }, 1);
    expect_used(&f->tx, head, 0);
}

/* No descriptors at all: output discarded, no input. */
static void test_no_fds(void **state)
{
    struct fixture *f = *state;
    virtio_console_free(f->con);
    vmlet_error err;
    f->con = virtio_console_new(-1, -1, &err);
    assert_non_null(f->con);
    f->ops = &virtio_console_device(f->con)->ops; /* ops are per device */
    activate(f, 0, false);
    memcpy(hva(f, DATA_BASE), "x", 1);
    uint16_t head = post(&f->tx, &(struct buf){ DATA_BASE, 1, false }, 1);
    expect_used(&f->tx, head, 0);
    post(&f->rx, &(struct buf){ DATA_BASE + 0x100, 16, true }, 1);
    expect_no_used(&f->rx, 50);
}

/* End of input: the posted buffer stays with the device, no spinning. */
static void test_rx_eof(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    assert_int_equal(write(f->in_w, "last", 4), 4);
    close(f->in_w);
    f->in_w = -1;
    uint16_t head = post(&f->rx, &(struct buf){ DATA_BASE, 16, true }, 1);
    expect_used(&f->rx, head, 4);
    post(&f->rx, &(struct buf){ DATA_BASE + 0x100, 16, true }, 1);
    uint64_t c0 = cpu_ms();
    expect_no_used(&f->rx, 300);
    assert_true(cpu_ms() - c0 < 100);
    /* Transmit is unaffected. */
    memcpy(hva(f, DATA_BASE + 0x200), "bye", 3);
    head = post(&f->tx, &(struct buf){ DATA_BASE + 0x200, 3, false }, 1);
    expect_used(&f->tx, head, 0);
}

/* Reset with a receive buffer held: afterwards input is not read into it. */
static void test_reset_with_rx_held(void **state)
{
    struct fixture *f = *state;
    activate(f, 0, false);
    memset(hva(f, DATA_BASE), 0, 16);
    post(&f->rx, &(struct buf){ DATA_BASE, 16, true }, 1);
    sleep_ms(50);
    f->ops->reset(f->con);
    assert_int_equal(write(f->in_w, "late", 4), 4);
    sleep_ms(100);
    assert_int_equal(used_idx(&f->rx), 0);
    assert_int_equal(hva(f, DATA_BASE)[0], 0);
    assert_int_equal(pending_bytes(f->in_r), 4);
}

/* Reset in the middle of traffic both ways, many times over: each reset
 * returns promptly and the device restarts cleanly. */
static void test_reset_while_busy(void **state)
{
    struct fixture *f = *state;
    uint8_t *junk = malloc(BIG);
    assert_non_null(junk);
    fill_pattern(junk, BIG, 5);
    struct pump wr = { .fd = f->in_w, .buf = junk, .len = BIG };
    fcntl(f->in_w, F_SETFL, fcntl(f->in_w, F_GETFL) | O_NONBLOCK);
    for (unsigned round = 0; round < 20; round++) {
        activate(f, 0, round & 1);
        for (unsigned i = 0; i < 32; i++) {
            post(&f->tx, &(struct buf){ DATA_BASE + i * 0x1000ULL, 0x1000, false }, 1);
            post(&f->rx, &(struct buf){ DATA_BASE + 0x100000 + i * 0x1000ULL, 0x1000, true }, 1);
        }
        /* Keep input flowing and output draining. */
        uint8_t sink[8192];
        for (unsigned k = 0; k < 5; k++) {
            ssize_t n = write(f->in_w, junk + wr.done % (BIG - 4096), 4096);
            if (n > 0)
                wr.done += (size_t)n;
            struct pollfd p = { .fd = f->out_r, .events = POLLIN };
            if (poll(&p, 1, 1) > 0)
                (void)!read(f->out_r, sink, sizeof sink);
        }
        uint64_t t0 = now_ms();
        f->ops->reset(f->con);
        assert_true(now_ms() - t0 < 1000);
        uint16_t rx_done = used_idx(&f->rx), tx_done = used_idx(&f->tx);
        sleep_ms(5);
        assert_int_equal(used_idx(&f->rx), rx_done);
        assert_int_equal(used_idx(&f->tx), tx_done);
        /* Drain both pipes for the next round. */
        struct pollfd p = { .fd = f->out_r, .events = POLLIN };
        while (poll(&p, 1, 0) > 0 && read(f->out_r, sink, sizeof sink) > 0)
            ;
        p.fd = f->in_r;
        while (poll(&p, 1, 0) > 0 && read(f->in_r, sink, sizeof sink) > 0)
            ;
    }
    /* Activate twice without a reset also restarts cleanly. */
    activate(f, 0, false);
    reactivate(f, 0);
    memcpy(hva(f, DATA_BASE), "fine", 4);
    uint16_t head = post(&f->tx, &(struct buf){ DATA_BASE, 4, false }, 1);
    expect_used(&f->tx, head, 0);
    uint8_t out[4];
    assert_true(read_exact(f->out_r, out, 4, WAIT_MS));
    assert_memory_equal(out, "fine", 4);
    assert_int_equal(atomic_load(&f->t.needs_reset), 0);
    free(junk);
}

/* A queue the driver did not enable (NULL) is simply not served. */
struct reset_call {
    struct fixture *f;
    atomic_bool done;
};

static void *reset_thread(void *arg)
{
    struct reset_call *r = arg;
    r->f->ops->reset(r->f->con);
    atomic_store(&r->done, true);
    return NULL;
}

/* The output is a terminal that nobody reads (a pty whose master is left
 * alone, as a terminal stopped with Ctrl-S): it reports POLLOUT with less
 * room than a 4 KiB write needs, where a blocking write would hang the
 * device thread and the reset that joins it. Nothing may block: chains
 * complete while there is room, then wait; reset returns within 1 s. */
static void test_reset_while_tty_stalled(void **state)
{
    struct fixture *f = *state;
    int master, slave = raw_pty_open(&master);
    if (slave < 0)
        skip(); /* no ptys here */

    /* A console writing to the pty, in place of the fixture's pipe. */
    virtio_console_free(f->con);
    vmlet_error err;
    f->con = virtio_console_new(-1, slave, &err);
    assert_non_null(f->con);
    f->ops = &virtio_console_device(f->con)->ops;
    activate(f, 0, false);
    /* 64 chains of 8 KiB: 512 KiB, far more than the pty buffers. */
    for (unsigned i = 0; i < 64; i++) {
        memset(hva(f, DATA_BASE + i * 0x2000ULL), 'a' + i % 26, 0x2000);
        post(&f->tx, &(struct buf){ DATA_BASE + i * 0x2000ULL, 0x2000, false }, 1);
    }
    sleep_ms(300);
    uint16_t before = used_idx(&f->tx);
    assert_true(before < 64);
    uint64_t c0 = cpu_ms();
    sleep_ms(300);
    assert_true(cpu_ms() - c0 < 100); /* waiting, not spinning */

    struct reset_call rc = { .f = f };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reset_thread, &rc), 0);
    uint64_t end = now_ms() + 1000;
    while (!atomic_load(&rc.done) && now_ms() < end)
        sleep_ms(5);
    if (!atomic_load(&rc.done)) {
        static const char msg[] = "test_virtio_console: reset blocked on a stalled tty\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(1); /* the device thread is stuck in write: no teardown */
    }
    pthread_join(t, NULL);
    /* The thread is gone: the held chains stay with the driver. */
    assert_int_equal(used_idx(&f->tx), before);
    virtio_console_free(f->con);
    f->con = NULL;
    close(slave);
    close(master);
}

static void test_missing_queue(void **state)
{
    struct fixture *f = *state;
    ring_init(f, &f->tx, 1, false);
    struct virtio_queues qs = {
        .transport = &f->t,
        .count = 2,
        .q = { NULL, &f->tx.q },
        .kick_fd = { -1, f->tx.kick },
    };
    assert_int_equal(f->ops->activate(f->con, &qs), 0);
    memcpy(hva(f, DATA_BASE), "tx only", 7);
    uint16_t head = post(&f->tx, &(struct buf){ DATA_BASE, 7, false }, 1);
    expect_used(&f->tx, head, 0);
    assert_int_equal(write(f->in_w, "zz", 2), 2);
    sleep_ms(50);
    assert_int_equal(pending_bytes(f->in_r), 2);
}

int main(void)
{
    /* A hang anywhere ends the run (SIGALRM) rather than blocking CI. */
    alarm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_waits_for_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_1mib, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_1mib_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_1mib, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_1mib_event_idx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_direction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_out_of_ram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_rings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_tx_blocked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_while_tx_blocked_resumes_exactly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tx_nonblocking_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_epipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_with_rx_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_while_tty_stalled, setup, teardown),
    };
    return cmocka_run_group_tests_name("virtio_console", tests, NULL, NULL);
}
