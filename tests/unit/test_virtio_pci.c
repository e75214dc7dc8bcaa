/* Unit tests for the virtio-pci modern transport (src/virtio/pci.c) on the
 * PCI host (src/dev/pci.c), and for the KVM interrupt plumbing under it
 * (src/kvm_irq.c) run against a fake KVM that records routing tables,
 * irqfds and ioeventfds the way the kernel would hold them.
 *
 * The driver side re-enacts Linux 6.1's virtio_pci_modern: probe (capability
 * walk, vp_modern_probe's mapping checks), the status dance of
 * virtio_dev_probe, feature negotiation in both halves, MSI-X set-up
 * (pci_alloc_irq_vectors: enable with all masked, program, unmask),
 * vp_find_vqs_msix / setup_vq per queue, queue enable last, DRIVER_OK; then
 * reset, refusals (virtio 1.2 2.1, 2.2, 4.1.4.3), MSI-X masking and pending
 * bits (PCI 3.0 6.8.2), notifications through the ioeventfd and the
 * userspace fallback, and a hostile guest's accesses.
 *
 * virtq_reset and virtq_rings_valid (src/virtio/queue.c) are stood in for
 * below, so this test links neither queue.c nor guest memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/virtio_pci.h>

#include "bus.h"
#include "kvm_irq.h"
#include "layout.h"
#include "dev/pci.h"
#include "virtio/pci.h"

/* ---- stand-ins for queue.c ------------------------------------------- */

static unsigned virtq_resets;

void virtq_reset(struct virtq *q)
{
    q->last_avail = q->used_idx = q->signalled_used = 0;
    q->signalled_valid = false;
    virtq_resets++;
}

/* The real check translates the rings through guest memory; here "RAM" is
 * the first GiB and the alignments are the split ring's (2.7). */
bool virtq_rings_valid(const struct virtq *q)
{
    const uint64_t ram = 1ULL << 30;
    return q->mem && q->size && !(q->size & (q->size - 1)) && q->desc_gpa % 16 == 0 &&
           q->avail_gpa % 2 == 0 && q->used_gpa % 4 == 0 && q->desc_gpa && q->desc_gpa < ram &&
           q->avail_gpa && q->avail_gpa < ram && q->used_gpa && q->used_gpa < ram;
}

/* ---- a fake KVM behind kvm_irq ---------------------------------------- */

#define MAX_REC 64

struct fake_kvm {
    pthread_mutex_t lock;
    int any_length; /* KVM_CAP_IOEVENTFD_ANY_LENGTH */
    unsigned routing_calls;
    struct kvm_irq_routing_entry routes[KVM_IRQ_MAX_GSI + 64];
    unsigned nroutes;
    int fail_routing, fail_irqfd; /* fail the next N calls */
    struct {
        int fd;
        unsigned gsi;
    } irqfd[MAX_REC];
    unsigned nirqfd;
    struct {
        uint64_t addr;
        uint32_t len;
        int fd;
    } ioev[MAX_REC];
    unsigned nioev, ioev_calls;
    uint32_t last_ioev_flags, last_irqfd_flags;
};

static int fake_ioctl(void *ctx, unsigned long req, void *arg)
{
    struct fake_kvm *k = ctx;
    int rc = 0;
    pthread_mutex_lock(&k->lock);
    switch (req) {
    case KVM_CHECK_EXTENSION:
        rc = (uintptr_t)arg == KVM_CAP_IOEVENTFD_ANY_LENGTH ? k->any_length : 0;
        break;
    case KVM_SET_GSI_ROUTING: {
        const struct kvm_irq_routing *t = arg;
        if (k->fail_routing > 0) {
            k->fail_routing--;
            errno = ENOMEM;
            rc = -1;
            break;
        }
        assert_true(t->nr <= sizeof k->routes / sizeof k->routes[0]);
        memcpy(k->routes, t->entries, t->nr * sizeof t->entries[0]);
        k->nroutes = t->nr;
        k->routing_calls++;
        break;
    }
    case KVM_IRQFD: {
        const struct kvm_irqfd *r = arg;
        k->last_irqfd_flags = r->flags;
        if (k->fail_irqfd > 0) {
            k->fail_irqfd--;
            errno = EINVAL;
            rc = -1;
        } else if (r->flags & KVM_IRQFD_FLAG_DEASSIGN) {
            rc = -1;
            errno = ENOENT;
            for (unsigned i = 0; i < k->nirqfd; i++) {
                if (k->irqfd[i].fd == (int)r->fd && k->irqfd[i].gsi == r->gsi) {
                    k->irqfd[i] = k->irqfd[--k->nirqfd];
                    rc = 0;
                    break;
                }
            }
        } else {
            assert_true(k->nirqfd < MAX_REC);
            k->irqfd[k->nirqfd].fd = (int)r->fd;
            k->irqfd[k->nirqfd].gsi = r->gsi;
            k->nirqfd++;
        }
        break;
    }
    case KVM_IOEVENTFD: {
        const struct kvm_ioeventfd *e = arg;
        k->ioev_calls++;
        k->last_ioev_flags = e->flags;
        assert_false(e->flags & (KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAMATCH));
        if (e->flags & KVM_IOEVENTFD_FLAG_DEASSIGN) {
            rc = -1;
            errno = ENOENT;
            for (unsigned i = 0; i < k->nioev; i++) {
                if (k->ioev[i].addr == e->addr && k->ioev[i].len == e->len &&
                    k->ioev[i].fd == e->fd) {
                    k->ioev[i] = k->ioev[--k->nioev];
                    rc = 0;
                    break;
                }
            }
            break;
        }
        /* KVM refuses a second ioeventfd at the same address. */
        for (unsigned i = 0; i < k->nioev; i++) {
            if (k->ioev[i].addr == e->addr) {
                errno = EEXIST;
                rc = -1;
            }
        }
        if (rc == 0) {
            assert_true(k->nioev < MAX_REC);
            k->ioev[k->nioev].addr = e->addr;
            k->ioev[k->nioev].len = e->len;
            k->ioev[k->nioev].fd = e->fd;
            k->nioev++;
        }
        break;
    }
    default: fail_msg("unexpected ioctl %#lx", req);
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static const struct kvm_irq_routing_entry *route_of(struct fake_kvm *k, unsigned gsi, uint32_t type)
{
    for (unsigned i = 0; i < k->nroutes; i++)
        if (k->routes[i].gsi == gsi && k->routes[i].type == type)
            return &k->routes[i];
    return NULL;
}

/* ---- a fake virtio device --------------------------------------------- */

#define DEV_QUEUES   2
#define DEV_QMAX     256
#define DEV_FEATURES ((1ULL << 1) | (1ULL << 9))
#define DEV_CFG_SIZE 10

struct fake_dev {
    uint8_t cfg[DEV_CFG_SIZE];
    unsigned activations, resets;
    int activate_rc;
    struct virtio_queues q; /* what activate got */
    struct virtq qcopy[VIRTIO_MAX_QUEUES];
    unsigned cfg_reads, cfg_writes;
    size_t last_off, last_len;
    /* A device thread that notifies until reset stops it. */
    pthread_t thread;
    atomic_bool running, stop;
    atomic_uint notifies;
};

static void dev_config_read(void *opaque, size_t off, uint8_t *data, size_t len)
{
    struct fake_dev *d = opaque;
    assert_true(off + len <= DEV_CFG_SIZE);
    memcpy(data, d->cfg + off, len);
    d->cfg_reads++;
    d->last_off = off;
    d->last_len = len;
}

static void dev_config_write(void *opaque, size_t off, const uint8_t *data, size_t len)
{
    struct fake_dev *d = opaque;
    assert_true(off + len <= DEV_CFG_SIZE);
    memcpy(d->cfg + off, data, len);
    d->cfg_writes++;
    d->last_off = off;
    d->last_len = len;
}

static int dev_activate(void *opaque, const struct virtio_queues *q)
{
    struct fake_dev *d = opaque;
    d->activations++;
    d->q = *q;
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
        if (q->q[i])
            d->qcopy[i] = *q->q[i];
    return d->activate_rc;
}

static void dev_stop_thread(struct fake_dev *d)
{
    if (atomic_load(&d->running)) {
        atomic_store(&d->stop, true);
        pthread_join(d->thread, NULL);
        atomic_store(&d->running, false);
    }
}

static void dev_reset(void *opaque)
{
    struct fake_dev *d = opaque;
    d->resets++;
    /* Must not return while the thread may still touch the transport:
     * this is where a transport holding its notify lock would deadlock. */
    dev_stop_thread(d);
}

static const struct virtio_device_ops dev_ops = {
    .device_id = 2,
    .num_queues = DEV_QUEUES,
    .queue_max_size = DEV_QMAX,
    .features = DEV_FEATURES,
    .config_size = DEV_CFG_SIZE,
    .config_read = dev_config_read,
    .config_write = dev_config_write,
    .activate = dev_activate,
    .reset = dev_reset,
};

/* ---- the machine ------------------------------------------------------ */

#define S_ACK         1
#define S_DRIVER      2
#define S_DRIVER_OK   4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 64
#define S_FAILED      128
#define NO_VECTOR     0xffff
#define MSI_ADDR      0xfee00000u
#define MSI_DATA(v)   (0x4030u + (v)) /* edge, fixed, vector 0x30 + v */

struct rig {
    struct bus pio, mmio;
    struct pci_host *host;
    struct fake_kvm kvm;
    struct kvm_irq *irq;
    struct guest_memory mem;
    struct fake_dev dev;
    struct virtio_pci *vp;
    /* What the driver found. */
    unsigned devfn;
    uint64_t bar;
    unsigned cap_common, cap_notify, cap_isr, cap_device, cap_pcicfg, cap_msix;
    uint32_t common_off, notify_off, isr_off, device_off, notify_mult, notify_len;
    uint32_t table_off, pba_off;
    unsigned nvec;
};

static uint64_t get_le(const uint8_t *p, unsigned len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t mmio_read(struct rig *r, uint64_t addr, unsigned len)
{
    uint8_t d[8];
    memset(d, 0x5a, sizeof d);
    bus_dispatch(&r->mmio, addr, d, len, false);
    return get_le(d, len);
}

static void mmio_write(struct rig *r, uint64_t addr, uint64_t v, unsigned len)
{
    uint8_t d[8];
    put_le(d, v, len);
    bus_dispatch(&r->mmio, addr, d, len, true);
}

static uint32_t cfg_read(struct rig *r, unsigned reg, unsigned len)
{
    uint8_t a[4], d[4];
    put_le(a, 0x80000000u | r->devfn << 8 | (reg & 0xfc), 4);
    bus_dispatch(&r->pio, 0xcf8, a, 4, true);
    bus_dispatch(&r->pio, 0xcfc + (reg & 3), d, len, false);
    return (uint32_t)get_le(d, len);
}

static void cfg_write(struct rig *r, unsigned reg, uint32_t v, unsigned len)
{
    uint8_t a[4], d[4];
    put_le(a, 0x80000000u | r->devfn << 8 | (reg & 0xfc), 4);
    bus_dispatch(&r->pio, 0xcf8, a, 4, true);
    put_le(d, v, len);
    bus_dispatch(&r->pio, 0xcfc + (reg & 3), d, len, true);
}

/* Common configuration accessors (vp_ioread/vp_iowrite). */
static uint64_t rd(struct rig *r, unsigned off, unsigned len)
{
    return mmio_read(r, r->bar + r->common_off + off, len);
}

static void wr(struct rig *r, unsigned off, uint64_t v, unsigned len)
{
    mmio_write(r, r->bar + r->common_off + off, v, len);
}

static void msix_entry_write(struct rig *r, unsigned vec, unsigned field, uint32_t v)
{
    mmio_write(r, r->bar + r->table_off + 16 * vec + 4 * field, v, 4);
}

static uint64_t pba(struct rig *r)
{
    return mmio_read(r, r->bar + r->pba_off, 8);
}

static uint64_t read_fd(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof v) != sizeof v)
        return 0;
    return v;
}

/* How many MSIs with this data KVM injected since the last look: the
 * irqfd bound to the GSI whose route carries it. */
static uint64_t fired(struct rig *r, uint32_t data)
{
    for (unsigned i = 0; i < r->kvm.nroutes; i++) {
        const struct kvm_irq_routing_entry *e = &r->kvm.routes[i];
        if (e->type != KVM_IRQ_ROUTING_MSI || e->u.msi.data != data)
            continue;
        for (unsigned j = 0; j < r->kvm.nirqfd; j++)
            if (r->kvm.irqfd[j].gsi == e->gsi)
                return read_fd(r->kvm.irqfd[j].fd);
    }
    return 0;
}

/* Drains every irqfd: how many interrupts went out in total. */
static uint64_t fired_any(struct rig *r)
{
    uint64_t n = 0;
    for (unsigned j = 0; j < r->kvm.nirqfd; j++)
        n += read_fd(r->kvm.irqfd[j].fd);
    return n;
}

static int setup_with(void **state, int any_length, const struct virtio_device_ops *ops)
{
    struct rig *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->kvm.lock, NULL);
    r->kvm.any_length = any_length;
    r->irq = kvm_irq_new_with(fake_ioctl, &r->kvm);
    r->host = pci_host_new(GUEST_PCI_MMIO_START, GUEST_PCI_MMIO_SIZE);
    if (!r->irq || !r->host ||
        pci_host_attach(r->host, &r->pio, &r->mmio, GUEST_PCI_ECAM_START) < 0)
        return -1;
    r->vp = virtio_pci_new(r->host, r->irq, &r->mem, ops, &r->dev);
    if (!r->vp)
        return -1;
    *state = r;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 1, &dev_ops);
}
static int setup_len2(void **state)
{
    return setup_with(state, 0, &dev_ops);
}
/* A device offering two vectors (msix_vectors), as vsock does. */
static const struct virtio_device_ops *shared_vector_ops(void)
{
    static struct virtio_device_ops ops;
    ops = dev_ops;
    ops.msix_vectors = 2;
    return &ops;
}
static int setup_shared(void **state)
{
    return setup_with(state, 1, shared_vector_ops());
}

