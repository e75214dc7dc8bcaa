/* Unit tests for virtio-blk (src/virtio/blk.c, virtio 1.2 section 5.2)
 * and the raw image backend (src/backend/disk.c).
 *
 * The device runs for real: its thread, io_uring and a temporary image
 * file. The test plays driver and transport: it builds requests in a fake
 * guest memory, kicks the queue's eventfd and waits for the used ring,
 * while stub transport functions record interrupts and NEEDS_RESET. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "memory.h"
#include "backend/disk.h"
#include "virtio/blk.h"
#include "virtio/device.h"
#include "virtio/queue.h"

#include "metric_names.h"

#define F_NEXT     1
#define F_WRITE    2
#define F_INDIRECT 4

#define IMG_SECTORS 2048
#define IMG_SIZE    (IMG_SECTORS * 512 + 100) /* a tail that is not a whole sector */
#define RAM_SIZE    (8u << 20)
#define QSIZE       VIRTIO_BLK_QUEUE_SIZE
#define DESC_GPA    0x1000
#define AVAIL_GPA   0x3000
#define USED_GPA    0x4000
#define DATA_GPA    0x10000

#define FEAT(b) (1ull << (b))
#define ALL_FEATURES \
    (FEAT(VIRTIO_BLK_F_SIZE_MAX) | FEAT(VIRTIO_BLK_F_SEG_MAX) | FEAT(VIRTIO_BLK_F_BLK_SIZE) | \
     FEAT(VIRTIO_BLK_F_FLUSH) | FEAT(VIRTIO_BLK_F_DISCARD) | FEAT(VIRTIO_BLK_F_WRITE_ZEROES) | \
     FEAT(VIRTIO_F_VERSION_1) | FEAT(VIRTIO_F_INDIRECT_DESC) | FEAT(VIRTIO_F_EVENT_IDX))

/* ---- the fake transport ------------------------------------------------ */

struct virtio_transport {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned notifies;
    unsigned needs_reset;
    unsigned config_changes;
};

