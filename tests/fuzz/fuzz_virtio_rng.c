/* libFuzzer target for virtio-rng (src/virtio/rng.c) as a hostile driver
 * sees it: request chains of any shape (readable descriptors, none
 * writable, zero lengths, huge or aliased buffers, indirect tables, broken
 * rings) served by the device's own thread until it is idle, some chains
 * published later with a kick, then a reset. Build with clang
 * -fsanitize=fuzzer,address,undefined and -Wl,--wrap=... (see
 * tests/fuzz/meson.build), or with -DVMLET_FUZZ_STANDALONE and any compiler
 * to replay files.
 *
 * Input: the layout of fuzz_device.h (one queue, at most 64 entries), with
 *   param 0  bit 0: a rate cap of 4 GiB/s with a burst of (param 1 + 1) KiB
 *            instead of none (the token bucket's path without long waits)
 *
 * Checks (besides fuzz_device.h's: iovecs in RAM, each used length at most
 * the chain's writable bytes): at most VIRTIO_RNG_MAX_REQUEST bytes per
 * request, and the device's byte counter is the sum of the used lengths. */
#include <stdint.h>

#include "fuzz_device.h"
#include "virtio/rng.h"

static uint64_t used_sum;

static void on_push(const struct virtq *q, uint16_t head, uint32_t len,
                    const struct fz_popped *pushed)
{
    (void)pushed;
    (void)q;
    (void)head;
    fz_check(len <= VIRTIO_RNG_MAX_REQUEST, "more than a request's worth of bytes");
    used_sum += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    fz.on_push = on_push;
    struct virtio_queues qs;
    if (!fz_setup(data, size, 1, 64, &qs, 1ull << VIRTIO_F_VERSION_1))
        return 0;
    vmlet_error err;
    struct virtio_rng *r = virtio_rng_new(&err);
    fz_check(r != NULL, err.message);
    if (fz_param(0) & 1)
        virtio_rng_set_rate(r, 4ull << 30, ((uint64_t)fz_param(1) + 1) * 1024);
    else
        virtio_rng_set_rate(r, 0, 1);
    struct virtio_device *dev = virtio_rng_device(r);
    used_sum = 0;

    unsigned gen = fz_idle_gen();
    fz_check(dev->ops.activate(dev, &qs) == 0, "activate failed");
    fz_wait_idle(gen);
    gen = fz_idle_gen();
    if (fz_publish(1))
        fz_wait_idle(gen);
    dev->ops.reset(dev);
    fz_after_reset(1);

    uint64_t requests, bytes;
    virtio_rng_get_stats(r, &requests, &bytes);
    fz_check(bytes == used_sum, "byte counter is not the sum of the used lengths");
    virtio_rng_free(r);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
