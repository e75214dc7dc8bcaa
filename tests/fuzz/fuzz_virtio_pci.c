/* libFuzzer target for the virtio-pci transport (src/virtio/pci.c) on the
 * PCI host (src/dev/pci.c), as a hostile driver drives it: MMIO to BAR 0
 * (common configuration, ISR, device configuration, notifications, MSI-X
 * table and PBA) and PCI configuration accesses (capabilities, the
 * VIRTIO_PCI_CAP_PCI_CFG window, BAR moves and sizing, the command
 * register, MSI-X control), with no KVM: kvm_irq runs against a fake that
 * holds routes, irqfds and ioeventfds as the kernel would. Build with clang
 * -fsanitize=fuzzer,address,undefined (docs/fuzzing.md), or with
 * -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * The device is a small one made with virtio_device_new whose activate and
 * reset work synchronously (no thread): when told to run, it pops the
 * chains of every kicked queue from guest memory (src/virtio/queue.c),
 * writes a pattern into them and notifies. Guest memory is LOW_SIZE bytes
 * of low RAM and HIGH_SIZE at 4 GiB, allocated to exactly that size.
 *
 * Input: 8 bytes of parameters, then operations.
 *   0      queues: 1 + b % 8          1  queue_max_size: 1 << (b % 11)
 *   2      config size: b % 65 bytes  3  bit 0: KVM has ioeventfd any-length,
 *          bit 1: activate fails, bits 3:2: device ID 1 + n
 *   4..7   the device's feature bits (low 32; the transport adds its own)
 * Each operation: byte 0 bits 2:0 kind, bit 3 write, bits 5:4 width
 * (1 << n: 1, 2, 4, 8), then
 *   0 BAR 0 at the address the BAR register holds: 1 byte region (b % 8:
 *     common, ISR, device config, notify, MSI-X table, PBA, 256 bytes
 *     before the BAR, the BAR's last 128 bytes and beyond), 1 byte offset
 *   1 configuration space through 0xcf8/0xcfc: 1 byte register
 *   2 configuration space through ECAM: 2 bytes register (& 0xfff)
 *   3 the device: 1 byte b: b % 4 = 0 notify queue b >> 2, 1 config
 *     changed, 2 NEEDS_RESET, 3 serve every kicked queue
 *   4 guest memory: 2 bytes offset into low RAM (top bit: high RAM), 1
 *     byte length (% 64 + 1), the bytes
 *   5 a snapshot: the device stopped, the transport's state saved, 2
 *     bytes offset into it and 1 byte length (% 16 + 1), that many bytes
 *     XORed in there (a hostile state file), restored over the function,
 *     the device resumed. A refused state must say why in one line and
 *     leave the transport exactly as it was.
 *   then, for a write (0-2), width bytes of data.
 *
 * Besides memory errors it checks:
 *   - a read fills exactly its width and nothing beyond, and reads
 *     all-ones while BAR 0 does not decode;
 *   - the device's config callbacks only see ranges inside its config;
 *   - activate comes once per reset, only after FEATURES_OK with features
 *     the device offered plus VERSION_1, and hands over only enabled
 *     queues whose size is a power of two up to the maximum and whose
 *     rings lie in guest RAM with the split ring's alignment
 *     (virtq_rings_valid on real guest memory); every chain popped lies
 *     inside guest RAM;
 *   - after each write, in every queue: num_queues is right, the size a
 *     power of two up to the maximum (0 past the last queue), queue_enable
 *     0 or 1, notify offset the index, MSI-X vectors valid or NO_VECTOR,
 *     DRIVER_OK only with FEATURES_OK; the PBA has no bit past the vectors;
 *   - a status write of 0 resets the device (its reset ran, and it holds
 *     no queue) and leaves every register in its reset state;
 *   - the ioeventfds in KVM are exactly one per queue at BAR 0's notify
 *     addresses while BAR 0 decodes, none otherwise; at the end nothing is
 *     left in KVM (irqfds, ioeventfds, MSI routes). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/virtio_pci.h>

#define FUZZ_TARGET "fuzz_virtio_pci"
#include "fuzz_util.h"
#include "bus.h"
#include "kvm_irq.h"
#include "layout.h"
#include "memory.h"
#include "dev/pci.h"
#include "virtio/device.h"
#include "virtio/pci.h"
#include "virtio/queue.h"

#define PARAMS    8
#define LOW_SIZE  0x10000u
#define HIGH_SIZE 0x2000u
#define MAX_OPS   512
#define MAX_POPS  16
#define GUARD     0xa5
#define MAX_REC   32
#define MAX_CFG   64

/* ---- a fake KVM: what kvm_irq asks of the VM descriptor ---------------- */