void virtio_notify_queue(struct virtio_transport *t, unsigned queue)
{
    assert_int_equal(queue, 0);
    pthread_mutex_lock(&t->lock);
    t->notifies++;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

void virtio_notify_config(struct virtio_transport *t)
{
    pthread_mutex_lock(&t->lock);
    t->config_changes++;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

void virtio_set_needs_reset(struct virtio_transport *t)
{
    pthread_mutex_lock(&t->lock);
    t->needs_reset++;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static unsigned get_count(struct virtio_transport *t, const unsigned *field)
{
    pthread_mutex_lock(&t->lock);
    unsigned v = *field;
    pthread_mutex_unlock(&t->lock);
    return v;
}

static bool wait_count(struct virtio_transport *t, const unsigned *field, unsigned want)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&t->lock);
    int e = 0;
    while (*field < want && e == 0)
        e = pthread_cond_timedwait(&t->cond, &t->lock, &dl);
    bool ok = *field >= want;
    pthread_mutex_unlock(&t->lock);
    return ok;
}

/* ---- fixture: an image, a device, a guest memory with one queue -------- */

struct fx {
    char path[256];
    bool read_only;
    struct guest_memory mem;
    struct virtq q;
    struct virtio_transport t;
    struct virtio_blk *blk;
    const struct virtio_device_ops *ops;
    int kick;
    uint64_t features;
    uint16_t next_desc;
    uint64_t next_data;
};

static uint8_t pat(uint64_t off)
{
    return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

static const char *tmpdir(void)
{
    const char *d = getenv("TMPDIR");
    return d && *d ? d : "/tmp";
}

static void make_image(char *path, size_t pathlen, const char *dir)
{
    snprintf(path, pathlen, "%s/vmlet-blk-XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(IMG_SIZE);
    for (uint64_t i = 0; i < IMG_SIZE; i++)
        buf[i] = pat(i);
    assert_int_equal(write(fd, buf, IMG_SIZE), IMG_SIZE);
    free(buf);
    close(fd);
}

static uint8_t *hva(struct fx *f, uint64_t gpa)
{
    return f->mem.host + gpa;
}

/* The queue at the fixture's ring addresses, with the ring features of
 * features (the rings themselves are not touched). */
static void set_ring(struct fx *f, uint64_t features)
{
    f->q = (struct virtq){ .mem = &f->mem,
                           .size = QSIZE,
                           .desc_gpa = DESC_GPA,
                           .avail_gpa = AVAIL_GPA,
                           .used_gpa = USED_GPA,
                           .ready = true,
                           .event_idx = features & FEAT(VIRTIO_F_EVENT_IDX),
                           .indirect = features & FEAT(VIRTIO_F_INDIRECT_DESC) };
}

static void activate(struct fx *f, uint64_t features)
{
    /* A fresh ring, as a driver sets up after reset. */
    memset(hva(f, 0), 0, DATA_GPA);
    set_ring(f, features);
    assert_true(virtq_rings_valid(&f->q));
    f->features = features;
    f->next_desc = 0;
    struct virtio_queues qs = {
        .transport = &f->t, .count = 1, .q = { &f->q }, .kick_fd = { f->kick }, .features = features
    };
    assert_int_equal(f->ops->activate(f->blk, &qs), 0);
}

static int setup_common(void **state, bool read_only, const char *dir, bool do_activate)
{
    struct fx *f = calloc(1, sizeof *f);
    f->read_only = read_only;
    make_image(f->path, sizeof f->path, dir);
    f->mem.host = aligned_alloc(4096, RAM_SIZE);
    memset(f->mem.host, 0, RAM_SIZE);
    f->mem.size = f->mem.low_size = RAM_SIZE;
    pthread_mutex_init(&f->t.lock, NULL);
    pthread_cond_init(&f->t.cond, NULL);
    f->kick = eventfd(0, EFD_CLOEXEC);
    vmlet_error err = { 0 };
    f->blk = virtio_blk_new(f->path, read_only, "vmlet-test-serial", &err);
    if (!f->blk)
        fail_msg("virtio_blk_new: %s", err.message);
    f->ops = &virtio_blk_device(f->blk)->ops;
    f->next_data = DATA_GPA;
    if (do_activate)
        activate(f, read_only ? (ALL_FEATURES &
                                 ~(FEAT(VIRTIO_BLK_F_DISCARD) | FEAT(VIRTIO_BLK_F_WRITE_ZEROES))) |
                                    FEAT(VIRTIO_BLK_F_RO)
                              : ALL_FEATURES);
    *state = f;
    return 0;
}

static int setup_rw(void **state)
{
    return setup_common(state, false, tmpdir(), true);
}
static int setup_ro(void **state)
{
    return setup_common(state, true, tmpdir(), true);
}
static int setup_idle(void **state)
{
    return setup_common(state, false, tmpdir(), false);
}

static int setup_shm(void **state)
{
    struct statfs sf;
    if (statfs("/dev/shm", &sf) < 0 || access("/dev/shm", W_OK) < 0)
        return setup_rw(state); /* no tmpfs: same test on TMPDIR */
    return setup_common(state, false, "/dev/shm", true);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->blk) {
        f->ops->reset(f->blk);
        virtio_blk_free(f->blk);
    }
    unlink(f->path);
    close(f->kick);
    free(f->mem.host);
    free(f);
    return 0;
}

/* ---- the fake driver -------------------------------------------------- */

static uint64_t galloc(struct fx *f, uint64_t len)
{
    uint64_t gpa = f->next_data;
    f->next_data = (f->next_data + len + 15) & ~15ull;
    assert_true(f->next_data <= RAM_SIZE);
    return gpa;
}

struct seg {
    uint64_t gpa;
    uint32_t len;
    uint16_t flags;
};

static void put_desc(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t *d = table + 16 * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static uint16_t avail_idx(struct fx *f)
{
    uint16_t v;
    memcpy(&v, hva(f, AVAIL_GPA + 2), 2);
    return v;
}

static uint16_t used_idx(struct fx *f)
{
    return __atomic_load_n((uint16_t *)hva(f, USED_GPA + 2), __ATOMIC_ACQUIRE);
}

static uint32_t used_len_at(struct fx *f, uint16_t idx)
{
    uint32_t v;
    memcpy(&v, hva(f, USED_GPA + 4 + 8 * (idx % QSIZE) + 4), 4);
    return v;
}

static void offer(struct fx *f, uint16_t head)
{
    uint16_t idx = avail_idx(f);
    memcpy(hva(f, AVAIL_GPA + 4 + 2 * (idx % QSIZE)), &head, 2);
    __atomic_store_n((uint16_t *)hva(f, AVAIL_GPA + 2), (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

/* Posts segs as one chain (direct, or through an indirect table). */
static uint16_t post(struct fx *f, const struct seg *s, unsigned n, bool indirect)
{
    if (indirect) {
        uint64_t table = galloc(f, 16 * n);
        for (unsigned i = 0; i < n; i++)
            put_desc(hva(f, table), i, s[i].gpa, s[i].len, s[i].flags | (i + 1 < n ? F_NEXT : 0),
                     (uint16_t)(i + 1));
        uint16_t head = f->next_desc;
        f->next_desc = (f->next_desc + 1) % QSIZE;
        put_desc(hva(f, DESC_GPA), head, table, 16 * n, F_INDIRECT, 0);
        offer(f, head);
        return head;
    }
    uint16_t head = f->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = f->next_desc;
        f->next_desc = (f->next_desc + 1) % QSIZE;
        put_desc(hva(f, DESC_GPA), d, s[i].gpa, s[i].len, s[i].flags | (i + 1 < n ? F_NEXT : 0),
                 f->next_desc);
    }
    offer(f, head);
    return head;
}

static void kick(struct fx *f)
{
    uint64_t one = 1;
    assert_int_equal(write(f->kick, &one, 8), 8);
}

static void wait_used(struct fx *f, uint16_t want)
{
    for (int i = 0; i < 10000; i++) {
        if (used_idx(f) == want)
            return;
        usleep(1000);
    }
    fail_msg("used idx %u, expected %u", used_idx(f), want);
}

static uint64_t header(struct fx *f, uint32_t type, uint64_t sector)
{
    uint64_t h = galloc(f, 16);
    memset(hva(f, h), 0, 16);
    memcpy(hva(f, h), &type, 4);
    memcpy(hva(f, h + 8), &sector, 8);
    return h;
}

static uint64_t status_buf(struct fx *f)
{
    uint64_t s = galloc(f, 1);
    *hva(f, s) = 0xee; /* anything but a valid status */
    return s;
}

/* One request with an optional data buffer; waits for it and returns the
 * status byte. */
static int request(struct fx *f, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
                   bool data_writable, uint32_t *used_len)
{
    uint64_t h = header(f, type, sector), st = status_buf(f);
    struct seg s[3];
    unsigned n = 0;
    s[n++] = (struct seg){ h, 16, 0 };
    if (len)
        s[n++] = (struct seg){ data, len, data_writable ? F_WRITE : 0 };
    s[n++] = (struct seg){ st, 1, F_WRITE };
    uint16_t want = used_idx(f) + 1;
    post(f, s, n, false);
    kick(f);
    wait_used(f, want);
    if (used_len)
        *used_len = used_len_at(f, want - 1);
    return *hva(f, st);
}

static int read_sectors(struct fx *f, uint64_t sector, uint64_t data, uint32_t len)
{
    return request(f, VIRTIO_BLK_T_IN, sector, data, len, true, NULL);
}

static int write_sectors(struct fx *f, uint64_t sector, uint64_t data, uint32_t len)
{
    return request(f, VIRTIO_BLK_T_OUT, sector, data, len, false, NULL);
}

/* Discard / write-zeroes with the given segments. */
struct dwz {
    uint64_t sector;
    uint32_t num, flags;
};

static uint64_t dwz_payload(struct fx *f, const struct dwz *segs, unsigned n)
{
    uint64_t p = galloc(f, 16 * n);
    for (unsigned i = 0; i < n; i++) {
        memcpy(hva(f, p + 16 * i), &segs[i].sector, 8);
        memcpy(hva(f, p + 16 * i + 8), &segs[i].num, 4);
        memcpy(hva(f, p + 16 * i + 12), &segs[i].flags, 4);
    }
    return p;
}

static int dwz_request(struct fx *f, uint32_t type, const struct dwz *segs, unsigned n)
{
    return request(f, type, 0, dwz_payload(f, segs, n), 16 * n, false, NULL);
}

static void file_read(struct fx *f, uint64_t off, void *buf, size_t len)
{
    int fd = open(f->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static bool file_is_pattern(struct fx *f, uint64_t off, size_t len)
{
    uint8_t *b = malloc(len);
    file_read(f, off, b, len);
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++)
        ok = b[i] == pat(off + i);
    free(b);
    return ok;
}

static bool file_is_zero(struct fx *f, uint64_t off, size_t len)
{
    uint8_t *b = malloc(len);
    file_read(f, off, b, len);
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++)
        ok = b[i] == 0;
    free(b);
    return ok;
}

static uint64_t file_blocks(struct fx *f)
{
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    return (uint64_t)st.st_blocks;
}

static uint64_t file_size(struct fx *f)
{
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    return (uint64_t)st.st_size;
}

static void reactivate(struct fx *f, uint64_t features)
{
    f->ops->reset(f->blk);
    activate(f, features);
}

/* ---- configuration and features ---------------------------------------- */

static uint32_t cfg32(struct fx *f, size_t off)
{
    uint32_t v;
    f->ops->config_read(f->blk, off, (uint8_t *)&v, 4);
    return v;
}

static void config_space_read_write(void **state)
{
    struct fx *f = *state;
    assert_string_equal(f->ops->name, "disk");
    assert_int_equal(f->ops->device_id, 2);
    assert_int_equal(f->ops->device_id, VIRTIO_ID_BLOCK);
    assert_int_equal(f->ops->num_queues, 1);
    assert_int_equal(f->ops->queue_max_size, QSIZE);
    assert_int_equal(f->ops->config_size, 60);
    uint64_t want = FEAT(VIRTIO_BLK_F_SIZE_MAX) | FEAT(VIRTIO_BLK_F_SEG_MAX) |
                    FEAT(VIRTIO_BLK_F_BLK_SIZE) | FEAT(VIRTIO_BLK_F_FLUSH) |
                    FEAT(VIRTIO_BLK_F_DISCARD) | FEAT(VIRTIO_BLK_F_WRITE_ZEROES);
    assert_int_equal(f->ops->features, want);

    uint64_t cap;
    f->ops->config_read(f->blk, 0, (uint8_t *)&cap, 8);
    assert_int_equal(cap, IMG_SECTORS); /* the 100-byte tail is not a sector */
    assert_int_equal(virtio_blk_capacity(f->blk), IMG_SECTORS);
    assert_int_equal(cfg32(f, 8), 16 * 1024);  /* size_max */
    assert_int_equal(cfg32(f, 12), QSIZE - 2); /* seg_max */
    assert_int_equal(cfg32(f, 20), 512);       /* blk_size */
    assert_int_equal(cfg32(f, 36), VIRTIO_BLK_MAX_DWZ_SECTORS);
    assert_int_equal(cfg32(f, 40), VIRTIO_BLK_MAX_DWZ_SEG);
    assert_int_equal(cfg32(f, 48), VIRTIO_BLK_MAX_DWZ_SECTORS);
    assert_int_equal(cfg32(f, 52), VIRTIO_BLK_MAX_DWZ_SEG);
    uint8_t b[8];
    f->ops->config_read(f->blk, 56, b, 4);
    assert_int_equal(b[0], 1);               /* write_zeroes_may_unmap */
    assert_int_equal(b[1] | b[2] | b[3], 0); /* unused1 */
    memset(b, 0xaa, sizeof b);
    f->ops->config_read(f->blk, 58, b, 8); /* straddles the end */
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(b[i], 0);
    f->ops->config_read(f->blk, (size_t)-1, b, 4); /* far out: no crash, zeroes */
    assert_int_equal(b[0], 0);

    /* Writes change nothing. */
    uint8_t junk[60];
    memset(junk, 0x55, sizeof junk);
    f->ops->config_write(f->blk, 0, junk, sizeof junk);
    f->ops->config_read(f->blk, 0, (uint8_t *)&cap, 8);
    assert_int_equal(cap, IMG_SECTORS);
}

static void config_space_read_only(void **state)
{
    struct fx *f = *state;
    assert_true(f->ops->features & FEAT(VIRTIO_BLK_F_RO));
    assert_false(f->ops->features & FEAT(VIRTIO_BLK_F_DISCARD));
    assert_false(f->ops->features & FEAT(VIRTIO_BLK_F_WRITE_ZEROES));
    assert_int_equal(cfg32(f, 36), 0);
    assert_int_equal(cfg32(f, 52), 0);
}

/* ---- reads and writes --------------------------------------------------- */

static void reads_the_image(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 4096);
    uint32_t ulen;
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, 3, buf, 4096, true, &ulen), VIRTIO_BLK_S_OK);
    assert_int_equal(ulen, 4097); /* data + status */
    for (unsigned i = 0; i < 4096; i++)
        assert_int_equal(*hva(f, buf + i), pat(3 * 512 + i));
    /* The last whole sector. */
    assert_int_equal(read_sectors(f, IMG_SECTORS - 1, buf, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, buf + 511), pat(IMG_SECTORS * 512 - 1));
}

static void writes_and_reads_back_multi_segment(void **state)
{
    struct fx *f = *state;
    uint64_t a = galloc(f, 512), b = galloc(f, 1024), c = galloc(f, 512);
    for (unsigned i = 0; i < 512; i++)
        *hva(f, a + i) = (uint8_t)(i ^ 0x5a);
    for (unsigned i = 0; i < 1024; i++)
        *hva(f, b + i) = (uint8_t)(i * 3);
    for (unsigned i = 0; i < 512; i++)
        *hva(f, c + i) = (uint8_t)(255 - i);
    uint64_t h = header(f, VIRTIO_BLK_T_OUT, 10), st = status_buf(f);
    struct seg s[] = {
        { h, 16, 0 }, { a, 512, 0 }, { b, 1024, 0 }, { c, 512, 0 }, { st, 1, F_WRITE }
    };
    post(f, s, 5, false);
    kick(f);
    wait_used(f, 1);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_OK);
    assert_int_equal(used_len_at(f, 0), 1);

    uint8_t file[2048];
    file_read(f, 10 * 512, file, sizeof file);
    assert_memory_equal(file, hva(f, a), 512);
    assert_memory_equal(file + 512, hva(f, b), 1024);
    assert_memory_equal(file + 1536, hva(f, c), 512);
    assert_true(file_is_pattern(f, 9 * 512, 512)); /* neighbours untouched */
    assert_true(file_is_pattern(f, 14 * 512, 512));

    /* Read back through an indirect table, split differently, with the
     * status in the same descriptor as the last data bytes. */
    uint64_t r1 = galloc(f, 1536), r2 = galloc(f, 513);
    h = header(f, VIRTIO_BLK_T_IN, 10);
    struct seg rs[] = { { h, 16, 0 }, { r1, 1536, F_WRITE }, { r2, 513, F_WRITE } };
    *hva(f, r2 + 512) = 0xee;
    post(f, rs, 3, true);
    kick(f);
    wait_used(f, 2);
    assert_int_equal(*hva(f, r2 + 512), VIRTIO_BLK_S_OK);
    assert_int_equal(used_len_at(f, 1), 2049);
    assert_memory_equal(hva(f, r1), file, 1536);
    assert_memory_equal(hva(f, r2), file + 1536, 512);
}

static void header_split_across_descriptors(void **state)
{
    struct fx *f = *state;
    uint64_t h = header(f, VIRTIO_BLK_T_IN, 5), buf = galloc(f, 512), st = status_buf(f);
    struct seg s[] = { { h, 5, 0 }, { h + 5, 11, 0 }, { buf, 512, F_WRITE }, { st, 1, F_WRITE } };
    post(f, s, 4, false);
    kick(f);
    wait_used(f, 1);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, buf), pat(5 * 512));
}

static void writes_without_flush_negotiated(void **state)
{
    struct fx *f = *state;
    /* The driver did not take FLUSH: writes must be stable when done
     * (5.2.6.2); the device writes through. */
    reactivate(f, ALL_FEATURES & ~FEAT(VIRTIO_BLK_F_FLUSH));
    uint64_t buf = galloc(f, 512);
    memset(hva(f, buf), 0x77, 512);
    assert_int_equal(write_sectors(f, 100, buf, 512), VIRTIO_BLK_S_OK);
    uint8_t b[512];
    file_read(f, 100 * 512, b, 512);
    assert_memory_equal(b, hva(f, buf), 512);
}

static void many_segments(void **state)
{
    struct fx *f = *state;
    /* 12 data descriptors, direct... */
    enum { NW = 12 };
    uint64_t h = header(f, VIRTIO_BLK_T_OUT, 200), st = status_buf(f);
    struct seg w[NW + 2];
    w[0] = (struct seg){ h, 16, 0 };
    uint64_t data = galloc(f, NW * 512);
    for (unsigned i = 0; i < NW * 512; i++)
        *hva(f, data + i) = (uint8_t)(i * 5 + 3);
    for (unsigned i = 0; i < NW; i++)
        w[1 + i] = (struct seg){ data + i * 512, 512, 0 };
    w[NW + 1] = (struct seg){ st, 1, F_WRITE };
    post(f, w, NW + 2, false);
    kick(f);
    wait_used(f, 1);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_OK);
    uint8_t file[NW * 512];
    file_read(f, 200 * 512, file, sizeof file);
    assert_memory_equal(file, hva(f, data), sizeof file);

    /* ...and 200 small ones through an indirect table, reading back. */
    enum { NR = 200 };
    static struct seg r[NR + 2];
    uint64_t back = galloc(f, NR * 64);
    h = header(f, VIRTIO_BLK_T_IN, 200);
    st = status_buf(f);
    r[0] = (struct seg){ h, 16, 0 };
    for (unsigned i = 0; i < NR; i++)
        r[1 + i] = (struct seg){ back + i * 64, 64, F_WRITE };
    r[NR + 1] = (struct seg){ st, 1, F_WRITE };
    post(f, r, NR + 2, true);
    kick(f);
    wait_used(f, 2);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_OK);
    assert_int_equal(used_len_at(f, 1), NR * 64 + 1);
    assert_memory_equal(hva(f, back), file, NW * 512);
    assert_true(file_is_pattern(f, (200 + NW) * 512, NR * 64 - NW * 512));
    uint8_t tail[NR * 64 - NW * 512];
    file_read(f, (200 + NW) * 512, tail, sizeof tail);
    assert_memory_equal(hva(f, back + NW * 512), tail, sizeof tail);
}

