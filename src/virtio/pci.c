/* virtio-pci, modern interface.
 *
 * Implements, from virtio 1.2 (OASIS, 2022):
 *   2.1      Device status field (FEATURES_OK refused for a bad feature set,
 *            DEVICE_NEEDS_RESET with a configuration change notification)
 *   2.2      Feature bits (VERSION_1 required; the driver's set must be a
 *            subset of what is offered)
 *   2.4      Device reset (writing 0 to device_status; reads 0 once done)
 *   4.1.2    PCI device discovery (IDs 0x1040 + device ID, revision 1)
 *   4.1.4    Virtio structure PCI capabilities: 4.1.4.3 common
 *            configuration, 4.1.4.4 notification (notify_off_multiplier),
 *            4.1.4.5 ISR status (read to clear), 4.1.4.6 device-specific
 *            configuration, 4.1.4.9 PCI configuration access capability
 *   4.1.5.1.2 MSI-X vector configuration (VIRTIO_MSI_NO_VECTOR when a
 *            vector is out of range)
 *   4.1.5.4  Notification of device configuration changes
 * and from PCI Local Bus 3.0, 6.8.2 MSI-X: capability (function mask,
 * enable), table (per-vector mask, bits 1:0 of the address read 0), and
 * pending bits that fire when their vector is unmasked.
 *
 * Every register access comes from a possibly hostile guest: any width at
 * any offset is accepted; what the spec does not define reads as all-ones
 * (the bus pre-fills reads) and is ignored on write.
 *
 * Locks, outermost first: the PCI host's config lock (held around our PCI
 * hooks) > cfg_lock (common configuration, queue set-up; held across
 * ops->reset and ops->activate) > irq_lock (status, ISR, vectors, MSI-X
 * state; what device threads take to notify) > the kvm_irq lock. A device
 * thread therefore never waits for a vCPU that waits for it in
 * ops->reset.
 */
#include "virtio/pci.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NUM_VECTORS_MAX (VIRTIO_MAX_QUEUES + 1)

/* virtio_pci_cap.cfg_type (4.1.4). */
enum {
    CAP_COMMON_CFG = 1,
    CAP_NOTIFY_CFG = 2,
    CAP_ISR_CFG = 3,
    CAP_DEVICE_CFG = 4,
    CAP_PCI_CFG = 5,
};
#define CAP_LEN          16 /* struct virtio_pci_cap */
#define NOTIFY_CAP_LEN   20 /* + notify_off_multiplier */
#define PCI_CFG_CAP_LEN  20 /* + pci_cfg_data[4] */
/* Offsets inside struct virtio_pci_cap. */
#define CAP_CFG_TYPE     3
#define CAP_BAR          4
#define CAP_OFFSET       8
#define CAP_LENGTH       12
#define CAP_NOTIFY_MULT  16
#define CAP_PCI_CFG_DATA 16

/* Common configuration fields (4.1.4.3). */
enum {
    COMMON_DFSELECT = 0x00,
    COMMON_DF = 0x04,
    COMMON_GFSELECT = 0x08,
    COMMON_GF = 0x0c,
    COMMON_MSIX = 0x10,
    COMMON_NUMQ = 0x12,
    COMMON_STATUS = 0x14,
    COMMON_CFGGENERATION = 0x15,
    COMMON_Q_SELECT = 0x16,
    COMMON_Q_SIZE = 0x18,
    COMMON_Q_MSIX = 0x1a,
    COMMON_Q_ENABLE = 0x1c,
    COMMON_Q_NOFF = 0x1e,
    COMMON_Q_DESCLO = 0x20,
    COMMON_Q_DESCHI = 0x24,
    COMMON_Q_AVAILLO = 0x28,
    COMMON_Q_AVAILHI = 0x2c,
    COMMON_Q_USEDLO = 0x30,
    COMMON_Q_USEDHI = 0x34,
};

/* MSI-X (PCI 3.0 6.8.2). */
#define MSIX_CAP_LEN      12
#define MSIX_CTRL_ENABLE  0x8000
#define MSIX_CTRL_MASKALL 0x4000
#define MSIX_ENTRY_SIZE   16
#define MSIX_ENTRY_MASKED 0x1

#define ISR_QUEUE  0x1
#define ISR_CONFIG 0x2

#define OFFERED_ALWAYS \
    ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << VIRTIO_F_EVENT_IDX))

struct msix_entry {
    uint32_t addr_lo, addr_hi, data, ctrl;
    bool dirty; /* differs from the route KVM has */
};

struct vq_state {
    struct virtq q;
    bool enabled;
    int kick_fd;        /* eventfd; the ioeventfd signals it */
    bool kick_assigned; /* ioeventfd in KVM (PCI config lock) */
};

/* What virtio.h hands devices; the rest of the state follows it. */
struct virtio_transport {
    struct virtio_pci *vp;
};

struct virtio_pci {
    struct virtio_transport t;
    const struct virtio_device_ops *ops;
    void *dev;
    const struct guest_memory *mem;
    struct kvm_irq *kvm;
    struct pci_func *func;
    unsigned nq, nvec;
    uint64_t offered;
    int msix_cap, pci_cfg_cap;

    pthread_mutex_t cfg_lock;
    /* cfg_lock: */
    uint32_t dfselect, gfselect;
    uint64_t driver_features;
    uint16_t queue_select;
    struct vq_state vq[VIRTIO_MAX_QUEUES];
    bool active; /* ops->activate succeeded since the last reset */

    pthread_mutex_t irq_lock;
    /* irq_lock (written under cfg_lock too where the driver changes them): */
    uint8_t status;
    uint8_t isr;
    uint8_t generation;
    uint16_t config_vector;
    uint16_t queue_vector[VIRTIO_MAX_QUEUES];
    bool msix_enabled, msix_maskall;
    struct msix_entry table[NUM_VECTORS_MAX];
    uint64_t pba;
    int irqfd[NUM_VECTORS_MAX];
    int gsi[NUM_VECTORS_MAX];

    uint64_t bar_gpa; /* where BAR 0 decodes (PCI config lock) */
};