struct fake_kvm {
    int any_length;
    unsigned nroutes, msi_routes;
    struct {
        int fd;
        unsigned gsi;
    } irqfd[MAX_REC];
    unsigned nirqfd;
    struct {
        uint64_t addr;
        int fd;
    } ioev[MAX_REC];
    unsigned nioev;
};

static int fake_ioctl(void *ctx, unsigned long req, void *arg)
{
    struct fake_kvm *k = ctx;
    switch (req) {
    case KVM_CHECK_EXTENSION:
        return (uintptr_t)arg == KVM_CAP_IOEVENTFD_ANY_LENGTH ? k->any_length : 0;
    case KVM_SET_GSI_ROUTING: {
        const struct kvm_irq_routing *t = arg;
        k->nroutes = t->nr;
        k->msi_routes = 0;
        for (unsigned i = 0; i < t->nr; i++)
            k->msi_routes += t->entries[i].type == KVM_IRQ_ROUTING_MSI;
        return 0;
    }
    case KVM_IRQFD: {
        const struct kvm_irqfd *r = arg;
        if (r->flags & KVM_IRQFD_FLAG_DEASSIGN) {
            for (unsigned i = 0; i < k->nirqfd; i++) {
                if (k->irqfd[i].fd == (int)r->fd && k->irqfd[i].gsi == r->gsi) {
                    k->irqfd[i] = k->irqfd[--k->nirqfd];
                    return 0;
                }
            }
            errno = ENOENT;
            return -1;
        }
        check(k->nirqfd < MAX_REC, "too many irqfds");
        k->irqfd[k->nirqfd].fd = (int)r->fd;
        k->irqfd[k->nirqfd++].gsi = r->gsi;
        return 0;
    }
    case KVM_IOEVENTFD: {
        const struct kvm_ioeventfd *e = arg;
        if (e->flags & KVM_IOEVENTFD_FLAG_DEASSIGN) {
            for (unsigned i = 0; i < k->nioev; i++) {
                if (k->ioev[i].addr == e->addr && k->ioev[i].fd == e->fd) {
                    k->ioev[i] = k->ioev[--k->nioev];
                    return 0;
                }
            }
            errno = ENOENT;
            return -1;
        }
        for (unsigned i = 0; i < k->nioev; i++) {
            if (k->ioev[i].addr == e->addr) {
                errno = EEXIST;
                return -1;
            }
        }
        check(k->nioev < MAX_REC, "too many ioeventfds");
        k->ioev[k->nioev].addr = e->addr;
        k->ioev[k->nioev++].fd = e->fd;
        return 0;
    }
    default: check(false, "unexpected KVM ioctl"); return -1;
    }
}

/* ---- the device -------------------------------------------------------- */

struct fdev {
    struct virtio_device vdev; /* first: virtio_device_new's layout */
    const struct guest_memory *mem;
    uint64_t offered; /* what the transport offers: ours plus its own */
    bool fail_activate;
    bool active;
    unsigned activations, resets;
    struct virtio_queues q;
    bool broken[VIRTIO_MAX_QUEUES];
    uint8_t cfg[MAX_CFG];
};

static struct virtq_chain *chain;

static void dev_config_read(void *opaque, size_t off, uint8_t *data, size_t len)
{
    struct fdev *d = opaque;
    check(off < d->vdev.ops.config_size && len <= d->vdev.ops.config_size - off,
          "config read outside the device's config");
    memcpy(data, d->cfg + off, len);
}