static int teardown(void **state)
{
    struct rig *r = *state;
    virtio_pci_free(r->vp);
    /* Nothing is left in KVM: every irqfd, ioeventfd and MSI route went. */
    assert_int_equal(r->kvm.nirqfd, 0);
    assert_int_equal(r->kvm.nioev, 0);
    for (unsigned i = 0; i < r->kvm.nroutes; i++)
        assert_int_not_equal(r->kvm.routes[i].type, KVM_IRQ_ROUTING_MSI);
    dev_stop_thread(&r->dev);
    pci_host_free(r->host);
    kvm_irq_free(r->irq);
    bus_free(&r->pio);
    bus_free(&r->mmio);
    pthread_mutex_destroy(&r->kvm.lock);
    free(r);
    return 0;
}

/* ---- the driver: Linux's probe, step by step --------------------------- */

/* pci_scan_slot, pci_read_bases, pci_enable_device, then vp_modern_probe's
 * capability walk and mapping checks. */
static void driver_probe(struct rig *r)
{
    r->devfn = 256;
    for (unsigned slot = 0; slot < 32; slot++) {
        r->devfn = slot << 3;
        if (cfg_read(r, 0, 2) == 0x1af4)
            break;
    }
    assert_true(r->devfn < 256);
    unsigned dev_id = cfg_read(r, 2, 2);
    assert_true(dev_id >= 0x1040 && dev_id <= 0x107f); /* modern only */
    assert_int_equal(dev_id - 0x1040, 2);

    /* BAR 0: 64-bit memory, sized with all-ones, address kept. */
    uint32_t lo = cfg_read(r, 0x10, 4), hi = cfg_read(r, 0x14, 4);
    assert_int_equal(lo & 0x7, 0x4);
    cfg_write(r, 0x10, 0xffffffff, 4);
    cfg_write(r, 0x14, 0xffffffff, 4);
    uint64_t mask = (uint64_t)cfg_read(r, 0x14, 4) << 32 | (cfg_read(r, 0x10, 4) & ~0xfu);
    cfg_write(r, 0x10, lo, 4);
    cfg_write(r, 0x14, hi, 4);
    assert_int_equal(~mask + 1, VIRTIO_PCI_BAR_SIZE);
    r->bar = (uint64_t)hi << 32 | (lo & ~0xfu);
    assert_true(r->bar >= GUEST_PCI_MMIO_START &&
                r->bar + VIRTIO_PCI_BAR_SIZE <= GUEST_PCI_MMIO_START + GUEST_PCI_MMIO_SIZE);
    cfg_write(r, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);

    assert_true(cfg_read(r, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    unsigned pos = cfg_read(r, PCI_CAPABILITY_LIST, 1), guard = 0;
    while (pos) {
        assert_true(++guard < 48);
        unsigned id = cfg_read(r, pos, 1);
        if (id == PCI_CAP_ID_VNDR) {
            unsigned type = cfg_read(r, pos + 3, 1), bar = cfg_read(r, pos + 4, 1);
            uint32_t off = cfg_read(r, pos + 8, 4), len = cfg_read(r, pos + 12, 4);
            assert_true(cfg_read(r, pos + 2, 1) >= 16);
            if (type != 5) {
                assert_int_equal(bar, 0);
                assert_true((uint64_t)off + len <= VIRTIO_PCI_BAR_SIZE);
            }
            switch (type) {
            case 1:
                r->cap_common = pos;
                r->common_off = off;
                assert_true(len >= 56); /* sizeof(virtio_pci_common_cfg) */
                assert_int_equal(off % 4, 0);
                break;
            case 2:
                r->cap_notify = pos;
                r->notify_off = off;
                r->notify_len = len;
                r->notify_mult = cfg_read(r, pos + 16, 4);
                assert_int_equal(off % 2, 0);
                break;
            case 3:
                r->cap_isr = pos;
                r->isr_off = off;
                assert_true(len >= 1);
                break;
            case 4:
                r->cap_device = pos;
                r->device_off = off;
                assert_int_equal(len, DEV_CFG_SIZE);
                assert_int_equal(off % 4, 0);
                break;
            case 5:
                r->cap_pcicfg = pos;
                assert_int_equal(cfg_read(r, pos + 2, 1), 20);
                break;
            default: fail_msg("unknown virtio capability type %u", type);
            }
        } else if (id == PCI_CAP_ID_MSIX) {
            r->cap_msix = pos;
            r->nvec = (cfg_read(r, pos + 2, 2) & 0x7ff) + 1;
            uint32_t t = cfg_read(r, pos + 4, 4), p = cfg_read(r, pos + 8, 4);
            assert_int_equal(t & 7, 0);
            assert_int_equal(p & 7, 0);
            r->table_off = t & ~7u;
            r->pba_off = p & ~7u;
        } else {
            fail_msg("unexpected capability %#x", id);
        }
        pos = cfg_read(r, pos + 1, 1);
    }
    assert_true(r->cap_common && r->cap_notify && r->cap_isr && r->cap_device && r->cap_pcicfg &&
                r->cap_msix);
    assert_true(r->nvec >= 2 && r->nvec <= DEV_QUEUES + 1); /* per queue, or shared */
    /* vp_modern_map_vq_notify: off * multiplier + 2 <= notify length. */
    assert_true(r->notify_mult >= 2);
    assert_true((DEV_QUEUES - 1) * r->notify_mult + 2 <= r->notify_len);
}

/* virtio_dev_probe's reset: write 0, poll until 0. */
static void driver_reset(struct rig *r)
{
    wr(r, VIRTIO_PCI_COMMON_STATUS, 0, 1);
    unsigned polls = 0;
    while (rd(r, VIRTIO_PCI_COMMON_STATUS, 1) != 0)
        assert_true(++polls < 10);
}

static uint64_t device_features(struct rig *r)
{
    wr(r, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
    uint64_t f = rd(r, VIRTIO_PCI_COMMON_DF, 4);
    wr(r, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
    return f | rd(r, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

static void set_driver_features(struct rig *r, uint64_t f)
{
    wr(r, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    wr(r, VIRTIO_PCI_COMMON_GF, (uint32_t)f, 4);
    wr(r, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
    wr(r, VIRTIO_PCI_COMMON_GF, f >> 32, 4);
}

static void add_status(struct rig *r, uint8_t bits)
{
    wr(r, VIRTIO_PCI_COMMON_STATUS, rd(r, VIRTIO_PCI_COMMON_STATUS, 1) | bits, 1);
}

/* pci_alloc_irq_vectors(PCI_IRQ_MSIX): enable with the function masked,
 * program every entry, unmask them, then lift the function mask. */
static void driver_msix(struct rig *r)
{
    unsigned ctrl = r->cap_msix + 2;
    cfg_write(r, ctrl, 0xc000 | (cfg_read(r, ctrl, 2) & 0x3fff), 2);
    for (unsigned v = 0; v < r->nvec; v++) {
        msix_entry_write(r, v, 3, 1);
        msix_entry_write(r, v, 0, MSI_ADDR);
        msix_entry_write(r, v, 1, 0);
        msix_entry_write(r, v, 2, MSI_DATA(v));
        msix_entry_write(r, v, 3, 0);
    }
    cfg_write(r, ctrl, 0x8000, 2);
}

static const uint64_t queue_gpa[DEV_QUEUES][3] = {
    { 0x100000, 0x101000, 0x102000 },
    { 0x200000, 0x201000, 0x202000 },
};

/* setup_vq: select, check size and enable, shrink, addresses, notify
 * offset, vector with read-back. */
static void driver_setup_vq(struct rig *r, unsigned i, uint16_t size, uint16_t vector)
{
    assert_true(i < rd(r, VIRTIO_PCI_COMMON_NUMQ, 2));
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
    unsigned num = rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2);
    assert_int_equal(num, DEV_QMAX);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    wr(r, VIRTIO_PCI_COMMON_Q_SIZE, size, 2);
    /* vp_iowrite64_twopart: low then high dword. */
    for (unsigned k = 0; k < 3; k++) {
        wr(r, VIRTIO_PCI_COMMON_Q_DESCLO + 8 * k, (uint32_t)queue_gpa[i][k], 4);
        wr(r, VIRTIO_PCI_COMMON_Q_DESCLO + 8 * k + 4, queue_gpa[i][k] >> 32, 4);
    }
    unsigned noff = rd(r, VIRTIO_PCI_COMMON_Q_NOFF, 2);
    assert_true((uint64_t)noff * r->notify_mult + 2 <= r->notify_len);
    wr(r, VIRTIO_PCI_COMMON_Q_MSIX, vector, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), vector);
}

static const uint64_t driver_wants = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_EVENT_IDX) |
                                     (1ULL << 9);

/* The whole of virtio_dev_probe + virtblk_probe's find_vqs + device_ready. */
static void driver_bringup(struct rig *r)
{
    driver_probe(r);
    driver_reset(r);
    add_status(r, S_ACK);
    add_status(r, S_DRIVER);
    uint64_t offered = device_features(r);
    assert_true(offered & (1ULL << VIRTIO_F_VERSION_1));
    set_driver_features(r, offered & driver_wants);
    add_status(r, S_FEATURES_OK);
    assert_true(rd(r, VIRTIO_PCI_COMMON_STATUS, 1) & S_FEATURES_OK);

    driver_msix(r);
    wr(r, VIRTIO_PCI_COMMON_MSIX, 0, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_MSIX, 2), 0);
    for (unsigned i = 0; i < DEV_QUEUES; i++)
        driver_setup_vq(r, i, 128, (uint16_t)(1 + i));
    for (unsigned i = 0; i < DEV_QUEUES; i++) {
        wr(r, VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
        wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    }
    add_status(r, S_DRIVER_OK);
}

/* ---- tests: identity and probe ------------------------------------------ */

static void test_pci_identity(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    assert_int_equal(cfg_read(r, 0, 4), 0x10421af4);
    assert_int_equal(cfg_read(r, PCI_REVISION_ID, 1), 1);
    assert_int_equal(cfg_read(r, 8, 4) >> 8, 0x018000); /* mass storage */
    assert_int_equal(cfg_read(r, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
    assert_true(cfg_read(r, PCI_SUBSYSTEM_ID, 2) >= 0x40);
    assert_int_equal(cfg_read(r, PCI_INTERRUPT_PIN, 1), 0); /* MSI-X only */
    assert_int_equal(cfg_read(r, 0x10, 4) & 0xf, 0x4);      /* 64-bit, not prefetchable */
    assert_int_equal(r->notify_mult, VIRTIO_PCI_NOTIFY_MULT);
    assert_int_equal(r->table_off, VIRTIO_PCI_MSIX_TABLE_OFF);
    assert_int_equal(r->pba_off, VIRTIO_PCI_MSIX_PBA_OFF);
    assert_true(r->table_off + 16 * r->nvec <= r->pba_off);
    /* MSI-X structures do not share a 4 KiB page with other registers. */
    uint32_t others[] = { r->common_off, r->notify_off, r->isr_off, r->device_off };
    for (size_t i = 0; i < 4; i++)
        assert_true(others[i] / 4096 != r->table_off / 4096);
    /* Fresh device: status 0, queues at their maximum, no vectors. */
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_NUMQ, 2), DEV_QUEUES);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_MSIX, 2), NO_VECTOR);
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2), DEV_QMAX);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), NO_VECTOR);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
    /* Other device types get their own IDs and classes. */
    static const struct {
        uint16_t id;
        uint32_t cls;
    } kinds[] = {
        { 3, 0x078000 },
        { 4, 0xff0000 },
        { 1, 0x020000 },
    };
    for (size_t i = 0; i < 3; i++) {
        struct virtio_device_ops ops = dev_ops;
        ops.device_id = kinds[i].id;
        ops.config_size = 0; /* no device-specific capability then */
        struct virtio_pci *vp = virtio_pci_new(r->host, r->irq, &r->mem, &ops, &r->dev);
        assert_non_null(vp);
        struct pci_func *f = virtio_pci_func(vp);
        assert_int_equal(pci_cfg_get(f, 2, 2), 0x1040 + kinds[i].id);
        assert_int_equal(pci_cfg_get(f, 8, 4) >> 8, kinds[i].cls);
        for (unsigned pos = pci_cfg_get(f, PCI_CAPABILITY_LIST, 1); pos;
             pos = pci_cfg_get(f, pos + 1, 1))
            if (pci_cfg_get(f, pos, 1) == PCI_CAP_ID_VNDR)
                assert_int_not_equal(pci_cfg_get(f, pos + 3, 1), 4);
        virtio_pci_free(vp);
    }
}

