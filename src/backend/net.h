/* The line between the virtio-net device (virtio/net.c) and a network
 * backend (backend/tap.c, backend/slirp.c): the device owns the guest's
 * queues, a backend moves Ethernet frames to and from the host.
 *
 * Frames cross this interface with the 12-byte virtio-net header of
 * virtio 1.2 section 5.1.6 (struct virtio_net_hdr with num_buffers, the
 * layout every VERSION_1 driver uses) in front, so a TAP device opened with
 * IFF_VNET_HDR and TUNSETVNETHDRSZ 12 passes them through untouched and
 * checksum/segmentation offloads work end to end.
 *
 * Who checks what:
 *   - guest -> backend: the device has validated the header against what
 *     the driver negotiated (section 5.1.6.2) and hands over a sanitised
 *     copy; the frame bytes themselves still live in guest memory and may
 *     change under the backend's feet, so a backend that parses them
 *     (slirp) copies first.
 *   - backend -> guest: the device checks the header the backend produced
 *     against what the driver accepted (section 5.1.6.4) and drops (and
 *     counts) what does not fit, so a confused kernel or a hostile network
 *     never reaches the guest with a header it did not agree to.
 *
 * Flow control, both directions bounded:
 *   - receive: the device calls recv() only while it holds guest receive
 *     buffers. A TAP backend then simply is not read (the kernel queue
 *     fills and the kernel drops); slirp's output callback cannot wait, so
 *     the slirp backend keeps a small fixed queue and drops (and counts)
 *     when it is full.
 *   - transmit: send() may answer NET_SEND_BUSY; the device then keeps the
 *     guest's transmit chain and waits on the backend's fd before trying
 *     the same frame again (the guest sees backpressure, nothing is lost).
 *
 * Threads: send(), recv(), set_guest_offloads() and the poll hooks are
 * called by the device thread only (one device per backend). free() is
 * called once no device uses the backend any more. The stats may be read
 * from any thread.
 *
 * Where a backend's own work runs: TAP has none (the kernel does it; the
 * device waits on the TAP fd). slirp has a lot (its sockets, its timers)
 * and does it on the device thread through the poll hooks, the way QEMU
 * runs it in its main loop: a frame then goes from a host socket to the
 * guest's queue without crossing to another thread.
 */
#ifndef VMLET_BACKEND_NET_H
#define VMLET_BACKEND_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>

/* ---- virtio-net definitions shared by the device and the backends ---- */

/* Feature bits (virtio 1.2 section 5.1.3). */
#define VIRTIO_NET_F_CSUM                0 /* device takes partial checksums */
#define VIRTIO_NET_F_GUEST_CSUM          1 /* driver takes partial checksums */
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU                 3
#define VIRTIO_NET_F_MAC                 5
#define VIRTIO_NET_F_GUEST_TSO4          7
#define VIRTIO_NET_F_GUEST_TSO6          8
#define VIRTIO_NET_F_GUEST_ECN           9
#define VIRTIO_NET_F_GUEST_UFO           10
#define VIRTIO_NET_F_HOST_TSO4           11
#define VIRTIO_NET_F_HOST_TSO6           12
#define VIRTIO_NET_F_HOST_ECN            13
#define VIRTIO_NET_F_HOST_UFO            14
#define VIRTIO_NET_F_MRG_RXBUF           15
#define VIRTIO_NET_F_STATUS              16
#define VIRTIO_NET_F_CTRL_VQ             17
#define VIRTIO_NET_F_CTRL_RX             18
#define VIRTIO_NET_F_CTRL_VLAN           19
#define VIRTIO_NET_F_CTRL_RX_EXTRA       20
#define VIRTIO_NET_F_GUEST_ANNOUNCE      21
#define VIRTIO_NET_F_MQ                  22
#define VIRTIO_NET_F_CTRL_MAC_ADDR       23
#define VIRTIO_NET_F_GUEST_USO4          54
#define VIRTIO_NET_F_GUEST_USO6          55
#define VIRTIO_NET_F_HOST_USO            56