static void dev_config_write(void *opaque, size_t off, const uint8_t *data, size_t len)
{
    struct fdev *d = opaque;
    check(off < d->vdev.ops.config_size && len <= d->vdev.ops.config_size - off,
          "config write outside the device's config");
    memcpy(d->cfg + off, data, len);
}

static bool is_pow2(unsigned v)
{
    return v && !(v & (v - 1));
}

static int dev_activate(void *opaque, const struct virtio_queues *qs)
{
    struct fdev *d = opaque;
    const struct virtio_device_ops *ops = &d->vdev.ops;
    check(!d->active, "activated twice without a reset");
    check(qs->transport != NULL && qs->count == ops->num_queues, "activate: bad queue count");
    check(!(qs->features & ~d->offered) && (qs->features & (1ULL << VIRTIO_F_VERSION_1)),
          "activate: features not offered, or no VERSION_1");
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
        const struct virtq *q = qs->q[i];
        if (!q)
            continue;
        check(i < qs->count && qs->kick_fd[i] >= 0, "activate: a queue that does not exist");
        check(q->ready && is_pow2(q->size) && q->size <= ops->queue_max_size,
              "activate: queue size not a power of two up to the maximum");
        check(q->mem == d->mem && virtq_rings_valid(q), "activate: rings outside guest RAM");
        check(q->event_idx == !!(qs->features & (1ULL << VIRTIO_F_EVENT_IDX)) &&
                  q->indirect == !!(qs->features & (1ULL << VIRTIO_F_INDIRECT_DESC)),
              "activate: queue features differ from the negotiated ones");
    }
    d->activations++;
    if (d->fail_activate)
        return -1;
    d->q = *qs;
    memset(d->broken, 0, sizeof d->broken);
    d->active = true;
    return 0;
}

/* ops->stop for a snapshot: the queues stay the transport's. */
static void dev_stop(void *opaque)
{
    struct fdev *d = opaque;
    d->active = false;
    memset(&d->q, 0, sizeof d->q);
}

static void dev_reset(void *opaque)
{
    struct fdev *d = opaque;
    d->resets++;
    d->active = false; /* from here on the queues are the driver's */
    memset(&d->q, 0, sizeof d->q);
}

/* The device's work: every queue whose kick eventfd was signalled gives
 * up to MAX_POPS chains, each answered with a pattern in its writable
 * buffers. */
static void dev_serve(struct fdev *d)
{
    if (!d->active)
        return;
    for (unsigned i = 0; i < d->q.count; i++) {
        struct virtq *q = d->q.q[i];
        uint64_t kicks;
        if (!q || d->broken[i] || read(d->q.kick_fd[i], &kicks, sizeof kicks) != sizeof kicks)
            continue;
        const uint8_t *lo = d->mem->host, *hi = d->mem->host + d->mem->size;
        for (unsigned n = 0; n < MAX_POPS; n++) {
            virtq_disable_notify(q);
            enum virtq_pop_result r = virtq_pop(q, chain);
            if (r == VIRTQ_BROKEN) {
                d->broken[i] = true;
                virtio_set_needs_reset(d->q.transport);
                break;
            }
            if (r == VIRTQ_EMPTY && !virtq_enable_notify(q))
                break;
            if (r == VIRTQ_EMPTY)
                continue;
            for (unsigned k = 0; k < chain->n_out + chain->n_in; k++) {
                const uint8_t *b = chain->iov[k].iov_base;
                check(b >= lo && b <= hi && chain->iov[k].iov_len <= (size_t)(hi - b),
                      "a popped buffer lies outside guest RAM");
            }
            static const uint8_t pattern[64] = { 0x5a, 0xa5, 0x3c, 0xc3 };
            size_t w = iov_from_buf(chain->iov + chain->n_out, chain->n_in, 0, pattern,
                                    sizeof pattern);
            virtq_push(q, chain->head, (uint32_t)w);
            if (virtq_should_notify(q))
                virtio_notify_queue(d->q.transport, i);
        }
    }
}