static uint32_t get_le(const uint8_t *p, unsigned len)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < len && i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static bool is_pow2(unsigned v)
{
    return v && !(v & (v - 1));
}

/* ---- interrupts (irq_lock held) -------------------------------------- */

static bool vector_deliverable(const struct virtio_pci *vp, unsigned vec)
{
    return vp->msix_enabled && !vp->msix_maskall && !(vp->table[vec].ctrl & MSIX_ENTRY_MASKED);
}

/* Gives KVM the message the guest programmed, if it changed. */
static void sync_route(struct virtio_pci *vp, unsigned vec)
{
    struct msix_entry *e = &vp->table[vec];
    if (!e->dirty)
        return;
    uint64_t addr = (uint64_t)e->addr_hi << 32 | e->addr_lo;
    if (kvm_irq_msi_route(vp->kvm, (unsigned)vp->gsi[vec], addr, e->data) == 0)
        e->dirty = false; /* on failure: try again at the next interrupt */
}

static void signal_fd(int fd)
{
    uint64_t one = 1;
    /* EAGAIN only if the counter is about to overflow: the reader has
     * been told already. */
    if (write(fd, &one, sizeof one) < 0) {
    }
}

/* Sends vector vec, or holds it in the PBA while masked. Without MSI-X
 * there is nothing to send: this function has no INTx pin, and the ISR
 * bits the caller set are all the driver gets. */
static void fire(struct virtio_pci *vp, unsigned vec)
{
    if (vec >= vp->nvec || !vp->msix_enabled)
        return;
    if (!vector_deliverable(vp, vec)) {
        vp->pba |= 1ULL << vec;
        return;
    }
    sync_route(vp, vec);
    signal_fd(vp->irqfd[vec]);
}

/* After a mask was lifted: routes the vector now (so the next interrupt
 * costs no KVM_SET_GSI_ROUTING) and sends what was pending. */
static void service(struct virtio_pci *vp, unsigned vec)
{
    if (!vector_deliverable(vp, vec))
        return;
    sync_route(vp, vec);
    if (vp->pba & (1ULL << vec)) {
        vp->pba &= ~(1ULL << vec);
        signal_fd(vp->irqfd[vec]);
    }
}

static void service_all(struct virtio_pci *vp)
{
    for (unsigned v = 0; v < vp->nvec; v++)
        service(vp, v);
}

/* Sets NEEDS_RESET and tells a running driver (2.1.2). */
static void needs_reset_locked(struct virtio_pci *vp)
{
    if (vp->status == 0 || (vp->status & VIRTIO_STATUS_NEEDS_RESET))
        return;
    vp->status |= VIRTIO_STATUS_NEEDS_RESET;
    if (vp->status & VIRTIO_STATUS_DRIVER_OK) {
        vp->isr |= ISR_CONFIG;
        fire(vp, vp->config_vector);
    }
}

void virtio_notify_queues(struct virtio_transport *t, uint32_t mask)
{
    struct virtio_pci *vp = t->vp;
    uint64_t sent = 0; /* vectors fired, by number (< NUM_VECTORS_MAX) */
    pthread_mutex_lock(&vp->irq_lock);
    for (unsigned q = 0; q < vp->nq; q++) {
        if (!(mask & (1u << q)))
            continue;
        vp->isr |= ISR_QUEUE;
        uint16_t vec = vp->queue_vector[q];
        if (vec < vp->nvec && (sent & (1ULL << vec)))
            continue;
        if (vec < vp->nvec)
            sent |= 1ULL << vec;
        fire(vp, vec);
    }
    pthread_mutex_unlock(&vp->irq_lock);
}

void virtio_notify_queue(struct virtio_transport *t, unsigned queue)
{
    if (queue < t->vp->nq)
        virtio_notify_queues(t, 1u << queue);
}

void virtio_notify_config(struct virtio_transport *t)
{
    struct virtio_pci *vp = t->vp;
    pthread_mutex_lock(&vp->irq_lock);
    vp->generation++; /* a driver reading the config twice sees it moved */
    vp->isr |= ISR_CONFIG;
    fire(vp, vp->config_vector);
    pthread_mutex_unlock(&vp->irq_lock);
}

void virtio_set_needs_reset(struct virtio_transport *t)
{
    struct virtio_pci *vp = t->vp;
    pthread_mutex_lock(&vp->irq_lock);
    needs_reset_locked(vp);
    pthread_mutex_unlock(&vp->irq_lock);
}

/* ---- device status, reset, activation (cfg_lock held) ------------------ */

static void drain(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof v) < 0) {
        /* EAGAIN: nothing was pending */
    }
}

static void reset_queue(struct virtio_pci *vp, unsigned i)
{
    struct virtq *q = &vp->vq[i].q;
    memset(q, 0, sizeof *q);
    q->mem = vp->mem;
    q->size = vp->ops->queue_max_size; /* reads as the maximum until changed */
    vp->vq[i].enabled = false;
}

static void device_reset(struct virtio_pci *vp)
{
    /* First the device lets go of the queues, then the registers clear:
     * a driver polling device_status sees 0 only after both. */
    if (vp->ops->reset)
        vp->ops->reset(vp->dev);
    pthread_mutex_lock(&vp->irq_lock);
    vp->status = 0;
    vp->isr = 0;
    vp->config_vector = VIRTIO_MSI_NO_VECTOR;
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
        vp->queue_vector[i] = VIRTIO_MSI_NO_VECTOR;
    pthread_mutex_unlock(&vp->irq_lock);
    vp->dfselect = vp->gfselect = 0;
    vp->driver_features = 0;
    vp->active = false;
    vp->queue_select = 0;
    for (unsigned i = 0; i < vp->nq; i++) {
        reset_queue(vp, i);
        drain(vp->vq[i].kick_fd); /* old kicks mean nothing to the next driver */
    }
}

static bool features_acceptable(const struct virtio_pci *vp)
{
    uint64_t f = vp->driver_features;
    return !(f & ~vp->offered) && (f & (1ULL << VIRTIO_F_VERSION_1));
}

