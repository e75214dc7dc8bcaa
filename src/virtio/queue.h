/* Split virtqueues (virtio 1.2 section 2.7), read from guest memory with
 * every index, address and length checked. A device pops descriptor chains
 * as host iovecs, does the work, and pushes the used length back. */
#ifndef VMLET_VIRTIO_QUEUE_H
#define VMLET_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "../memory.h"
#include "../iov.h"

#define VIRTQ_MAX_SIZE  1024 /* the largest queue vmlet offers */
#define VIRTQ_MAX_CHAIN 1024 /* descriptors in one chain, indirect included */

/* Set by the transport when the driver makes the queue ready. */
struct virtq {
    const struct guest_memory *mem;
    uint16_t size; /* power of two, 1..VIRTQ_MAX_SIZE */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    bool ready;
    bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
    bool indirect;  /* VIRTIO_F_INDIRECT_DESC negotiated */
    /* Device-side state. */
    uint16_t last_avail;     /* next avail ring entry to take */
    uint16_t used_idx;       /* our copy of used->idx */
    uint16_t signalled_used; /* used_idx when the driver was last notified */
    bool signalled_valid;
};

/* One descriptor chain: device-readable buffers first, then
 * device-writable ones (the spec forbids mixing the other way round). */
struct virtq_chain {
    uint16_t head;                     /* what virtq_push gives back */
    unsigned n_out, n_in;              /* readable / writable iovecs */
    struct iovec iov[VIRTQ_MAX_CHAIN]; /* iov[0..n_out) readable, then n_in writable */
    uint64_t out_len, in_len;          /* total bytes of each kind */
};

enum virtq_pop_result {
    VIRTQ_EMPTY = 0,   /* nothing available */
    VIRTQ_CHAIN = 1,   /* *chain filled */
    VIRTQ_BROKEN = -1, /* the driver broke the ring or a chain: the
                                      device must set NEEDS_RESET and stop
                                      using the queue */
};

/* Resets device-side state (queue reset or device reset). */
void virtq_reset(struct virtq *q);
/* Checks the ring addresses lie in guest RAM with the right alignment, for
 * the transport when the driver enables the queue. */
bool virtq_rings_valid(const struct virtq *q);
enum virtq_pop_result virtq_pop(struct virtq *q, struct virtq_chain *chain);
/* Returns a chain to the driver with len bytes written. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Whether the driver wants an interrupt for what was pushed since the last
 * call that returned true (VRING_AVAIL_F_NO_INTERRUPT / used_event). */
bool virtq_should_notify(struct virtq *q);
/* With EVENT_IDX: tells the driver to notify when avail passes what we
 * have consumed; returns true if more arrived meanwhile (pop again). */
bool virtq_enable_notify(struct virtq *q);
void virtq_disable_notify(struct virtq *q);
/* Notifications off until virtq_enable_notify, also with EVENT_IDX right
 * after an enable with nothing consumed since (virtq_disable_notify then
 * relies on later pops to leave avail_event behind): for a queue served
 * only when another one wakes the device. */
void virtq_quiet_notify(struct virtq *q);
/* Gives back the last n chains popped and not pushed (a device stopping
 * for a snapshot): the next pops take them again. */
void virtq_unpop(struct virtq *q, uint16_t n);


#endif