/* ---- the machine ------------------------------------------------------- */

struct rig {
    struct bus pio, mmio;
    struct fake_kvm kvm;
    struct kvm_irq *irq;
    struct pci_host *host;
    struct guest_memory mem;
    struct fdev *dev;
    struct virtio_device_ops ops;
    struct virtio_pci *vp;
    struct pci_func *func;
    unsigned devfn, nq, nvec;
};

static uint64_t bar_programmed(struct rig *r)
{
    return (pci_cfg_get(r->func, PCI_BASE_ADDRESS_0, 4) & ~0xfull) |
           (uint64_t)pci_cfg_get(r->func, PCI_BASE_ADDRESS_0 + 4, 4) << 32;
}

/* One access at guest address addr of BAR 0's space; reads come back
 * all-ones while BAR 0 does not decode (unless the address is ECAM's: a
 * BAR the guest put there decodes nowhere, and ECAM answers), and never
 * beyond their width. */
static void bar_io(struct rig *r, uint64_t addr, uint8_t *d, unsigned len, bool is_write)
{
    uint8_t buf[16];
    memset(buf, GUARD, sizeof buf);
    if (is_write)
        memcpy(buf, d, len);
    uint64_t at = pci_func_bar_gpa(r->func, 0);
    bool hits = (at && addr >= at && addr - at < VIRTIO_PCI_BAR_SIZE) ||
                (addr >= GUEST_PCI_ECAM_START && addr - GUEST_PCI_ECAM_START < GUEST_PCI_ECAM_SIZE);
    bus_dispatch(&r->mmio, addr, buf, len, is_write);
    for (unsigned i = len; i < sizeof buf; i++)
        check(buf[i] == GUARD, "an access wrote past its width");
    if (!is_write && !hits)
        for (unsigned i = 0; i < len; i++)
            check(buf[i] == 0xff, "BAR read while it does not decode");
    if (!is_write)
        memcpy(d, buf, len);
}

static uint64_t common_rd(struct rig *r, unsigned off, unsigned len)
{
    uint8_t d[8];
    bar_io(r, pci_func_bar_gpa(r->func, 0) + off, d, len, false);
    return get_le(d, len);
}

static void common_wr(struct rig *r, unsigned off, uint64_t v, unsigned len)
{
    uint8_t d[8];
    put_le(d, v, len);
    bar_io(r, pci_func_bar_gpa(r->func, 0) + off, d, len, true);
}

static void cfg_io(struct rig *r, unsigned reg, uint8_t *d, unsigned len, bool is_write)
{
    uint8_t a[4], buf[16];
    put_le(a, 0x80000000u | r->devfn << 8 | (reg & 0xfc), 4);
    bus_dispatch(&r->pio, PORT_PCI_CONFIG, a, 4, true);
    memset(buf, GUARD, sizeof buf);
    if (is_write)
        memcpy(buf, d, len);
    bus_dispatch(&r->pio, PORT_PCI_CONFIG + 4 + (reg & 3), buf, len, is_write);
    for (unsigned i = len; i < sizeof buf; i++)
        check(buf[i] == GUARD, "a config access wrote past its width");
    if (!is_write)
        memcpy(d, buf, len);
}

static void ecam_io(struct rig *r, unsigned reg, uint8_t *d, unsigned len, bool is_write)
{
    uint8_t buf[16];
    memset(buf, GUARD, sizeof buf);
    if (is_write)
        memcpy(buf, d, len);
    bus_dispatch(&r->mmio, GUEST_PCI_ECAM_START + ((uint64_t)r->devfn << 12) + reg, buf, len,
                 is_write);
    for (unsigned i = len; i < sizeof buf; i++)
        check(buf[i] == GUARD, "an ECAM access wrote past its width");
    if (!is_write)
        memcpy(d, buf, len);
}

/* KVM holds one ioeventfd per queue at BAR 0's notify addresses while
 * BAR 0 decodes, and none while it does not. */
