/* virtio-rng, the entropy device (virtio 1.2 section 5.4): the guest's
 * /dev/hwrng, filled from the host's getrandom(2). */
#ifndef VMLET_VIRTIO_RNG_H
#define VMLET_VIRTIO_RNG_H

#include <stdint.h>
#include "vmlet.h"
#include "virtio/virtio.h"

/* At most this many bytes go into one request, however large its buffers:
 * the used length tells the driver how many it got (section 5.4.6). */
#define VIRTIO_RNG_MAX_REQUEST   (64 * 1024)
/* Default rate cap: a token bucket of VIRTIO_RNG_DEFAULT_BURST bytes,
 * refilled at VIRTIO_RNG_DEFAULT_RATE bytes per second. A Linux guest
 * takes a few hundred bytes at boot and little after; the cap keeps a
 * guest that asks without end from holding a host core (at 1 MiB/s,
 * getrandom costs well under 1% of one). */
#define VIRTIO_RNG_DEFAULT_RATE  (1024 * 1024)
#define VIRTIO_RNG_DEFAULT_BURST (256 * 1024)

struct virtio_rng;

/* Returns NULL with err filled when out of memory or file descriptors. */
struct virtio_rng *virtio_rng_new(vmlet_error *err);
/* Stops the device (as ops->reset) and frees it. Call it only after the
 * transport will make no more ops calls on it. */
void virtio_rng_free(struct virtio_rng *r);

/* Changes the rate cap; bytes_per_sec 0 means no cap. burst (at least 1)
 * is what may be taken at once after a quiet spell, and also bounds one
 * request. Takes effect at the next activate(); the bucket's level is kept
 * across device resets, so a guest cannot refill it by resetting. */
void virtio_rng_set_rate(struct virtio_rng *r, uint64_t bytes_per_sec, uint64_t burst);

/* The device as the VM and the transport see it (NULL for NULL): its
 * ops (device.h) are the transport's callbacks; their dev argument is
 * the virtio_rng.
 *
 * Threads: activate() starts one thread ("virtio-rng") that polls the
 * queue's kick eventfd and an internal stop eventfd; while the bucket is
 * empty it sleeps in poll() until enough bytes are due (never a busy
 * loop), with a request held back (not returned early or half-filled).
 * It runs with every signal blocked. Only getrandom(GRND_NONBLOCK) is
 * used: while it fails with EAGAIN (host entropy pool not yet initialised,
 * early in the host's boot) the request is held back and tried again every
 * 100 ms in the same poll(), so a stop is never kept waiting. reset()
 * (and free) stop the thread and return after it has been joined, so it
 * no longer touches the queue or guest memory; reset() must not be called
 * from the device's own thread, nor with a lock held that
 * virtio_notify_queue() or virtio_set_needs_reset() take. activate/reset
 * are serialised by a device mutex. */
struct virtio_device *virtio_rng_device(struct virtio_rng *r);
/* Requests answered and random bytes given so far; any thread. */
void virtio_rng_get_stats(const struct virtio_rng *r, uint64_t *requests, uint64_t *bytes);

#endif