static int activate(struct virtio_pci *vp, bool resume)
{
    struct virtio_queues qs = {
        .transport = &vp->t,
        .count = vp->nq,
        .features = vp->driver_features,
        .resume = resume,
    };
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
        struct vq_state *s = &vp->vq[i];
        bool on = i < vp->nq && s->enabled;
        if (on) {
            s->q.event_idx = vp->driver_features & (1ULL << VIRTIO_F_EVENT_IDX);
            s->q.indirect = vp->driver_features & (1ULL << VIRTIO_F_INDIRECT_DESC);
        }
        qs.q[i] = on ? &s->q : NULL;
        qs.kick_fd[i] = on ? s->kick_fd : -1;
    }
    if (vp->ops->activate && vp->ops->activate(vp->dev, &qs) < 0) {
        vp->active = false;
        pthread_mutex_lock(&vp->irq_lock);
        needs_reset_locked(vp);
        pthread_mutex_unlock(&vp->irq_lock);
        return -1;
    }
    vp->active = true;
    return 0;
}

static void write_status(struct virtio_pci *vp, uint8_t v)
{
    if (v == 0) {
        device_reset(vp);
        return;
    }
    pthread_mutex_lock(&vp->irq_lock);
    uint8_t old = vp->status;
    /* Bits only accumulate until a reset; NEEDS_RESET is the device's. */
    uint8_t now = old | (v & ~VIRTIO_STATUS_NEEDS_RESET);
    if ((now & ~old & VIRTIO_STATUS_FEATURES_OK) && !features_acceptable(vp))
        now &= ~VIRTIO_STATUS_FEATURES_OK; /* the driver re-reads and gives up */
    bool start = now & ~old & VIRTIO_STATUS_DRIVER_OK;
    if (start && !(now & VIRTIO_STATUS_FEATURES_OK)) {
        now &= ~VIRTIO_STATUS_DRIVER_OK;
        start = false;
    }
    vp->status = now;
    pthread_mutex_unlock(&vp->irq_lock);
    if (start)
        activate(vp, false);
}

/* ---- common configuration (4.1.4.3) ----------------------------------- */

static struct vq_state *selected(struct virtio_pci *vp)
{
    return vp->queue_select < vp->nq ? &vp->vq[vp->queue_select] : NULL;
}

static uint16_t valid_vector(const struct virtio_pci *vp, uint32_t v)
{
    return v < vp->nvec ? (uint16_t)v : VIRTIO_MSI_NO_VECTOR;
}

/* Reads assemble the whole structure and copy out the bytes asked for, so
 * any width at any offset gets a consistent answer. cfg_lock held. */
static void common_read(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len)
{
    uint8_t img[VIRTIO_PCI_COMMON_LEN];
    memset(img, 0, sizeof img);
    uint64_t df = vp->dfselect == 0 ? vp->offered : vp->dfselect == 1 ? vp->offered >> 32 : 0;
    uint64_t gf = vp->gfselect == 0   ? vp->driver_features
                  : vp->gfselect == 1 ? vp->driver_features >> 32
                                      : 0;
    put_le(img + COMMON_DFSELECT, vp->dfselect, 4);
    put_le(img + COMMON_DF, df, 4);
    put_le(img + COMMON_GFSELECT, vp->gfselect, 4);
    put_le(img + COMMON_GF, gf, 4);
    put_le(img + COMMON_NUMQ, vp->nq, 2);
    put_le(img + COMMON_Q_SELECT, vp->queue_select, 2);
    pthread_mutex_lock(&vp->irq_lock);
    put_le(img + COMMON_MSIX, vp->config_vector, 2);
    img[COMMON_STATUS] = vp->status;
    img[COMMON_CFGGENERATION] = vp->generation;
    struct vq_state *s = selected(vp);
    if (s)
        put_le(img + COMMON_Q_MSIX, vp->queue_vector[vp->queue_select], 2);
    pthread_mutex_unlock(&vp->irq_lock);
    /* An out-of-range queue reads as size 0: "not available". */
    if (s) {
        put_le(img + COMMON_Q_SIZE, s->q.size, 2);
        put_le(img + COMMON_Q_ENABLE, s->enabled, 2);
        put_le(img + COMMON_Q_NOFF, vp->queue_select, 2);
        put_le(img + COMMON_Q_DESCLO, s->q.desc_gpa, 8);
        put_le(img + COMMON_Q_AVAILLO, s->q.avail_gpa, 8);
        put_le(img + COMMON_Q_USEDLO, s->q.used_gpa, 8);
    }
    for (uint32_t i = 0; i < len; i++)
        if (off + i < sizeof img)
            data[i] = img[off + i];
}

static void set_half(uint64_t *field, bool high, uint32_t v)
{
    if (high)
        *field = (*field & 0xffffffffULL) | (uint64_t)v << 32;
    else
        *field = (*field & ~0xffffffffULL) | v;
}

static void enable_queue(struct virtio_pci *vp, struct vq_state *s)
{
    struct virtq *q = &s->q;
    q->mem = vp->mem;
    q->event_idx = vp->driver_features & (1ULL << VIRTIO_F_EVENT_IDX);
    q->indirect = vp->driver_features & (1ULL << VIRTIO_F_INDIRECT_DESC);
    virtq_reset(q);
    if (!virtq_rings_valid(q)) {
        /* Rings outside RAM or misaligned: the device cannot use the
         * queue; say so instead of leaving the driver waiting. */
        pthread_mutex_lock(&vp->irq_lock);
        needs_reset_locked(vp);
        pthread_mutex_unlock(&vp->irq_lock);
        return;
    }
    q->ready = true;
    s->enabled = true;
}

/* Writes must use the field's own width (4.1.3.1), 64-bit fields also as
 * two 32-bit halves; anything else is dropped. cfg_lock held. */