#define NET_BIT(f) (1ULL << (f))

/* struct virtio_net_hdr (5.1.6), little-endian on the wire. */
struct virtio_net_hdr_v1 {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
} __attribute__((packed));

#define VIRTIO_NET_HDR_LEN 12
_Static_assert(sizeof(struct virtio_net_hdr_v1) == VIRTIO_NET_HDR_LEN, "virtio-net header");

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_F_RSC_INFO   4
#define VIRTIO_NET_HDR_GSO_NONE     0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_UDP      3
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_UDP_L4   5
#define VIRTIO_NET_HDR_GSO_ECN      0x80

/* Frame sizes, not counting the virtio-net header. The largest is what
 * section 5.1.6.3 allows with segmentation offload: 14 bytes of Ethernet,
 * 40 of IPv6 header and 65535 of payload. Shorter than an Ethernet header
 * is never a frame. */
#define NET_FRAME_MIN 14
#define NET_FRAME_MAX 65589
#define NET_BUF_MAX   (VIRTIO_NET_HDR_LEN + NET_FRAME_MAX)

/* ---- statistics -------------------------------------------------------- */

/* Counters, each only ever incremented but flows_open (relaxed atomics:
 * readable from any thread at any time). The device and the backend each
 * keep one; virtio_net_get_stats() adds them up. "tx" is guest -> network,
 * "rx" is network -> guest. */
struct net_stats {
    uint64_t tx_packets, tx_bytes; /* frames the backend took (bytes without header) */
    uint64_t tx_dropped;           /* well-formed frames the backend could not use
                                       (larger than slirp's MTU, TAP down...) */
    uint64_t tx_errors;            /* backend write errors */
    uint64_t tx_malformed;         /* chains or headers the guest got wrong */
    uint64_t rx_packets, rx_bytes; /* frames written into guest buffers */
    uint64_t rx_dropped;           /* frames lost because the guest was not taking
                                       them fast enough (slirp queue full, reset) */
    uint64_t rx_too_big;           /* frames larger than the guest's buffers */
    uint64_t rx_malformed;         /* runts and headers the guest did not agree to */
    uint64_t rx_filtered;          /* not for the guest's MAC filter */
    uint64_t rx_errors;            /* backend read errors */
    uint64_t rx_bad_buffers;       /* receive buffers smaller than a header,
                                       returned to the guest unused */
    uint64_t ctrl_ok, ctrl_err;    /* control commands acked OK / ERR */
    uint64_t ctrl_malformed;       /* control chains with no room for the ack */
    uint64_t flows_open;           /* host sockets the backend holds for flows now
                                       (slirp; a gauge, only the backend sets it) */
    uint64_t flows_refused;        /* guest frames dropped because they would
                                       have opened a flow over max-flows */
};

#define NET_STAT_ADD(s, field, n) __atomic_fetch_add(&(s)->field, (uint64_t)(n), __ATOMIC_RELAXED)
#define NET_STAT_INC(s, field)    NET_STAT_ADD(s, field, 1)

