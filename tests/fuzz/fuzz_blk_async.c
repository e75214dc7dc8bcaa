/* libFuzzer target for virtio-blk's asynchronous path (src/virtio/blk.c
 * with src/backend/disk.c through io_uring): the device's own thread pops
 * requests, submits them, reaps completions (short transfers and their
 * resubmission included) and answers them, and a reset stops it with I/O
 * in flight. fuzz_virtio_blk covers the request parsing on the synchronous
 * path; this one is about the life of a request. Build with clang
 * -fsanitize=fuzzer,address,undefined and -Wl,--wrap=... (see
 * tests/fuzz/meson.build), or with -DVMLET_FUZZ_STANDALONE and any
 * compiler to replay files. Without io_uring (liburing, or a kernel that
 * refuses it) it stops at once with the reason: it never passes silently.
 *
 * The images: 64 KiB + 300 bytes (not a whole number of sectors, so the
 * last bytes are past the capacity), one read-write and one read-only,
 * made in /dev/shm (or $TMPDIR, /tmp) and unlinked at once; the
 * read-write one is cleared before every input.
 *
 * Input: the layout of fuzz_device.h (one queue, at most 256 entries),
 * with
 *   param 0  bit 0: the read-only device; bits 1-4: FLUSH, DISCARD,
 *            WRITE_ZEROES, SIZE_MAX+SEG_MAX not negotiated
 *   param 1  when the reset comes: 0 once idle, 1 right after activation,
 *            2 right after the held chains are published, 3 once idle
 *            after them; bit 2: the image is cut to param 2 * 256 bytes
 *            once the device is idle, before the held chains; bit 3: the
 *            same right after activation, under requests in flight
 *   param 2  the size the image is cut to, in 256-byte units
 *
 * Checks (besides fuzz_device.h's): a status written is OK, IOERR or
 * UNSUPP (looked at when no other I/O is in flight, so no aliasing read
 * can be writing it); no I/O is in flight after the reset; the reset
 * takes under a second. */
#include <fcntl.h>
#include <stdint.h>

#define FUZZ_TARGET "fuzz_blk_async"
#include "fuzz_util.h"
#include "fuzz_device.h"
#include "backend/disk.h"
#include "virtio/blk.h"

#define IMG_SIZE (64 * 1024 + 300)

static struct virtio_blk *blk_rw, *blk_ro, *blk;
static int rw_fd = -1;

static struct virtio_blk *make_device(bool read_only, int *keep_fd)
{
    char path[256];
    int fd = scratch_image("vmlet-fuzz-blk-async", IMG_SIZE, path, sizeof path);
    vmlet_error err;
    struct virtio_blk *b = virtio_blk_new(path, read_only, "fuzz-async", &err);
    unlink(path); /* the open descriptors keep it alive */
    if (!b) {
        fprintf(stderr, "fuzz_blk_async: cannot run without the io_uring disk: %s\n", err.message);
        abort();
    }
    if (keep_fd)
        *keep_fd = fd;
    else
        close(fd);
    return b;
}

static void on_push(const struct virtq *q, uint16_t head, uint32_t len,
                    const struct fz_popped *pushed)
{
    (void)q;
    (void)head;
    if (len && pushed && pushed->last_byte && disk_in_flight(virtio_blk_disk(blk)) == 0)
        fz_check(*pushed->last_byte <= VIRTIO_BLK_S_UNSUPP, "status not OK, IOERR or UNSUPP");
}

/* Idle only with nothing in flight: completions are still to come. */
static bool nothing_in_flight(void)
{
    return disk_in_flight(virtio_blk_disk(blk)) == 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    if (!blk_rw) {
        blk_rw = make_device(false, &rw_fd);
        blk_ro = make_device(true, NULL);
    }
    fz.on_push = on_push;
    fz.idle_extra = nothing_in_flight;
    if (size < FZ_HEADER)
        return 0;
    uint8_t flags = data[0], when = data[1];
    bool ro = flags & 1;
    uint64_t features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_BLK_SIZE);
    if (!(flags & 2))
        features |= 1ull << VIRTIO_BLK_F_FLUSH;
    if (!(flags & 4) && !ro)
        features |= 1ull << VIRTIO_BLK_F_DISCARD;
    if (!(flags & 8) && !ro)
        features |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
    if (!(flags & 16))
        features |= (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX);
    if (ro)
        features |= 1ull << VIRTIO_BLK_F_RO;
    if (data[4] & 16) /* the queue's own bits (fuzz_device.h) */
        features |= 1ull << VIRTIO_F_EVENT_IDX;
    if (data[4] & 32)
        features |= 1ull << VIRTIO_F_INDIRECT_DESC;
    struct virtio_queues qs;
    if (!fz_setup(data, size, 1, VIRTIO_BLK_QUEUE_SIZE, &qs, features))
        return 0;
    /* A fresh, zeroed image of the full size. */
    fz_check(ftruncate(rw_fd, 0) == 0 && ftruncate(rw_fd, IMG_SIZE) == 0, "ftruncate");
    blk = ro ? blk_ro : blk_rw;
    struct virtio_device *dev = virtio_blk_device(blk);
    off_t cut = (off_t)fz_param(2) * 256;

    unsigned gen = fz_idle_gen();
    fz_check(dev->ops.activate(dev, &qs) == 0, "activate failed");
    if ((when & 8) && !ro)
        fz_check(ftruncate(rw_fd, cut) == 0, "ftruncate"); /* under requests in flight */
    if ((when & 3) != 1) {
        fz_wait_idle(gen);
        gen = fz_idle_gen();
        if ((when & 4) && !ro)
            fz_check(ftruncate(rw_fd, cut) == 0, "ftruncate");
        if ((when & 3) >= 2 && fz_publish(1) && (when & 3) == 3)
            fz_wait_idle(gen);
    }
    /* A reset must not wait on the guest or on requests that never end; it
     * takes milliseconds. The bound is only there to catch a hang: 1 s
     * failed once on a host with load 9 on 2 cores (the input replayed in
     * 6-11 ms), so it is 10 s. */
    uint64_t t0 = now_ms();
    dev->ops.reset(dev);
    fz_check(now_ms() - t0 < 10000, "the reset took 10 seconds or more");
    fz_after_reset(1);
    fz_check(disk_in_flight(virtio_blk_disk(blk)) == 0, "I/O in flight after the reset");
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