static void common_write(struct virtio_pci *vp, uint64_t off, const uint8_t *data, uint32_t len)
{
    uint32_t v = get_le(data, len);
    struct vq_state *s = selected(vp);
    pthread_mutex_lock(&vp->irq_lock);
    uint8_t status = vp->status;
    pthread_mutex_unlock(&vp->irq_lock);
    /* Queue set-up is frozen once enabled, and everything once running. */
    bool q_writable = s && !s->enabled && !(status & VIRTIO_STATUS_DRIVER_OK);

    if (len == 8 && (off == COMMON_Q_DESCLO || off == COMMON_Q_AVAILLO || off == COMMON_Q_USEDLO)) {
        common_write(vp, off, data, 4);
        common_write(vp, off + 4, data + 4, 4);
        return;
    }
    switch (off) {
    case COMMON_DFSELECT:
        if (len == 4)
            vp->dfselect = v;
        break;
    case COMMON_GFSELECT:
        if (len == 4)
            vp->gfselect = v;
        break;
    case COMMON_GF:
        /* Features are fixed once FEATURES_OK is set. */
        if (len == 4 && vp->gfselect < 2 && !(status & VIRTIO_STATUS_FEATURES_OK))
            set_half(&vp->driver_features, vp->gfselect == 1, v);
        break;
    case COMMON_MSIX:
        if (len == 2) {
            pthread_mutex_lock(&vp->irq_lock);
            vp->config_vector = valid_vector(vp, v);
            pthread_mutex_unlock(&vp->irq_lock);
        }
        break;
    case COMMON_STATUS:
        if (len == 1)
            write_status(vp, (uint8_t)v);
        break;
    case COMMON_Q_SELECT:
        if (len == 2)
            vp->queue_select = (uint16_t)v;
        break;
    case COMMON_Q_SIZE:
        /* A smaller power of two is allowed (2.7.10.1); anything else is
         * ignored and the old size stays. */
        if (len == 2 && q_writable && is_pow2(v) && v <= vp->ops->queue_max_size)
            s->q.size = (uint16_t)v;
        break;
    case COMMON_Q_MSIX:
        /* Allowed at any time: Linux detaches vectors from live queues. */
        if (len == 2 && s) {
            pthread_mutex_lock(&vp->irq_lock);
            vp->queue_vector[vp->queue_select] = valid_vector(vp, v);
            pthread_mutex_unlock(&vp->irq_lock);
        }
        break;
    case COMMON_Q_ENABLE:
        /* Writing 0 is forbidden to the driver (4.1.4.3.2): ignored. */
        if (len == 2 && q_writable && v == 1)
            enable_queue(vp, s);
        break;
    case COMMON_Q_DESCLO:
    case COMMON_Q_DESCHI:
    case COMMON_Q_AVAILLO:
    case COMMON_Q_AVAILHI:
    case COMMON_Q_USEDLO:
    case COMMON_Q_USEDHI:
        if (len == 4 && q_writable) {
            uint64_t *field = off < COMMON_Q_AVAILLO  ? &s->q.desc_gpa
                              : off < COMMON_Q_USEDLO ? &s->q.avail_gpa
                                                      : &s->q.used_gpa;
            set_half(field, off & 4, v);
        }
        break;
    default: break; /* read-only fields and reserved bytes */
    }
}

/* ---- MSI-X table and PBA (irq_lock held) ------------------------------ */

static uint32_t msix_field(const struct virtio_pci *vp, unsigned vec, unsigned field)
{
    const struct msix_entry *e = &vp->table[vec];
    switch (field) {
    case 0: return e->addr_lo;
    case 1: return e->addr_hi;
    case 2: return e->data;
    default: return e->ctrl;
    }
}

static void msix_table_read(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        uint64_t b = off + i;
        unsigned vec = (unsigned)(b / MSIX_ENTRY_SIZE);
        if (vec >= vp->nvec)
            continue;
        uint32_t f = msix_field(vp, vec, (unsigned)(b % MSIX_ENTRY_SIZE) / 4);
        data[i] = (uint8_t)(f >> (8 * (b % 4)));
    }
}

static void msix_field_write(struct virtio_pci *vp, uint64_t off, uint32_t v)
{
    unsigned vec = (unsigned)(off / MSIX_ENTRY_SIZE);
    if (vec >= vp->nvec)
        return;
    struct msix_entry *e = &vp->table[vec];
    switch ((off % MSIX_ENTRY_SIZE) / 4) {
    case 0:
        e->addr_lo = v & ~3u; /* dword-aligned message address */
        e->dirty = true;
        break;
    case 1:
        e->addr_hi = v;
        e->dirty = true;
        break;
    case 2:
        e->data = v;
        e->dirty = true;
        break;
    default: {
        bool was_masked = e->ctrl & MSIX_ENTRY_MASKED;
        e->ctrl = v & MSIX_ENTRY_MASKED; /* other bits reserved */
        if (was_masked && !(e->ctrl & MSIX_ENTRY_MASKED))
            service(vp, vec);
        break;
    }
    }
}

/* DWORD and aligned QWORD accesses only (PCI 3.0 6.8.2). */
static void msix_table_write(struct virtio_pci *vp, uint64_t off, const uint8_t *data, uint32_t len)
{
    if (len == 4 && off % 4 == 0) {
        msix_field_write(vp, off, get_le(data, 4));
    } else if (len == 8 && off % 8 == 0) {
        msix_field_write(vp, off, get_le(data, 4));
        msix_field_write(vp, off + 4, get_le(data + 4, 4));
    }
}

/* ---- BAR 0 ------------------------------------------------------------ */