static void image_shrunk_under_us(void **state)
{
    struct fx *f = *state;
    /* Someone truncates the image behind our back (the lock is advisory):
     * a read across the new end gets a short transfer, then nothing. */
    assert_int_equal(truncate(f->path, 100 * 512), 0);
    uint64_t buf = galloc(f, 4 * 512);
    uint32_t ulen;
    assert_int_equal(request(f, VIRTIO_BLK_T_IN, 98, buf, 4 * 512, true, &ulen),
                     VIRTIO_BLK_S_IOERR);
    assert_int_equal(ulen, 2 * 512 + 1); /* what was really read, plus status */
    assert_int_equal(*hva(f, buf + 5), pat(98 * 512 + 5));
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK);
}

static void flush(void **state)
{
    struct fx *f = *state;
    uint32_t ulen;
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &ulen), VIRTIO_BLK_S_OK);
    assert_int_equal(ulen, 1);
}

/* Every finished request is counted once, by type and outcome. */
static void counts_requests(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 4096);
    assert_int_equal(read_sectors(f, 0, buf, 4096), VIRTIO_BLK_S_OK);
    assert_int_equal(read_sectors(f, 1, buf, 1024), VIRTIO_BLK_S_OK);
    assert_int_equal(write_sectors(f, 2, buf, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
    assert_int_equal(read_sectors(f, IMG_SECTORS, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(request(f, 99, 0, buf, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
    struct virtio_blk_stats s;
    virtio_blk_get_stats(f->blk, &s);
    assert_int_equal(s.read_requests, 3);
    assert_int_equal(s.read_bytes, 4096 + 1024); /* the failed read moved nothing */
    assert_int_equal(s.write_requests, 1);
    assert_int_equal(s.write_bytes, 512);
    assert_int_equal(s.flush_requests, 1);
    assert_int_equal(s.other_requests, 1);
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.unsupported, 1);
    assert_int_equal(s.malformed, 0);

    /* The same counters under the API's names (group "diskN"). */
    struct metric_names m = { "", { 0 }, 0 };
    f->ops->metrics(f->blk, collect_metric, &m);
    assert_string_equal(m.text, "read_requests read_bytes write_requests write_bytes "
                                "flush_requests other_requests errors unsupported malformed");
    uint64_t want[] = { 3, 4096 + 1024, 1, 512, 1, 1, 1, 1, 0 };
    assert_int_equal(m.n, 9);
    for (unsigned i = 0; i < 9; i++)
        assert_int_equal(m.values[i], want[i]);
}

/* ---- read-only --------------------------------------------------------- */

static void read_only_refuses_writes(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 4096);
    memset(hva(f, buf), 0, 4096);
    assert_int_equal(write_sectors(f, 0, buf, 4096), VIRTIO_BLK_S_IOERR);
    struct dwz seg = { 0, 8, 0 };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, &seg, 1), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &seg, 1), VIRTIO_BLK_S_UNSUPP);
    seg.flags = 1;
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &seg, 1), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
    assert_int_equal(read_sectors(f, 0, buf, 4096), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, buf + 100), pat(100));
    /* Even a driver that ignores RO and negotiates discard gets nowhere. */
    reactivate(f, ALL_FEATURES | FEAT(VIRTIO_BLK_F_RO));
    seg.flags = 0;
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, &seg, 1), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &seg, 1), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(write_sectors(f, 0, buf, 512), VIRTIO_BLK_S_IOERR);

    /* The image is byte-for-byte what it was. */
    assert_int_equal(file_size(f), IMG_SIZE);
    assert_true(file_is_pattern(f, 0, IMG_SIZE));
}

/* ---- malformed requests ------------------------------------------------ */

static void out_of_range_sectors(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 1024);
    memset(hva(f, buf), 0x11, 1024);
    assert_int_equal(read_sectors(f, IMG_SECTORS, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(read_sectors(f, IMG_SECTORS - 1, buf, 1024), VIRTIO_BLK_S_IOERR);
    assert_int_equal(read_sectors(f, UINT64_MAX, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(read_sectors(f, UINT64_MAX / 512 + 1, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(read_sectors(f, 1ull << 55, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(write_sectors(f, IMG_SECTORS, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(write_sectors(f, IMG_SECTORS - 1, buf, 1024), VIRTIO_BLK_S_IOERR);
    assert_int_equal(write_sectors(f, UINT64_MAX / 512 + 1, buf, 512), VIRTIO_BLK_S_IOERR);
    /* Nothing written, and the file did not grow. */
    assert_int_equal(file_size(f), IMG_SIZE);
    assert_true(file_is_pattern(f, 0, IMG_SIZE));
    /* The edge itself is fine. */
    assert_int_equal(write_sectors(f, IMG_SECTORS - 1, buf, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(file_size(f), IMG_SIZE);
}

static void bad_lengths(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 1024);
    memset(hva(f, buf), 0x22, 1024);
    assert_int_equal(read_sectors(f, 0, buf, 100), VIRTIO_BLK_S_IOERR);
    assert_int_equal(read_sectors(f, 0, buf, 513), VIRTIO_BLK_S_IOERR);
    assert_int_equal(write_sectors(f, 0, buf, 511), VIRTIO_BLK_S_IOERR);
    assert_int_equal(write_sectors(f, 0, buf, 1000), VIRTIO_BLK_S_IOERR);
    assert_true(file_is_pattern(f, 0, 4096));

    /* Header shorter than 16 bytes. */
    uint64_t h = header(f, VIRTIO_BLK_T_IN, 0), st = status_buf(f);
    struct seg s1[] = { { h, 8, 0 }, { buf, 512, F_WRITE }, { st, 1, F_WRITE } };
    uint16_t want = used_idx(f) + 1;
    post(f, s1, 3, false);
    kick(f);
    wait_used(f, want);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_IOERR);

    /* No readable part at all. */
    st = status_buf(f);
    struct seg s2[] = { { buf, 512, F_WRITE }, { st, 1, F_WRITE } };
    want = used_idx(f) + 1;
    post(f, s2, 2, false);
    kick(f);
    wait_used(f, want);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_IOERR);

    /* No writable byte: no status can be given; used with length 0. */
    h = header(f, VIRTIO_BLK_T_IN, 0);
    uint8_t before[16];
    memcpy(before, hva(f, h), 16);
    struct seg s3[] = { { h, 16, 0 } };
    want = used_idx(f) + 1;
    post(f, s3, 1, false);
    kick(f);
    wait_used(f, want);
    assert_int_equal(used_len_at(f, want - 1), 0);
    assert_memory_equal(hva(f, h), before, 16);

    /* A zero-length data part is a no-op, not an error. */
    assert_int_equal(read_sectors(f, 0, buf, 0), VIRTIO_BLK_S_OK);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK);
}

static void unknown_types_are_unsupported(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 512);
    const uint32_t types[] = { 2, 3, 5, 10, 14, 15, 16, 0x80000000u, 0xffffffffu };
    for (unsigned i = 0; i < sizeof types / sizeof *types; i++)
        assert_int_equal(request(f, types[i], 0, buf, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
}

static void get_id(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 20);
    memset(hva(f, buf), 0xff, 20);
    uint32_t ulen;
    assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, buf, 20, true, &ulen), VIRTIO_BLK_S_OK);
    assert_int_equal(ulen, 21);
    uint8_t want[20] = "vmlet-test-serial"; /* NUL-padded */
    assert_memory_equal(hva(f, buf), want, 20);

    /* A short buffer gets what fits, and the status byte is not overrun. */
    uint64_t small = galloc(f, 8);
    assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, small, 8, true, &ulen), VIRTIO_BLK_S_OK);
    assert_int_equal(ulen, 9);
    assert_memory_equal(hva(f, small), "vmlet-te", 8);
}

static void serial_checks(void **state)
{
    struct fx *f = *state;
    vmlet_error err = { 0 };
    /* The image is locked by the fixture, so use a second one. */
    char path[256];
    make_image(path, sizeof path, tmpdir());
    assert_null(virtio_blk_new(path, true, "123456789012345678901", &err));
    assert_non_null(strstr(err.message, "serial"));
    assert_non_null(strstr(err.message, "20"));
    assert_null(virtio_blk_new(path, true, "bad\nserial", &err));
    assert_non_null(strstr(err.message, "printable"));

    /* Exactly 20 characters: no terminator in the reply. */
    struct virtio_blk *b = virtio_blk_new(path, true, "12345678901234567890", &err);
    assert_non_null(b);
    virtio_blk_free(b);
    unlink(path);
    (void)f;
}

/* ---- discard and write-zeroes ------------------------------------------ */

static void discard_deallocates(void **state)
{
    struct fx *f = *state;
    int fd = open(f->path, O_RDWR);
    fsync(fd);
    close(fd);
    uint64_t blocks = file_blocks(f);
    struct dwz segs[] = { { 64, 64, 0 }, { 256, 128, 0 } }; /* 32 KiB and 64 KiB */
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, segs, 2), VIRTIO_BLK_S_OK);
    assert_true(file_is_zero(f, 64 * 512, 64 * 512));
    assert_true(file_is_zero(f, 256 * 512, 128 * 512));
    assert_true(file_is_pattern(f, 63 * 512, 512));
    assert_true(file_is_pattern(f, 128 * 512, 128 * 512));
    assert_true(file_is_pattern(f, 384 * 512, 512));
    assert_int_equal(file_size(f), IMG_SIZE);
    assert_true(file_blocks(f) < blocks);
}

static void discard_flags_and_limits(void **state)
{
    struct fx *f = *state;
    /* 5.2.6.2: unmap on a discard, or any unknown flag, is UNSUPP. */
    struct dwz s = { 0, 8, VIRTIO_BLK_WZ_FLAG_UNMAP };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, &s, 1), VIRTIO_BLK_S_UNSUPP);
    s.flags = 2;
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, &s, 1), VIRTIO_BLK_S_UNSUPP);
    s.flags = 0x80000000u;
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1), VIRTIO_BLK_S_UNSUPP);

    /* Out of range, too long, too many segments, ragged payload, none. */
    s = (struct dwz){ IMG_SECTORS - 4, 8, 0 };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, &s, 1), VIRTIO_BLK_S_IOERR);
    s = (struct dwz){ UINT64_MAX - 2, 8, 0 };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1), VIRTIO_BLK_S_IOERR);
    s = (struct dwz){ 0, VIRTIO_BLK_MAX_DWZ_SECTORS + 1, 0 };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, &s, 1), VIRTIO_BLK_S_IOERR);
    struct dwz many[VIRTIO_BLK_MAX_DWZ_SEG + 1];
    for (unsigned i = 0; i < VIRTIO_BLK_MAX_DWZ_SEG + 1; i++)
        many[i] = (struct dwz){ i, 1, 0 };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, many, VIRTIO_BLK_MAX_DWZ_SEG + 1),
                     VIRTIO_BLK_S_IOERR);
    uint64_t p = dwz_payload(f, many, 2);
    assert_int_equal(request(f, VIRTIO_BLK_T_DISCARD, 0, p, 20, false, NULL), VIRTIO_BLK_S_IOERR);
    assert_int_equal(request(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, 0, 0, false, NULL),
                     VIRTIO_BLK_S_IOERR);
    /* A bad segment after a good one: nothing is done at all. */
    struct dwz mixed[] = { { 0, 8, 0 }, { IMG_SECTORS, 1, 0 } };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, mixed, 2), VIRTIO_BLK_S_IOERR);
    assert_true(file_is_pattern(f, 0, IMG_SIZE));

    /* The maximum segment count is fine; zero-sector segments do nothing. */
    many[3].num = 0;
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, many, VIRTIO_BLK_MAX_DWZ_SEG),
                     VIRTIO_BLK_S_OK);
    assert_true(file_is_zero(f, 0, 3 * 512));
    assert_true(file_is_pattern(f, 3 * 512, 512));
    assert_true(file_is_zero(f, 4 * 512, (VIRTIO_BLK_MAX_DWZ_SEG - 4) * 512));
}