static void test_linux_probe_sequence(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1),
                     S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);

    struct fake_dev *d = &r->dev;
    assert_int_equal(d->activations, 1);
    assert_int_equal(d->q.count, DEV_QUEUES);
    assert_ptr_equal(d->q.transport, virtio_pci_transport(r->vp));
    uint64_t want = (DEV_FEATURES | (1ULL << VIRTIO_F_VERSION_1) |
                     (1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << VIRTIO_F_EVENT_IDX)) &
                    driver_wants;
    assert_int_equal(d->q.features, want);
    for (unsigned i = 0; i < DEV_QUEUES; i++) {
        assert_non_null(d->q.q[i]);
        const struct virtq *q = &d->qcopy[i];
        assert_ptr_equal(q->mem, &r->mem);
        assert_int_equal(q->size, 128);
        assert_int_equal(q->desc_gpa, queue_gpa[i][0]);
        assert_int_equal(q->avail_gpa, queue_gpa[i][1]);
        assert_int_equal(q->used_gpa, queue_gpa[i][2]);
        assert_true(q->ready);
        assert_true(q->event_idx);
        assert_false(q->indirect); /* not accepted by the driver */
        assert_true(d->q.kick_fd[i] >= 0);
    }
    for (unsigned i = DEV_QUEUES; i < VIRTIO_MAX_QUEUES; i++) {
        assert_null(d->q.q[i]);
        assert_int_equal(d->q.kick_fd[i], -1);
    }
    /* Queue configuration is frozen while running. */
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_SIZE, 64, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_DESCLO, 0x300000, 4);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2), 128);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_DESCLO, 8), queue_gpa[0][0]);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    /* Features too: the driver's half reads back what it wrote. */
    set_driver_features(r, 1ULL << VIRTIO_F_VERSION_1);
    wr(r, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)want);
    /* DRIVER_OK again (status write with the same bits) does not
     * reactivate. */
    add_status(r, S_DRIVER_OK);
    assert_int_equal(d->activations, 1);
}

static void test_feature_negotiation(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    driver_reset(r);
    uint64_t f = device_features(r);
    assert_int_equal(f, DEV_FEATURES | (1ULL << VIRTIO_F_VERSION_1) |
                            (1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << VIRTIO_F_EVENT_IDX));
    assert_false(f & (1ULL << VIRTIO_F_ACCESS_PLATFORM));
    /* Selectors past the second dword read 0. */
    wr(r, VIRTIO_PCI_COMMON_DFSELECT, 2, 4);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_DF, 4), 0);
    wr(r, VIRTIO_PCI_COMMON_DFSELECT, 0xffffffff, 4);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_DF, 4), 0);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_DFSELECT, 4), 0xffffffff);
    /* Driver halves land where the selector says, others are dropped. */
    set_driver_features(r, 0x123456789aULL & f);
    wr(r, VIRTIO_PCI_COMMON_GFSELECT, 7, 4);
    wr(r, VIRTIO_PCI_COMMON_GF, 0xffffffff, 4);
    wr(r, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)(0x123456789aULL & f));
    wr(r, VIRTIO_PCI_COMMON_GFSELECT, 1, 4);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)((0x123456789aULL & f) >> 32));
    /* A 2-byte write to a 4-byte field is not the natural width. */
    wr(r, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    wr(r, VIRTIO_PCI_COMMON_GF, 0, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)(0x123456789aULL & f));
}

static void test_features_ok_refused(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    static const uint64_t bad[] = {
        0,                                          /* legacy driver: no VERSION_1 */
        1ULL << 9,                                  /* device bits only */
        (1ULL << VIRTIO_F_VERSION_1) | (1ULL << 5), /* a bit not offered */
        (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_ACCESS_PLATFORM),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        driver_reset(r);
        add_status(r, S_ACK);
        add_status(r, S_DRIVER);
        set_driver_features(r, bad[i]);
        add_status(r, S_FEATURES_OK);
        /* virtio_features_ok re-reads status and gives up. */
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), S_ACK | S_DRIVER);
        /* DRIVER_OK without FEATURES_OK starts nothing. */
        add_status(r, S_DRIVER_OK);
        assert_false(rd(r, VIRTIO_PCI_COMMON_STATUS, 1) & S_DRIVER_OK);
        add_status(r, S_FAILED);
        assert_true(rd(r, VIRTIO_PCI_COMMON_STATUS, 1) & S_FAILED);
    }
    assert_int_equal(r->dev.activations, 0);
    /* And after a reset the right set is accepted. */
    driver_reset(r);
    add_status(r, S_ACK | S_DRIVER);
    set_driver_features(r, 1ULL << VIRTIO_F_VERSION_1);
    add_status(r, S_FEATURES_OK);
    assert_true(rd(r, VIRTIO_PCI_COMMON_STATUS, 1) & S_FEATURES_OK);
    /* The driver cannot set NEEDS_RESET or clear bits short of a reset. */
    wr(r, VIRTIO_PCI_COMMON_STATUS, S_ACK | S_NEEDS_RESET, 1);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), S_ACK | S_DRIVER | S_FEATURES_OK);
}