static void check_ioeventfds(struct rig *r)
{
    uint64_t at = pci_func_bar_gpa(r->func, 0);
    check(r->kvm.nioev == (at ? r->nq : 0), "ioeventfds do not follow BAR 0");
    for (unsigned i = 0; i < r->kvm.nioev; i++) {
        uint64_t off = r->kvm.ioev[i].addr - at - VIRTIO_PCI_NOTIFY_OFF;
        check(r->kvm.ioev[i].addr >= at + VIRTIO_PCI_NOTIFY_OFF &&
                  off % VIRTIO_PCI_NOTIFY_MULT == 0 && off / VIRTIO_PCI_NOTIFY_MULT < r->nq,
              "an ioeventfd outside the notify area");
    }
}

static bool valid_vector(const struct rig *r, uint64_t v)
{
    return v < r->nvec || v == VIRTIO_MSI_NO_VECTOR;
}

/* The registers' invariants, read through BAR 0 (if it decodes). The
 * queue selector is restored afterwards: the driver's state is not ours
 * to change. */
static void check_registers(struct rig *r)
{
    check_ioeventfds(r);
    if (!pci_func_bar_gpa(r->func, 0))
        return;
    check(common_rd(r, VIRTIO_PCI_COMMON_NUMQ, 2) == r->nq, "num_queues changed");
    uint64_t status = common_rd(r, VIRTIO_PCI_COMMON_STATUS, 1);
    check(!(status & VIRTIO_STATUS_DRIVER_OK) || (status & VIRTIO_STATUS_FEATURES_OK),
          "DRIVER_OK without FEATURES_OK");
    check(valid_vector(r, common_rd(r, VIRTIO_PCI_COMMON_MSIX, 2)), "config vector out of range");
    uint64_t sel = common_rd(r, VIRTIO_PCI_COMMON_Q_SELECT, 2);
    for (unsigned i = 0; i <= r->nq; i++) {
        common_wr(r, VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
        uint64_t size = common_rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2);
        if (i == r->nq) {
            check(size == 0, "a queue past the last one has a size");
            break;
        }
        check(is_pow2((unsigned)size) && size <= r->ops.queue_max_size,
              "queue size not a power of two up to the maximum");
        check(common_rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2) <= 1, "queue_enable neither 0 nor 1");
        check(common_rd(r, VIRTIO_PCI_COMMON_Q_NOFF, 2) == i,
              "notify offset is not the queue index");
        check(valid_vector(r, common_rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2)),
              "queue vector out of range");
    }
    common_wr(r, VIRTIO_PCI_COMMON_Q_SELECT, sel, 2);
    uint64_t pba = common_rd(r, VIRTIO_PCI_MSIX_PBA_OFF, 8);
    check(!(pba >> r->nvec), "pending bit for a vector that does not exist");
}