static void discard_needs_the_feature(void **state)
{
    struct fx *f = *state;
    reactivate(f, ALL_FEATURES & ~(FEAT(VIRTIO_BLK_F_DISCARD) | FEAT(VIRTIO_BLK_F_WRITE_ZEROES)));
    struct dwz s = { 0, 8, 0 };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_DISCARD, &s, 1), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1), VIRTIO_BLK_S_UNSUPP);
    assert_true(file_is_pattern(f, 0, 4096));
}

static void write_zeroes(void **state)
{
    struct fx *f = *state;
    int fd = open(f->path, O_RDWR);
    fsync(fd);
    close(fd);
    uint64_t blocks = file_blocks(f);
    /* Without unmap: zeroes, blocks stay allocated. */
    struct dwz s[] = { { 8, 8, 0 }, { 40, 3, 0 } };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, s, 2), VIRTIO_BLK_S_OK);
    assert_true(file_is_zero(f, 8 * 512, 8 * 512));
    assert_true(file_is_zero(f, 40 * 512, 3 * 512));
    assert_true(file_is_pattern(f, 16 * 512, 24 * 512));
    assert_true(file_is_pattern(f, 43 * 512, 512));
    assert_int_equal(file_blocks(f), blocks);

    /* With unmap: zeroes, and the range may be deallocated. */
    struct dwz u = { 512, 256, VIRTIO_BLK_WZ_FLAG_UNMAP };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &u, 1), VIRTIO_BLK_S_OK);
    assert_true(file_is_zero(f, 512 * 512, 256 * 512));
    assert_true(file_is_pattern(f, 768 * 512, 512));
    assert_true(file_blocks(f) < blocks);
    assert_int_equal(file_size(f), IMG_SIZE);

    /* Reads through the device see the zeroes too. */
    uint64_t buf = galloc(f, 512);
    memset(hva(f, buf), 0xff, 512);
    assert_int_equal(read_sectors(f, 41, buf, 512), VIRTIO_BLK_S_OK);
    for (unsigned i = 0; i < 512; i++)
        assert_int_equal(*hva(f, buf + i), 0);
}

static void write_zeroes_falls_back_without_zero_range(void **state)
{
    struct fx *f = *state;
    /* On tmpfs fallocate(ZERO_RANGE) is EOPNOTSUPP: the backend must fall
     * back to punching a hole, twice in a row (the second time directly). */
    struct dwz s = { 16, 16, 0 };
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1), VIRTIO_BLK_S_OK);
    assert_true(file_is_zero(f, 16 * 512, 16 * 512));
    s.sector = 100;
    assert_int_equal(dwz_request(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, 1), VIRTIO_BLK_S_OK);
    assert_true(file_is_zero(f, 100 * 512, 16 * 512));
    assert_true(file_is_pattern(f, 32 * 512, 68 * 512));
}

/* ---- the backend on its own ---------------------------------------------- */

static void lock_refuses_second_user(void **state)
{
    struct fx *f = *state;
    vmlet_error err = { 0 };
    assert_null(virtio_blk_new(f->path, false, NULL, &err));
    assert_int_equal(err.code, VMLET_ERR_FILE);
    assert_non_null(strstr(err.message, f->path));
    assert_non_null(strstr(err.message, "in use by another process (locked)"));
    memset(&err, 0, sizeof err);
    assert_null(virtio_blk_new(f->path, true, NULL, &err)); /* shared vs exclusive */
    assert_non_null(strstr(err.message, "locked"));
    struct disk *d;
    assert_int_equal(disk_open(&d, f->path, true, &err), -1);
}

static void read_only_images_may_be_shared(void **state)
{
    struct fx *f = *state;
    vmlet_error err = { 0 };
    struct virtio_blk *b = virtio_blk_new(f->path, true, NULL, &err);
    assert_non_null(b);
    assert_null(virtio_blk_new(f->path, false, NULL, &err));
    assert_non_null(strstr(err.message, "in use by another process (locked)"));
    virtio_blk_free(b);
}

static void open_errors_name_the_file(void **state)
{
    (void)state;
    vmlet_error err = { 0 };
    struct disk *d;
    assert_int_equal(disk_open(&d, "/nonexistent/vmlet.img", false, &err), -1);
    assert_non_null(strstr(err.message, "'/nonexistent/vmlet.img'"));
    assert_non_null(strstr(err.message, "does not exist"));
    assert_int_equal(disk_open(&d, "/", true, &err), -1);
    assert_non_null(strstr(err.message, "not a regular file or block device"));

    char path[256];
    snprintf(path, sizeof path, "%s/vmlet-tiny-XXXXXX", tmpdir());
    int fd = mkstemp(path);
    close(fd);
    /* Empty (Kata's placeholder drives) and shorter than a sector: a
     * disk the guest sees with no sector at all, as Firecracker does. */
    assert_int_equal(disk_open(&d, path, false, &err), 0);
    assert_int_equal(disk_size(d), 0);
    disk_close(d);
    fd = open(path, O_WRONLY);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    struct virtio_blk *b = virtio_blk_new(path, false, NULL, &err);
    assert_non_null(b);
    assert_int_equal(virtio_blk_capacity(b), 0);
    virtio_blk_free(b);
    unlink(path);
}

static void disk_sync_and_async_agree(void **state)
{
    (void)state;
    char path[256];
    make_image(path, sizeof path, tmpdir());
    vmlet_error err;
    struct disk *d;
    assert_int_equal(disk_open(&d, path, false, &err), 0);
    assert_int_equal(disk_size(d), IMG_SIZE);
    assert_false(disk_read_only(d));

    uint8_t a[1000], b[1000];
    struct iovec iov = { a, sizeof a };
    struct disk_request rd = { .op = DISK_READ, .iov = &iov, .iovcnt = 1, .offset = 7 };
    assert_int_equal(disk_execute(d, &rd), 1000);
    int cookie;
    rd.iov = &(struct iovec){ b, sizeof b };
    rd.cookie = &cookie;
    assert_int_equal(disk_submit(d, &rd), 0);
    assert_int_equal(disk_in_flight(d), 1);
    assert_int_equal(disk_kick(d), 0);
    struct disk_completion c;
    unsigned n = 0;
    while (!(n = disk_reap(d, &c, 1)))
        disk_wait(d);
    assert_ptr_equal(c.cookie, &cookie);
    assert_int_equal(c.result, 1000);
    /* Both paths against what make_image() wrote, not against each other:
     * two reads that agree could both be wrong. */
    for (unsigned i = 0; i < sizeof a; i++) {
        assert_int_equal(a[i], pat(7 + i));
        assert_int_equal(b[i], pat(7 + i));
    }
    assert_int_equal(disk_in_flight(d), 0);
    rd.cookie = (void *)((uintptr_t)&cookie | 1);
    assert_int_equal(disk_submit(d, &rd), -EINVAL); /* bit 0 is the backend's */
    disk_close(d);

    assert_int_equal(disk_open(&d, path, true, &err), 0);
    struct disk_request wr = { .op = DISK_WRITE, .iov = &iov, .iovcnt = 1 };
    assert_int_equal(disk_execute(d, &wr), -EROFS);
    assert_int_equal(disk_submit(d, &wr), -EROFS);
    disk_close(d);
    unlink(path);
}

/* ---- robustness ---------------------------------------------------------- */

static void bad_requests_do_not_stop_good_ones(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 512), out = galloc(f, 512);
    memset(hva(f, out), 0x3c, 512);
    uint64_t st[6];
    for (unsigned i = 0; i < 6; i++)
        st[i] = status_buf(f);
    uint64_t h_unknown = header(f, 99, 0), h_badlen = header(f, VIRTIO_BLK_T_IN, 0),
             h_range = header(f, VIRTIO_BLK_T_IN, IMG_SECTORS),
             h_nostatus = header(f, VIRTIO_BLK_T_OUT, 0), h_write = header(f, VIRTIO_BLK_T_OUT, 77),
             h_read = header(f, VIRTIO_BLK_T_IN, 77);
    struct seg a[] = { { h_unknown, 16, 0 }, { st[0], 1, F_WRITE } };
    struct seg b[] = { { h_badlen, 16, 0 }, { buf, 100, F_WRITE }, { st[1], 1, F_WRITE } };
    struct seg c[] = { { h_range, 16, 0 }, { buf, 512, F_WRITE }, { st[2], 1, F_WRITE } };
    struct seg d[] = { { h_nostatus, 16, 0 }, { out, 512, 0 } };
    struct seg e[] = { { h_write, 16, 0 }, { out, 512, 0 }, { st[4], 1, F_WRITE } };
    struct seg g[] = { { h_read, 16, 0 }, { buf, 512, F_WRITE }, { st[5], 1, F_WRITE } };
    post(f, a, 2, false);
    post(f, b, 3, true);
    post(f, c, 3, false);
    post(f, d, 2, false);
    post(f, e, 3, false);
    kick(f);
    wait_used(f, 5);
    post(f, g, 3, false);
    kick(f);
    wait_used(f, 6);
    assert_int_equal(*hva(f, st[0]), VIRTIO_BLK_S_UNSUPP);
    assert_int_equal(*hva(f, st[1]), VIRTIO_BLK_S_IOERR);
    assert_int_equal(*hva(f, st[2]), VIRTIO_BLK_S_IOERR);
    assert_int_equal(*hva(f, st[4]), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, st[5]), VIRTIO_BLK_S_OK);
    assert_memory_equal(hva(f, buf), hva(f, out), 512);
    assert_true(file_is_pattern(f, 0, 512)); /* the status-less write did nothing */
    assert_int_equal(get_count(&f->t, &f->t.needs_reset), 0);
}