static void bar_access(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len,
                       bool is_write)
{
    struct virtio_pci *vp = opaque;
    if (bar != VIRTIO_PCI_BAR)
        return;

    if (off < VIRTIO_PCI_ISR_OFF) {
        pthread_mutex_lock(&vp->cfg_lock);
        if (is_write)
            common_write(vp, off, data, len);
        else
            common_read(vp, off, data, len);
        pthread_mutex_unlock(&vp->cfg_lock);
    } else if (off < VIRTIO_PCI_DEVICE_OFF) {
        /* ISR status: one byte, cleared by reading it (4.1.4.5). */
        if (!is_write && off == VIRTIO_PCI_ISR_OFF) {
            pthread_mutex_lock(&vp->irq_lock);
            data[0] = vp->isr;
            vp->isr = 0;
            pthread_mutex_unlock(&vp->irq_lock);
        }
    } else if (off < VIRTIO_PCI_NOTIFY_OFF) {
        uint64_t o = off - VIRTIO_PCI_DEVICE_OFF;
        size_t size = vp->ops->config_size;
        if (o >= size)
            return;
        size_t n = len < size - o ? len : size - o;
        if (is_write && vp->ops->config_write)
            vp->ops->config_write(vp->dev, o, data, n);
        else if (!is_write && vp->ops->config_read)
            vp->ops->config_read(vp->dev, o, data, n);
    } else if (off < VIRTIO_PCI_MSIX_TABLE_OFF) {
        /* Normally KVM catches these writes (ioeventfd). We see those it
         * did not match (another width where only 2 is registered, or no
         * ioeventfd at all) and kick the same eventfd. */
        uint64_t o = off - VIRTIO_PCI_NOTIFY_OFF;
        if (is_write && o % VIRTIO_PCI_NOTIFY_MULT == 0 && o / VIRTIO_PCI_NOTIFY_MULT < vp->nq)
            signal_fd(vp->vq[o / VIRTIO_PCI_NOTIFY_MULT].kick_fd);
    } else if (off < VIRTIO_PCI_MSIX_PBA_OFF) {
        uint64_t o = off - VIRTIO_PCI_MSIX_TABLE_OFF;
        pthread_mutex_lock(&vp->irq_lock);
        if (is_write)
            msix_table_write(vp, o, data, len);
        else
            msix_table_read(vp, o, data, len);
        pthread_mutex_unlock(&vp->irq_lock);
    } else if (!is_write && off - VIRTIO_PCI_MSIX_PBA_OFF < 8) {
        /* The PBA is read-only; NUM_VECTORS_MAX fits one qword. */
        uint64_t o = off - VIRTIO_PCI_MSIX_PBA_OFF;
        pthread_mutex_lock(&vp->irq_lock);
        for (uint32_t i = 0; i < len && o + i < 8; i++)
            data[i] = (uint8_t)(vp->pba >> (8 * (o + i)));
        pthread_mutex_unlock(&vp->irq_lock);
    }
}

/* BAR 0 moved (or stopped/started decoding): the ioeventfds follow it.
 * PCI config lock held, which is what guards kick_assigned and bar_gpa. */
static void bar_remap(void *opaque, unsigned bar, uint64_t old_gpa, uint64_t new_gpa)
{
    struct virtio_pci *vp = opaque;
    if (bar != VIRTIO_PCI_BAR)
        return;
    for (unsigned i = 0; i < vp->nq; i++) {
        struct vq_state *s = &vp->vq[i];
        uint64_t off = VIRTIO_PCI_NOTIFY_OFF + (uint64_t)VIRTIO_PCI_NOTIFY_MULT * i;
        if (s->kick_assigned)
            kvm_irq_ioeventfd(vp->kvm, s->kick_fd, old_gpa + off, false);
        s->kick_assigned = false;
        /* If KVM refuses (another BAR the guest put on top of ours holds
         * the address), writes reach bar_access and still kick. */
        if (new_gpa)
            s->kick_assigned = kvm_irq_ioeventfd(vp->kvm, s->kick_fd, new_gpa + off, true) == 0;
    }
    vp->bar_gpa = new_gpa;
}

/* ---- PCI config hooks (PCI config lock held) -------------------------- */

/* The VIRTIO_PCI_CAP_PCI_CFG window (4.1.4.9): cap.bar/offset/length pick
 * a BAR access that pci_cfg_data reads or writes. Returns false if the
 * window is not set to something the spec allows. */
static bool pci_cfg_window(struct virtio_pci *vp, struct pci_func *f, uint32_t *off, uint32_t *len)
{
    unsigned c = (unsigned)vp->pci_cfg_cap;
    uint32_t bar = pci_cfg_get(f, c + CAP_BAR, 1);
    *off = pci_cfg_get(f, c + CAP_OFFSET, 4);
    *len = pci_cfg_get(f, c + CAP_LENGTH, 4);
    return bar == VIRTIO_PCI_BAR && (*len == 1 || *len == 2 || *len == 4) && *off % *len == 0 &&
           *off < VIRTIO_PCI_BAR_SIZE;
}

static void config_read_hook(void *opaque, struct pci_func *f, unsigned off, unsigned len)
{
    struct virtio_pci *vp = opaque;
    unsigned data_at = (unsigned)vp->pci_cfg_cap + CAP_PCI_CFG_DATA;
    uint32_t o, n;
    if (off < data_at + 4 && data_at < off + len && pci_cfg_window(vp, f, &o, &n)) {
        uint8_t buf[4];
        memset(buf, 0xff, sizeof buf);
        bar_access(vp, VIRTIO_PCI_BAR, o, buf, n, false);
        pci_cfg_set(f, data_at, get_le(buf, 4), 4);
    }
}

static void config_write_hook(void *opaque, struct pci_func *f, unsigned off, unsigned len)
{
    struct virtio_pci *vp = opaque;
    unsigned data_at = (unsigned)vp->pci_cfg_cap + CAP_PCI_CFG_DATA;
    unsigned ctrl_at = (unsigned)vp->msix_cap + 2;
    uint32_t o, n;

    if (off < data_at + 4 && data_at < off + len && pci_cfg_window(vp, f, &o, &n)) {
        uint8_t buf[4];
        put_le(buf, pci_cfg_get(f, data_at, 4), 4);
        bar_access(vp, VIRTIO_PCI_BAR, o, buf, n, true);
    }
    if (off < ctrl_at + 2 && ctrl_at < off + len) {
        uint32_t ctrl = pci_cfg_get(f, ctrl_at, 2);
        pthread_mutex_lock(&vp->irq_lock);
        vp->msix_enabled = ctrl & MSIX_CTRL_ENABLE;
        vp->msix_maskall = ctrl & MSIX_CTRL_MASKALL;
        service_all(vp);
        pthread_mutex_unlock(&vp->irq_lock);
    }
}

static const struct pci_func_ops func_ops = {
    .bar_access = bar_access,
    .bar_remap = bar_remap,
    .config_read = config_read_hook,
    .config_write = config_write_hook,
};

/* ---- creation --------------------------------------------------------- */

