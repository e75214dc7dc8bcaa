/* virtio-blk (virtio 1.2 section 5.2): a block device over a raw disk
 * image, served by one device thread with asynchronous I/O (io_uring).
 *
 *     vmlet_error err;
 *     struct virtio_blk *blk = virtio_blk_new("root.img", false, "vmlet-root", &err);
 *     if (!blk) { report err.message; }
 *     struct virtio_device *dev = virtio_blk_device(blk);
 *     // hand &dev->ops and dev (the `dev` argument of every callback) to
 *     // the transport; it calls activate() at DRIVER_OK and reset() on reset
 *     ...
 *     dev->ops.free(dev);      // or virtio_blk_free(blk); after the transport is gone
 *
 * Features offered: SIZE_MAX, SEG_MAX, BLK_SIZE, FLUSH, and DISCARD + WRITE_ZEROES
 * when writable, RO when read-only. The transport adds INDIRECT_DESC and
 * EVENT_IDX and reports what was negotiated in virtq.indirect/event_idx
 * and virtio_queues.features.
 *
 * Threads: config_read/config_write may run on any thread at any time
 * (the config space changes only in virtio_blk_set_path). activate() starts the device thread;
 * reset() stops it: I/O in flight is cancelled and the requests it
 * belonged to are dropped (not returned to the driver, whose queues the
 * reset took away); it returns only when no I/O is in flight and the
 * thread no longer touches the queues or guest memory. activate/reset/
 * free are serialised internally. The device thread calls
 * virtio_notify_queue() and virtio_set_needs_reset(): the transport must
 * not hold a lock those functions take while it calls reset() or free. */
#ifndef VMLET_VIRTIO_BLK_H
#define VMLET_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include "vmlet.h"
#include "virtio/virtio.h"

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK           0
#define VIRTIO_BLK_S_IOERR        1
#define VIRTIO_BLK_S_UNSUPP       2
#define VIRTIO_BLK_WZ_FLAG_UNMAP  1u

#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_SECTOR   512

/* Limits this device reports in its configuration space. */
#define VIRTIO_BLK_QUEUE_SIZE        256
/* Bounds on one IN/OUT request (virtio 1.2 5.2.3/5.2.4). Without them a
 * chain of up to 1024 descriptors that all alias one guest buffer becomes
 * one transfer of up to the whole disk, which a reset then has to wait
 * for. A request beyond any bound is answered IOERR without any I/O and
 * counted in `errors` (with read_requests/write_requests).
 *   - SEG_MAX: data segments (non-empty pieces of the data, header and
 *     status not counted), enforced when the driver took SEG_MAX. The
 *     ring's size less header and status, as before.
 *   - SIZE_MAX: bytes in one data segment, enforced when the driver took
 *     SIZE_MAX. Linux uses it as max_segment_size (it must be at least a
 *     4 KiB page) and seg_max as max_segments, and sets no other sector
 *     limit, so its requests are at most SEG_MAX x SIZE_MAX bytes: large
 *     sequential I/O is split by the guest, not refused by us.
 *   - MAX_REQUEST_BYTES: the data bytes of one request, always enforced:
 *     the bound a driver that declined SIZE_MAX/SEG_MAX still meets
 *     (Linux then sends one segment per request, and its default
 *     max_sectors_kb is 1280 KiB). 4 MiB is above SEG_MAX x SIZE_MAX, so
 *     a driver that honours those two never reaches it, and keeps one
 *     request's transfer short enough that a reset waits for at most
 *     milliseconds per request even if it cannot be cancelled. */
#define VIRTIO_BLK_SEG_MAX           (VIRTIO_BLK_QUEUE_SIZE - 2)
#define VIRTIO_BLK_SIZE_MAX          (16u * 1024)
#define VIRTIO_BLK_MAX_REQUEST_BYTES (4u << 20)
#define VIRTIO_BLK_MAX_DWZ_SECTORS   (1u << 22) /* 2 GiB per discard/write-zeroes segment */
#define VIRTIO_BLK_MAX_DWZ_SEG       32         /* segments per discard/write-zeroes request */
#define VIRTIO_BLK_CONFIG_SIZE       60         /* through unused1: no secure erase, no zones */

struct virtio_blk;
struct disk;

/* Opens and locks the image (see backend/disk.h). serial: the GET_ID
 * string, up to 20 printable ASCII characters, or NULL for none. On
 * failure returns NULL with err filled (one line naming the file or the
 * serial and what to do). */
struct virtio_blk *virtio_blk_new(const char *path, bool read_only, const char *serial,
                                  vmlet_error *err);
/* Resets the device if active, then closes the image. */
void virtio_blk_free(struct virtio_blk *blk);
/* The device as the VM and the transport see it (NULL for NULL): its
 * ops (device.h) are the callbacks; their dev argument is the device. */
struct virtio_device *virtio_blk_device(struct virtio_blk *blk);
/* The disk a device is, or NULL for another kind (or NULL). */
struct virtio_blk *virtio_blk_of(struct virtio_device *d);
/* What the device has done, counted since it was created. Each counter
 * only grows; virtio_blk_get_stats() may be called from any thread. */
struct virtio_blk_stats {
    uint64_t read_requests, read_bytes; /* bytes only of requests that succeeded */
    uint64_t write_requests, write_bytes;
    uint64_t flush_requests;
    uint64_t other_requests; /* GET_ID, DISCARD, WRITE_ZEROES, unknown */
    uint64_t errors;         /* requests answered IOERR */
    uint64_t unsupported;    /* requests answered UNSUPP */
    uint64_t malformed;      /* chains with no byte for a status */
};
void virtio_blk_get_stats(const struct virtio_blk *blk, struct virtio_blk_stats *out);

/* The backend, for tests (e.g. disk_replace_fd()). */
struct disk *virtio_blk_disk(struct virtio_blk *blk);

/* Serves the disk from the image at path from now on (Firecracker's
 * PATCH /drives, Kata's block hotplug): path is opened and locked in the
 * calling thread as virtio_blk_new does (read-only if the disk is), of
 * any size (whole sectors are seen). Then the device thread stops after
 * finishing every request in flight on the old image (completed to the
 * driver), the old image is closed, the capacity in the configuration
 * space becomes the new size, the thread goes on and the driver gets a
 * configuration-change interrupt (or, if no driver runs the device now,
 * the next one to start it does). No request reaches the old image after
 * this returns. path may be the disk's own image (its size is read again).
 * 0, or -1 with err (the file's problem, as virtio_blk_new words it); on
 * failure the disk is unchanged. Any thread but the device's; not with
 * virtio_blk_free. */
int virtio_blk_set_path(struct virtio_blk *blk, const char *path, vmlet_error *err);

/* Capacity in 512-byte sectors (the image size rounded down). */
uint64_t virtio_blk_capacity(const struct virtio_blk *blk);

/* For tests and the fuzzer: handles one chain popped from q synchronously
 * (the same parsing and validation as the device thread, blocking I/O),
 * writes its status, pushes it to q and returns the status, or -1 if the
 * chain had no writable byte to put a status in (pushed with length 0).
 * features: what the driver negotiated. Must not be used while the
 * device is active. */
int virtio_blk_process_chain_sync(struct virtio_blk *blk, uint64_t features, struct virtq *q,
                                  const struct virtq_chain *chain);

#endif