static void broken_chain_sets_needs_reset(void **state)
{
    struct fx *f = *state;
    /* A descriptor loop. */
    put_desc(hva(f, DESC_GPA), 10, DATA_GPA, 16, F_NEXT, 11);
    put_desc(hva(f, DESC_GPA), 11, DATA_GPA, 16, F_NEXT, 10);
    offer(f, 10);
    kick(f);
    assert_true(wait_count(&f->t, &f->t.needs_reset, 1));
    f->next_desc = 20;

    /* The queue is left alone until reset... */
    uint64_t buf = galloc(f, 512), h = header(f, VIRTIO_BLK_T_IN, 0), st = status_buf(f);
    struct seg s[] = { { h, 16, 0 }, { buf, 512, F_WRITE }, { st, 1, F_WRITE } };
    post(f, s, 3, false);
    kick(f);
    usleep(100 * 1000);
    assert_int_equal(used_idx(f), 0);
    assert_int_equal(*hva(f, st), 0xee);
    assert_int_equal(get_count(&f->t, &f->t.needs_reset), 1);

    /* ...and works again after it. */
    reactivate(f, ALL_FEATURES);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, buf + 1), pat(1));
}

static void broken_ring_index(void **state)
{
    struct fx *f = *state;
    __atomic_store_n((uint16_t *)hva(f, AVAIL_GPA + 2), (uint16_t)(QSIZE + 1), __ATOMIC_RELEASE);
    kick(f);
    assert_true(wait_count(&f->t, &f->t.needs_reset, 1));
    assert_int_equal(used_idx(f), 0);
}

static void many_requests_in_flight(void **state)
{
    struct fx *f = *state;
    enum { N = 100, LEN = 4096 }; /* 50 x 4 + 50 x 1 descriptors: fits the ring */
    uint64_t data[N], st[N];
    for (unsigned i = 0; i < N; i++) {
        data[i] = galloc(f, LEN);
        for (unsigned k = 0; k < LEN; k++)
            *hva(f, data[i] + k) = (uint8_t)(i + k * 31);
        st[i] = status_buf(f);
        uint64_t h = header(f, VIRTIO_BLK_T_OUT, (uint64_t)i * 8);
        struct seg s[] = { { h, 16, 0 },
                           { data[i], LEN / 2, 0 },
                           { data[i] + LEN / 2, LEN / 2, 0 },
                           { st[i], 1, F_WRITE } };
        post(f, s, 4, i % 2);
    }
    kick(f);
    wait_used(f, N);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(*hva(f, st[i]), VIRTIO_BLK_S_OK);
    uint8_t *file = malloc(N * LEN);
    file_read(f, 0, file, N * LEN);
    for (unsigned i = 0; i < N; i++)
        assert_memory_equal(file + (size_t)i * LEN, hva(f, data[i]), LEN);
    free(file);

    /* And read them all back at once. */
    f->next_desc = 0;
    for (unsigned i = 0; i < N; i++) {
        memset(hva(f, data[i]), 0, LEN);
        *hva(f, st[i]) = 0xee;
        uint64_t h = header(f, VIRTIO_BLK_T_IN, (uint64_t)i * 8);
        struct seg s[] = { { h, 16, 0 }, { data[i], LEN, F_WRITE }, { st[i], 1, F_WRITE } };
        post(f, s, 3, true);
    }
    kick(f);
    wait_used(f, 2 * N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(*hva(f, st[i]), VIRTIO_BLK_S_OK);
        assert_int_equal(*hva(f, data[i] + 5), (uint8_t)(i + 5 * 31));
    }
}

static void throttles_when_the_backend_is_full(void **state)
{
    struct fx *f = *state;
    /* 40 requests x 32 segments: far more operations than the backend
     * takes at once, so the device must stop popping and resume. */
    enum { N = 40 };
    uint64_t st[N];
    for (unsigned i = 0; i < N; i++) {
        struct dwz segs[VIRTIO_BLK_MAX_DWZ_SEG];
        for (unsigned k = 0; k < VIRTIO_BLK_MAX_DWZ_SEG; k++)
            segs[k] = (struct dwz){ (i * VIRTIO_BLK_MAX_DWZ_SEG + k) % IMG_SECTORS, 1,
                                    k % 2 ? VIRTIO_BLK_WZ_FLAG_UNMAP : 0 };
        uint64_t p = dwz_payload(f, segs, VIRTIO_BLK_MAX_DWZ_SEG);
        uint64_t h = header(f, VIRTIO_BLK_T_WRITE_ZEROES, 0);
        st[i] = status_buf(f);
        struct seg s[] = { { h, 16, 0 },
                           { p, 16 * VIRTIO_BLK_MAX_DWZ_SEG, 0 },
                           { st[i], 1, F_WRITE } };
        post(f, s, 3, true);
    }
    kick(f);
    wait_used(f, N);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(*hva(f, st[i]), VIRTIO_BLK_S_OK);
    assert_true(file_is_zero(f, 0,
                             (size_t)N * VIRTIO_BLK_MAX_DWZ_SEG * 512 > IMG_SECTORS * 512
                                 ? IMG_SECTORS * 512
                                 : (size_t)N * VIRTIO_BLK_MAX_DWZ_SEG * 512));
}

static void reset_waits_for_in_flight_io(void **state)
{
    struct fx *f = *state;
    /* Writes that dirty the page cache and flushes that must write them
     * out: the flushes are still running when reset() is called. */
    enum { N = 48, LEN = 16 * 1024 };
    uint64_t base = galloc(f, (uint64_t)N * LEN), st[N];
    memset(hva(f, base), 0x99, (size_t)N * LEN);
    for (unsigned i = 0; i < N; i++) {
        uint64_t h = header(f, i % 4 == 3 ? VIRTIO_BLK_T_FLUSH : VIRTIO_BLK_T_OUT,
                            (uint64_t)i * (LEN / 512));
        st[i] = status_buf(f);
        struct seg s[] = { { h, 16, 0 },
                           { base + (uint64_t)i * LEN, LEN, 0 },
                           { st[i], 1, F_WRITE } };
        if (i % 4 == 3)
            s[1] = s[2];
        post(f, s, i % 4 == 3 ? 2 : 3, true);
    }
    kick(f);
    usleep(1000);
    f->ops->reset(f->blk);
    /* After reset returns nothing touches guest memory any more; a chain
     * has its status exactly when it was returned before the reset (what
     * was still in flight was cancelled and dropped). */
    uint16_t idx = used_idx(f);
    uint8_t before[N];
    for (unsigned i = 0; i < N; i++)
        before[i] = *hva(f, st[i]);
    usleep(50 * 1000);
    assert_int_equal(used_idx(f), idx);
    unsigned ok = 0;
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(*hva(f, st[i]), before[i]);
        assert_true(before[i] == VIRTIO_BLK_S_OK || before[i] == 0xee);
        ok += before[i] == VIRTIO_BLK_S_OK;
    }
    /* Completions come in any order (the cancel stops some and not
     * others): the used entries are exactly the chains with a status
     * (request i's head is descriptor i). */
    assert_int_equal(ok, idx);
    for (unsigned k = 0; k < idx; k++) {
        uint32_t id;
        memcpy(&id, hva(f, USED_GPA + 4 + 8 * k), 4);
        assert_true(id < N);
        assert_int_equal(before[id], VIRTIO_BLK_S_OK);
    }

    /* Reset twice is harmless; the device comes back after activation. */
    f->ops->reset(f->blk);
    activate(f, ALL_FEATURES);
    uint64_t buf = galloc(f, 512);
    assert_int_equal(read_sectors(f, 2000, buf, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, buf), pat(2000 * 512));
}

static void requests_posted_before_activation(void **state)
{
    struct fx *f = *state;
    /* The ring is set up and a request made available, with no kick. */
    set_ring(f, 0);
    uint64_t buf = galloc(f, 512), h = header(f, VIRTIO_BLK_T_IN, 1), st = status_buf(f);
    struct seg s[] = { { h, 16, 0 }, { buf, 512, F_WRITE }, { st, 1, F_WRITE } };
    post(f, s, 3, false);
    struct virtio_queues qs = { .transport = &f->t,
                                .count = 1,
                                .q = { &f->q },
                                .kick_fd = { f->kick },
                                .features = ALL_FEATURES };
    assert_int_equal(f->ops->activate(f->blk, &qs), 0);
    wait_used(f, 1);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, buf), pat(512));
}

/* ---- interrupts ---------------------------------------------------------- */

static void event_idx_suppresses_interrupts(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 512);
    uint16_t *used_event = (uint16_t *)hva(f, AVAIL_GPA + 4 + 2 * QSIZE);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(wait_count(&f->t, &f->t.notifies, 1));

    /* The driver asks for an interrupt only after entry 10. */
    __atomic_store_n(used_event, 10, __ATOMIC_RELEASE);
    unsigned before = get_count(&f->t, &f->t.notifies);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK); /* entry 1 */
    usleep(20 * 1000);
    assert_int_equal(get_count(&f->t, &f->t.notifies), before);

    /* Now it wants one for the very next entry. */
    __atomic_store_n(used_event, used_idx(f), __ATOMIC_RELEASE);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(wait_count(&f->t, &f->t.notifies, before + 1));

    /* The device asked to be kicked for what comes next. */
    uint16_t avail_event;
    memcpy(&avail_event, hva(f, USED_GPA + 4 + 8 * QSIZE), 2);
    assert_int_equal(avail_event, avail_idx(f));
}

static void no_interrupt_flag_without_event_idx(void **state)
{
    struct fx *f = *state;
    reactivate(f, ALL_FEATURES & ~FEAT(VIRTIO_F_EVENT_IDX));
    uint64_t buf = galloc(f, 512);
    unsigned before = get_count(&f->t, &f->t.notifies);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(wait_count(&f->t, &f->t.notifies, before + 1));

    __atomic_store_n((uint16_t *)hva(f, AVAIL_GPA), 1, __ATOMIC_RELEASE); /* NO_INTERRUPT */
    before = get_count(&f->t, &f->t.notifies);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK);
    usleep(20 * 1000);
    assert_int_equal(get_count(&f->t, &f->t.notifies), before);

    __atomic_store_n((uint16_t *)hva(f, AVAIL_GPA), 0, __ATOMIC_RELEASE);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(wait_count(&f->t, &f->t.notifies, before + 1));
    /* Notifications from the driver are on again once the device idles. */
    uint16_t flags;
    memcpy(&flags, hva(f, USED_GPA), 2);
    assert_int_equal(flags, 0);
}

/* ---- bounds of one request (blk.h) --------------------------------------- */

#define BIG_SECTORS (64u << 11) /* 64 MiB, sparse: room for the largest request */
#define MARK        0x5a