static uint32_t class_of(uint16_t device_id)
{
    switch (device_id) {
    case 1: return 0x020000;  /* network controller, Ethernet */
    case 2: return 0x018000;  /* mass storage, other */
    case 3: return 0x078000;  /* simple communication, other */
    default: return 0xff0000; /* unassigned class */
    }
}

static int add_virtio_cap(struct pci_func *f, uint8_t type, unsigned len, uint32_t offset,
                          uint32_t length)
{
    int c = pci_func_add_cap(f, PCI_CAP_ID_VNDR, len);
    if (c < 0)
        return -1;
    pci_cfg_set(f, (unsigned)c + 2, len, 1); /* cap_len */
    pci_cfg_set(f, (unsigned)c + CAP_CFG_TYPE, type, 1);
    pci_cfg_set(f, (unsigned)c + CAP_BAR, VIRTIO_PCI_BAR, 1);
    pci_cfg_set(f, (unsigned)c + CAP_OFFSET, offset, 4);
    pci_cfg_set(f, (unsigned)c + CAP_LENGTH, length, 4);
    return c;
}

static int build_function(struct virtio_pci *vp, struct pci_host *host)
{
    const struct virtio_device_ops *ops = vp->ops;
    const struct pci_id id = {
        .vendor = VIRTIO_PCI_VENDOR,
        .device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_id),
        .revision = 1, /* non-transitional (4.1.2.1) */
        .class_code = class_of(ops->device_id),
        .subsys_vendor = VIRTIO_PCI_VENDOR,
        .subsys_id = VIRTIO_PCI_SUBSYS_ID,
    };
    struct pci_func *f = pci_func_new(host, -1, &id, &func_ops, vp);
    if (!f)
        return -1;
    vp->func = f;
    /* 64-bit and not prefetchable: it holds MSI-X and read-to-clear ISR. */
    if (pci_func_add_bar(f, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, PCI_BAR_MEM_TYPE_64) < 0)
        return -1;

    int c = add_virtio_cap(f, CAP_COMMON_CFG, CAP_LEN, VIRTIO_PCI_COMMON_OFF,
                           VIRTIO_PCI_COMMON_LEN);
    if (c < 0)
        return -1;
    c = add_virtio_cap(f, CAP_NOTIFY_CFG, NOTIFY_CAP_LEN, VIRTIO_PCI_NOTIFY_OFF,
                       VIRTIO_PCI_NOTIFY_MULT * vp->nq);
    if (c < 0)
        return -1;
    pci_cfg_set(f, (unsigned)c + CAP_NOTIFY_MULT, VIRTIO_PCI_NOTIFY_MULT, 4);
    if (add_virtio_cap(f, CAP_ISR_CFG, CAP_LEN, VIRTIO_PCI_ISR_OFF, 1) < 0)
        return -1;
    if (ops->config_size && add_virtio_cap(f, CAP_DEVICE_CFG, CAP_LEN, VIRTIO_PCI_DEVICE_OFF,
                                           (uint32_t)ops->config_size) < 0)
        return -1;
    c = add_virtio_cap(f, CAP_PCI_CFG, PCI_CFG_CAP_LEN, 0, 0);
    if (c < 0)
        return -1;
    vp->pci_cfg_cap = c;
    pci_cfg_set_wmask(f, (unsigned)c + CAP_BAR, 0xff, 1);
    pci_cfg_set_wmask(f, (unsigned)c + CAP_OFFSET, 0xffffffff, 4);
    pci_cfg_set_wmask(f, (unsigned)c + CAP_LENGTH, 0xffffffff, 4);
    pci_cfg_set_wmask(f, (unsigned)c + CAP_PCI_CFG_DATA, 0xffffffff, 4);

    c = pci_func_add_cap(f, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
    if (c < 0)
        return -1;
    vp->msix_cap = c;
    pci_cfg_set(f, (unsigned)c + 2, vp->nvec - 1, 2); /* table size - 1 */
    pci_cfg_set_wmask(f, (unsigned)c + 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL, 2);
    pci_cfg_set(f, (unsigned)c + 4, VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_BAR, 4);
    pci_cfg_set(f, (unsigned)c + 8, VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_BAR, 4);
    return 0;
}

static bool ops_usable(const struct virtio_device_ops *ops)
{
    return ops && ops->num_queues >= 1 && ops->num_queues <= VIRTIO_MAX_QUEUES &&
           is_pow2(ops->queue_max_size) && ops->queue_max_size <= VIRTQ_MAX_SIZE &&
           ops->config_size <= VIRTIO_PCI_NOTIFY_OFF - VIRTIO_PCI_DEVICE_OFF &&
           (ops->msix_vectors == 0 ||
            (ops->msix_vectors >= 2 && ops->msix_vectors <= ops->num_queues + 1));
}

/* Undoes virtio_pci_new, whatever it got to. The device is reset only if
 * it was ever handed to the guest. */
static void destroy(struct virtio_pci *vp, bool reset_device)
{
    if (reset_device && vp->ops->reset)
        vp->ops->reset(vp->dev);
    pci_func_remove(vp->func); /* no hook can reach vp after this */
    for (unsigned i = 0; i < vp->nq; i++) {
        struct vq_state *s = &vp->vq[i];
        if (s->kick_assigned)
            kvm_irq_ioeventfd(
                vp->kvm, s->kick_fd,
                vp->bar_gpa + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)VIRTIO_PCI_NOTIFY_MULT * i, false);
        if (s->kick_fd >= 0)
            close(s->kick_fd);
    }
    for (unsigned v = 0; v < vp->nvec; v++) {
        if (vp->irqfd[v] >= 0) {
            kvm_irq_irqfd(vp->kvm, vp->irqfd[v], (unsigned)vp->gsi[v], false);
            close(vp->irqfd[v]);
        }
        if (vp->gsi[v] >= 0)
            kvm_irq_msi_free(vp->kvm, (unsigned)vp->gsi[v]);
    }
    pthread_mutex_destroy(&vp->irq_lock);
    pthread_mutex_destroy(&vp->cfg_lock);
    free(vp);
}

