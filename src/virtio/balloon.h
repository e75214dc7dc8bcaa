/* virtio-balloon, the memory balloon (virtio 1.2 section 5.5): the guest
 * hands pages back to the host (inflate), takes them again (deflate),
 * reports free pages it does not need (free page reporting) and sends
 * memory statistics. docs/balloon.md. */
#ifndef VMLET_VIRTIO_BALLOON_H
#define VMLET_VIRTIO_BALLOON_H

#include <stdint.h>
#include "vmlet.h"
#include "virtio/virtio.h"

/* Feature bits (5.5.3). */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ       1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_PAGE_POISON    4
#define VIRTIO_BALLOON_F_PAGE_REPORTING 5

/* Balloon pages are 4 KiB, whatever the guest's page size (5.5.6). */
#define VIRTIO_BALLOON_PFN_SHIFT 12
#define VIRTIO_BALLOON_PAGE_SIZE (1u << VIRTIO_BALLOON_PFN_SHIFT)
/* Page numbers looked at in one inflate or deflate request; Linux sends
 * at most 256. The rest of a longer one is ignored (the guest keeps
 * those pages' memory, which only costs the guest's host). */
#define VIRTIO_BALLOON_MAX_PFNS  1024
/* Statistics entries read from one buffer (Linux sends 10); the rest of a
 * longer buffer is ignored. */
#define VIRTIO_BALLOON_MAX_STATS 64
#define VIRTIO_BALLOON_STAT_SIZE 10 /* le16 tag, le64 value */

struct virtio_balloon;

/* flags: VMLET_BALLOON_* (vmlet.h); stats_interval_s 0: no statistics
 * queue. Returns NULL with err filled. */
struct virtio_balloon *virtio_balloon_new(unsigned flags, unsigned stats_interval_s,
                                          vmlet_error *err);
void virtio_balloon_free(struct virtio_balloon *b);
/* The guest's RAM in bytes: a snapshot's target or actual page count
 * above it is refused on load. Before the device is used. */
void virtio_balloon_set_ram(struct virtio_balloon *b, uint64_t bytes);
/* Its ops for the transport (dev is the virtio_balloon); NULL for NULL.
 * One thread ("virtio-balloon") serves every queue with poll(); it
 * discards guest pages with madvise(MADV_DONTNEED), as guest RAM is a
 * private anonymous mapping (memory.c): shared memory would need
 * MADV_REMOVE. */
struct virtio_device *virtio_balloon_device(struct virtio_balloon *b);
struct virtio_balloon *virtio_balloon_of(struct virtio_device *d);

/* Sets num_pages (the target, in 4 KiB pages) and tells the driver, if one
 * runs, with a configuration change interrupt. Any thread. */
void virtio_balloon_set_target(struct virtio_balloon *b, uint32_t pages);
/* Target, actual, settings and the last statistics; any thread. */
void virtio_balloon_get_info(struct virtio_balloon *b, vmlet_balloon_info *info);

struct virtio_balloon_stats {
    uint64_t inflated_pages, deflated_pages; /* valid pages in requests */
    uint64_t reported_pages;                 /* 4 KiB pages of reported ranges */
    uint64_t returned_bytes;                 /* discarded: inflated + reported */
    uint64_t invalid_pages;                  /* outside RAM or below the floor */
    uint64_t stats_updates;
};
void virtio_balloon_get_stats(const struct virtio_balloon *b, struct virtio_balloon_stats *s);

#endif