/* One IN or OUT request of nseg data descriptors that all point at the
 * same buffer of seglen bytes (the aliasing a hostile driver can do),
 * through an indirect table; returns the status. */
static int aliased(struct fx *f, uint32_t type, uint64_t sector, uint64_t buf, uint32_t seglen,
                   unsigned nseg)
{
    static struct seg s[VIRTQ_MAX_CHAIN];
    assert_true(nseg + 2 <= VIRTQ_MAX_CHAIN);
    uint64_t h = header(f, type, sector), st = status_buf(f);
    s[0] = (struct seg){ h, 16, 0 };
    for (unsigned i = 0; i < nseg; i++)
        s[1 + i] = (struct seg){ buf, seglen, type == VIRTIO_BLK_T_IN ? F_WRITE : 0 };
    s[nseg + 1] = (struct seg){ st, 1, F_WRITE };
    uint16_t want = used_idx(f) + 1;
    post(f, s, nseg + 2, true);
    kick(f);
    wait_used(f, want);
    return *hva(f, st);
}

static int setup_big(void **state)
{
    setup_common(state, false, tmpdir(), false);
    struct fx *f = *state;
    virtio_blk_free(f->blk);
    assert_int_equal(truncate(f->path, (off_t)BIG_SECTORS * 512), 0);
    vmlet_error err = { 0 };
    f->blk = virtio_blk_new(f->path, false, NULL, &err);
    assert_non_null(f->blk);
    f->ops = &virtio_blk_device(f->blk)->ops;
    activate(f, ALL_FEATURES);
    return 0;
}

/* A refused request: IOERR, counted as an error, nothing transferred. */
static void refused(struct fx *f, uint32_t type, uint64_t buf, uint32_t seglen, unsigned nseg)
{
    struct virtio_blk_stats before, after;
    virtio_blk_get_stats(f->blk, &before);
    memset(hva(f, buf), MARK, seglen);
    assert_int_equal(aliased(f, type, 8, buf, seglen, nseg), VIRTIO_BLK_S_IOERR);
    virtio_blk_get_stats(f->blk, &after);
    assert_int_equal(after.errors, before.errors + 1);
    assert_int_equal(after.malformed, before.malformed);
    assert_int_equal(after.read_bytes, before.read_bytes);
    assert_int_equal(after.write_bytes, before.write_bytes);
    for (uint32_t i = 0; i < seglen; i++) /* no read landed in it */
        if (*hva(f, buf + i) != MARK)
            fail_msg("byte %u of the buffer was written", i);
    if (type == VIRTIO_BLK_T_OUT)
        assert_true(file_is_pattern(f, 8 * 512, 64 * 1024)); /* nothing written */
}

static void request_over_seg_max(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, 512);
    refused(f, VIRTIO_BLK_T_IN, buf, 512, VIRTIO_BLK_SEG_MAX + 1);
    refused(f, VIRTIO_BLK_T_OUT, buf, 512, VIRTIO_BLK_SEG_MAX + 1);
    /* Exactly seg_max segments is fine. */
    assert_int_equal(aliased(f, VIRTIO_BLK_T_IN, 8, buf, 512, VIRTIO_BLK_SEG_MAX), VIRTIO_BLK_S_OK);
}

static void segment_over_size_max(void **state)
{
    struct fx *f = *state;
    uint64_t buf = galloc(f, VIRTIO_BLK_SIZE_MAX + 512);
    refused(f, VIRTIO_BLK_T_IN, buf, VIRTIO_BLK_SIZE_MAX + 512, 1);
    refused(f, VIRTIO_BLK_T_OUT, buf, VIRTIO_BLK_SIZE_MAX + 512, 1);
    /* A segment of exactly size_max is fine, and so is the largest
     * request a driver within both bounds can make. */
    assert_int_equal(aliased(f, VIRTIO_BLK_T_IN, 8, buf, VIRTIO_BLK_SIZE_MAX, 1), VIRTIO_BLK_S_OK);
    assert_int_equal(aliased(f, VIRTIO_BLK_T_OUT, 8, buf, VIRTIO_BLK_SIZE_MAX, VIRTIO_BLK_SEG_MAX),
                     VIRTIO_BLK_S_OK);
    /* Without SIZE_MAX negotiated, the segment size is not limited. */
    reactivate(f, ALL_FEATURES & ~FEAT(VIRTIO_BLK_F_SIZE_MAX));
    assert_int_equal(aliased(f, VIRTIO_BLK_T_IN, 8, buf, VIRTIO_BLK_SIZE_MAX + 512, 1),
                     VIRTIO_BLK_S_OK);
}

static void request_over_total_cap(void **state)
{
    struct fx *f = *state;
    /* A driver that declined SIZE_MAX and SEG_MAX: 256 descriptors aliasing
     * one 1 MiB buffer ask for one 256 MiB transfer. */
    reactivate(f, ALL_FEATURES & ~(FEAT(VIRTIO_BLK_F_SIZE_MAX) | FEAT(VIRTIO_BLK_F_SEG_MAX)));
    uint64_t buf = galloc(f, 1u << 20);
    refused(f, VIRTIO_BLK_T_IN, buf, 1u << 20, 256);
    refused(f, VIRTIO_BLK_T_OUT, buf, 1u << 20, 256);
    /* Just over the cap: five aliases, or one segment a sector too long. */
    refused(f, VIRTIO_BLK_T_IN, buf, 1u << 20, 5);
    uint64_t big = galloc(f, VIRTIO_BLK_MAX_REQUEST_BYTES + 512);
    refused(f, VIRTIO_BLK_T_IN, big, VIRTIO_BLK_MAX_REQUEST_BYTES + 512, 1);
    /* Exactly the cap is fine. */
    assert_int_equal(aliased(f, VIRTIO_BLK_T_IN, 8, buf, 1u << 20, 4), VIRTIO_BLK_S_OK);
    assert_int_equal(aliased(f, VIRTIO_BLK_T_IN, 8, big, VIRTIO_BLK_MAX_REQUEST_BYTES, 1),
                     VIRTIO_BLK_S_OK);
}

/* ---- stopping with I/O in flight ------------------------------------------ */

struct reset_call {
    struct fx *f;
    bool free; /* virtio_blk_free (VM teardown) rather than reset */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
};

static void *reset_thread(void *arg)
{
    struct reset_call *c = arg;
    if (c->free)
        virtio_blk_free(c->f->blk);
    else
        c->f->ops->reset(c->f->blk);
    pthread_mutex_lock(&c->lock);
    c->done = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* Fills the queue with the largest requests there are: reads of seg_max
 * aliased segments of size_max bytes each (4 MiB), one indirect table
 * each, and waits until the device took them all. */
static void fill_with_max_reads(struct fx *f, uint64_t buf, uint64_t st[QSIZE])
{
    static struct seg s[VIRTIO_BLK_SEG_MAX + 2];
    for (unsigned i = 0; i < QSIZE; i++) {
        st[i] = status_buf(f);
        s[0] = (struct seg){ header(f, VIRTIO_BLK_T_IN, (uint64_t)(i % 15) * 8192), 16, 0 };
        for (unsigned k = 0; k < VIRTIO_BLK_SEG_MAX; k++)
            s[1 + k] = (struct seg){ buf, VIRTIO_BLK_SIZE_MAX, F_WRITE };
        s[VIRTIO_BLK_SEG_MAX + 1] = (struct seg){ st[i], 1, F_WRITE };
        post(f, s, VIRTIO_BLK_SEG_MAX + 2, true);
    }
    kick(f);
    for (int i = 0; i < 10000 && __atomic_load_n(&f->q.last_avail, __ATOMIC_ACQUIRE) != QSIZE; i++)
        usleep(1000);
    assert_int_equal(__atomic_load_n(&f->q.last_avail, __ATOMIC_ACQUIRE), QSIZE);
    usleep(20 * 1000); /* and submitted them */
}

/* Runs reset (or free) on another thread and gives it one second, the
 * contract for stopping with I/O in flight. If it overruns, closes the
 * pipe's write end, which ends every read the old way (end of file), so
 * the call returns and the test can report. */
static void stop_within_a_second(struct fx *f, bool free_it, int *pipe_w)
{
    struct reset_call c = { .f = f, .free = free_it };
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reset_thread, &c), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 1;
    pthread_mutex_lock(&c.lock);
    while (!c.done && pthread_cond_timedwait(&c.cond, &c.lock, &dl) == 0)
        ;
    bool in_time = c.done;
    pthread_mutex_unlock(&c.lock);
    if (!in_time) {
        close(*pipe_w);
        *pipe_w = -1;
    }
    pthread_join(t, NULL);
    if (free_it)
        f->blk = NULL;
    if (!in_time)
        fail_msg("%s with %u reads of 4 MiB in flight took more than 1 s",
                 free_it ? "free" : "reset", QSIZE);
}

static void reset_cancels_in_flight_io(void **state)
{
    struct fx *f = *state;
    /* The image is swapped for a pipe nobody writes to: every read waits
     * until it is cancelled (an image on a slow disk, at worst). */
    f->ops->reset(f->blk);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    disk_replace_fd(virtio_blk_disk(f->blk), p[0]);
    activate(f, ALL_FEATURES);

    uint64_t buf = galloc(f, VIRTIO_BLK_SIZE_MAX), st[QSIZE];
    fill_with_max_reads(f, buf, st);
    stop_within_a_second(f, false, &p[1]);
    /* Nothing was returned to the reset queue, no status written, and
     * nothing changes afterwards. */
    usleep(20 * 1000);
    assert_int_equal(used_idx(f), 0);
    for (unsigned i = 0; i < QSIZE; i++)
        assert_int_equal(*hva(f, st[i]), 0xee);

    /* The device comes back, and a VM teardown (free while active) with
     * the queue full again is as quick. */
    f->next_data = DATA_GPA;
    activate(f, ALL_FEATURES);
    buf = galloc(f, VIRTIO_BLK_SIZE_MAX);
    fill_with_max_reads(f, buf, st);
    stop_within_a_second(f, true, &p[1]);
    assert_int_equal(used_idx(f), 0);
    if (p[1] >= 0)
        close(p[1]);
}

/* ---- snapshots ------------------------------------------------------------ */

struct stop_call {
    struct fx *f;
    atomic_bool done;
};

static void *stop_thread(void *arg)
{
    struct stop_call *c = arg;
    c->f->ops->stop(c->f->blk);
    atomic_store(&c->done, true);
    return NULL;
}

/* A stop for a snapshot waits for the reads in flight (on a pipe that
 * has nothing yet), completes them to the driver once their data comes,
 * and the device resumes with the ring where it was. */