static void test_reset(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    unsigned resets = r->dev.resets;
    virtio_notify_config(virtio_pci_transport(r->vp)); /* leaves ISR set */
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    driver_reset(r);
    assert_int_equal(r->dev.resets, resets + 1);
    /* Everything the driver set is gone. */
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_MSIX, 2), NO_VECTOR);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
    assert_int_equal(mmio_read(r, r->bar + r->isr_off, 1), 0);
    wr(r, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_GF, 4), 0);
    for (unsigned i = 0; i < DEV_QUEUES; i++) {
        wr(r, VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2), DEV_QMAX);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), NO_VECTOR);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_AVAILLO, 8), 0);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_USEDLO, 8), 0);
    }
    /* Kicks from before the reset are not seen by the next activation. */
    int kick0 = r->dev.q.kick_fd[0];
    mmio_write(r, r->bar + r->notify_off, 0, 2);
    driver_reset(r);
    assert_int_equal(read_fd(kick0), 0);
    /* MSI-X is PCI state, not virtio state: it survives. */
    assert_true(cfg_read(r, r->cap_msix + 2, 2) & 0x8000);
    /* The device comes up again. */
    driver_bringup(r);
    assert_int_equal(r->dev.activations, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

static void test_bad_queue_sizes(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    driver_reset(r);
    add_status(r, S_ACK | S_DRIVER);
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    static const uint32_t bad[] = { 0, 3, 100, 255, 512, 1024, 0x8000, 0xffff };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wr(r, VIRTIO_PCI_COMMON_Q_SIZE, bad[i], 2);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2), DEV_QMAX);
    }
    /* Wrong widths are dropped too. */
    wr(r, VIRTIO_PCI_COMMON_Q_SIZE, 64, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_SIZE, 64, 1);
    wr(r, VIRTIO_PCI_COMMON_Q_SIZE + 1, 1, 1);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2), DEV_QMAX);
    static const uint32_t good[] = { 1, 2, 128, DEV_QMAX };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        wr(r, VIRTIO_PCI_COMMON_Q_SIZE, good[i], 2);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2), good[i]);
    }
}

static void test_queue_select_out_of_range(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    driver_reset(r);
    add_status(r, S_ACK | S_DRIVER);
    set_driver_features(r, 1ULL << VIRTIO_F_VERSION_1);
    add_status(r, S_FEATURES_OK);
    static const uint16_t sel[] = { DEV_QUEUES, VIRTIO_MAX_QUEUES, 0x7fff, 0xffff };
    for (size_t i = 0; i < sizeof sel / sizeof sel[0]; i++) {
        wr(r, VIRTIO_PCI_COMMON_Q_SELECT, sel[i], 2);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SELECT, 2), sel[i]);
        /* "Not available": size 0, and every write is ignored. */
        wr(r, VIRTIO_PCI_COMMON_Q_SIZE, 16, 2);
        wr(r, VIRTIO_PCI_COMMON_Q_DESCLO, 0x1000, 4);
        wr(r, VIRTIO_PCI_COMMON_Q_MSIX, 1, 2);
        wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), 0);
        virtio_notify_queue(virtio_pci_transport(r->vp), sel[i]);
    }
    /* The real queues were not touched. */
    for (unsigned i = 0; i < DEV_QUEUES; i++) {
        wr(r, VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2), DEV_QMAX);
        assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    }
    add_status(r, S_DRIVER_OK);
    assert_int_equal(r->dev.activations, 1);
    assert_null(r->dev.q.q[0]); /* nothing was enabled */
}

static void test_queue_enable_validates_rings(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    driver_reset(r);
    add_status(r, S_ACK | S_DRIVER);
    set_driver_features(r, 1ULL << VIRTIO_F_VERSION_1);
    add_status(r, S_FEATURES_OK);
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_DESCLO, 0x100008, 4); /* not 16-byte aligned */
    wr(r, VIRTIO_PCI_COMMON_Q_AVAILLO, 0x101000, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_USEDLO, 0x102000, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_true(rd(r, VIRTIO_PCI_COMMON_STATUS, 1) & S_NEEDS_RESET);
    /* Writing 0 to queue_enable is ignored; 2 is not "1". */
    driver_reset(r);
    add_status(r, S_ACK | S_DRIVER);
    set_driver_features(r, 1ULL << VIRTIO_F_VERSION_1);
    add_status(r, S_FEATURES_OK);
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_DESCLO, 0x100000, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_DESCHI, 0, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_AVAILLO, 0x101000, 8); /* one 64-bit write works too */
    wr(r, VIRTIO_PCI_COMMON_Q_USEDLO, 0x102000, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 4); /* wrong width */
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_AVAILLO, 8), 0x101000);
    wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 0, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    assert_false(rd(r, VIRTIO_PCI_COMMON_STATUS, 1) & S_NEEDS_RESET);
    /* Rings above RAM (a high dword) are refused as well. */
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_DESCLO, 0x100000, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_DESCHI, 0x10, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_AVAILLO, 0x101000, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_USEDLO, 0x102000, 4);
    wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    assert_true(rd(r, VIRTIO_PCI_COMMON_STATUS, 1) & S_NEEDS_RESET);
}

static void test_msix_vector_assignment(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    driver_reset(r);
    /* Vectors past the table read back NO_VECTOR: Linux then gives up on
     * one vector per queue (-EBUSY) and tries the shared layout. */
    wr(r, VIRTIO_PCI_COMMON_MSIX, r->nvec, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_MSIX, 2), NO_VECTOR);
    wr(r, VIRTIO_PCI_COMMON_MSIX, r->nvec - 1, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_MSIX, 2), r->nvec - 1);
    wr(r, VIRTIO_PCI_COMMON_MSIX, NO_VECTOR, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_MSIX, 2), NO_VECTOR);
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_MSIX, 0x1234, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), NO_VECTOR);
    wr(r, VIRTIO_PCI_COMMON_Q_MSIX, 0, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), 0);
    /* The shared layout: config on 0, every queue on 1. */
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_MSIX, 1, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_MSIX, 1, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
}

/* ---- tests: interrupts ------------------------------------------------- */

/* Per-queue vectors: notifying two queues at once is two interrupts. */
static void test_notify_queues_per_queue_vectors(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    fired_any(r);
    virtio_notify_queues(virtio_pci_transport(r->vp), 3);
    assert_int_equal(fired(r, MSI_DATA(1)), 1);
    assert_int_equal(fired(r, MSI_DATA(2)), 1);
    assert_int_equal(fired_any(r), 0);
}

/* A device offering two vectors: the table has two entries, Linux's
 * shared layout (config on 0, every queue on 1) is the one that fits, and
 * completions on both queues together are one interrupt. */
