/* virtio-net, virtio 1.2 section 5.1:
 *   5.1.1    device ID 1
 *   5.1.2    virtqueues: receiveq1, transmitq1, controlq (no MQ)
 *   5.1.3    feature bits, 5.1.3.1 their dependencies
 *   5.1.4    configuration layout (mac, status; the rest reads 0 or
 *            "unknown")
 *   5.1.6    the virtio_net_hdr: 5.1.6.2 packet transmission (checked as
 *            driver requirements, never trusted), 5.1.6.3 receive buffers
 *            and num_buffers (MRG_RXBUF), 5.1.6.4 processing of incoming
 *            packets (flags, gso_type as the driver negotiated)
 *   5.1.6.5  control virtqueue: 5.1.6.5.1 packet receive filtering
 *            (PROMISC, ALLMULTI), 5.1.6.5.2 MAC address filtering
 *            (MAC_TABLE_SET, MAC_ADDR_SET); everything else is acked
 *            VIRTIO_NET_ERR.
 *
 * Decisions where the spec leaves room (see also virtio/net.h):
 *   - A transmit chain that breaks a rule is returned with used length 0
 *     and counted; the queue stays usable (only ring-level damage,
 *     VIRTQ_BROKEN, costs the queue).
 *   - Without MRG_RXBUF a frame larger than the receive buffer at hand is
 *     dropped and the buffer kept for the next frame. With MRG_RXBUF a
 *     frame waits for more buffers while the guest may still post some;
 *     once the device holds as many as the queue has entries, it cannot
 *     fit and is dropped.
 *   - Receive buffers smaller than the 12-byte header (5.1.6.3.1 forbids
 *     them) are returned unused with length 0.
 *   - The buffers of one frame are published with a single used-index
 *     update, so a driver never sees num_buffers larger than what is
 *     already in the used ring (5.1.6.4: "use all buffers ... together").
 */
#include "virtio/device.h"
#include "virtio/net.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "error.h"
#include "memory.h"

#define NQ 3

/* Work done per round before looking at the other queues and at a stop. */
#define TX_BUDGET   256
#define RX_BUDGET   256
#define CTRL_BUDGET 64

/* A held receive buffer uses at most this many of its descriptors (Linux
 * uses up to 19); the rest of a longer chain is simply not written. */
#define SLOT_IOV_MAX 32

/* Offload bits this device can check headers for. */
#define OFFLOAD_BITS \
    (NET_BIT(VIRTIO_NET_F_CSUM) | NET_BIT(VIRTIO_NET_F_GUEST_CSUM) | \
     NET_BIT(VIRTIO_NET_F_GUEST_TSO4) | NET_BIT(VIRTIO_NET_F_GUEST_TSO6) | \
     NET_BIT(VIRTIO_NET_F_GUEST_ECN) | NET_BIT(VIRTIO_NET_F_GUEST_UFO) | \
     NET_BIT(VIRTIO_NET_F_HOST_TSO4) | NET_BIT(VIRTIO_NET_F_HOST_TSO6) | \
     NET_BIT(VIRTIO_NET_F_HOST_ECN) | NET_BIT(VIRTIO_NET_F_HOST_UFO) | \
     NET_BIT(VIRTIO_NET_F_HOST_USO) | NET_BIT(VIRTIO_NET_F_GUEST_USO4) | \
     NET_BIT(VIRTIO_NET_F_GUEST_USO6))
#define BASE_FEATURES \
    (NET_BIT(VIRTIO_NET_F_MAC) | NET_BIT(VIRTIO_NET_F_STATUS) | NET_BIT(VIRTIO_NET_F_MRG_RXBUF) | \
     NET_BIT(VIRTIO_NET_F_CTRL_VQ) | NET_BIT(VIRTIO_NET_F_CTRL_RX) | \
     NET_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR))

_Static_assert(VIRTIO_NET_QUEUE_SIZE <= VIRTQ_MAX_SIZE, "queue size");

struct rx_slot {
    uint16_t head;
    unsigned niov;
    uint64_t cap; /* writable bytes in iov[0..niov) */
    struct iovec iov[SLOT_IOV_MAX];
};

struct rx_filter {
    bool promisc, allmulti;
    bool all_uni, all_multi; /* table overflowed */
    unsigned nuni, nmulti;
    uint8_t uni[VIRTIO_NET_MAC_TABLE_MAX][6];
    uint8_t multi[VIRTIO_NET_MAC_TABLE_MAX][6];
};

enum rx_state {
    RX_OFF,          /* no queue, broken, or no backend */
    RX_WAIT_GUEST,   /* need receive buffers: wait for a kick */
    RX_WAIT_BACKEND, /* the backend has nothing: wait on its fd */
    RX_MORE,         /* budget used up: come back at once */
};

enum deliver {
    DELIVERED,
    DROPPED,
    WAIT,
    BROKEN,
    AGAIN, /* rx_pop_slot() used its budget: the frame waits for the next round */
};

enum pop_result {
    POP_NONE = 0, /* no buffer available; notifications are on */
    POP_GOT = 1,
    POP_AGAIN = 2, /* budget used up, or stopping: come back next round */
    POP_BROKEN = -1,
};

struct virtio_net {
    struct virtio_device vdev;
    struct net_backend *be;
    uint8_t default_mac[6];

    pthread_mutex_t cfg_lock; /* mac and link as config space shows them */
    uint8_t cfg_mac[6];
    bool link_up;

    struct net_stats stats;

    /* Owned by the device thread while it runs. */
    uint64_t features; /* effective: negotiated, dependencies met */
    bool mrg;
    struct virtq *q[NQ];
    int kick[NQ];
    bool broken[NQ], pushed[NQ];
    struct virtq_chain *chain; /* pop scratch */
    uint8_t mac[6];            /* what the receive filter matches */
    struct rx_filter filter;

    uint8_t *rxbuf; /* one frame from the backend, header first */
    size_t rx_len;
    bool rx_pending;
    struct rx_slot *slots; /* held receive buffers, a ring */
    unsigned slot_head, nslots;
    uint64_t slots_cap;
    /* A buffer was returned while slots were held: the held ones are no
     * longer the ring's last popped, so a stop cannot give them back. */
    bool rx_gap;

    bool tx_have, tx_blocked; /* a validated chain waits for the backend */
    uint16_t tx_head;
    size_t tx_len;
    unsigned tx_iovcnt;
    struct virtio_net_hdr_v1 tx_hdr;
    struct iovec *tx_iov; /* [0] = tx_hdr, then the frame */

    bool be_watched;       /* be->fd is in the wait set (not failed) */
    struct net_pollset ps; /* the wait set, rebuilt every round */
};
_Static_assert(offsetof(struct virtio_net, vdev) == 0, "the device is its virtio_device");