static void stop_finishes_in_flight_io(void **state)
{
    struct fx *f = *state;
    f->ops->reset(f->blk);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    disk_replace_fd(virtio_blk_disk(f->blk), p[0]);
    activate(f, ALL_FEATURES);
    enum { N = 4 };
    uint64_t buf = galloc(f, N * 512), st[N];
    for (unsigned i = 0; i < N; i++) {
        st[i] = status_buf(f);
        struct seg s[] = { { header(f, VIRTIO_BLK_T_IN, i), 16, 0 },
                           { buf + i * 512ull, 512, F_WRITE },
                           { st[i], 1, F_WRITE } };
        post(f, s, 3, false);
    }
    kick(f);
    for (int i = 0; i < 10000 && __atomic_load_n(&f->q.last_avail, __ATOMIC_ACQUIRE) != N; i++)
        usleep(1000);
    assert_int_equal(__atomic_load_n(&f->q.last_avail, __ATOMIC_ACQUIRE), N);

    struct stop_call c = { .f = f };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_thread, &c), 0);
    usleep(50 * 1000);
    assert_false(atomic_load(&c.done)); /* waiting for the reads, not cancelling them */
    assert_int_equal(used_idx(f), 0);
    uint8_t data[N * 512];
    memset(data, 0x42, sizeof data);
    assert_int_equal(write(p[1], data, sizeof data), (ssize_t)sizeof data);
    pthread_join(t, NULL);
    /* Every chain taken is completed: the used index is the last avail
     * index, which is what the snapshot keeps. */
    assert_int_equal(used_idx(f), N);
    assert_int_equal(f->q.used_idx, N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(*hva(f, st[i]), VIRTIO_BLK_S_OK);
        assert_int_equal(*hva(f, buf + i * 512ull + 511), 0x42);
    }
    /* Resumed on the same ring: the next request is served after them. */
    struct virtio_queues qs = { .transport = &f->t,
                                .count = 1,
                                .q = { &f->q },
                                .kick_fd = { f->kick },
                                .features = ALL_FEATURES,
                                .resume = true };
    assert_int_equal(f->ops->activate(f->blk, &qs), 0);
    uint64_t s5 = status_buf(f);
    struct seg s[] = { { header(f, VIRTIO_BLK_T_IN, 9), 16, 0 },
                       { buf, 512, F_WRITE },
                       { s5, 1, F_WRITE } };
    post(f, s, 3, false);
    kick(f);
    memset(data, 0x17, 512);
    assert_int_equal(write(p[1], data, 512), 512);
    wait_used(f, N + 1);
    assert_int_equal(*hva(f, s5), VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, buf), 0x17);
    f->ops->reset(f->blk);
    close(p[1]);
}

/* The saved state is the image's size; a restore onto an image whose
 * size changed is refused, with the path and both sizes. */
static void state_round_trip_and_size_check(void **state)
{
    struct fx *f = *state;
    uint8_t st[VIRTIO_STATE_MAX];
    char why[256] = "";
    int len = f->ops->save(f->blk, st, sizeof st);
    assert_int_equal(len, 8);
    assert_int_equal(f->ops->load(f->blk, st, (size_t)len, why, sizeof why), 0);
    assert_int_equal(f->ops->load(f->blk, st, 7, why, sizeof why), -1);
    assert_string_equal(why, "disk state of 7 bytes, not 8");
    /* The image grows by a sector; a device opened on it now is the
     * restored VM's. */
    f->ops->reset(f->blk);
    virtio_blk_free(f->blk);
    assert_int_equal(truncate(f->path, IMG_SIZE + 512), 0);
    vmlet_error err = { 0 };
    f->blk = virtio_blk_new(f->path, false, NULL, &err);
    assert_non_null(f->blk);
    f->ops = &virtio_blk_device(f->blk)->ops;
    assert_int_equal(f->ops->load(f->blk, st, (size_t)len, why, sizeof why), -1);
    char want[512];
    snprintf(want, sizeof want,
             "its image %s has %d bytes, but had %d when the snapshot was taken; restore "
             "with the disk as it was",
             f->path, IMG_SIZE + 512, IMG_SIZE);
    assert_string_equal(why, want);
}

/* ---- the synchronous path used by the fuzzer ------------------------------ */