static void test_shared_vector(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    assert_int_equal(r->nvec, 2);
    assert_int_equal(r->kvm.nirqfd, 2);
    driver_reset(r);
    add_status(r, S_ACK);
    add_status(r, S_DRIVER);
    set_driver_features(r, device_features(r) & driver_wants);
    add_status(r, S_FEATURES_OK);
    driver_msix(r);
    wr(r, VIRTIO_PCI_COMMON_MSIX, 0, 2);
    /* One vector per queue does not fit: vector 2 reads back NO_VECTOR. */
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2), NO_VECTOR);
    for (unsigned i = 0; i < DEV_QUEUES; i++)
        driver_setup_vq(r, i, 128, 1);
    for (unsigned i = 0; i < DEV_QUEUES; i++) {
        wr(r, VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
        wr(r, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    }
    add_status(r, S_DRIVER_OK);
    fired_any(r);

    struct virtio_transport *t = virtio_pci_transport(r->vp);
    virtio_notify_queues(t, 3);
    assert_int_equal(fired(r, MSI_DATA(1)), 1);
    virtio_notify_queue(t, 1);
    assert_int_equal(fired(r, MSI_DATA(1)), 1);
    /* Bits for queues the device lacks are ignored. */
    virtio_notify_queues(t, 1u << DEV_QUEUES);
    assert_int_equal(fired_any(r), 0);
    virtio_notify_config(t);
    assert_int_equal(fired(r, MSI_DATA(0)), 1);
}

static void test_msix_routes(void **state)
{
    struct rig *r = *state;
    /* Every vector has its irqfd from the start, on a GSI from 24 up. */
    assert_int_equal(r->kvm.nirqfd, DEV_QUEUES + 1);
    for (unsigned i = 0; i < r->kvm.nirqfd; i++)
        assert_true(r->kvm.irqfd[i].gsi >= KVM_IRQ_FIRST_MSI_GSI);
    driver_bringup(r);
    /* Unmasking installed each vector's message. */
    for (unsigned v = 0; v < r->nvec; v++) {
        bool found = false;
        for (unsigned i = 0; i < r->kvm.nroutes; i++) {
            const struct kvm_irq_routing_entry *e = &r->kvm.routes[i];
            if (e->type == KVM_IRQ_ROUTING_MSI && e->u.msi.data == MSI_DATA(v)) {
                assert_int_equal(e->u.msi.address_lo, MSI_ADDR);
                assert_int_equal(e->u.msi.address_hi, 0);
                assert_true(e->gsi >= KVM_IRQ_FIRST_MSI_GSI);
                found = true;
            }
        }
        assert_true(found);
    }
    /* And the irqchip routes are all still there. */
    assert_non_null(route_of(&r->kvm, 0, KVM_IRQ_ROUTING_IRQCHIP));
    assert_non_null(route_of(&r->kvm, 23, KVM_IRQ_ROUTING_IRQCHIP));

    /* Linux's irq migration: mask, rewrite, unmask => one new table. */
    unsigned calls = r->kvm.routing_calls;
    msix_entry_write(r, 1, 3, 1);
    msix_entry_write(r, 1, 0, MSI_ADDR | 0x1000); /* another APIC */
    msix_entry_write(r, 1, 2, 0x4041);
    assert_int_equal(r->kvm.routing_calls, calls);
    msix_entry_write(r, 1, 3, 0);
    assert_int_equal(r->kvm.routing_calls, calls + 1);
    virtio_notify_queue(virtio_pci_transport(r->vp), 0);
    assert_int_equal(fired(r, 0x4041), 1);
    /* Table reads give back what was written; bits 1:0 of the address
     * and reserved control bits are zero. */
    msix_entry_write(r, 2, 3, 0xfffffffe);
    msix_entry_write(r, 2, 0, MSI_ADDR | 3);
    assert_int_equal(mmio_read(r, r->bar + r->table_off + 32, 4), MSI_ADDR);
    assert_int_equal(mmio_read(r, r->bar + r->table_off + 44, 4), 0);
    assert_int_equal(mmio_read(r, r->bar + r->table_off + 40, 4), MSI_DATA(2));
    assert_int_equal(mmio_read(r, r->bar + r->table_off + 40, 8), MSI_DATA(2));
    /* A guest that rewrites an unmasked entry gets the new message at
     * the next interrupt (the spec leaves it undefined; we stay sane). */
    msix_entry_write(r, 2, 2, 0x4055);
    calls = r->kvm.routing_calls;
    virtio_notify_queue(virtio_pci_transport(r->vp), 1);
    assert_int_equal(r->kvm.routing_calls, calls + 1);
    assert_int_equal(fired(r, 0x4055), 1);
    /* A qword write sets address low and high at once. */
    mmio_write(r, r->bar + r->table_off + 16 * 2, (uint64_t)MSI_ADDR, 8);
    assert_int_equal(mmio_read(r, r->bar + r->table_off + 16 * 2, 8), MSI_ADDR);
}

static void check_ioeventfds(struct rig *r, uint64_t bar, uint32_t len);

/* Guest-driven KVM work only when something changed: masking and
 * unmasking a vector, rewriting its unchanged message, toggling the
 * function mask or MSI-X enable cost no KVM_SET_GSI_ROUTING (each table
 * costs KVM an SRCU grace period); rewriting the command register or BAR 0
 * with what they hold costs no KVM_IOEVENTFD. */
static void test_no_needless_kvm_calls(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    unsigned calls = r->kvm.routing_calls;
    unsigned ctrl = r->cap_msix + 2;
    for (unsigned i = 0; i < 100; i++) {
        unsigned v = i % r->nvec;
        msix_entry_write(r, v, 3, 1);
        msix_entry_write(r, v, 0, MSI_ADDR); /* Linux rewrites the message */
        msix_entry_write(r, v, 1, 0);
        msix_entry_write(r, v, 2, MSI_DATA(v));
        msix_entry_write(r, v, 3, 0);
        cfg_write(r, ctrl, 0xc000, 2); /* function mask on, then off */
        cfg_write(r, ctrl, 0x8000, 2);
    }
    virtio_notify_queue(virtio_pci_transport(r->vp), 0);
    assert_int_equal(fired(r, MSI_DATA(1)), 1);
    assert_int_equal(r->kvm.routing_calls, calls);
    /* A real change still reaches KVM, once. */
    msix_entry_write(r, 1, 3, 1);
    msix_entry_write(r, 1, 2, 0x4077);
    msix_entry_write(r, 1, 3, 0);
    msix_entry_write(r, 1, 3, 1);
    msix_entry_write(r, 1, 3, 0);
    assert_int_equal(r->kvm.routing_calls, calls + 1);

    unsigned ioev = r->kvm.ioev_calls;
    uint32_t cmd = cfg_read(r, PCI_COMMAND, 2);
    uint32_t bar_lo = cfg_read(r, 0x10, 4), bar_hi = cfg_read(r, 0x14, 4);
    for (unsigned i = 0; i < 100; i++) {
        cfg_write(r, PCI_COMMAND, cmd ^ PCI_COMMAND_MASTER, 2); /* not memory */
        cfg_write(r, PCI_COMMAND, cmd, 2);
        cfg_write(r, 0x10, bar_lo, 4);
        cfg_write(r, 0x14, bar_hi, 4);
    }
    assert_int_equal(r->kvm.ioev_calls, ioev);
    check_ioeventfds(r, r->bar, 0);
    /* Decoding off and on: each queue's ioeventfd out and back in. */
    cfg_write(r, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY, 2);
    assert_int_equal(r->kvm.ioev_calls, ioev + DEV_QUEUES);
    cfg_write(r, PCI_COMMAND, cmd & ~PCI_COMMAND_MEMORY, 2);
    assert_int_equal(r->kvm.ioev_calls, ioev + DEV_QUEUES);
    cfg_write(r, PCI_COMMAND, cmd, 2);
    assert_int_equal(r->kvm.ioev_calls, ioev + 2 * DEV_QUEUES);
    check_ioeventfds(r, r->bar, 0);
}

static void test_msix_mask_pending_unmask(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    struct virtio_transport *t = virtio_pci_transport(r->vp);
    fired_any(r);

    /* Unmasked: straight out. */
    virtio_notify_queue(t, 0);
    assert_int_equal(fired(r, MSI_DATA(1)), 1);
    assert_int_equal(pba(r), 0);

    /* Vector mask: held pending, sent on unmask, once. */
    msix_entry_write(r, 1, 3, 1);
    virtio_notify_queue(t, 0);
    virtio_notify_queue(t, 0);
    assert_int_equal(fired_any(r), 0);
    assert_int_equal(pba(r), 1u << 1);
    assert_int_equal(mmio_read(r, r->bar + r->pba_off, 1), 0x02);
    msix_entry_write(r, 1, 3, 0);
    assert_int_equal(fired(r, MSI_DATA(1)), 1);
    assert_int_equal(fired_any(r), 0);
    assert_int_equal(pba(r), 0);

    /* Function mask: the same for every vector. */
    cfg_write(r, r->cap_msix + 2, 0xc000, 2);
    virtio_notify_queue(t, 1);
    virtio_notify_config(t);
    assert_int_equal(fired_any(r), 0);
    assert_int_equal(pba(r), (1u << 2) | (1u << 0));
    /* Unmasking one vector alone does not help while the function is masked. */
    msix_entry_write(r, 2, 3, 1);
    msix_entry_write(r, 2, 3, 0);
    assert_int_equal(fired_any(r), 0);
    cfg_write(r, r->cap_msix + 2, 0x8000, 2);
    assert_int_equal(fired(r, MSI_DATA(2)), 1);
    assert_int_equal(fired(r, MSI_DATA(0)), 1);
    assert_int_equal(pba(r), 0);

    /* The PBA is read-only. */
    msix_entry_write(r, 0, 3, 1);
    virtio_notify_config(t);
    mmio_write(r, r->bar + r->pba_off, 0, 8);
    assert_int_equal(pba(r), 1);
    msix_entry_write(r, 0, 3, 0);
    assert_int_equal(fired(r, MSI_DATA(0)), 1);

    /* MSI-X disabled: no INTx pin either, so nothing goes out and nothing
     * is held; ISR says what happened. */
    mmio_read(r, r->bar + r->isr_off, 1);
    cfg_write(r, r->cap_msix + 2, 0, 2);
    virtio_notify_queue(t, 0);
    assert_int_equal(fired_any(r), 0);
    assert_int_equal(pba(r), 0);
    assert_int_equal(mmio_read(r, r->bar + r->isr_off, 1), 1);
    assert_int_equal(mmio_read(r, r->bar + r->isr_off, 1), 0); /* read clears */
    cfg_write(r, r->cap_msix + 2, 0x8000, 2);
    assert_int_equal(fired_any(r), 0);
}

static void test_no_vector(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    struct virtio_transport *t = virtio_pci_transport(r->vp);
    fired_any(r);
    /* Linux's del_vq detaches the vector from a live queue. */
    wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    wr(r, VIRTIO_PCI_COMMON_Q_MSIX, NO_VECTOR, 2);
    virtio_notify_queue(t, 0);
    wr(r, VIRTIO_PCI_COMMON_MSIX, NO_VECTOR, 2);
    virtio_notify_config(t);
    assert_int_equal(fired_any(r), 0);
    assert_int_equal(pba(r), 0);
    assert_int_equal(mmio_read(r, r->bar + r->isr_off, 1), 3);
    /* Notifying a queue that does not exist does nothing. */
    virtio_notify_queue(t, DEV_QUEUES);
    virtio_notify_queue(t, 1000);
    assert_int_equal(mmio_read(r, r->bar + r->isr_off, 1), 0);
    /* The ISR's other bytes and the rest of its page are not registers. */
    assert_int_equal(mmio_read(r, r->bar + r->isr_off + 1, 1), 0xff);
    assert_int_equal(mmio_read(r, r->bar + r->isr_off + 0x10, 4), 0xffffffff);
}

static void test_config_notify_and_needs_reset(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    struct virtio_transport *t = virtio_pci_transport(r->vp);
    fired_any(r);
    unsigned gen = rd(r, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
    virtio_notify_config(t);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_CFGGENERATION, 1), (gen + 1) & 0xff);
    assert_int_equal(fired(r, MSI_DATA(0)), 1);
    assert_int_equal(mmio_read(r, r->bar + r->isr_off, 1), 2);

    virtio_set_needs_reset(t);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f | S_NEEDS_RESET);
    assert_int_equal(fired(r, MSI_DATA(0)), 1);
    /* Once is enough. */
    virtio_set_needs_reset(t);
    assert_int_equal(fired_any(r), 0);
    /* A reset clears it. */
    driver_reset(r);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    /* Before any driver, there is no one to tell. */
    virtio_set_needs_reset(t);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0);

    /* A device that cannot start asks for a reset the same way. */
    r->dev.activate_rc = -1;
    driver_bringup(r);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f | S_NEEDS_RESET);
    assert_int_equal(fired(r, MSI_DATA(0)), 1);
}

/* ---- tests: notifications ---------------------------------------------- */

static void check_ioeventfds(struct rig *r, uint64_t bar, uint32_t len)
{
    assert_int_equal(r->kvm.nioev, DEV_QUEUES);
    for (unsigned i = 0; i < DEV_QUEUES; i++) {
        bool found = false;
        for (unsigned j = 0; j < r->kvm.nioev; j++) {
            if (r->kvm.ioev[j].addr == bar + r->notify_off + i * r->notify_mult) {
                assert_int_equal(r->kvm.ioev[j].len, len);
                found = true;
            }
        }
        assert_true(found);
    }
}

static int ioeventfd_at(struct rig *r, uint64_t addr)
{
    for (unsigned j = 0; j < r->kvm.nioev; j++)
        if (r->kvm.ioev[j].addr == addr)
            return r->kvm.ioev[j].fd;
    return -1;
}