struct virtio_pci *virtio_pci_new(struct pci_host *host, struct kvm_irq *irq,
                                  const struct guest_memory *mem,
                                  const struct virtio_device_ops *ops, void *dev)
{
    if (!host || !irq || !ops_usable(ops))
        return NULL;
    struct virtio_pci *vp = calloc(1, sizeof *vp);
    if (!vp)
        return NULL;
    vp->t.vp = vp;
    vp->ops = ops;
    vp->dev = dev;
    vp->mem = mem;
    vp->kvm = irq;
    vp->nq = ops->num_queues;
    vp->nvec = ops->msix_vectors ? ops->msix_vectors : vp->nq + 1;
    vp->offered = ops->features | OFFERED_ALWAYS;
    pthread_mutex_init(&vp->cfg_lock, NULL);
    pthread_mutex_init(&vp->irq_lock, NULL);
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
        vp->vq[i].kick_fd = -1;
    for (unsigned v = 0; v < NUM_VECTORS_MAX; v++) {
        vp->irqfd[v] = -1;
        vp->gsi[v] = -1;
    }

    for (unsigned i = 0; i < vp->nq; i++) {
        vp->vq[i].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (vp->vq[i].kick_fd < 0)
            goto fail;
    }
    /* One irqfd and MSI route per vector, wired up front: reprogramming
     * a vector later is only a route update. */
    for (unsigned v = 0; v < vp->nvec; v++) {
        vp->irqfd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        vp->gsi[v] = kvm_irq_msi_alloc(irq);
        if (vp->irqfd[v] < 0 || vp->gsi[v] < 0 ||
            kvm_irq_irqfd(irq, vp->irqfd[v], (unsigned)vp->gsi[v], true) < 0) {
            if (vp->irqfd[v] >= 0)
                close(vp->irqfd[v]);
            vp->irqfd[v] = -1; /* not assigned: nothing to deassign */
            goto fail;
        }
        vp->table[v].ctrl = MSIX_ENTRY_MASKED; /* PCI reset state */
    }
    if (build_function(vp, host) < 0)
        goto fail;

    pthread_mutex_lock(&vp->cfg_lock);
    vp->config_vector = VIRTIO_MSI_NO_VECTOR;
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
        vp->queue_vector[i] = VIRTIO_MSI_NO_VECTOR;
        if (i < vp->nq)
            reset_queue(vp, i);
    }
    pthread_mutex_unlock(&vp->cfg_lock);
    return vp;

fail:
    destroy(vp, false);
    return NULL;
}

void virtio_pci_free(struct virtio_pci *vp)
{
    if (vp)
        destroy(vp, true);
}

struct virtio_transport *virtio_pci_transport(struct virtio_pci *vp)
{
    return &vp->t;
}

struct pci_func *virtio_pci_func(struct virtio_pci *vp)
{
    return vp->func;
}

/* ---- snapshots -------------------------------------------------------- */

void virtio_pci_quiesce(struct virtio_pci *vp)
{
    pthread_mutex_lock(&vp->cfg_lock);
    if (vp->active && vp->ops->stop)
        vp->ops->stop(vp->dev);
    pthread_mutex_unlock(&vp->cfg_lock);
}

int virtio_pci_resume(struct virtio_pci *vp)
{
    pthread_mutex_lock(&vp->cfg_lock);
    int rc = vp->active ? activate(vp, true) : 0;
    pthread_mutex_unlock(&vp->cfg_lock);
    return rc;
}

void virtio_pci_save(struct virtio_pci *vp, struct virtio_pci_state *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&vp->cfg_lock);
    pthread_mutex_lock(&vp->irq_lock);
    st->device_id = vp->ops->device_id;
    st->nq = (uint8_t)vp->nq;
    st->nvec = (uint8_t)vp->nvec;
    st->status = vp->status;
    st->isr = vp->isr;
    st->generation = vp->generation;
    st->active = vp->active;
    st->dfselect = vp->dfselect;
    st->gfselect = vp->gfselect;
    st->driver_features = vp->driver_features;
    st->queue_select = vp->queue_select;
    st->config_vector = vp->config_vector;
    st->pba = vp->pba;
    for (unsigned v = 0; v < vp->nvec; v++) {
        const struct msix_entry *e = &vp->table[v];
        st->table[v] = (struct virtio_pci_msix_state){ e->addr_lo, e->addr_hi, e->data, e->ctrl };
    }
    for (unsigned i = 0; i < vp->nq; i++) {
        const struct virtq *q = &vp->vq[i].q;
        st->queue[i] = (struct virtio_pci_queue_state){
            .size = q->size,
            .vector = vp->queue_vector[i],
            .enabled = vp->vq[i].enabled,
            .signalled_valid = q->signalled_valid,
            .last_avail = q->last_avail,
            .used_idx = q->used_idx,
            .signalled_used = q->signalled_used,
            .desc_gpa = q->desc_gpa,
            .avail_gpa = q->avail_gpa,
            .used_gpa = q->used_gpa,
        };
    }
    pthread_mutex_unlock(&vp->irq_lock);
    pthread_mutex_unlock(&vp->cfg_lock);
}

