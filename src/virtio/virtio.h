/* The line between a virtio transport (virtio/pci.c) and a virtio device
 * (blk.c, net.c, console.c, rng.c): the device says what it is and does
 * the work; the transport does feature negotiation, queue set-up,
 * notifications and interrupts (virtio 1.2 sections 2 and 4.1). What the
 * devices share (struct virtio_device, its thread, iovec and config-space
 * helpers) is in device.h. */
#ifndef VMLET_VIRTIO_VIRTIO_H
#define VMLET_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "queue.h"

/* Device IDs (virtio 1.2 section 5). */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4
#define VIRTIO_ID_BALLOON 5

/* Feature bits every transport handles (virtio 1.2 section 6). */
#define VIRTIO_F_INDIRECT_DESC   28
#define VIRTIO_F_EVENT_IDX       29
#define VIRTIO_F_VERSION_1       32
#define VIRTIO_F_ACCESS_PLATFORM 33

/* Device status bits (section 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED      128

#define VIRTIO_MAX_QUEUES 8

struct virtio_transport;
struct virtio_device; /* device.h */

/* What the transport hands a device when the driver sets DRIVER_OK. */
struct virtio_queues {
    struct virtio_transport *transport; /* for the notify calls below */
    unsigned count;
    struct virtq *q[VIRTIO_MAX_QUEUES]; /* ready queues; NULL if not enabled */
    int kick_fd[VIRTIO_MAX_QUEUES];     /* eventfd signalled on each driver
                                             notification (KVM ioeventfd) */
    uint64_t features;                  /* what the driver accepted */
    /* The same queues again after ops->stop (a snapshot was taken, or
     * one restored): keep what the driver set through the device (MAC,
     * filters); the queues' positions are where stop left them. */
    bool resume;
};

/* The most bytes of device state ops->save may write. */
#define VIRTIO_STATE_MAX 4096

/* One counter of a device, for vmlet_vm_metrics: name is fixed text. */
typedef void (*virtio_metric_fn)(void *opaque, const char *name, uint64_t value);

/* Implemented by each device, one table per instance (features and config
 * may differ between two disks). Every callback gets the device itself as
 * dev. Callbacks run on vCPU threads (config access) or the caller's
 * thread; the device does its own locking. */
struct virtio_device_ops {
    const char *name;   /* "disk", "net", "console", "rng" */
    uint16_t device_id; /* VIRTIO_ID_* */
    unsigned num_queues;
    uint16_t queue_max_size;
    uint64_t features; /* device-specific bits offered */
    /* MSI-X vectors offered, config's included: 0 for one a queue plus
     * one for config; 2 makes Linux share one vector among all queues,
     * so completions on several queues cost one interrupt (at least 2:
     * the transport has no INTx pin to fall back to). */
    unsigned msix_vectors;
    size_t config_size;
    void (*config_read)(void *dev, size_t offset, uint8_t *data, size_t len);
    void (*config_write)(void *dev, size_t offset, const uint8_t *data, size_t len);
    /* DRIVER_OK: start serving the queues (usually on the device's own
     * thread). Returns 0, or -1 to make the transport set NEEDS_RESET. */
    int (*activate)(void *dev, const struct virtio_queues *queues);
    /* Device reset by the driver or VM teardown: stop touching the queues
     * and guest memory before returning. */
    void (*reset)(void *dev);
    /* Stop working for a snapshot (the device thread ends) without
     * forgetting settings the driver made: what is in flight is finished
     * and completed, chains held are given back to the ring (its last
     * avail index moved back), so the queues' positions describe all of
     * it. Reset, or activate with resume set, may follow. */
    void (*stop)(void *dev);
    /* Resets the device and frees it; only after the transport is gone. */
    void (*free)(void *dev);
    /* Calls fn(opaque, name, value) for each counter; any thread. */
    void (*metrics)(void *dev, virtio_metric_fn fn, void *opaque);
    /* Snapshots (docs/snapshot.md), after stop: the device's own state
     * (what the transport does not hold) into buf, at most
     * VIRTIO_STATE_MAX bytes; returns its length, or -1. NULL: this kind
     * of device cannot be saved, and a save is refused. */
    int (*save)(void *dev, uint8_t *buf, size_t cap);
    /* Into a new device, before the transport activates it: the state
     * from a snapshot file (untrusted: every field checked as a driver's
     * write would be). Returns 0, or -1 with why (one line). */
    int (*load)(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen);
};

/* Called by a device (any thread): interrupt the driver for queue index
 * (MSI-X vector of the queue, or the ISR + INTx fallback). Honours masking. */
void virtio_notify_queue(struct virtio_transport *t, unsigned queue);
/* The same for each queue whose bit is set in mask, sending each vector
 * once: queues that share a vector (msix_vectors) cost one interrupt. */
void virtio_notify_queues(struct virtio_transport *t, uint32_t mask);
/* Called by a device when its configuration space changed. */
void virtio_notify_config(struct virtio_transport *t);
/* Called by a device that found the driver broke a queue: sets NEEDS_RESET
 * and sends a configuration interrupt (section 2.1.2). */
void virtio_set_needs_reset(struct virtio_transport *t);

#endif