/* dst += src, field by field (each read atomically). */
static inline void net_stats_accumulate(struct net_stats *dst, const struct net_stats *src)
{
    const uint64_t *s = (const uint64_t *)src;
    uint64_t *d = (uint64_t *)dst;
    for (size_t i = 0; i < sizeof *src / sizeof(uint64_t); i++)
        d[i] += __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* ---- the backend interface ---------------------------------------------- */

enum net_send_result {
    NET_SEND_OK,      /* taken */
    NET_SEND_BUSY,    /* nothing taken: wait for fd, then offer the same frame */
    NET_SEND_DROPPED, /* lost; the backend counted why */
};

struct net_backend;

/* The fds the device thread waits on in one round: its own first, then
 * whatever a backend's poll_prepare adds. */
struct net_pollset {
    struct pollfd *fds;
    unsigned n, cap;
};

/* Adds fd to the set; its index for reading revents after the wait, or -1
 * if there was no memory (the fd is then simply not watched this round). */
static inline int net_pollset_add(struct net_pollset *ps, int fd, short events)
{
    if (ps->n == ps->cap) {
        unsigned cap = ps->cap ? ps->cap * 2 : 16;
        struct pollfd *p = realloc(ps->fds, cap * sizeof *p);
        if (!p)
            return -1;
        ps->fds = p;
        ps->cap = cap;
    }
    ps->fds[ps->n] = (struct pollfd){ .fd = fd, .events = events };
    return (int)ps->n++;
}

/* revents of the fd at idx (0 for an index not in the set). */
static inline short net_pollset_revents(const struct net_pollset *ps, int idx)
{
    return idx >= 0 && (unsigned)idx < ps->n ? ps->fds[idx].revents : 0;
}

struct net_backend_ops {
    /* One frame from the guest: iov[0] is exactly the 12-byte header (the
     * device's sanitised copy: flags at most NEEDS_CSUM, gso_type one the
     * driver negotiated and the backend offered, num_buffers 0); iov[1..)
     * hold the frame, len bytes (NET_FRAME_MIN..NET_FRAME_MAX) in guest
     * memory. iovcnt may exceed IOV_MAX; the backend copes. Never blocks. */
    enum net_send_result (*send)(struct net_backend *b, const struct iovec *iov, unsigned iovcnt,
                                 size_t len);
    /* The next frame for the guest, header first, into buf (cap >=
     * NET_BUF_MAX). Returns its length including the header; 0 when there
     * is none now (the device waits on fd); -1 when a frame was lost or
     * the backend failed (counted; check `failed`). Never blocks. */
    ssize_t (*recv)(struct net_backend *b, void *buf, size_t cap);
    /* The driver accepted these virtio-net features (only the
     * VIRTIO_NET_F_GUEST_* offload bits matter; 0 after a reset): from now
     * on recv() may produce headers using them, and no others. Returns 0,
     * or -1 if the backend could not switch (it then uses none). */
    int (*set_guest_offloads)(struct net_backend *b, uint64_t features);
    /* Optional (NULL when the backend has no work of its own): before each
     * wait the device thread calls poll_prepare, which adds the fds the
     * backend needs watched to ps and lowers *timeout_ms (-1: no limit) to
     * its next deadline; after the wait (poll failed: error) it calls
     * poll_dispatch, which does the backend's work. Frames the work
     * produces for the guest are then read through recv(). */
    void (*poll_prepare)(struct net_backend *b, struct net_pollset *ps, int *timeout_ms);
    void (*poll_dispatch)(struct net_backend *b, const struct net_pollset *ps, bool error);
    /* Stops the backend's thread if any and frees it. */
    void (*free)(struct net_backend *b);
};

struct net_backend {
    const struct net_backend_ops *ops;
    /* What the device thread waits on, or -1 for nothing (a backend with
     * poll hooks). fd_is_wake false: the data fd itself (TAP): POLLIN
     * means recv() has a frame, POLLOUT that send() may go on. fd_is_wake
     * true: an eventfd the backend signals when recv() may have a frame or
     * send() may have room; the device reads it to clear it, then simply
     * tries again. */
    int fd;
    bool fd_is_wake;
    /* The VIRTIO_NET_F_* offload bits this backend can honour (CSUM,
     * GUEST_CSUM, HOST_TSO4...); the device offers the guest no others. */
    uint64_t offloads;
    /* Set by the backend when its host side is gone for good (TAP device
     * deleted): the device stops waiting on fd and drops transmit frames. */
    atomic_bool failed;
    struct net_stats stats;
    /* For messages: "tap 'tap0'", "user". */
    char desc[48];
    /* Something the user should hear about at start-up, or "" (e.g. the
     * TAP device is down). */
    char warning[256];
};

#endif
