/* What every virtio device (blk.c, net.c, console.c, rng.c) shares, kept
 * in one place: struct virtio_device, which each device embeds as its
 * first member and which holds the device's ops table, the lock that
 * serialises activate/reset/stop/free and the device thread; the one
 * activate and stop path built on them; and the iovec, kick and
 * little-endian helpers the data paths and configuration spaces use.
 *
 *     struct virtio_foo { struct virtio_device vdev; ... };
 *     static const struct virtio_device_hooks foo_hooks = {
 *         foo_thread, foo_take_queues, foo_release_queues,
 *     };
 *     struct virtio_foo *foo = virtio_device_new(sizeof *foo, &foo_ops, &foo_hooks, err);
 *     ...
 *     virtio_device_free(&foo->vdev);            // or ops.free, which may do more
 */
#ifndef VMLET_VIRTIO_DEVICE_H
#define VMLET_VIRTIO_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include "vmlet.h"
#include "thread.h"
#include "sandbox.h"
#include "iov.h"
#include "virtio/virtio.h"

/* The device's part of the shared activate/stop path. Each runs with the
 * device's lock held and its thread not running. */
struct virtio_device_hooks {
    void *(*thread_fn)(void *dev);
    /* Takes what the thread needs from queues (transport is already
     * set). Returns 0, or -1 to fail activation. May be NULL. */
    int (*take_queues)(void *dev, const struct virtio_queues *queues);
    /* After the thread ended, or failed to start: the driver owns its
     * buffers again, so forget any that were held. May be NULL. */
    void (*release_queues)(void *dev);
    /* The system calls thread_fn makes (src/sandbox.h). */
    const struct sandbox_rules *sandbox;
};

struct virtio_device {
    /* What the transport calls; `dev` in each callback is this struct,
     * which is also the device (first member). */
    struct virtio_device_ops ops;
    const struct virtio_device_hooks *hooks;

    pthread_mutex_t lock; /* activate/reset/stop/free, and device settings */
    struct device_thread thread;
    struct virtio_transport *transport; /* while activated */
    /* This device's own rules, when they differ per instance (a shared
     * directory's Landlock rule); NULL: hooks->sandbox. */
    const struct sandbox_rules *sandbox;
    bool initialised; /* virtio_device_new succeeded, not yet destroyed */
    /* ops->stop is ending the thread: finish what is in flight rather
     * than drop it (lock held). */
    bool quiescing;
};

/* Allocates a zeroed device of size bytes (a struct whose first member is
 * its struct virtio_device) and initialises that: copies ops (name, id,
 * queues, features, config and callbacks), fills in the shared activate,
 * reset, stop (virtio_device_quiesce) and free where ops leaves them
 * NULL, and creates the lock and the thread's stop eventfd. Returns the
 * device, or NULL with err filled. */
void *virtio_device_new(size_t size, const struct virtio_device_ops *ops,
                        const struct virtio_device_hooks *hooks, vmlet_error *err);
/* Creates the device's thread under its sandbox (hooks->sandbox, mode),
 * before the guest runs; without this the first activation creates it
 * unsandboxed (unit tests, fuzz targets). Returns 0 or -1 with err. */
int virtio_device_spawn(struct virtio_device *d, vmlet_seccomp_mode mode, vmlet_error *err);
/* Stops the thread and releases what virtio_device_new made but the
 * memory itself; for a device's own free, which then frees the rest. */
void virtio_device_destroy(struct virtio_device *d);
/* virtio_device_destroy, then frees the device; no-op for NULL. The
 * default ops->free (takes a void *, so it can be one). */
void virtio_device_free(void *dev);

/* The shared callbacks. activate stops a thread left from an earlier
 * activate, then take_queues, then starts thread_fn. reset and stop end
 * the thread and call release_queues. */
int virtio_device_activate(void *dev, const struct virtio_queues *queues);
void virtio_device_reset(void *dev);
/* As reset, for a device's own reset that does more under the lock. */
void virtio_device_stop_locked(struct virtio_device *d);
/* The default ops->stop: ends the thread with quiescing set, so
 * release_queues gives held chains back (virtq_unpop) and keeps the
 * device's settings. */
void virtio_device_quiesce(void *dev);
/* ops->save and ops->load of a device with no state of its own beyond
 * the transport's and its queues' (virtio-rng). */
int virtio_device_save_none(void *dev, uint8_t *buf, size_t cap);
int virtio_device_load_none(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen);

/* The next chain of q for device d: VIRTQ_CHAIN; VIRTQ_EMPTY once the
 * driver has been asked to notify and nothing came meanwhile; or
 * VIRTQ_BROKEN after NEEDS_RESET was set and *broken made true. It takes
 * at most one chain and looks at most twice (a driver cannot keep it
 * looking), so a caller's budget, counted in chains, bounds its loop.
 * After VIRTQ_EMPTY notifications are on; after VIRTQ_CHAIN they are as
 * the caller had them, or off (a caller that holds the chain and wants
 * no kicks disables them itself). */
enum virtq_pop_result virtio_device_pop(struct virtio_device *d, struct virtq *q,
                                        struct virtq_chain *chain, bool *broken);

/* Reads a queue's kick eventfd after poll() reported revents on it. A
 * descriptor that has gone bad is set to -1, out of the poll set, so that
 * it cannot make the thread spin. */
void virtio_take_kick(int *fd, short revents);

/* Little-endian stores into a configuration space image. */
static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Its reader, for device state loaded from a snapshot. */
static inline uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Copies bytes [offset, offset + len) of a configuration image of size
 * bytes into data; bytes past its end read as fill. offset comes from the
 * driver: any value is safe. */
static inline void config_copy_out(const uint8_t *image, size_t size, size_t offset, uint8_t *data,
                                   size_t len, uint8_t fill)
{
    for (size_t i = 0; i < len; i++)
        data[i] = offset < size && i < size - offset ? image[offset + i] : fill;
}

#endif