static void sync_path(void **state)
{
    struct fx *f = *state; /* never activated */
    set_ring(f, 0);
    struct virtq_chain *c = malloc(sizeof *c);
    uint64_t buf = galloc(f, 1024);
    memset(hva(f, buf), 0x42, 1024);

    uint64_t h = header(f, VIRTIO_BLK_T_OUT, 4), st = status_buf(f);
    struct seg w[] = { { h, 16, 0 }, { buf, 1024, 0 }, { st, 1, F_WRITE } };
    post(f, w, 3, false);
    assert_int_equal(virtq_pop(&f->q, c), VIRTQ_CHAIN);
    assert_int_equal(virtio_blk_process_chain_sync(f->blk, ALL_FEATURES, &f->q, c),
                     VIRTIO_BLK_S_OK);
    assert_int_equal(*hva(f, st), VIRTIO_BLK_S_OK);
    assert_int_equal(used_idx(f), 1);
    assert_true(file_is_pattern(f, 0, 4 * 512));
    uint8_t b[1024];
    file_read(f, 4 * 512, b, sizeof b);
    assert_memory_equal(b, hva(f, buf), 1024);

    h = header(f, VIRTIO_BLK_T_IN, 4);
    uint64_t rb = galloc(f, 1024);
    struct seg r[] = { { h, 16, 0 }, { rb, 1024, F_WRITE }, { st, 1, F_WRITE } };
    post(f, r, 3, false);
    assert_int_equal(virtq_pop(&f->q, c), VIRTQ_CHAIN);
    assert_int_equal(virtio_blk_process_chain_sync(f->blk, ALL_FEATURES, &f->q, c),
                     VIRTIO_BLK_S_OK);
    assert_memory_equal(hva(f, rb), b, 1024);
    assert_int_equal(used_len_at(f, 1), 1025);

    struct seg bad[] = { { h, 16, 0 } };
    post(f, bad, 1, false);
    assert_int_equal(virtq_pop(&f->q, c), VIRTQ_CHAIN);
    assert_int_equal(virtio_blk_process_chain_sync(f->blk, ALL_FEATURES, &f->q, c), -1);
    assert_int_equal(used_len_at(f, 2), 0);

    struct dwz z = { 4, 2, 0 };
    uint64_t p = dwz_payload(f, &z, 1);
    h = header(f, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    struct seg wz[] = { { h, 16, 0 }, { p, 16, 0 }, { st, 1, F_WRITE } };
    post(f, wz, 3, false);
    assert_int_equal(virtq_pop(&f->q, c), VIRTQ_CHAIN);
    assert_int_equal(virtio_blk_process_chain_sync(f->blk, ALL_FEATURES, &f->q, c),
                     VIRTIO_BLK_S_OK);
    assert_true(file_is_zero(f, 4 * 512, 1024));
    free(c);
}

/* ---- a new image for a running disk (virtio_blk_set_path) --------------- */

#define NEW_SECTORS 4096

static uint8_t pat2(uint64_t off)
{
    return (uint8_t)(off * 3 + (off >> 9) * 5 + 0x40);
}

/* A second image of sectors whole sectors in pat2, beside the first. */
static void make_image2(char *path, size_t pathlen, uint64_t sectors)
{
    snprintf(path, pathlen, "%s/vmlet-blk2-XXXXXX", tmpdir());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = (size_t)sectors * 512;
    uint8_t *buf = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        buf[i] = pat2(i);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    free(buf);
    close(fd);
}

static uint64_t cfg_capacity(struct fx *f)
{
    uint64_t cap;
    f->ops->config_read(f->blk, 0, (uint8_t *)&cap, 8);
    return cap;
}

static bool guest_is(struct fx *f, uint64_t gpa, uint64_t off, size_t len,
                     uint8_t (*want)(uint64_t))
{
    for (size_t i = 0; i < len; i++)
        if (*hva(f, gpa + i) != want(off + i))
            return false;
    return true;
}

static bool fd_is(int fd, uint64_t off, size_t len, uint8_t (*want)(uint64_t))
{
    uint8_t *b = malloc(len);
    bool ok = pread(fd, b, len, (off_t)off) == (ssize_t)len;
    for (size_t i = 0; i < len && ok; i++)
        ok = b[i] == want(off + i);
    free(b);
    return ok;
}

/* The swap on an active disk: the capacity in the config space is the new
 * image's, the driver gets one config interrupt, reads (past the old end
 * too) and writes go to the new image, the old one is left alone and
 * unlocked, the new one locked. */
static void set_path_swaps_a_running_disk(void **state)
{
    struct fx *f = *state;
    char path2[256];
    make_image2(path2, sizeof path2, NEW_SECTORS);
    uint64_t buf = galloc(f, 4096);
    assert_int_equal(read_sectors(f, 1, buf, 1024), VIRTIO_BLK_S_OK);
    assert_true(guest_is(f, buf, 512, 1024, pat));
    assert_int_equal(read_sectors(f, IMG_SECTORS, buf, 512), VIRTIO_BLK_S_IOERR); /* past the end */
    unsigned c0 = get_count(&f->t, &f->t.config_changes);

    vmlet_error err = { 0 };
    assert_int_equal(virtio_blk_set_path(f->blk, path2, &err), 0);
    assert_int_equal(cfg_capacity(f), NEW_SECTORS);
    assert_int_equal(virtio_blk_capacity(f->blk), NEW_SECTORS);
    assert_int_equal(get_count(&f->t, &f->t.config_changes), c0 + 1);
    assert_string_equal(disk_path(virtio_blk_disk(f->blk)), path2);

    assert_int_equal(read_sectors(f, 1, buf, 1024), VIRTIO_BLK_S_OK);
    assert_true(guest_is(f, buf, 512, 1024, pat2));
    assert_int_equal(read_sectors(f, IMG_SECTORS + 10, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(guest_is(f, buf, (IMG_SECTORS + 10) * 512ull, 512, pat2));
    assert_int_equal(read_sectors(f, NEW_SECTORS, buf, 512), VIRTIO_BLK_S_IOERR);
    memset(hva(f, buf), 0x99, 512);
    assert_int_equal(write_sectors(f, 3, buf, 512), VIRTIO_BLK_S_OK);
    int fd2 = open(path2, O_RDONLY);
    uint8_t b[512];
    assert_int_equal(pread(fd2, b, 512, 3 * 512), 512);
    close(fd2);
    for (unsigned i = 0; i < 512; i++)
        assert_int_equal(b[i], 0x99);
    assert_true(file_is_pattern(f, 0, IMG_SECTORS * 512ull)); /* untouched */

    struct disk *d;
    assert_int_equal(disk_open(&d, f->path, false, &err), 0); /* unlocked */
    disk_close(d);
    assert_int_equal(disk_open(&d, path2, false, &err), -1); /* ours now */
    assert_non_null(strstr(err.message, "locked"));
    unlink(path2);
}

/* Kata's pool: an empty placeholder (capacity 0: every read past the end),
 * filled with a real image, emptied again; each change one interrupt. */
static void set_path_placeholder_and_back(void **state)
{
    struct fx *f = *state;
    char empty[256], path2[256];
    make_image2(empty, sizeof empty, 0);
    make_image2(path2, sizeof path2, NEW_SECTORS);
    uint64_t buf = galloc(f, 512);
    unsigned c0 = get_count(&f->t, &f->t.config_changes);
    vmlet_error err = { 0 };
    assert_int_equal(virtio_blk_set_path(f->blk, empty, &err), 0);
    assert_int_equal(cfg_capacity(f), 0);
    assert_int_equal(read_sectors(f, 0, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(virtio_blk_set_path(f->blk, path2, &err), 0);
    assert_int_equal(cfg_capacity(f), NEW_SECTORS);
    assert_int_equal(read_sectors(f, 7, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(guest_is(f, buf, 7 * 512, 512, pat2));
    assert_int_equal(virtio_blk_set_path(f->blk, empty, &err), 0);
    assert_int_equal(cfg_capacity(f), 0);
    assert_int_equal(read_sectors(f, 7, buf, 512), VIRTIO_BLK_S_IOERR);
    assert_int_equal(get_count(&f->t, &f->t.config_changes), c0 + 3);
    unlink(empty);
    unlink(path2);
}

/* A path that cannot be served is refused with the file's own message,
 * and the disk goes on as before: same capacity, same image, no
 * interrupt. */
static void set_path_refuses_bad_paths(void **state)
{
    struct fx *f = *state;
    char path2[256];
    make_image2(path2, sizeof path2, NEW_SECTORS);
    vmlet_error err = { 0 };
    struct disk *held;
    assert_int_equal(disk_open(&held, path2, true, &err), 0); /* another VM has it */
    unsigned c0 = get_count(&f->t, &f->t.config_changes);
    static const struct {
        const char *path, *says;
    } bad[] = {
        { "/nonexistent/vmlet.img", "does not exist" },
        { "/", "not a regular file or block device" },
        { "/dev/null", "not a regular file or block device" },
        { NULL, "in use by another process (locked)" },
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *p = bad[i].path ? bad[i].path : path2;
        memset(&err, 0, sizeof err);
        assert_int_equal(virtio_blk_set_path(f->blk, p, &err), -1);
        assert_int_equal(err.code, VMLET_ERR_FILE);
        assert_non_null(strstr(err.message, p));
        if (!strstr(err.message, bad[i].says))
            fail_msg("%s: '%s' does not say '%s'", p, err.message, bad[i].says);
    }
    disk_close(held);
    assert_int_equal(get_count(&f->t, &f->t.config_changes), c0);
    assert_int_equal(cfg_capacity(f), IMG_SECTORS);
    assert_string_equal(disk_path(virtio_blk_disk(f->blk)), f->path);
    uint64_t buf = galloc(f, 512);
    assert_int_equal(read_sectors(f, 9, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(guest_is(f, buf, 9 * 512, 512, pat));
    unlink(path2);
}

/* A read-only disk opens its new image read-only (a 0444 file is fine for
 * it, even as root), still refuses writes, and serves the new data. */
static void set_path_read_only(void **state)
{
    struct fx *f = *state;
    char path2[256];
    make_image2(path2, sizeof path2, NEW_SECTORS);
    assert_int_equal(chmod(path2, 0444), 0);
    vmlet_error err = { 0 };
    assert_int_equal(virtio_blk_set_path(f->blk, path2, &err), 0);
    uint64_t buf = galloc(f, 512);
    assert_int_equal(read_sectors(f, 11, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(guest_is(f, buf, 11 * 512, 512, pat2));
    assert_int_equal(write_sectors(f, 11, buf, 512), VIRTIO_BLK_S_IOERR);
    int fd = open(path2, O_RDONLY);
    assert_true(fd_is(fd, 0, (size_t)NEW_SECTORS * 512, pat2));
    close(fd);
    unlink(path2);
}

/* The same image again: its new size is read (Firecracker's PATCH after
 * the file grew), without tripping over the disk's own lock. */
static void set_path_same_image_rereads_size(void **state)
{
    struct fx *f = *state;
    assert_int_equal(truncate(f->path, (IMG_SECTORS + 8) * 512), 0);
    unsigned c0 = get_count(&f->t, &f->t.config_changes);
    vmlet_error err = { 0 };
    assert_int_equal(virtio_blk_set_path(f->blk, f->path, &err), 0);
    assert_int_equal(cfg_capacity(f), IMG_SECTORS + 8);
    assert_int_equal(get_count(&f->t, &f->t.config_changes), c0 + 1);
    uint64_t buf = galloc(f, 512);
    assert_int_equal(read_sectors(f, IMG_SECTORS + 7, buf, 512), VIRTIO_BLK_S_OK);
    struct disk *d;
    assert_int_equal(disk_open(&d, f->path, true, &err), -1); /* still locked */
}

struct swap_call {
    struct fx *f;
    const char *path;
    int rc;
    atomic_bool done;
};

static void *swap_thread(void *arg)
{
    struct swap_call *c = arg;
    vmlet_error err = { 0 };
    c->rc = virtio_blk_set_path(c->f->blk, c->path, &err);
    atomic_store(&c->done, true);
    return NULL;
}

/* Reads in flight on the old image (a pipe with nothing in it yet) finish
 * there and are completed to the driver before the swap returns; the
 * next read is the new image's. */
static void set_path_finishes_in_flight_io(void **state)
{
    struct fx *f = *state;
    f->ops->reset(f->blk);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    disk_replace_fd(virtio_blk_disk(f->blk), p[0]);
    activate(f, ALL_FEATURES);
    char path2[256];
    make_image2(path2, sizeof path2, NEW_SECTORS);
    enum { N = 4 };
    uint64_t buf = galloc(f, N * 512), st[N];
    for (unsigned i = 0; i < N; i++) {
        st[i] = status_buf(f);
        struct seg s[] = { { header(f, VIRTIO_BLK_T_IN, i), 16, 0 },
                           { buf + i * 512ull, 512, F_WRITE },
                           { st[i], 1, F_WRITE } };
        post(f, s, 3, false);
    }
    kick(f);
    for (int i = 0; i < 10000 && __atomic_load_n(&f->q.last_avail, __ATOMIC_ACQUIRE) != N; i++)
        usleep(1000);
    assert_int_equal(__atomic_load_n(&f->q.last_avail, __ATOMIC_ACQUIRE), N);

    struct swap_call c = { .f = f, .path = path2 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, swap_thread, &c), 0);
    usleep(50 * 1000);
    assert_false(atomic_load(&c.done)); /* waiting for the old image's reads */
    assert_int_equal(used_idx(f), 0);
    assert_int_equal(cfg_capacity(f), IMG_SECTORS);
    uint8_t data[N * 512];
    memset(data, 0x42, sizeof data);
    assert_int_equal(write(p[1], data, sizeof data), (ssize_t)sizeof data);
    pthread_join(t, NULL);
    assert_int_equal(c.rc, 0);
    assert_int_equal(used_idx(f), N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(*hva(f, st[i]), VIRTIO_BLK_S_OK);
        assert_int_equal(*hva(f, buf + i * 512ull + 511), 0x42);
    }
    /* The pipe was closed with the old image: its writer sees no reader. */
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(write(p[1], data, 1), -1);
    assert_int_equal(errno, EPIPE);
    close(p[1]);
    assert_int_equal(read_sectors(f, 2, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(guest_is(f, buf, 2 * 512, 512, pat2));
    unlink(path2);
}

/* Swapped while no driver runs the device: nothing to interrupt then; the
 * driver that starts it next gets the config interrupt (it may have read
 * the capacity during the change) and sees the new capacity. */
static void set_path_before_activation(void **state)
{
    struct fx *f = *state;
    char path2[256];
    make_image2(path2, sizeof path2, NEW_SECTORS);
    vmlet_error err = { 0 };
    assert_int_equal(virtio_blk_set_path(f->blk, path2, &err), 0);
    assert_int_equal(cfg_capacity(f), NEW_SECTORS);
    assert_int_equal(get_count(&f->t, &f->t.config_changes), 0);
    activate(f, ALL_FEATURES);
    assert_true(wait_count(&f->t, &f->t.config_changes, 1));
    uint64_t buf = galloc(f, 512);
    assert_int_equal(read_sectors(f, 5, buf, 512), VIRTIO_BLK_S_OK);
    assert_true(guest_is(f, buf, 5 * 512, 512, pat2));
    /* Once told, a reset and a new activation bring no second one. */
    reactivate(f, ALL_FEATURES);
    assert_int_equal(read_sectors(f, 5, buf, 512), VIRTIO_BLK_S_OK);
    assert_int_equal(get_count(&f->t, &f->t.config_changes), 1);
    unlink(path2);
}

#define T(fn, s) cmocka_unit_test_setup_teardown(fn, s, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(config_space_read_write, setup_rw),
        T(config_space_read_only, setup_ro),
        T(reads_the_image, setup_rw),
        T(writes_and_reads_back_multi_segment, setup_rw),
        T(header_split_across_descriptors, setup_rw),
        T(writes_without_flush_negotiated, setup_rw),
        T(many_segments, setup_rw),
        T(image_shrunk_under_us, setup_rw),
        T(flush, setup_rw),
        T(counts_requests, setup_rw),
        T(read_only_refuses_writes, setup_ro),
        T(out_of_range_sectors, setup_rw),
        T(bad_lengths, setup_rw),
        T(unknown_types_are_unsupported, setup_rw),
        T(get_id, setup_rw),
        T(serial_checks, setup_rw),
        T(discard_deallocates, setup_rw),
        T(discard_flags_and_limits, setup_rw),
        T(discard_needs_the_feature, setup_rw),
        T(write_zeroes, setup_rw),
        T(write_zeroes_falls_back_without_zero_range, setup_shm),
        T(lock_refuses_second_user, setup_rw),
        T(read_only_images_may_be_shared, setup_ro),
        cmocka_unit_test(open_errors_name_the_file),
        cmocka_unit_test(disk_sync_and_async_agree),
        T(bad_requests_do_not_stop_good_ones, setup_rw),
        T(broken_chain_sets_needs_reset, setup_rw),
        T(broken_ring_index, setup_rw),
        T(many_requests_in_flight, setup_rw),
        T(throttles_when_the_backend_is_full, setup_rw),
        T(reset_waits_for_in_flight_io, setup_rw),
        T(requests_posted_before_activation, setup_idle),
        T(event_idx_suppresses_interrupts, setup_rw),
        T(no_interrupt_flag_without_event_idx, setup_rw),
        T(sync_path, setup_idle),
        T(request_over_seg_max, setup_big),
        T(segment_over_size_max, setup_big),
        T(request_over_total_cap, setup_big),
        T(reset_cancels_in_flight_io, setup_big),
        T(stop_finishes_in_flight_io, setup_rw),
        T(state_round_trip_and_size_check, setup_rw),
        T(set_path_swaps_a_running_disk, setup_rw),
        T(set_path_placeholder_and_back, setup_rw),
        T(set_path_refuses_bad_paths, setup_rw),
        T(set_path_read_only, setup_ro),
        T(set_path_same_image_rereads_size, setup_rw),
        T(set_path_finishes_in_flight_io, setup_rw),
        T(set_path_before_activation, setup_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