/* Right after the driver wrote 0 to device_status. */
static void check_reset(struct rig *r, unsigned resets_before)
{
    check(r->dev->resets > resets_before && !r->dev->active, "status 0 did not reset the device");
    check(common_rd(r, VIRTIO_PCI_COMMON_STATUS, 1) == 0, "status not 0 after a reset");
    check(common_rd(r, VIRTIO_PCI_ISR_OFF, 1) == 0, "ISR set after a reset");
    check(common_rd(r, VIRTIO_PCI_COMMON_MSIX, 2) == VIRTIO_MSI_NO_VECTOR, "config vector kept");
    check(common_rd(r, VIRTIO_PCI_COMMON_DFSELECT, 4) == 0 &&
              common_rd(r, VIRTIO_PCI_COMMON_GFSELECT, 4) == 0 &&
              common_rd(r, VIRTIO_PCI_COMMON_GF, 4) == 0,
          "feature registers kept");
    check(common_rd(r, VIRTIO_PCI_COMMON_Q_SELECT, 2) == 0, "queue_select kept");
    for (unsigned i = 0; i < r->nq; i++) {
        common_wr(r, VIRTIO_PCI_COMMON_Q_SELECT, i, 2);
        check(common_rd(r, VIRTIO_PCI_COMMON_Q_SIZE, 2) == r->ops.queue_max_size,
              "queue size kept");
        check(common_rd(r, VIRTIO_PCI_COMMON_Q_ENABLE, 2) == 0, "queue left enabled");
        check(common_rd(r, VIRTIO_PCI_COMMON_Q_MSIX, 2) == VIRTIO_MSI_NO_VECTOR,
              "queue vector kept");
        check(common_rd(r, VIRTIO_PCI_COMMON_Q_DESCLO, 8) == 0 &&
                  common_rd(r, VIRTIO_PCI_COMMON_Q_AVAILLO, 8) == 0 &&
                  common_rd(r, VIRTIO_PCI_COMMON_Q_USEDLO, 8) == 0,
              "ring addresses kept");
    }
    common_wr(r, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
}

static bool rig_init(struct rig *r, const uint8_t *p, uint8_t *ram)
{
    memset(r, 0, sizeof *r);
    r->mem = (struct guest_memory){
        .host = ram, .size = LOW_SIZE + HIGH_SIZE, .low_size = LOW_SIZE, .high_size = HIGH_SIZE
    };
    r->nq = 1 + p[0] % 8;
    r->nvec = r->nq + 1;
    r->ops = (struct virtio_device_ops){
        .name = "fuzz",
        .device_id = (uint16_t)(1 + ((p[3] >> 2) & 3)),
        .num_queues = r->nq,
        .queue_max_size = (uint16_t)(1u << (p[1] % 11)),
        .features = get_le(p + 4, 4),
        .config_size = p[2] % (MAX_CFG + 1),
        .config_read = dev_config_read,
        .config_write = dev_config_write,
        .activate = dev_activate,
        .reset = dev_reset,
        .stop = dev_stop,
    };
    static const struct virtio_device_hooks no_thread = { 0 };
    vmlet_error err;
    r->dev = virtio_device_new(sizeof *r->dev, &r->ops, &no_thread, &err);
    check(r->dev != NULL, "virtio_device_new failed");
    r->dev->mem = &r->mem;
    r->dev->fail_activate = p[3] & 2;
    r->dev->offered = r->ops.features | (1ULL << VIRTIO_F_VERSION_1) |
                      (1ULL << VIRTIO_F_INDIRECT_DESC) | (1ULL << VIRTIO_F_EVENT_IDX);
    for (unsigned i = 0; i < MAX_CFG; i++)
        r->dev->cfg[i] = (uint8_t)(i * 3);

    r->kvm.any_length = p[3] & 1;
    r->irq = kvm_irq_new_with(fake_ioctl, &r->kvm);
    r->host = pci_host_new(GUEST_PCI_MMIO_START, GUEST_PCI_MMIO_SIZE);
    check(r->irq && r->host &&
              pci_host_attach(r->host, &r->pio, &r->mmio, GUEST_PCI_ECAM_START) == 0,
          "no PCI host");
    r->vp = virtio_pci_new(r->host, r->irq, &r->mem, &r->dev->vdev.ops, r->dev);
    check(r->vp != NULL, "virtio_pci_new refused usable ops");
    r->func = virtio_pci_func(r->vp);
    r->devfn = pci_func_devfn(r->func);
    return true;
}

static void rig_free(struct rig *r)
{
    virtio_pci_free(r->vp);
    /* Nothing is left in KVM. */
    check(r->kvm.nirqfd == 0 && r->kvm.nioev == 0 && r->kvm.msi_routes == 0,
          "irqfds, ioeventfds or MSI routes left in KVM");
    check(!r->dev->active, "device still active after the transport went");
    r->dev->vdev.ops.free(r->dev);
    pci_host_free(r->host);
    kvm_irq_free(r->irq);
    bus_free(&r->pio);
    bus_free(&r->mmio);
}

static const uint64_t region[8] = {
    VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_ISR_OFF,        VIRTIO_PCI_DEVICE_OFF,
    VIRTIO_PCI_NOTIFY_OFF, VIRTIO_PCI_MSIX_TABLE_OFF, VIRTIO_PCI_MSIX_PBA_OFF,
    (uint64_t)-256,        VIRTIO_PCI_BAR_SIZE - 128,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rig rig;
    static uint8_t *ram;
    if (!ram) {
        ram = malloc(LOW_SIZE + HIGH_SIZE);
        chain = malloc(sizeof *chain);
        check(ram && chain, "out of memory");
    }
    if (size < PARAMS)
        return 0;
    memset(ram, 0, LOW_SIZE + HIGH_SIZE);
    struct rig *r = &rig;
    rig_init(r, data, ram);

    struct input in = { data + PARAMS, size - PARAMS };
    uint8_t op;
    for (unsigned k = 0; k < MAX_OPS && take(&in, &op, 1); k++) {
        unsigned kind = op & 7, len = 1u << ((op >> 4) & 3);
        bool is_write = op & 8;
        uint8_t a[3], d[8];
        memset(d, 0, sizeof d);
        if (kind == 3) {
            if (!take(&in, a, 1))
                break;
            switch (a[0] % 4) {
            case 0:
                if (r->dev->active)
                    virtio_notify_queue(r->dev->q.transport, (unsigned)(a[0] >> 2));
                break;
            case 1:
                if (r->dev->active)
                    virtio_notify_config(r->dev->q.transport);
                break;
            case 2: virtio_set_needs_reset(virtio_pci_transport(r->vp)); break;
            default: dev_serve(r->dev); break;
            }
            check_registers(r);
            continue;
        }
        if (kind == 4) {
            uint8_t bytes[64];
            if (!take(&in, a, 3))
                break;
            unsigned off = (unsigned)get_le(a, 2), n = a[2] % 64 + 1;
            if (!take(&in, bytes, n))
                break;
            uint64_t gpa = off & 0x8000 ? GUEST_HIGH_RAM_START + (off & (HIGH_SIZE - 1)) : off;
            uint8_t *p = gpa_to_hva(&r->mem, gpa, n);
            if (p)
                memcpy(p, bytes, n);
            continue;
        }
        if (kind == 5) {
            uint8_t where[3], x[16];
            if (!take(&in, where, 3))
                break;
            unsigned n = where[2] % 16 + 1;
            if (!take(&in, x, n))
                break;
            static struct virtio_pci_state st, before, after;
            virtio_pci_quiesce(r->vp);
            virtio_pci_save(r->vp, &st);
            before = st;
            size_t off = (size_t)get_le(where, 2) % sizeof st;
            for (unsigned i = 0; i < n && off + i < sizeof st; i++)
                ((uint8_t *)&st)[off + i] ^= x[i];
            char why[256] = "";
            if (virtio_pci_restore(r->vp, &st, why, sizeof why) < 0) {
                check(why[0] != '\0' && !strchr(why, '\n'), "a refused state without its reason");
                virtio_pci_save(r->vp, &after);
                check(!memcmp(&after, &before, sizeof after),
                      "a refused state changed the transport");
            }
            (void)virtio_pci_resume(r->vp);
            check_registers(r);
            continue;
        }
        if (kind > 5)
            continue;
        if (!take(&in, a, kind == 2 ? 2 : kind == 0 ? 2 : 1))
            break;
        if (is_write && !take(&in, d, len))
            break;
        if (kind == 0) {
            uint64_t off = region[a[0] % 8] + a[1];
            uint64_t addr = bar_programmed(r) + off;
            unsigned resets = r->dev->resets;
            bar_io(r, addr, d, len, is_write);
            /* A reset the driver asked for, through the register itself. */
            uint64_t at = pci_func_bar_gpa(r->func, 0);
            if (is_write && len == 1 && off == VIRTIO_PCI_COMMON_STATUS && d[0] == 0 && at &&
                addr == at + VIRTIO_PCI_COMMON_STATUS)
                check_reset(r, resets);
        } else if (kind == 1) {
            cfg_io(r, a[0], d, len, is_write);
        } else {
            ecam_io(r, (unsigned)get_le(a, 2) & 0xfff, d, len, is_write);
        }
        if (is_write)
            check_registers(r);
    }
    check_registers(r);
    rig_free(r);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