static void check_notify(void **state, uint32_t len)
{
    struct rig *r = *state;
    /* Not decoding, no ioeventfds. */
    assert_int_equal(r->kvm.nioev, 0);
    driver_bringup(r);
    check_ioeventfds(r, r->bar, len);
    assert_int_equal(kvm_irq_ioeventfd_len(r->irq), len);

    /* What KVM does on the guest's write: signal the eventfd. The device
     * got the same eventfd as queue i's kick. */
    for (unsigned i = 0; i < DEV_QUEUES; i++) {
        int fd = ioeventfd_at(r, r->bar + r->notify_off + i * r->notify_mult);
        assert_int_equal(fd, r->dev.q.kick_fd[i]);
        uint64_t one = 1;
        assert_int_equal(write(fd, &one, sizeof one), sizeof one);
        assert_int_equal(read_fd(r->dev.q.kick_fd[i]), 1);
    }
    /* Writes KVM did not catch reach us and kick the same way, at any
     * width; anything else in the notify page does nothing. */
    mmio_write(r, r->bar + r->notify_off + r->notify_mult, 1, 4);
    assert_int_equal(read_fd(r->dev.q.kick_fd[1]), 1);
    assert_int_equal(read_fd(r->dev.q.kick_fd[0]), 0);
    mmio_write(r, r->bar + r->notify_off + 1, 0, 1);
    mmio_write(r, r->bar + r->notify_off + r->notify_mult * DEV_QUEUES, 0, 2);
    mmio_write(r, r->bar + r->notify_off + 0x800, 0, 2);
    assert_int_equal(read_fd(r->dev.q.kick_fd[0]), 0);
    assert_int_equal(read_fd(r->dev.q.kick_fd[1]), 0);
    assert_int_equal(mmio_read(r, r->bar + r->notify_off, 2), 0xffff);

    /* The guest moves the BAR: the ioeventfds follow. */
    uint64_t moved = GUEST_PCI_MMIO_START + 0x1000000;
    cfg_write(r, 0x10, (uint32_t)moved | 0x4, 4);
    check_ioeventfds(r, moved, len);
    mmio_write(r, moved + r->notify_off, 0, 2);
    assert_int_equal(read_fd(r->dev.q.kick_fd[0]), 1);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0xff); /* old place: nothing */
    r->bar = moved;
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
    /* Memory space off: gone from KVM; back on: back. */
    cfg_write(r, PCI_COMMAND, 0, 2);
    assert_int_equal(r->kvm.nioev, 0);
    cfg_write(r, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    check_ioeventfds(r, moved, len);
    /* Another ioeventfd already at our address (the guest stacked BARs):
     * KVM refuses, and the userspace path still kicks. */
    cfg_write(r, PCI_COMMAND, 0, 2);
    struct kvm_irq *k = r->irq;
    int other = r->dev.q.kick_fd[1];
    assert_int_equal(kvm_irq_ioeventfd(k, other, moved + r->notify_off, true), 0);
    cfg_write(r, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    assert_int_equal(r->kvm.nioev, DEV_QUEUES); /* queue 0's was refused */
    mmio_write(r, moved + r->notify_off, 0, 2);
    assert_int_equal(read_fd(r->dev.q.kick_fd[0]), 1);
    assert_int_equal(kvm_irq_ioeventfd(k, other, moved + r->notify_off, false), 0);
}

static void test_notify_any_length(void **state)
{
    check_notify(state, 0);
}
static void test_notify_len2(void **state)
{
    check_notify(state, 2);
}

/* ---- tests: device configuration and the PCI config window -------------- */

static void test_device_config(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    for (unsigned i = 0; i < DEV_CFG_SIZE; i++)
        r->dev.cfg[i] = (uint8_t)(0x10 + i);
    uint64_t base = r->bar + r->device_off;
    assert_int_equal(mmio_read(r, base, 4), 0x13121110);
    assert_int_equal(mmio_read(r, base + 8, 2), 0x1918);
    assert_int_equal(mmio_read(r, base + 5, 1), 0x15);
    assert_int_equal(r->dev.last_off, 5);
    assert_int_equal(r->dev.last_len, 1);
    /* Past the end: clipped to what exists, the rest all-ones. */
    assert_int_equal(mmio_read(r, base + 8, 4), 0xffff1918);
    assert_int_equal(r->dev.last_len, 2);
    unsigned reads = r->dev.cfg_reads;
    assert_int_equal(mmio_read(r, base + DEV_CFG_SIZE, 4), 0xffffffff);
    assert_int_equal(mmio_read(r, base + 0xffc, 4), 0xffffffff);
    assert_int_equal(r->dev.cfg_reads, reads);
    mmio_write(r, base + 2, 0xbeef, 2);
    assert_int_equal(r->dev.cfg[2], 0xef);
    assert_int_equal(r->dev.cfg[3], 0xbe);
    mmio_write(r, base + 9, 0xaabbccdd, 4);
    assert_int_equal(r->dev.cfg[9], 0xdd);
    unsigned writes = r->dev.cfg_writes;
    mmio_write(r, base + 100, 1, 4);
    assert_int_equal(r->dev.cfg_writes, writes);
}

static void test_pci_cfg_access_window(void **state)
{
    struct rig *r = *state;
    driver_probe(r);
    driver_reset(r);
    unsigned c = r->cap_pcicfg;
    /* Read num_queues through config space. */
    cfg_write(r, c + 4, 0, 1);
    cfg_write(r, c + 8, r->common_off + VIRTIO_PCI_COMMON_NUMQ, 4);
    cfg_write(r, c + 12, 2, 4);
    assert_int_equal(cfg_read(r, c + 16, 2), DEV_QUEUES);
    /* Write device_status through it. */
    cfg_write(r, c + 8, r->common_off + VIRTIO_PCI_COMMON_STATUS, 4);
    cfg_write(r, c + 12, 1, 4);
    cfg_write(r, c + 16, S_ACK, 1);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), S_ACK);
    assert_int_equal(cfg_read(r, c + 16, 1), S_ACK);
    /* Lengths other than 1, 2, 4, misaligned offsets, other BARs and
     * offsets past the BAR do nothing. */
    static const uint32_t bad[][3] = {
        { 0, VIRTIO_PCI_COMMON_STATUS, 3 },   { 0, VIRTIO_PCI_COMMON_STATUS, 8 },
        { 0, VIRTIO_PCI_COMMON_NUMQ + 1, 2 }, { 1, VIRTIO_PCI_COMMON_STATUS, 1 },
        { 0, VIRTIO_PCI_BAR_SIZE, 1 },        { 0, 0xfffffffc, 4 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg_write(r, c + 4, bad[i][0], 1);
        cfg_write(r, c + 8, bad[i][0] ? bad[i][1] : r->common_off + bad[i][1], 4);
        cfg_write(r, c + 12, bad[i][2], 4);
        cfg_write(r, c + 16, 0, 4);
        cfg_read(r, c + 16, 4);
    }
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), S_ACK);
    /* Read-only parts of the capability stay put. */
    cfg_write(r, c, 0xffffffff, 4);
    assert_int_equal(cfg_read(r, c, 1), PCI_CAP_ID_VNDR);
    assert_int_equal(cfg_read(r, c + 2, 2), 0x0514);
}

/* ---- tests: hostility ---------------------------------------------------- */

static void test_hostile_bar_and_config(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    unsigned seed = 99;
    static const unsigned widths[] = { 1, 2, 3, 4, 6, 8 };
    for (int i = 0; i < 100000; i++) {
        seed = seed * 1103515245 + 12345;
        unsigned rnd = seed >> 8;
        unsigned len = widths[rnd % 6];
        uint64_t v = (uint64_t)rnd * 0x9e3779b97f4a7c15ULL;
        uint64_t off = (rnd >> 3) % VIRTIO_PCI_BAR_SIZE;
        switch ((rnd >> 20) % 4) {
        case 0: mmio_write(r, r->bar + off, v, len); break;
        case 1: mmio_read(r, r->bar + off, len); break;
        case 2: {
            /* Config space, but not the BAR or command (keep the BAR
             * where the loop aims). */
            unsigned reg = 0x28 + (rnd >> 3) % (4096 - 0x28);
            mmio_write(r, GUEST_PCI_ECAM_START + ((uint64_t)r->devfn << 12) + reg, v,
                       len > 4 ? 4 : len);
            break;
        }
        default: virtio_notify_queue(virtio_pci_transport(r->vp), rnd % 4); break;
        }
        if (i % 997 == 0)
            fired_any(r);
    }
    /* Still a well-formed device that comes up again. */
    assert_int_equal(cfg_read(r, 0, 4), 0x10421af4);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_NUMQ, 2), DEV_QUEUES);
    r->cap_common = r->cap_notify = r->cap_isr = r->cap_device = 0;
    r->cap_pcicfg = r->cap_msix = 0;
    driver_bringup(r);
    assert_int_equal(rd(r, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

/* A device thread notifying flat out while vCPUs reset, remask and
 * reprogram: no deadlock (ops->reset waits for the thread, which needs
 * the notify path), no lost consistency. */
static void *device_thread(void *arg)
{
    struct rig *r = arg;
    struct virtio_transport *t = virtio_pci_transport(r->vp);
    while (!atomic_load(&r->dev.stop)) {
        virtio_notify_queue(t, atomic_load(&r->dev.notifies) % DEV_QUEUES);
        if (atomic_fetch_add(&r->dev.notifies, 1) % 64 == 0)
            virtio_notify_config(t);
        if (atomic_load(&r->dev.notifies) % 1000 == 0)
            virtio_set_needs_reset(t);
    }
    return NULL;
}

static void *irq_drain_thread(void *arg)
{
    struct rig *r = arg;
    while (!atomic_load(&r->dev.stop)) {
        for (unsigned j = 0; j < r->kvm.nirqfd; j++)
            read_fd(r->kvm.irqfd[j].fd);
    }
    return NULL;
}

static void test_reset_while_device_notifies(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    for (int round = 0; round < 50; round++) {
        atomic_store(&r->dev.stop, false);
        atomic_store(&r->dev.running, true);
        assert_int_equal(pthread_create(&r->dev.thread, NULL, device_thread, r), 0);
        pthread_t drain;
        assert_int_equal(pthread_create(&drain, NULL, irq_drain_thread, r), 0);
        /* The race this test is about needs the device thread to be
         * notifying already: wait (bounded) for its first notification. */
        unsigned start = atomic_load(&r->dev.notifies);
        for (int spin = 0; spin < 5000 && atomic_load(&r->dev.notifies) == start; spin++)
            usleep(1000);
        assert_true(atomic_load(&r->dev.notifies) != start);
        for (unsigned v = 0; v < r->nvec; v++) {
            msix_entry_write(r, v, 3, 1);
            msix_entry_write(r, v, 2, MSI_DATA(v) + (unsigned)round);
            msix_entry_write(r, v, 3, 0);
        }
        cfg_write(r, r->cap_msix + 2, 0xc000, 2);
        cfg_write(r, r->cap_msix + 2, 0x8000, 2);
        driver_reset(r); /* joins the device thread in ops->reset */
        assert_false(atomic_load(&r->dev.running));
        atomic_store(&r->dev.stop, true);
        pthread_join(drain, NULL);
        driver_bringup(r);
    }
    assert_true(atomic_load(&r->dev.notifies) > 0);
}

/* ---- tests: construction and teardown ----------------------------------- */

static void test_new_rejects_bad_ops(void **state)
{
    struct rig *r = *state;
    struct virtio_device_ops ops = dev_ops;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, NULL, NULL));
    assert_null(virtio_pci_new(NULL, r->irq, &r->mem, &ops, NULL));
    assert_null(virtio_pci_new(r->host, NULL, &r->mem, &ops, NULL));
    ops.num_queues = 0;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, &ops, NULL));
    ops.num_queues = VIRTIO_MAX_QUEUES + 1;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, &ops, NULL));
    ops = dev_ops;
    ops.queue_max_size = 100;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, &ops, NULL));
    ops.queue_max_size = VIRTQ_MAX_SIZE * 2;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, &ops, NULL));
    ops.queue_max_size = 0;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, &ops, NULL));
    ops = dev_ops;
    ops.config_size = 4097;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, &ops, NULL));
    /* One vector would leave queues or config without any (no INTx);
     * more than a queue each plus config is no layout Linux uses. */
    ops = dev_ops;
    ops.msix_vectors = 1;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, &ops, NULL));
    ops.msix_vectors = DEV_QUEUES + 2;
    assert_null(virtio_pci_new(r->host, r->irq, &r->mem, &ops, NULL));

    /* KVM refusing an irqfd half-way: nothing is left behind, not even
     * the PCI function. */
    unsigned nirqfd = r->kvm.nirqfd;
    r->kvm.fail_irqfd = 1;
    unsigned resets = r->dev.resets;
    struct virtio_pci *vp = virtio_pci_new(r->host, r->irq, &r->mem, &dev_ops, &r->dev);
    assert_null(vp);
    assert_int_equal(r->kvm.nirqfd, nirqfd);
    assert_int_equal(r->dev.resets, resets); /* never handed to a guest */
    /* Its slot is free again. */
    vp = virtio_pci_new(r->host, r->irq, &r->mem, &dev_ops, &r->dev);
    assert_non_null(vp);
    assert_int_equal(pci_func_devfn(virtio_pci_func(vp)), PCI_DEVFN(2, 0));
    virtio_pci_free(vp);
    assert_int_equal(r->kvm.nirqfd, nirqfd);
}

