/* libFuzzer target for virtio-balloon (src/virtio/balloon.c) as a hostile
 * driver sees it: inflate and deflate requests of any shape (page numbers
 * outside RAM, below the floor, duplicated, the rings' own pages, lengths
 * not a multiple of 4, writable buffers), statistics buffers short, long
 * or repeated, free page reports of any range, served by the device's own
 * thread until idle, held chains published later, then a reset. Build as
 * tests/fuzz/meson.build does, or with -DVMLET_FUZZ_STANDALONE and any
 * compiler to replay files.
 *
 * The guest is fuzz_device.h's 64 KiB, so balloon.c is built with its
 * floor at 24 KiB (BALLOON_FLOOR) instead of 1 MiB: pages above it can be
 * discarded, the rings' pages below it cannot. CLOCK_MONOTONIC jumps an
 * hour on every read (--wrap=clock_gettime), so a held statistics buffer
 * is due at once and the thread goes idle without waiting seconds.
 *
 * Input: the layout of fuzz_device.h (queues inflate, deflate, and a third
 * that is), with
 *   param 0  bit 0: the statistics queue (else the reporting queue);
 *            bit 1: the host sets a target of param 1 pages first
 *   param 2..3  a configuration write: offset param 2 % 12, length
 *            param 3 % 5, data from the start of guest memory
 *
 * Checks (besides fuzz_device.h's): every chain comes back with used
 * length 0 (the device writes nothing); every madvise is on whole pages
 * inside guest RAM at or above the floor; the bytes returned are at most
 * the pages inflated and reported. */
#include <stdint.h>
#include <sys/mman.h>

#include "fuzz_device.h"
#include "virtio/balloon.h"

static void on_push(const struct virtq *q, uint16_t head, uint32_t len,
                    const struct fz_popped *pushed)
{
    (void)q;
    (void)head;
    (void)pushed;
    fz_check(len == 0, "a balloon chain used with a length");
}

int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice)
{
    uint8_t *p = addr;
    if (advice == MADV_DONTNEED && fz.ram && p >= fz.ram && p < fz.ram + FZ_RAM_SIZE) {
        fz_check(p >= fz.ram + BALLOON_FLOOR, "discarded below the floor");
        fz_check(len <= (size_t)(fz.ram + FZ_RAM_SIZE - p), "discarded past guest RAM");
        fz_check((p - fz.ram) % 4096 == 0 && len % 4096 == 0 && len > 0,
                 "discarded part of a page");
    }
    return __real_madvise(addr, len, advice);
}

int __real_clock_gettime(clockid_t clk, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clk, struct timespec *ts)
{
    static _Atomic long jump;
    int r = __real_clock_gettime(clk, ts);
    if (clk == CLOCK_MONOTONIC)
        ts->tv_sec += atomic_fetch_add(&jump, 3600) + 3600;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    fz.on_push = on_push;
    bool stats = size >= FZ_HEADER && (data[0] & 1);
    uint64_t features = (1ull << VIRTIO_F_VERSION_1) |
                        (stats ? 1ull << VIRTIO_BALLOON_F_STATS_VQ
                               : 1ull << VIRTIO_BALLOON_F_PAGE_REPORTING);
    struct virtio_queues qs;
    if (!fz_setup(data, size, 3, 64, &qs, features))
        return 0;
    vmlet_error err;
    struct virtio_balloon *b = virtio_balloon_new(
        VMLET_BALLOON_DEFLATE_ON_OOM | (stats ? 0 : VMLET_BALLOON_FREE_PAGE_REPORTING),
        stats ? 1 : 0, &err);
    fz_check(b != NULL, err.message);
    struct virtio_device *dev = virtio_balloon_device(b);
    fz_check(dev->ops.num_queues == 3, "three queues expected");
    if (fz_param(0) & 2)
        virtio_balloon_set_target(b, fz_param(1));

    unsigned gen = fz_idle_gen();
    fz_check(dev->ops.activate(dev, &qs) == 0, "activate failed");
    uint8_t cfg[12];
    dev->ops.config_write(dev, fz_param(2) % 12, fz.ram, fz_param(3) % 5);
    dev->ops.config_read(dev, fz_param(2) % 12, cfg, sizeof cfg - fz_param(2) % 12);
    fz_wait_idle(gen);
    gen = fz_idle_gen();
    if (fz_publish(3))
        fz_wait_idle(gen);
    dev->ops.reset(dev);
    fz_after_reset(3);

    struct virtio_balloon_stats s;
    virtio_balloon_get_stats(b, &s);
    fz_check(s.returned_bytes <= (s.inflated_pages + s.reported_pages) * 4096,
             "more bytes returned than pages given");
    vmlet_balloon_info info;
    virtio_balloon_get_info(b, &info);
    virtio_balloon_free(b);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