/* ---- header rules (5.1.6.2, 5.1.6.4), pure ----------------------------- */

uint64_t virtio_net_effective_features(uint64_t f)
{
    /* 5.1.3.1: a feature without its prerequisite does not count. */
    if (!(f & NET_BIT(VIRTIO_NET_F_GUEST_CSUM)))
        f &= ~(NET_BIT(VIRTIO_NET_F_GUEST_TSO4) | NET_BIT(VIRTIO_NET_F_GUEST_TSO6) |
               NET_BIT(VIRTIO_NET_F_GUEST_UFO) | NET_BIT(VIRTIO_NET_F_GUEST_USO4) |
               NET_BIT(VIRTIO_NET_F_GUEST_USO6));
    if (!(f & (NET_BIT(VIRTIO_NET_F_GUEST_TSO4) | NET_BIT(VIRTIO_NET_F_GUEST_TSO6))))
        f &= ~NET_BIT(VIRTIO_NET_F_GUEST_ECN);
    if (!(f & NET_BIT(VIRTIO_NET_F_CSUM)))
        f &= ~(NET_BIT(VIRTIO_NET_F_HOST_TSO4) | NET_BIT(VIRTIO_NET_F_HOST_TSO6) |
               NET_BIT(VIRTIO_NET_F_HOST_UFO) | NET_BIT(VIRTIO_NET_F_HOST_USO));
    if (!(f & (NET_BIT(VIRTIO_NET_F_HOST_TSO4) | NET_BIT(VIRTIO_NET_F_HOST_TSO6))))
        f &= ~NET_BIT(VIRTIO_NET_F_HOST_ECN);
    if (!(f & NET_BIT(VIRTIO_NET_F_CTRL_VQ)))
        f &= ~(NET_BIT(VIRTIO_NET_F_CTRL_RX) | NET_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |
               NET_BIT(VIRTIO_NET_F_CTRL_VLAN) | NET_BIT(VIRTIO_NET_F_GUEST_ANNOUNCE) |
               NET_BIT(VIRTIO_NET_F_MQ) | NET_BIT(VIRTIO_NET_F_CTRL_RX_EXTRA));
    return f;
}

/* Which feature lets a gso_type (without the ECN bit) through, on the
 * transmit (host) or receive (guest) side; 0 for unknown types. */
static uint64_t gso_feature(uint8_t type, bool host)
{
    switch (type) {
    case VIRTIO_NET_HDR_GSO_TCPV4:
        return NET_BIT(host ? VIRTIO_NET_F_HOST_TSO4 : VIRTIO_NET_F_GUEST_TSO4);
    case VIRTIO_NET_HDR_GSO_TCPV6:
        return NET_BIT(host ? VIRTIO_NET_F_HOST_TSO6 : VIRTIO_NET_F_GUEST_TSO6);
    case VIRTIO_NET_HDR_GSO_UDP:
        return NET_BIT(host ? VIRTIO_NET_F_HOST_UFO : VIRTIO_NET_F_GUEST_UFO);
    case VIRTIO_NET_HDR_GSO_UDP_L4:
        return host ? NET_BIT(VIRTIO_NET_F_HOST_USO)
                    : NET_BIT(VIRTIO_NET_F_GUEST_USO4) | NET_BIT(VIRTIO_NET_F_GUEST_USO6);
    default: return 0;
    }
}

/* The checksum field (2 bytes at csum_start + csum_offset) lies in the
 * frame; 32-bit sums cannot overflow from two 16-bit fields. */
static bool csum_in_frame(uint16_t start, uint16_t offset, size_t frame_len)
{
    return (size_t)start + offset + 2 <= frame_len;
}

bool virtio_net_tx_hdr_check(const struct virtio_net_hdr_v1 *in, uint64_t f, size_t frame_len,
                             struct virtio_net_hdr_v1 *out)
{
    if (frame_len < NET_FRAME_MIN || frame_len > NET_FRAME_MAX)
        return false;
    /* 5.1.6.2.2: the device ignores flag bits it does not act on;
     * DATA_VALID and RSC_INFO mean nothing on transmit. */
    uint8_t flags = in->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;
    uint16_t hdr_len = le16toh(in->hdr_len), gso_size = le16toh(in->gso_size);
    uint16_t cstart = le16toh(in->csum_start), coff = le16toh(in->csum_offset);

    if (flags) {
        if (!(f & NET_BIT(VIRTIO_NET_F_CSUM)) || !csum_in_frame(cstart, coff, frame_len))
            return false;
    } else {
        cstart = coff = 0; /* must not be used (5.1.6.2.2) */
    }

    uint8_t type = in->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
    bool ecn = in->gso_type & VIRTIO_NET_HDR_GSO_ECN;
    if (type == VIRTIO_NET_HDR_GSO_NONE) {
        if (ecn)
            return false;
        gso_size = 0;
        if (!flags)
            hdr_len = 0; /* only a hint; not passed on unchecked */
        else if (hdr_len > frame_len)
            return false;
    } else {
        uint64_t need = gso_feature(type, true);
        if (!need || !(f & need))
            return false;
        if (ecn && !(f & NET_BIT(VIRTIO_NET_F_HOST_ECN)))
            return false;
        /* 5.1.6.2.1: segmentation needs NEEDS_CSUM and an MSS. */
        if (!flags || gso_size == 0 || hdr_len > frame_len)
            return false;
    }
    *out = (struct virtio_net_hdr_v1){
        .flags = flags,
        .gso_type = in->gso_type,
        .hdr_len = htole16(hdr_len),
        .gso_size = htole16(gso_size),
        .csum_start = htole16(cstart),
        .csum_offset = htole16(coff),
        .num_buffers = 0,
    };
    return true;
}