static void test_free_resets_device(void **state)
{
    struct rig *r = *state;
    driver_bringup(r);
    unsigned resets = r->dev.resets;
    virtio_pci_free(r->vp);
    assert_int_equal(r->dev.resets, resets + 1);
    assert_int_equal(r->kvm.nioev, 0);
    assert_int_equal(r->kvm.nirqfd, 0);
    /* The function is gone from the bus. */
    assert_int_equal(cfg_read(r, 0, 4), 0xffffffff);
    r->vp = virtio_pci_new(r->host, r->irq, &r->mem, &dev_ops, &r->dev);
    assert_non_null(r->vp);
}

/* ---- tests: kvm_irq on its own ------------------------------------------- */

struct kvm_rig {
    struct fake_kvm kvm;
    struct kvm_irq *k;
};

static int kvm_setup(void **state)
{
    struct kvm_rig *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->kvm.lock, NULL);
    r->kvm.any_length = 1;
    r->k = kvm_irq_new_with(fake_ioctl, &r->kvm);
    *state = r;
    return r->k ? 0 : -1;
}

static int kvm_teardown(void **state)
{
    struct kvm_rig *r = *state;
    kvm_irq_free(r->k);
    pthread_mutex_destroy(&r->kvm.lock);
    free(r);
    return 0;
}

static void test_kvm_default_routes(void **state)
{
    struct kvm_rig *r = *state;
    int gsi = kvm_irq_msi_alloc(r->k);
    assert_int_equal(gsi, KVM_IRQ_FIRST_MSI_GSI);
    assert_int_equal(r->kvm.routing_calls, 0); /* nothing routed yet */
    assert_int_equal(kvm_irq_msi_route(r->k, (unsigned)gsi, 0xfee01000, 0x4031), 0);
    assert_int_equal(r->kvm.routing_calls, 1);
    /* KVM's own default table, exactly: IOAPIC pin n for GSIs 0..23, PIC
     * pin n % 8 (master below 8, slave above) for 0..15, then ours. */
    assert_int_equal(r->kvm.nroutes, 24 + 16 + 1);
    for (unsigned g = 0; g < 24; g++) {
        const struct kvm_irq_routing_entry *e = route_of(&r->kvm, g, KVM_IRQ_ROUTING_IRQCHIP);
        unsigned ioapic = 0, pic = 0;
        for (unsigned i = 0; i < r->kvm.nroutes; i++) {
            const struct kvm_irq_routing_entry *x = &r->kvm.routes[i];
            if (x->gsi != g)
                continue;
            assert_int_equal(x->type, KVM_IRQ_ROUTING_IRQCHIP);
            if (x->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC) {
                assert_int_equal(x->u.irqchip.pin, g);
                ioapic++;
            } else {
                assert_int_equal(x->u.irqchip.irqchip,
                                 g < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE);
                assert_int_equal(x->u.irqchip.pin, g % 8);
                pic++;
            }
        }
        assert_non_null(e);
        assert_int_equal(ioapic, 1);
        assert_int_equal(pic, g < 16 ? 1 : 0);
    }
    const struct kvm_irq_routing_entry *m = route_of(&r->kvm, 24, KVM_IRQ_ROUTING_MSI);
    assert_non_null(m);
    assert_int_equal(m->u.msi.address_lo, 0xfee01000);
    assert_int_equal(m->u.msi.address_hi, 0);
    assert_int_equal(m->u.msi.data, 0x4031);
}

static void test_kvm_msi_routes(void **state)
{
    struct kvm_rig *r = *state;
    int a = kvm_irq_msi_alloc(r->k), b = kvm_irq_msi_alloc(r->k);
    assert_int_equal(a, 24);
    assert_int_equal(b, 25);
    assert_int_equal(kvm_irq_msi_route(r->k, (unsigned)a, 0xfee00000, 0x30), 0);
    assert_int_equal(kvm_irq_msi_route(r->k, (unsigned)b, 0x1fee00000ULL, 0x31), 0);
    assert_int_equal(r->kvm.routing_calls, 2);
    assert_int_equal(route_of(&r->kvm, 25, KVM_IRQ_ROUTING_MSI)->u.msi.address_hi, 1);
    /* The same message again costs no ioctl. */
    assert_int_equal(kvm_irq_msi_route(r->k, (unsigned)a, 0xfee00000, 0x30), 0);
    assert_int_equal(r->kvm.routing_calls, 2);
    /* Updating one keeps the other. */
    assert_int_equal(kvm_irq_msi_route(r->k, (unsigned)a, 0xfee00000, 0x40), 0);
    assert_int_equal(route_of(&r->kvm, 24, KVM_IRQ_ROUTING_MSI)->u.msi.data, 0x40);
    assert_int_equal(route_of(&r->kvm, 25, KVM_IRQ_ROUTING_MSI)->u.msi.data, 0x31);
    /* KVM failing leaves our idea of the table what KVM has: retried. */
    r->kvm.fail_routing = 1;
    assert_int_equal(kvm_irq_msi_route(r->k, (unsigned)a, 0xfee00000, 0x50), -1);
    assert_int_equal(route_of(&r->kvm, 24, KVM_IRQ_ROUTING_MSI)->u.msi.data, 0x40);
    assert_int_equal(kvm_irq_msi_route(r->k, (unsigned)a, 0xfee00000, 0x50), 0);
    assert_int_equal(route_of(&r->kvm, 24, KVM_IRQ_ROUTING_MSI)->u.msi.data, 0x50);
    /* Freed GSIs lose their route and are handed out again. */
    kvm_irq_msi_free(r->k, (unsigned)a);
    assert_null(route_of(&r->kvm, 24, KVM_IRQ_ROUTING_MSI));
    assert_non_null(route_of(&r->kvm, 25, KVM_IRQ_ROUTING_MSI));
    assert_int_equal(kvm_irq_msi_alloc(r->k), 24);
    /* GSIs that are not ours to route. */
    assert_int_equal(kvm_irq_msi_route(r->k, 4, 0xfee00000, 0x30), -1);
    assert_int_equal(kvm_irq_msi_route(r->k, 26, 0xfee00000, 0x30), -1);
    assert_int_equal(kvm_irq_msi_route(r->k, KVM_IRQ_MAX_GSI, 0xfee00000, 0x30), -1);
    assert_int_equal(kvm_irq_msi_route(r->k, 0xffffffffu, 0xfee00000, 0x30), -1);
    kvm_irq_msi_free(r->k, 3);
    kvm_irq_msi_free(r->k, 0xffffffffu);
    /* Running out. */
    int n = 0;
    while (kvm_irq_msi_alloc(r->k) >= 0)
        n++;
    assert_int_equal(n, KVM_IRQ_MAX_GSI - KVM_IRQ_FIRST_MSI_GSI - 2);
}