static int refuse(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static bool vector_ok(const struct virtio_pci *vp, uint16_t v)
{
    return v == VIRTIO_MSI_NO_VECTOR || v < vp->nvec;
}

/* Everything a driver could have brought the transport to, and nothing
 * else (the file is untrusted). */
static int check_state(const struct virtio_pci *vp, const struct virtio_pci_state *st, char *why,
                       size_t whylen)
{
    if (st->device_id != vp->ops->device_id || st->nq != vp->nq || st->nvec != vp->nvec)
        return refuse(why, whylen,
                      "transport of device %u with %u queues and %u vectors, not %u/%u/%u",
                      st->device_id, st->nq, st->nvec, vp->ops->device_id, vp->nq, vp->nvec);
    const uint8_t known = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                          VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK |
                          VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED;
    if (st->status & ~known)
        return refuse(why, whylen, "device status 0x%x has unknown bits", st->status);
    uint64_t f = st->driver_features;
    bool features_ok = !(f & ~vp->offered) && (f & (1ULL << VIRTIO_F_VERSION_1));
    if ((st->status & VIRTIO_STATUS_FEATURES_OK) && !features_ok)
        return refuse(why, whylen, "features 0x%llx accepted, but the device offers 0x%llx",
                      (unsigned long long)f, (unsigned long long)vp->offered);
    if ((st->status & VIRTIO_STATUS_DRIVER_OK) && !(st->status & VIRTIO_STATUS_FEATURES_OK))
        return refuse(why, whylen, "DRIVER_OK without FEATURES_OK");
    if (st->active > 1 || (st->active && !(st->status & VIRTIO_STATUS_DRIVER_OK)))
        return refuse(why, whylen, "a running device whose driver never set DRIVER_OK");
    if (st->isr & ~(ISR_QUEUE | ISR_CONFIG))
        return refuse(why, whylen, "ISR 0x%x", st->isr);
    if (!vector_ok(vp, st->config_vector))
        return refuse(why, whylen, "configuration vector %u of %u", st->config_vector, vp->nvec);
    if (st->pba >> vp->nvec)
        return refuse(why, whylen, "pending bits 0x%llx for %u vectors",
                      (unsigned long long)st->pba, vp->nvec);
    for (unsigned v = 0; v < vp->nvec; v++) {
        const struct virtio_pci_msix_state *e = &st->table[v];
        if ((e->addr_lo & 3) || (e->ctrl & ~MSIX_ENTRY_MASKED))
            return refuse(why, whylen, "MSI-X vector %u: address 0x%x, control 0x%x", v, e->addr_lo,
                          e->ctrl);
    }
    for (unsigned v = vp->nvec; v < NUM_VECTORS_MAX; v++) {
        const struct virtio_pci_msix_state *e = &st->table[v];
        if (e->addr_lo || e->addr_hi || e->data || e->ctrl)
            return refuse(why, whylen, "MSI-X vector %u of %u", v, vp->nvec);
    }
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
        const struct virtio_pci_queue_state *q = &st->queue[i];
        if (i >= vp->nq) {
            static const struct virtio_pci_queue_state none;
            if (memcmp(q, &none, sizeof none))
                return refuse(why, whylen, "queue %u of %u", i, vp->nq);
            continue;
        }
        if (!is_pow2(q->size) || q->size > vp->ops->queue_max_size)
            return refuse(why, whylen, "queue %u: size %u (a power of two up to %u)", i, q->size,
                          vp->ops->queue_max_size);
        if (!vector_ok(vp, q->vector))
            return refuse(why, whylen, "queue %u: vector %u of %u", i, q->vector, vp->nvec);
        if (q->enabled > 1 || q->signalled_valid > 1 || q->pad[0] || q->pad[1] || q->pad2)
            return refuse(why, whylen, "queue %u: flags out of range", i);
        if (!q->enabled &&
            (q->last_avail || q->used_idx || q->signalled_used || q->signalled_valid))
            return refuse(why, whylen, "queue %u: positions in a queue never enabled", i);
        if (q->enabled) {
            struct virtq probe = { .mem = vp->mem,
                                   .size = q->size,
                                   .desc_gpa = q->desc_gpa,
                                   .avail_gpa = q->avail_gpa,
                                   .used_gpa = q->used_gpa };
            if (!virtq_rings_valid(&probe))
                return refuse(why, whylen,
                              "queue %u: rings at 0x%llx/0x%llx/0x%llx are not in guest RAM or "
                              "not aligned",
                              i, (unsigned long long)q->desc_gpa, (unsigned long long)q->avail_gpa,
                              (unsigned long long)q->used_gpa);
        }
    }
    if (st->pad)
        return refuse(why, whylen, "reserved bytes set");
    return 0;
}

int virtio_pci_restore(struct virtio_pci *vp, const struct virtio_pci_state *st, char *why,
                       size_t whylen)
{
    if (check_state(vp, st, why, whylen) < 0)
        return -1;
    pthread_mutex_lock(&vp->cfg_lock);
    pthread_mutex_lock(&vp->irq_lock);
    vp->status = st->status;
    vp->isr = st->isr;
    vp->generation = st->generation;
    vp->dfselect = st->dfselect;
    vp->gfselect = st->gfselect;
    vp->driver_features = st->driver_features;
    vp->queue_select = st->queue_select;
    vp->config_vector = st->config_vector;
    vp->pba = st->pba;
    for (unsigned v = 0; v < vp->nvec; v++) {
        const struct virtio_pci_msix_state *e = &st->table[v];
        vp->table[v] = (struct msix_entry){ e->addr_lo, e->addr_hi, e->data, e->ctrl, true };
    }
    uint16_t ctrl = (uint16_t)pci_cfg_get(vp->func, (unsigned)vp->msix_cap + 2, 2);
    vp->msix_enabled = ctrl & MSIX_CTRL_ENABLE;
    vp->msix_maskall = ctrl & MSIX_CTRL_MASKALL;
    for (unsigned i = 0; i < vp->nq; i++) {
        const struct virtio_pci_queue_state *q = &st->queue[i];
        vp->queue_vector[i] = q->vector;
        struct vq_state *s = &vp->vq[i];
        s->enabled = q->enabled;
        s->q = (struct virtq){
            .mem = vp->mem,
            .size = q->size,
            .desc_gpa = q->desc_gpa,
            .avail_gpa = q->avail_gpa,
            .used_gpa = q->used_gpa,
            .ready = q->enabled,
            .event_idx = st->driver_features & (1ULL << VIRTIO_F_EVENT_IDX),
            .indirect = st->driver_features & (1ULL << VIRTIO_F_INDIRECT_DESC),
            .last_avail = q->last_avail,
            .used_idx = q->used_idx,
            .signalled_used = q->signalled_used,
            .signalled_valid = q->signalled_valid,
        };
    }
    /* KVM gets every route the guest programmed, and what was pending on
     * a vector that can now be sent is sent. */
    for (unsigned v = 0; v < vp->nvec; v++)
        service(vp, v);
    vp->active = st->active;
    pthread_mutex_unlock(&vp->irq_lock);
    pthread_mutex_unlock(&vp->cfg_lock);
    return 0;
}