bool virtio_net_rx_hdr_check(struct virtio_net_hdr_v1 *h, uint64_t f, size_t frame_len)
{
    if (frame_len < NET_FRAME_MIN || frame_len > NET_FRAME_MAX)
        return false;
    uint8_t flags = h->flags;
    uint16_t cstart = le16toh(h->csum_start), coff = le16toh(h->csum_offset);
    if (!(f & NET_BIT(VIRTIO_NET_F_GUEST_CSUM))) {
        /* 5.1.6.4.1: flags must then be 0. A partial checksum the guest
         * cannot finish would be a corrupt packet: drop it instead. */
        if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
            return false;
        flags = 0;
    } else {
        flags &= VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
        if ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !csum_in_frame(cstart, coff, frame_len))
            return false;
    }
    if (!(flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
        cstart = coff = 0;

    uint8_t type = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
    bool ecn = h->gso_type & VIRTIO_NET_HDR_GSO_ECN;
    uint16_t gso_size = le16toh(h->gso_size), hdr_len = le16toh(h->hdr_len);
    if (type == VIRTIO_NET_HDR_GSO_NONE) {
        if (ecn)
            return false;
        gso_size = 0;
        if (hdr_len > frame_len)
            hdr_len = 0;
    } else {
        uint64_t need = gso_feature(type, false);
        if (!need || !(f & need))
            return false;
        if (ecn && !(f & NET_BIT(VIRTIO_NET_F_GUEST_ECN)))
            return false;
        if (!(flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || gso_size == 0 || hdr_len > frame_len)
            return false;
    }
    h->flags = flags;
    h->hdr_len = htole16(hdr_len);
    h->gso_size = htole16(gso_size);
    h->csum_start = htole16(cstart);
    h->csum_offset = htole16(coff);
    return true;
}

/* ---- receive filter (5.1.6.5.1, 5.1.6.5.2) ---------------------------- */

static void filter_reset(struct rx_filter *fl)
{
    memset(fl, 0, sizeof *fl);
    fl->promisc = true; /* until a CTRL_RX driver says otherwise */
}

static bool mac_in(const uint8_t (*table)[6], unsigned n, const uint8_t *mac)
{
    for (unsigned i = 0; i < n; i++)
        if (memcmp(table[i], mac, 6) == 0)
            return true;
    return false;
}

static bool filter_pass(const struct virtio_net *n, const uint8_t *dst)
{
    const struct rx_filter *fl = &n->filter;
    if (fl->promisc)
        return true;
    if (dst[0] & 1) {
        static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
        if (memcmp(dst, bcast, 6) == 0)
            return true;
        return fl->allmulti || fl->all_multi || mac_in(fl->multi, fl->nmulti, dst);
    }
    return memcmp(dst, n->mac, 6) == 0 || fl->all_uni || mac_in(fl->uni, fl->nuni, dst);
}

/* ---- queue helpers ----------------------------------------------------- */

struct used_elem {
    uint16_t head;
    uint32_t len;
};

/* Returns k chains to the driver with one used-index update, so it sees
 * all buffers of a frame at once (a driver reading num_buffers before the
 * rest is visible would drop the frame). The same stores as virtq_push():
 * elements relaxed, then idx with release. */
static void push_together(struct virtq *q, const struct used_elem *u, unsigned k)
{
    if (k == 1) {
        virtq_push(q, u[0].head, u[0].len);
        return;
    }
    if (!q->mem || !q->size || (q->size & (q->size - 1)) || (q->used_gpa & 3))
        return;
    uint8_t *used = gpa_to_hva(q->mem, q->used_gpa, 6 + 8 * (uint64_t)q->size);
    if (!used || ((uintptr_t)used & 3))
        return;
    for (unsigned i = 0; i < k; i++) {
        uint8_t *e = used + 4 + 8 * (size_t)((uint16_t)(q->used_idx + i) & (q->size - 1));
        __atomic_store_n((uint32_t *)e, htole32(u[i].head), __ATOMIC_RELAXED);
        __atomic_store_n((uint32_t *)(e + 4), htole32(u[i].len), __ATOMIC_RELAXED);
    }
    q->used_idx = (uint16_t)(q->used_idx + k);
    __atomic_store_n((uint16_t *)(used + 2), htole16(q->used_idx), __ATOMIC_RELEASE);
}

/* ---- transmitq1: guest -> backend (5.1.6.2) --------------------------- */

/* Checks the chain just popped and builds tx_iov; false if the driver got
 * it wrong. */
static bool tx_prepare(struct virtio_net *n)
{
    const struct virtq_chain *c = n->chain;
    /* 5.1.6.2: the header and packet are device-readable only. */
    if (c->n_in || c->out_len < VIRTIO_NET_HDR_LEN)
        return false;
    uint64_t frame_len = c->out_len - VIRTIO_NET_HDR_LEN;
    if (frame_len < NET_FRAME_MIN || frame_len > NET_FRAME_MAX)
        return false;
    struct virtio_net_hdr_v1 in;
    iov_to_buf(c->iov, c->n_out, 0, &in, sizeof in); /* one read: a copy */
    if (!virtio_net_tx_hdr_check(&in, n->features, frame_len, &n->tx_hdr))
        return false;
    n->tx_iov[0] = (struct iovec){ &n->tx_hdr, VIRTIO_NET_HDR_LEN };
    n->tx_iovcnt = 1 + iov_slice(c->iov, c->n_out, VIRTIO_NET_HDR_LEN, frame_len, n->tx_iov + 1,
                                 VIRTQ_MAX_CHAIN);
    n->tx_len = frame_len;
    n->tx_head = c->head;
    return true;
}

/* Returns true if it stopped with work left (budget). */
static bool tx_run(struct virtio_net *n)
{
    struct virtq *q = n->q[VIRTIO_NET_TXQ];
    if (!q || n->broken[VIRTIO_NET_TXQ] || n->tx_blocked)
        return false;
    struct net_backend *be = n->be;
    virtq_disable_notify(q); /* we are looking anyway */
    for (unsigned budget = TX_BUDGET;;) {
        if (atomic_load_explicit(&n->vdev.thread.stopping, memory_order_relaxed))
            return true;
        if (!n->tx_have) {
            if (budget == 0)
                return true;
            /* Empty: idle, notifications on, a kick wakes us. */
            if (virtio_device_pop(&n->vdev, q, n->chain, &n->broken[VIRTIO_NET_TXQ]) != VIRTQ_CHAIN)
                return false;
            budget--;
            if (!tx_prepare(n)) {
                NET_STAT_INC(&n->stats, tx_malformed);
                virtq_push(q, n->chain->head, 0);
                n->pushed[VIRTIO_NET_TXQ] = true;
                continue;
            }
            n->tx_have = true;
        }
        enum net_send_result s = NET_SEND_DROPPED;
        if (!atomic_load_explicit(&be->failed, memory_order_relaxed))
            s = be->ops->send(be, n->tx_iov, n->tx_iovcnt, n->tx_len);
        else
            NET_STAT_INC(&n->stats, tx_errors);
        if (s == NET_SEND_BUSY) {
            n->tx_blocked = true; /* retried when the backend's fd says so */
            return false;
        }
        if (s == NET_SEND_OK) {
            NET_STAT_INC(&n->stats, tx_packets);
            NET_STAT_ADD(&n->stats, tx_bytes, n->tx_len);
        }
        /* The device writes nothing into a transmit buffer. */
        virtq_push(q, n->tx_head, 0);
        n->pushed[VIRTIO_NET_TXQ] = true;
        n->tx_have = false;
    }
}

/* ---- receiveq1: backend -> guest (5.1.6.3, 5.1.6.4) ------------------- */

static struct rx_slot *slot_at(struct virtio_net *n, unsigned i)
{
    return &n->slots[(n->slot_head + i) % VIRTIO_NET_QUEUE_SIZE];
}

static void slot_pop_front(struct virtio_net *n)
{
    n->slots_cap -= slot_at(n, 0)->cap;
    n->slot_head = (n->slot_head + 1) % VIRTIO_NET_QUEUE_SIZE;
    if (--n->nslots == 0)
        n->rx_gap = false;
}

/* The most buffers the device holds at once: all the queue can have. */
static unsigned slots_max(const struct virtio_net *n)
{
    unsigned size = n->q[VIRTIO_NET_RXQ]->size;
    return size < VIRTIO_NET_QUEUE_SIZE ? size : VIRTIO_NET_QUEUE_SIZE;
}

/* Takes one receive buffer from the guest into a new slot. Returns
 * POP_GOT if it did, POP_NONE if none is available (notifications are then
 * on), POP_BROKEN if the driver broke the queue, POP_AGAIN if it gave up
 * for this round. A driver that keeps re-posting buffers too small for a
 * header (each is returned at once), or keeps the ring just short of empty
 * when notifications go back on, would otherwise keep this loop, and the
 * device thread, from ever seeing a stop: so the loop has a budget per
 * call and looks at the stop flag. Each virtio_device_pop() takes at most
 * one buffer, so the budget counts every buffer taken. */
static enum pop_result rx_pop_slot(struct virtio_net *n)
{
    struct virtq *q = n->q[VIRTIO_NET_RXQ];
    for (unsigned budget = RX_BUDGET;; budget--) {
        if (budget == 0 || atomic_load_explicit(&n->vdev.thread.stopping, memory_order_relaxed))
            return POP_AGAIN;
        if (n->nslots >= slots_max(n))
            return POP_NONE;
        enum virtq_pop_result r = virtio_device_pop(&n->vdev, q, n->chain,
                                                    &n->broken[VIRTIO_NET_RXQ]);
        if (r != VIRTQ_CHAIN)
            return r == VIRTQ_EMPTY ? POP_NONE : POP_BROKEN;
        virtq_disable_notify(q); /* we have buffers: no kicks needed */
        const struct virtq_chain *c = n->chain;
        if (c->in_len < VIRTIO_NET_HDR_LEN) {
            /* 5.1.6.3.1: every buffer holds at least a header. */
            NET_STAT_INC(&n->stats, rx_bad_buffers);
            n->rx_gap |= n->nslots > 0;
            virtq_push(q, c->head, 0);
            n->pushed[VIRTIO_NET_RXQ] = true;
            continue;
        }
        struct rx_slot *s = slot_at(n, n->nslots);
        s->head = c->head;
        s->niov = 0;
        s->cap = 0;
        /* Readable descriptors in a receive chain are ignored. */
        for (unsigned i = 0; i < c->n_in && s->niov < SLOT_IOV_MAX; i++) {
            const struct iovec *v = &c->iov[c->n_out + i];
            if (!v->iov_len)
                continue;
            s->iov[s->niov++] = *v;
            s->cap += v->iov_len;
        }
        n->nslots++;
        n->slots_cap += s->cap;
        return POP_GOT;
    }
}

/* A frame just read into rxbuf: may the guest have it? Counts why not. */
static bool rx_accept(struct virtio_net *n, size_t len)
{
    if (len < VIRTIO_NET_HDR_LEN + NET_FRAME_MIN || len > NET_BUF_MAX) {
        NET_STAT_INC(&n->stats, rx_malformed);
        return false;
    }
    struct virtio_net_hdr_v1 h;
    memcpy(&h, n->rxbuf, sizeof h);
    if (!virtio_net_rx_hdr_check(&h, n->features, len - VIRTIO_NET_HDR_LEN)) {
        NET_STAT_INC(&n->stats, rx_malformed);
        return false;
    }
    memcpy(n->rxbuf, &h, sizeof h);
    if (!filter_pass(n, n->rxbuf + VIRTIO_NET_HDR_LEN)) {
        NET_STAT_INC(&n->stats, rx_filtered);
        return false;
    }
    return true;
}

static void set_num_buffers(uint8_t *hdr, unsigned k)
{
    uint16_t v = htole16((uint16_t)k);
    memcpy(hdr + offsetof(struct virtio_net_hdr_v1, num_buffers), &v, 2);
}

/* Copies the pending frame into held buffers and returns them. */
static enum deliver rx_deliver(struct virtio_net *n)
{
    struct virtq *q = n->q[VIRTIO_NET_RXQ];
    size_t len = n->rx_len;

    if (!n->mrg) {
        /* One buffer per frame (5.1.6.3.2). */
        struct rx_slot *s = slot_at(n, 0);
        if (s->cap < len) {
            NET_STAT_INC(&n->stats, rx_too_big);
            return DROPPED; /* the buffer stays for the next frame */
        }
        set_num_buffers(n->rxbuf, 1);
        iov_from_buf(s->iov, s->niov, 0, n->rxbuf, len);
        virtq_push(q, s->head, (uint32_t)len);
        slot_pop_front(n);
    } else {
        while (n->slots_cap < len) {
            if (n->nslots >= slots_max(n)) {
                /* Every buffer the queue can hold is here and still too
                 * small: this frame can never fit. */
                NET_STAT_INC(&n->stats, rx_too_big);
                return DROPPED;
            }
            enum pop_result r = rx_pop_slot(n);
            if (r == POP_NONE)
                return WAIT;
            if (r == POP_AGAIN)
                return AGAIN;
            if (r == POP_BROKEN)
                return BROKEN;
        }
        unsigned k = 0;
        for (uint64_t c = 0; c < len; k++)
            c += slot_at(n, k)->cap;
        set_num_buffers(n->rxbuf, k);
        struct used_elem used[VIRTIO_NET_QUEUE_SIZE];
        size_t off = 0;
        for (unsigned i = 0; i < k; i++) {
            struct rx_slot *s = slot_at(n, 0);
            /* All but the last buffer are filled completely (5.1.6.4.1). */
            size_t chunk = s->cap < len - off ? (size_t)s->cap : len - off;
            iov_from_buf(s->iov, s->niov, 0, n->rxbuf + off, chunk);
            used[i] = (struct used_elem){ s->head, (uint32_t)chunk };
            off += chunk;
            slot_pop_front(n);
        }
        push_together(q, used, k);
    }
    n->pushed[VIRTIO_NET_RXQ] = true;
    NET_STAT_INC(&n->stats, rx_packets);
    NET_STAT_ADD(&n->stats, rx_bytes, len - VIRTIO_NET_HDR_LEN);
    return DELIVERED;
}

static enum rx_state rx_run(struct virtio_net *n)
{
    struct virtq *q = n->q[VIRTIO_NET_RXQ];
    struct net_backend *be = n->be;
    if (!q || n->broken[VIRTIO_NET_RXQ])
        return RX_OFF;
    for (unsigned i = 0; i < RX_BUDGET; i++) {
        if (atomic_load_explicit(&n->vdev.thread.stopping, memory_order_relaxed))
            return RX_MORE;
        if (!n->rx_pending) {
            /* Backpressure: the backend is read only with a buffer in hand. */
            if (n->nslots == 0) {
                enum pop_result r = rx_pop_slot(n);
                if (r == POP_BROKEN)
                    return RX_OFF;
                if (r == POP_NONE)
                    return RX_WAIT_GUEST;
                if (r == POP_AGAIN)
                    return RX_MORE;
            }
            if (atomic_load_explicit(&be->failed, memory_order_relaxed))
                return RX_OFF;
            ssize_t len = be->ops->recv(be, n->rxbuf, NET_BUF_MAX);
            if (len == 0)
                return RX_WAIT_BACKEND;
            if (len < 0)
                continue; /* counted by the backend */
            if (!rx_accept(n, (size_t)len))
                continue;
            n->rx_len = (size_t)len;
            n->rx_pending = true;
        }
        enum deliver d = rx_deliver(n);
        if (d == WAIT)
            return RX_WAIT_GUEST;
        if (d == AGAIN)
            return RX_MORE; /* the frame stays pending */
        n->rx_pending = false;
        if (d == BROKEN) {
            NET_STAT_INC(&n->stats, rx_dropped);
            return RX_OFF;
        }
    }
    return RX_MORE;
}

/* ---- controlq (5.1.6.5) ------------------------------------------------ */

static uint32_t ld_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* MAC_TABLE_SET: le32 N, N unicast MACs, le32 M, M multicast MACs, and
 * nothing else. More than the table holds turns on all of that kind. */
static uint8_t ctrl_mac_table(struct virtio_net *n, const struct virtq_chain *c)
{
    uint64_t dlen = c->out_len - 2, off = 2;
    uint8_t b[4];
    if (dlen < 8)
        return VIRTIO_NET_ERR;
    iov_to_buf(c->iov, c->n_out, off, b, 4);
    uint64_t nuni = ld_le32(b);
    if (dlen < 8 + nuni * 6)
        return VIRTIO_NET_ERR;
    iov_to_buf(c->iov, c->n_out, off + 4 + nuni * 6, b, 4);
    uint64_t nmulti = ld_le32(b);
    if (dlen != 8 + nuni * 6 + nmulti * 6)
        return VIRTIO_NET_ERR;

    struct rx_filter *fl = &n->filter;
    fl->all_uni = nuni > VIRTIO_NET_MAC_TABLE_MAX;
    fl->all_multi = nmulti > VIRTIO_NET_MAC_TABLE_MAX;
    fl->nuni = fl->all_uni ? 0 : (unsigned)nuni;
    fl->nmulti = fl->all_multi ? 0 : (unsigned)nmulti;
    for (unsigned i = 0; i < fl->nuni; i++)
        iov_to_buf(c->iov, c->n_out, off + 4 + 6 * (uint64_t)i, fl->uni[i], 6);
    for (unsigned i = 0; i < fl->nmulti; i++)
        iov_to_buf(c->iov, c->n_out, off + 8 + nuni * 6 + 6 * (uint64_t)i, fl->multi[i], 6);
    return VIRTIO_NET_OK;
}

static uint8_t ctrl_command(struct virtio_net *n, const struct virtq_chain *c)
{
    if (c->out_len < 2)
        return VIRTIO_NET_ERR;
    uint8_t cc[2];
    iov_to_buf(c->iov, c->n_out, 0, cc, 2);
    uint64_t dlen = c->out_len - 2;
    bool rx = n->features & NET_BIT(VIRTIO_NET_F_CTRL_RX);

    if (cc[0] == VIRTIO_NET_CTRL_RX && rx &&
        (cc[1] == VIRTIO_NET_CTRL_RX_PROMISC || cc[1] == VIRTIO_NET_CTRL_RX_ALLMULTI)) {
        if (dlen != 1)
            return VIRTIO_NET_ERR;
        uint8_t on;
        iov_to_buf(c->iov, c->n_out, 2, &on, 1);
        if (cc[1] == VIRTIO_NET_CTRL_RX_PROMISC)
            n->filter.promisc = on != 0;
        else
            n->filter.allmulti = on != 0;
        return VIRTIO_NET_OK;
    }
    if (cc[0] == VIRTIO_NET_CTRL_MAC && cc[1] == VIRTIO_NET_CTRL_MAC_TABLE_SET && rx)
        return ctrl_mac_table(n, c);
    /* 5.1.6.5.2: MAC_ADDR_SET is the command of VIRTIO_NET_F_CTRL_MAC_ADDR
     * alone; a driver that did not negotiate it may not change the MAC. */
    if (cc[0] == VIRTIO_NET_CTRL_MAC && cc[1] == VIRTIO_NET_CTRL_MAC_ADDR_SET &&
        (n->features & NET_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR))) {
        uint8_t mac[6];
        static const uint8_t zero[6];
        if (dlen != 6)
            return VIRTIO_NET_ERR;
        iov_to_buf(c->iov, c->n_out, 2, mac, 6);
        if ((mac[0] & 1) || memcmp(mac, zero, 6) == 0)
            return VIRTIO_NET_ERR; /* not an address a NIC can have */
        memcpy(n->mac, mac, 6);
        /* 5.1.6.5.2.1: config space shows it before the command is used. */
        pthread_mutex_lock(&n->cfg_lock);
        memcpy(n->cfg_mac, mac, 6);
        pthread_mutex_unlock(&n->cfg_lock);
        return VIRTIO_NET_OK;
    }
    /* VLAN, ANNOUNCE, MQ, GUEST_OFFLOADS...: not offered. */
    return VIRTIO_NET_ERR;
}

static bool ctrl_run(struct virtio_net *n)
{
    struct virtq *q = n->q[VIRTIO_NET_CTRLQ];
    if (!q || n->broken[VIRTIO_NET_CTRLQ])
        return false;
    for (unsigned i = 0; i < CTRL_BUDGET; i++) {
        if (virtio_device_pop(&n->vdev, q, n->chain, &n->broken[VIRTIO_NET_CTRLQ]) != VIRTQ_CHAIN)
            return false;
        const struct virtq_chain *c = n->chain;
        uint32_t used = 0;
        if (c->in_len == 0) {
            NET_STAT_INC(&n->stats, ctrl_malformed); /* nowhere to put the ack */
        } else {
            uint8_t ack = ctrl_command(n, c);
            if (ack == VIRTIO_NET_OK)
                NET_STAT_INC(&n->stats, ctrl_ok);
            else
                NET_STAT_INC(&n->stats, ctrl_err);
            iov_from_buf(c->iov + c->n_out, c->n_in, 0, &ack, 1);
            used = 1;
        }
        virtq_push(q, c->head, used);
        n->pushed[VIRTIO_NET_CTRLQ] = true;
    }
    return true;
}

/* ---- the device thread ------------------------------------------------- */

static void notify_queues(struct virtio_net *n)
{
    uint32_t mask = 0;
    for (unsigned i = 0; i < NQ; i++) {
        if (!n->pushed[i])
            continue;
        n->pushed[i] = false;
        if (virtq_should_notify(n->q[i]))
            mask |= 1u << i;
    }
    if (mask)
        virtio_notify_queues(n->vdev.transport, mask);
}

/* A failed backend leaves the wait set for good, and the driver sees the
 * link go down. */
static void backend_check_failed(struct virtio_net *n)
{
    if (!n->be_watched || !atomic_load_explicit(&n->be->failed, memory_order_relaxed))
        return;
    n->be_watched = false;
    pthread_mutex_lock(&n->cfg_lock);
    bool was_up = n->link_up;
    n->link_up = false;
    pthread_mutex_unlock(&n->cfg_lock);
    if (was_up && (n->features & NET_BIT(VIRTIO_NET_F_STATUS)))
        virtio_notify_config(n->vdev.transport);
}

/* What to wait for from the backend's fd: exactly what we need from it. */
static short backend_events(const struct virtio_net *n, enum rx_state rx)
{
    if (!n->be_watched || n->be->fd < 0)
        return 0;
    bool want_rx = rx == RX_WAIT_BACKEND, want_tx = n->tx_blocked;
    if (n->be->fd_is_wake)
        return (want_rx || want_tx) ? POLLIN : 0;
    return (short)((want_rx ? POLLIN : 0) | (want_tx ? POLLOUT : 0));
}

/* One wait: the stop fd, the queues' kick fds, the backend's fd and
 * whatever the backend's own work needs (slirp's sockets and timers). */
static void wait_and_dispatch(struct virtio_net *n, enum rx_state rx, bool more)
{
    struct net_backend *be = n->be;
    struct net_pollset *ps = &n->ps;
    ps->n = 0;
    net_pollset_add(ps, n->vdev.thread.stop_fd, POLLIN); /* index 0, room for 16 */
    int kick_idx[NQ];
    for (unsigned i = 0; i < NQ; i++)
        kick_idx[i] = n->q[i] && n->kick[i] >= 0 ? net_pollset_add(ps, n->kick[i], POLLIN) : -1;
    short be_ev = backend_events(n, rx);
    int be_idx = be_ev ? net_pollset_add(ps, be->fd, be_ev) : -1;
    int timeout = more ? 0 : -1;
    if (n->be_watched && be->ops->poll_prepare)
        be->ops->poll_prepare(be, ps, &timeout);

    int k = poll(ps->fds, ps->n, timeout);
    if (k < 0 && errno != EINTR)
        thread_wait_failed();
    if (n->be_watched && be->ops->poll_dispatch)
        be->ops->poll_dispatch(be, ps, k < 0);
    if (k <= 0)
        return;
    for (unsigned i = 0; i < NQ; i++)
        if (net_pollset_revents(ps, kick_idx[i]))
            eventfd_drain(n->kick[i]);
    short re = net_pollset_revents(ps, be_idx);
    if (re) {
        if (be->fd_is_wake)
            eventfd_drain(be->fd);
        else if (re & (POLLERR | POLLHUP | POLLNVAL)) {
            /* tun reports these only once detached: gone for good. */
            atomic_store(&be->failed, true);
            NET_STAT_INC(&n->stats, rx_errors);
        }
        n->tx_blocked = false; /* whatever it was, try again */
    }
}

static void *net_thread(void *arg)
{
    struct virtio_net *n = arg;
    pthread_setname_np(pthread_self(), "virtio-net");

    while (!atomic_load(&n->vdev.thread.stopping)) {
        bool more = ctrl_run(n);
        more |= tx_run(n);
        enum rx_state rx = rx_run(n);
        more |= rx == RX_MORE;
        notify_queues(n);
        backend_check_failed(n);
        wait_and_dispatch(n, rx, more);
    }
    return NULL;
}

/* The thread is gone, or never started: nothing of the guest's is held
 * after this. */
static void net_release_queues(void *dev)
{
    struct virtio_net *n = dev;
    n->be_watched = false;
    /* Held chains are their queue's last popped: back to the ring, for
     * the next run after a snapshot. Unless the driver posted a buffer
     * too small for a header in between (which Linux never does): then
     * the held ones are returned empty, which it drops as short frames. */
    struct virtq *rxq = n->q[VIRTIO_NET_RXQ], *txq = n->q[VIRTIO_NET_TXQ];
    if (rxq && n->nslots && !n->rx_gap) {
        virtq_unpop(rxq, (uint16_t)n->nslots);
    } else if (rxq && n->nslots && n->vdev.quiescing) {
        struct used_elem used[VIRTIO_NET_QUEUE_SIZE];
        for (unsigned i = 0; i < n->nslots; i++)
            used[i] = (struct used_elem){ slot_at(n, i)->head, 0 };
        push_together(rxq, used, n->nslots);
    }
    if (txq && n->tx_have)
        virtq_unpop(txq, 1);
    n->rx_gap = false;
    /* The driver owns its buffers again; a frame in hand is lost. */
    if (n->rx_pending)
        NET_STAT_INC(&n->stats, rx_dropped);
    n->rx_pending = false;
    n->nslots = 0;
    n->slot_head = 0;
    n->slots_cap = 0;
    n->tx_have = n->tx_blocked = false;
}

/* ---- virtio_device_ops ------------------------------------------------- */

/* struct virtio_net_config (5.1.4); bytes past it read as all-ones. */
static void net_config_read(void *dev, size_t offset, uint8_t *data, size_t len)
{
    struct virtio_net *n = dev;
    uint8_t cfg[VIRTIO_NET_CONFIG_SIZE] = { 0 };
    pthread_mutex_lock(&n->cfg_lock);
    memcpy(cfg, n->cfg_mac, 6);
    put_le16(cfg + 6, n->link_up ? VIRTIO_NET_S_LINK_UP : 0);
    pthread_mutex_unlock(&n->cfg_lock);
    put_le16(cfg + 8, 1);           /* max_virtqueue_pairs (no MQ) */
    put_le16(cfg + 10, 0);          /* mtu: VIRTIO_NET_F_MTU not offered */
    put_le32(cfg + 12, 0xffffffff); /* speed: unknown */
    cfg[16] = 0xff;                 /* duplex: unknown */
    config_copy_out(cfg, sizeof cfg, offset, data, len, 0xff);
}

static void net_config_write(void *dev, size_t offset, const uint8_t *data, size_t len)
{
    /* 5.1.4.2: every field is read-only for a VERSION_1 driver. */
    (void)dev;
    (void)offset;
    (void)data;
    (void)len;
}

static void restore_defaults(struct virtio_net *n)
{
    memcpy(n->mac, n->default_mac, 6);
    filter_reset(&n->filter);
    pthread_mutex_lock(&n->cfg_lock);
    memcpy(n->cfg_mac, n->default_mac, 6);
    n->link_up = !atomic_load(&n->be->failed);
    pthread_mutex_unlock(&n->cfg_lock);
}

/* Activation (lock held, thread not running): the queues, the features
 * in effect, defaults, and the offloads the backend may pass on. */
static int net_take_queues(void *dev, const struct virtio_queues *qs)
{
    struct virtio_net *n = dev;
    n->features = virtio_net_effective_features(qs->features & n->vdev.ops.features);
    n->mrg = n->features & NET_BIT(VIRTIO_NET_F_MRG_RXBUF);
    for (unsigned i = 0; i < NQ; i++) {
        n->q[i] = i < qs->count ? qs->q[i] : NULL;
        n->kick[i] = n->q[i] ? qs->kick_fd[i] : -1;
        n->broken[i] = n->pushed[i] = false;
    }
    if (!(n->features & NET_BIT(VIRTIO_NET_F_CTRL_VQ))) {
        n->q[VIRTIO_NET_CTRLQ] = NULL; /* 5.1.2: controlq only with CTRL_VQ */
        n->kick[VIRTIO_NET_CTRLQ] = -1;
    }
    if (!qs->resume)
        restore_defaults(n); /* else the MAC and filter stay as the driver set them */
    /* Only the offloads the driver accepted may reach it. */
    n->be->ops->set_guest_offloads(n->be, n->features);
    n->be_watched = !atomic_load(&n->be->failed);
    return 0;
}

/* ---- snapshots ----------------------------------------------------------- */

/* What the driver set through the control queue (the rest is the
 * transport's and the queues'). Fixed little-endian layout. */
struct net_saved {
    uint8_t mac[6];
    uint8_t promisc, allmulti, all_uni, all_multi;
    uint32_t nuni, nmulti;
    uint8_t uni[VIRTIO_NET_MAC_TABLE_MAX][6];
    uint8_t multi[VIRTIO_NET_MAC_TABLE_MAX][6];
    /* The NIC's own MAC (its --net spec's) when saved; absent from the
     * snapshots of vmlet 0.1.0's first save (NET_SAVED_V1). */
    uint8_t default_mac[6];
    uint8_t reserved[2];
};
_Static_assert(sizeof(struct net_saved) <= VIRTIO_STATE_MAX, "net state fits");
#define NET_SAVED_V1 offsetof(struct net_saved, default_mac)

static int net_save(void *dev, uint8_t *buf, size_t cap)
{
    struct virtio_net *n = dev;
    struct net_saved st;
    if (cap < sizeof st)
        return -1;
    memset(&st, 0, sizeof st);
    memcpy(st.mac, n->mac, 6);
    const struct rx_filter *fl = &n->filter;
    st.promisc = fl->promisc;
    st.allmulti = fl->allmulti;
    st.all_uni = fl->all_uni;
    st.all_multi = fl->all_multi;
    st.nuni = htole32(fl->nuni);
    st.nmulti = htole32(fl->nmulti);
    memcpy(st.uni, fl->uni, sizeof st.uni);
    memcpy(st.multi, fl->multi, sizeof st.multi);
    memcpy(st.default_mac, n->default_mac, 6);
    memcpy(buf, &st, sizeof st);
    return (int)sizeof st;
}

/* Only what the control queue's commands could have set. A restore
 * that gives the NIC another MAC (its spec's differs from the saved
 * one's) offers it in config space, where the driver reads it when it
 * probes the device again; until then the driver's MAC stays in effect,
 * so the guest's network goes on working. */
static int net_load(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
    struct virtio_net *n = dev;
    struct net_saved st;
    static const uint8_t zero[6];
    if (len != sizeof st && len != NET_SAVED_V1) {
        snprintf(why, whylen, "NIC state of %zu bytes, not %zu", len, sizeof st);
        return -1;
    }
    memset(&st, 0, sizeof st);
    memcpy(&st, buf, len);
    if (len == NET_SAVED_V1)
        memcpy(st.default_mac, n->default_mac, 6); /* no override known */
    uint32_t nuni = le32toh(st.nuni), nmulti = le32toh(st.nmulti);
    if ((st.mac[0] & 1) || !memcmp(st.mac, zero, 6) || (st.default_mac[0] & 1) ||
        !memcmp(st.default_mac, zero, 6)) {
        snprintf(why, whylen, "a multicast or zero MAC address");
        return -1;
    }
    if (st.reserved[0] || st.reserved[1]) {
        snprintf(why, whylen, "nonzero reserved bytes");
        return -1;
    }
    if (st.promisc > 1 || st.allmulti > 1 || st.all_uni > 1 || st.all_multi > 1 ||
        nuni > VIRTIO_NET_MAC_TABLE_MAX || nmulti > VIRTIO_NET_MAC_TABLE_MAX ||
        (st.all_uni && nuni) || (st.all_multi && nmulti)) {
        snprintf(why, whylen, "a receive filter no driver could set");
        return -1;
    }
    pthread_mutex_lock(&n->vdev.lock);
    memcpy(n->mac, st.mac, 6);
    struct rx_filter *fl = &n->filter;
    fl->promisc = st.promisc;
    fl->allmulti = st.allmulti;
    fl->all_uni = st.all_uni;
    fl->all_multi = st.all_multi;
    fl->nuni = nuni;
    fl->nmulti = nmulti;
    memcpy(fl->uni, st.uni, sizeof fl->uni);
    memcpy(fl->multi, st.multi, sizeof fl->multi);
    pthread_mutex_unlock(&n->vdev.lock);
    pthread_mutex_lock(&n->cfg_lock);
    memcpy(n->cfg_mac, memcmp(st.default_mac, n->default_mac, 6) ? n->default_mac : st.mac, 6);
    pthread_mutex_unlock(&n->cfg_lock);
    return 0;
}

/* A reset also forgets what the driver set through the control queue. */
static void net_reset(void *dev)
{
    struct virtio_net *n = dev;
    pthread_mutex_lock(&n->vdev.lock);
    virtio_device_stop_locked(&n->vdev);
    restore_defaults(n);
    n->be->ops->set_guest_offloads(n->be, 0);
    pthread_mutex_unlock(&n->vdev.lock);
}

static void net_metrics(void *dev, virtio_metric_fn fn, void *opaque)
{
    struct net_stats s;
    virtio_net_get_stats(dev, &s);
    fn(opaque, "tx_packets", s.tx_packets);
    fn(opaque, "tx_bytes", s.tx_bytes);
    fn(opaque, "tx_dropped", s.tx_dropped);
    fn(opaque, "tx_errors", s.tx_errors);
    fn(opaque, "tx_malformed", s.tx_malformed);
    fn(opaque, "rx_packets", s.rx_packets);
    fn(opaque, "rx_bytes", s.rx_bytes);
    fn(opaque, "rx_dropped", s.rx_dropped);
    fn(opaque, "rx_too_big", s.rx_too_big);
    fn(opaque, "rx_malformed", s.rx_malformed);
    fn(opaque, "rx_filtered", s.rx_filtered);
    fn(opaque, "rx_errors", s.rx_errors);
    fn(opaque, "rx_bad_buffers", s.rx_bad_buffers);
    fn(opaque, "ctrl_ok", s.ctrl_ok);
    fn(opaque, "ctrl_err", s.ctrl_err);
    fn(opaque, "ctrl_malformed", s.ctrl_malformed);
    fn(opaque, "flows_open", s.flows_open);
    fn(opaque, "flows_refused", s.flows_refused);
}

static void net_free(void *dev)
{
    virtio_net_free(dev);
}

/* The network thread runs the backend: a TAP device (read, write, and
 * the socket pair of tests) or libslirp, which opens a host socket per
 * guest flow, accepts on port forwards, and rereads /etc/resolv.conf for
 * the DNS it forwards to. */
static const int net_syscalls[] = {
    __NR_recvfrom,   __NR_sendto,     __NR_recvmsg,     __NR_sendmsg,     __NR_connect,
    __NR_bind,       __NR_listen,     __NR_accept,      __NR_accept4,     __NR_shutdown,
    __NR_setsockopt, __NR_getsockopt, __NR_getsockname, __NR_getpeername, __NR_fcntl,
    __NR_newfstatat, __NR_fstat,      __NR_lseek,
};
/* TAP: the offloads the driver sets through the control queue. */
static const unsigned long net_ioctls[] = { FIONREAD, FIONBIO, TUNSETOFFLOAD };
static const struct sandbox_rules net_rules = {
    .kind = "virtio-net",
    .syscalls = net_syscalls,
    .nsyscalls = sizeof net_syscalls / sizeof net_syscalls[0],
    .ioctls = net_ioctls,
    .nioctls = sizeof net_ioctls / sizeof net_ioctls[0],
    .open_read_only = true,
    .read_paths = (const char *const[]){ "/etc/resolv.conf", NULL },
    .sockets = true,
};

static const struct virtio_device_hooks net_hooks = {
    .sandbox = &net_rules,
    .thread_fn = net_thread,
    .take_queues = net_take_queues,
    .release_queues = net_release_queues,
};

/* ---- life cycle -------------------------------------------------------- */

struct virtio_net *virtio_net_new(struct net_backend *be, const uint8_t mac[6], vmlet_error *err)
{
    if (!be) {
        set_error(err, VMLET_ERR_INTERNAL, "network: no backend");
        return NULL;
    }
    const struct virtio_device_ops ops = {
        .name = "net",
        .device_id = VIRTIO_ID_NET,
        .num_queues = NQ,
        .queue_max_size = VIRTIO_NET_QUEUE_SIZE,
        .features = BASE_FEATURES | (be->offloads & OFFLOAD_BITS),
        /* One vector for the queues, as for vsock: a transmit completion
         * and a received frame together cost one interrupt. */
        .msix_vectors = 2,
        .config_size = VIRTIO_NET_CONFIG_SIZE,
        .config_read = net_config_read,
        .config_write = net_config_write,
        .reset = net_reset,
        .free = net_free,
        .metrics = net_metrics,
        .save = net_save,
        .load = net_load,
    };
    struct virtio_net *n = virtio_device_new(sizeof *n, &ops, &net_hooks, err);
    if (!n) {
        be->ops->free(be);
        return NULL;
    }
    n->be = be;
    pthread_mutex_init(&n->cfg_lock, NULL);
    memcpy(n->default_mac, mac, 6);
    for (unsigned i = 0; i < NQ; i++)
        n->kick[i] = -1;
    restore_defaults(n);
    n->chain = malloc(sizeof *n->chain);
    n->rxbuf = malloc(NET_BUF_MAX);
    n->slots = calloc(VIRTIO_NET_QUEUE_SIZE, sizeof *n->slots);
    n->tx_iov = calloc(VIRTQ_MAX_CHAIN + 1, sizeof *n->tx_iov);
    /* Room for the wait set up front (16 fds; a backend may add more). */
    bool ps_ok = net_pollset_add(&n->ps, -1, 0) == 0;
    if (!n->chain || !n->rxbuf || !n->slots || !n->tx_iov || !ps_ok) {
        set_error(err, VMLET_ERR_HOST, "network %s: cannot set up the device: %s", be->desc,
                  strerror(ENOMEM));
        virtio_net_free(n);
        return NULL;
    }
    return n;
}

void virtio_net_free(struct virtio_net *n)
{
    if (!n)
        return;
    virtio_device_destroy(&n->vdev); /* stops the thread first */
    n->be->ops->free(n->be);
    free(n->ps.fds);
    pthread_mutex_destroy(&n->cfg_lock);
    free(n->chain);
    free(n->rxbuf);
    free(n->slots);
    free(n->tx_iov);
    free(n);
}

struct virtio_device *virtio_net_device(struct virtio_net *n)
{
    return n ? &n->vdev : NULL;
}

struct virtio_net *virtio_net_of(struct virtio_device *d)
{
    return d && d->ops.device_id == VIRTIO_ID_NET ? (struct virtio_net *)d : NULL;
}

const char *virtio_net_warning(const struct virtio_net *n)
{
    return n->be->warning[0] ? n->be->warning : NULL;
}

void virtio_net_get_stats(const struct virtio_net *n, struct net_stats *out)
{
    memset(out, 0, sizeof *out);
    net_stats_accumulate(out, &n->stats);
    net_stats_accumulate(out, &n->be->stats);
}