static void test_kvm_irqfd_ioeventfd(void **state)
{
    struct kvm_rig *r = *state;
    assert_int_equal(kvm_irq_irqfd(r->k, 7, 30, true), 0);
    assert_int_equal(r->kvm.last_irqfd_flags, 0);
    assert_int_equal(r->kvm.nirqfd, 1);
    assert_int_equal(kvm_irq_irqfd(r->k, 7, 30, false), 0);
    assert_int_equal(r->kvm.last_irqfd_flags, KVM_IRQFD_FLAG_DEASSIGN);
    assert_int_equal(r->kvm.nirqfd, 0);
    assert_int_equal(kvm_irq_irqfd(r->k, -1, 30, true), -1);
    assert_int_equal(kvm_irq_irqfd(r->k, 7, KVM_IRQ_MAX_GSI, true), -1);

    assert_int_equal(kvm_irq_ioeventfd_len(r->k), 0);
    assert_int_equal(kvm_irq_ioeventfd(r->k, 9, 0xc0003000, true), 0);
    assert_int_equal(r->kvm.last_ioev_flags, 0);
    assert_int_equal(r->kvm.ioev[0].len, 0);
    errno = 0;
    assert_int_equal(kvm_irq_ioeventfd(r->k, 10, 0xc0003000, true), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(kvm_irq_ioeventfd(r->k, 9, 0xc0003000, false), 0);
    assert_int_equal(r->kvm.last_ioev_flags, KVM_IOEVENTFD_FLAG_DEASSIGN);
    assert_int_equal(r->kvm.nioev, 0);
    assert_int_equal(kvm_irq_ioeventfd(r->k, -1, 0xc0003000, true), -1);

    /* Without KVM_CAP_IOEVENTFD_ANY_LENGTH: the 2-byte queue index. */
    struct fake_kvm k2;
    memset(&k2, 0, sizeof k2);
    pthread_mutex_init(&k2.lock, NULL);
    struct kvm_irq *old = kvm_irq_new_with(fake_ioctl, &k2);
    assert_int_equal(kvm_irq_ioeventfd_len(old), 2);
    assert_int_equal(kvm_irq_ioeventfd(old, 9, 0xc0003000, true), 0);
    assert_int_equal(k2.ioev[0].len, 2);
    kvm_irq_free(old);
    pthread_mutex_destroy(&k2.lock);
    kvm_irq_free(NULL);
}

/* vCPUs reprogramming vectors at once: every table KVM gets is whole. */
struct route_worker {
    struct kvm_rig *r;
    unsigned gsi;
};

static void *route_thread(void *arg)
{
    struct route_worker *w = arg;
    for (uint32_t i = 0; i < 2000; i++)
        kvm_irq_msi_route(w->r->k, w->gsi, 0xfee00000, i);
    return NULL;
}

static void test_kvm_concurrent_routes(void **state)
{
    struct kvm_rig *r = *state;
    struct route_worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i].r = r;
        w[i].gsi = (unsigned)kvm_irq_msi_alloc(r->k);
        assert_int_equal(pthread_create(&t[i], NULL, route_thread, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(r->kvm.nroutes, 40 + 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(route_of(&r->kvm, w[i].gsi, KVM_IRQ_ROUTING_MSI)->u.msi.data, 1999);
}

/* ---- snapshots ------------------------------------------------------- */

/* A driven function saved (config space and transport state) comes back
 * in a new machine: the BAR where the guest had moved it, with the
 * queues' ioeventfds there; every MSI-X message routed; what the driver
 * reads the same; the device started once with the same queues, marked
 * as a resume. */
static void test_snapshot_round_trip(void **state)
{
    struct rig *a = *state;
    driver_bringup(a);
    uint64_t moved = a->bar + 0x100000;
    cfg_write(a, 0x10, (uint32_t)moved | 0x4, 4);
    cfg_write(a, 0x14, (uint32_t)(moved >> 32), 4);
    a->bar = moved;
    wr(a, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    a->dev.q.q[0]->last_avail = 7; /* the device's positions */
    a->dev.q.q[0]->used_idx = 7;
    virtio_pci_quiesce(a->vp);
    uint8_t cfg[PCI_CFG_SPACE_EXP_SIZE];
    pci_func_save(virtio_pci_func(a->vp), cfg);
    struct virtio_pci_state st;
    virtio_pci_save(a->vp, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.queue[0].last_avail, 7);

    void *bstate;
    assert_int_equal(setup(&bstate), 0);
    struct rig *b = bstate;
    assert_int_equal(pci_func_restore(virtio_pci_func(b->vp), cfg), 0);
    char why[256] = "";
    assert_int_equal(virtio_pci_restore(b->vp, &st, why, sizeof why), 0);
    assert_int_equal(b->dev.activations, 0); /* not before resume */
    assert_int_equal(virtio_pci_resume(b->vp), 0);
    assert_int_equal(b->dev.activations, 1);
    assert_true(b->dev.q.resume);
    for (unsigned i = 0; i < DEV_QUEUES; i++) {
        assert_non_null(b->dev.q.q[i]);
        assert_int_equal(b->dev.qcopy[i].size, 128);
        assert_int_equal(b->dev.qcopy[i].desc_gpa, queue_gpa[i][0]);
        assert_int_equal(b->dev.qcopy[i].avail_gpa, queue_gpa[i][1]);
        assert_int_equal(b->dev.qcopy[i].used_gpa, queue_gpa[i][2]);
        assert_true(b->dev.qcopy[i].event_idx);
    }
    assert_int_equal(b->dev.qcopy[0].last_avail, 7);
    assert_int_equal(b->dev.qcopy[0].used_idx, 7);

    /* The driver's view, through B's bus. */
    driver_probe(b); /* finds the BAR where A's guest put it */
    assert_int_equal(b->bar, moved);
    assert_int_equal(rd(b, VIRTIO_PCI_COMMON_STATUS, 1),
                     S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    assert_int_equal(rd(b, VIRTIO_PCI_COMMON_Q_SELECT, 2), 1);
    assert_int_equal(rd(b, VIRTIO_PCI_COMMON_Q_MSIX, 2), 2);
    assert_int_equal(rd(b, VIRTIO_PCI_COMMON_MSIX, 2), 0);
    wr(b, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    assert_int_equal(rd(b, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)(device_features(a) & driver_wants));
    check_ioeventfds(b, moved, 0);
    virtio_notify_queue(virtio_pci_transport(b->vp), 1);
    assert_int_equal(fired(b, MSI_DATA(2)), 1);
    virtio_notify_config(virtio_pci_transport(b->vp));
    assert_int_equal(fired(b, MSI_DATA(0)), 1);
    teardown(&bstate);
}

/* Case i of a hostile transport state: bends s, returns the refusal
 * expected, or NULL after the last case. */
static const char *bend_state(struct virtio_pci_state *s, unsigned i)
{
    switch (i) {
    case 0: s->queue[0].size = 96; return "queue 0: size 96 (a power of two up to 256)";
    case 1: s->queue[0].size = 512; return "queue 0: size 512 (a power of two up to 256)";
    case 2: s->queue[1].vector = 3; return "queue 1: vector 3 of 3";
    case 3: s->config_vector = 7; return "configuration vector 7 of 3";
    case 4:
        s->queue[0].used_gpa = 1ULL << 40;
        return "queue 0: rings at 0x100000/0x101000/0x10000000000 are not in guest RAM or not "
               "aligned";
    case 5:
        s->queue[0].desc_gpa |= 8;
        return "queue 0: rings at 0x100008/0x101000/0x102000 are not in guest RAM or not aligned";
    case 6: s->status &= (uint8_t)~S_FEATURES_OK; return "DRIVER_OK without FEATURES_OK";
    case 7: s->status |= 0x10; return "device status 0x1f has unknown bits";
    case 8:
        s->driver_features |= 1ULL << 40;
        return "features 0x10120000200 accepted, but the device offers 0x130000202";
    case 9: s->table[1].ctrl = 2; return "MSI-X vector 1: address 0xfee00000, control 0x2";
    case 10: s->table[0].addr_lo |= 1; return "MSI-X vector 0: address 0xfee00001, control 0x0";
    case 11: s->table[5].data = 1; return "MSI-X vector 5 of 3";
    case 12: s->pba = 8; return "pending bits 0x8 for 3 vectors";
    case 13: s->isr = 4; return "ISR 0x4";
    case 14: s->nq = 3; return "transport of device 2 with 3 queues and 3 vectors, not 2/2/3";
    case 15: s->queue[2].size = 1; return "queue 2 of 2";
    case 16: s->active = 2; return "a running device whose driver never set DRIVER_OK";
    case 17:
        s->queue[1].enabled = 0;
        s->queue[1].last_avail = 1;
        return "queue 1: positions in a queue never enabled";
    default: return NULL;
    }
}

/* A state no driver could have brought the transport to is refused with
 * its reason, and nothing of it is taken. */
static void test_snapshot_hostile_state(void **state)
{
    struct rig *a = *state;
    driver_bringup(a);
    struct virtio_pci_state good, st;
    virtio_pci_save(a->vp, &good);
    void *bstate;
    assert_int_equal(setup(&bstate), 0);
    struct rig *b = bstate;
    char why[256];
    const char *want;
    for (unsigned i = 0; (st = good, want = bend_state(&st, i)) != NULL; i++) {
        why[0] = 0;
        assert_int_equal(virtio_pci_restore(b->vp, &st, why, sizeof why), -1);
        if (strcmp(why, want))
            fail_msg("case %u: '%s', wanted '%s'", i, why, want);
        assert_int_equal(virtio_pci_resume(b->vp), 0); /* nothing taken: not running */
        assert_int_equal(b->dev.activations, 0);
    }
    /* The unaltered state is taken. */
    assert_int_equal(virtio_pci_restore(b->vp, &good, why, sizeof why), 0);
    teardown(&bstate);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define K(f) cmocka_unit_test_setup_teardown(f, kvm_setup, kvm_teardown)
    const struct CMUnitTest tests[] = {
        T(test_pci_identity),
        T(test_linux_probe_sequence),
        T(test_feature_negotiation),
        T(test_features_ok_refused),
        T(test_reset),
        T(test_bad_queue_sizes),
        T(test_queue_select_out_of_range),
        T(test_queue_enable_validates_rings),
        T(test_msix_vector_assignment),
        T(test_msix_routes),
        T(test_no_needless_kvm_calls),
        T(test_msix_mask_pending_unmask),
        T(test_no_vector),
        T(test_config_notify_and_needs_reset),
        T(test_notify_any_length),
        cmocka_unit_test_setup_teardown(test_notify_len2, setup_len2, teardown),
        cmocka_unit_test_setup_teardown(test_shared_vector, setup_shared, teardown),
        T(test_notify_queues_per_queue_vectors),
        T(test_device_config),
        T(test_pci_cfg_access_window),
        T(test_hostile_bar_and_config),
        T(test_snapshot_round_trip),
        T(test_snapshot_hostile_state),
        T(test_reset_while_device_notifies),
        T(test_new_rejects_bad_ops),
        T(test_free_resets_device),
        K(test_kvm_default_routes),
        K(test_kvm_msi_routes),
        K(test_kvm_irqfd_ioeventfd),
        K(test_kvm_concurrent_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
