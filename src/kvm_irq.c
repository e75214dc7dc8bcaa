/* KVM interrupt plumbing: GSI routing, irqfd, ioeventfd.
 *
 * Implements, from the Linux KVM API (Documentation/virt/kvm/api.rst):
 *   KVM_SET_GSI_ROUTING (the table replaces KVM's wholesale, so it always
 *       carries KVM's default irqchip routes for GSIs 0..23)
 *   KVM_IRQFD (assign, and KVM_IRQFD_FLAG_DEASSIGN)
 *   KVM_IOEVENTFD (MMIO bus, no datamatch; KVM_IOEVENTFD_FLAG_DEASSIGN),
 *       with KVM_CAP_IOEVENTFD_ANY_LENGTH for length 0
 * MSI routes carry an x86 MSI message (Intel SDM vol. 3, 11.11).
 */
#include "kvm_irq.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#define NUM_MSI            (KVM_IRQ_MAX_GSI - KVM_IRQ_FIRST_MSI_GSI)
/* 24 IOAPIC pins plus 16 PIC pins, as KVM's own default table. */
#define NUM_IRQCHIP_ROUTES 40

struct msi_route {
    bool used;   /* GSI reserved */
    bool routed; /* in the table KVM has */
    uint64_t addr;
    uint32_t data;
};

struct kvm_irq {
    kvm_irq_ioctl_fn ioctl;
    void *ctx;
    unsigned ioeventfd_len;
    pthread_mutex_t lock; /* the table, and the order tables reach KVM */
    struct msi_route msi[NUM_MSI];
    struct kvm_irq_routing *table; /* scratch buffer for KVM_SET_GSI_ROUTING */
};

static int fd_ioctl(void *ctx, unsigned long request, void *arg)
{
    return ioctl((int)(intptr_t)ctx, request, arg);
}

struct kvm_irq *kvm_irq_new(int vm_fd)
{
    return kvm_irq_new_with(fd_ioctl, (void *)(intptr_t)vm_fd);
}

struct kvm_irq *kvm_irq_new_with(kvm_irq_ioctl_fn fn, void *ctx)
{
    struct kvm_irq *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->table = calloc(1, sizeof *k->table +
                             (NUM_IRQCHIP_ROUTES + NUM_MSI) * sizeof k->table->entries[0]);
    if (!k->table) {
        free(k);
        return NULL;
    }
    k->ioctl = fn;
    k->ctx = ctx;
    pthread_mutex_init(&k->lock, NULL);
    /* Length 0 ("any") lets Intel hosts complete the write on the EPT
     * misconfiguration fast path, without decoding the instruction. */
    int any = k->ioctl(k->ctx, KVM_CHECK_EXTENSION,
                       (void *)(uintptr_t)KVM_CAP_IOEVENTFD_ANY_LENGTH);
    k->ioeventfd_len = any > 0 ? 0 : 2;
    return k;
}

void kvm_irq_free(struct kvm_irq *k)
{
    if (!k)
        return;
    pthread_mutex_destroy(&k->lock);
    free(k->table);
    free(k);
}

unsigned kvm_irq_ioeventfd_len(const struct kvm_irq *k)
{
    return k->ioeventfd_len;
}

/* ---- routing table ---------------------------------------------------- */

static void irqchip_route(struct kvm_irq_routing_entry *e, unsigned gsi, unsigned chip,
                          unsigned pin)
{
    memset(e, 0, sizeof *e);
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_IRQCHIP;
    e->u.irqchip.irqchip = chip;
    e->u.irqchip.pin = pin;
}

/* Builds the table and hands it to KVM. Lock held. KVM's default (which
 * KVM_CREATE_IRQCHIP installs and which this call replaces) routes GSI n
 * to IOAPIC pin n for 0..23 and to PIC pin n % 8 (master for 0..7, slave
 * for 8..15) for 0..15; the PIT raises GSI 0 and the MADT promises that
 * identity, so it is kept exactly. */
static int commit(struct kvm_irq *k)
{
    struct kvm_irq_routing_entry *e = k->table->entries;
    unsigned n = 0;
    for (unsigned gsi = 0; gsi < KVM_IRQ_FIRST_MSI_GSI; gsi++) {
        irqchip_route(&e[n++], gsi, KVM_IRQCHIP_IOAPIC, gsi);
        if (gsi < 16)
            irqchip_route(&e[n++], gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                          gsi % 8);
    }
    for (unsigned i = 0; i < NUM_MSI; i++) {
        if (!k->msi[i].routed)
            continue;
        memset(&e[n], 0, sizeof e[n]);
        e[n].gsi = KVM_IRQ_FIRST_MSI_GSI + i;
        e[n].type = KVM_IRQ_ROUTING_MSI;
        e[n].u.msi.address_lo = (uint32_t)k->msi[i].addr;
        e[n].u.msi.address_hi = (uint32_t)(k->msi[i].addr >> 32);
        e[n].u.msi.data = k->msi[i].data;
        n++;
    }
    k->table->nr = n;
    k->table->flags = 0;
    return k->ioctl(k->ctx, KVM_SET_GSI_ROUTING, k->table) < 0 ? -1 : 0;
}

static struct msi_route *msi_of(struct kvm_irq *k, unsigned gsi)
{
    if (gsi < KVM_IRQ_FIRST_MSI_GSI || gsi >= KVM_IRQ_MAX_GSI)
        return NULL;
    struct msi_route *r = &k->msi[gsi - KVM_IRQ_FIRST_MSI_GSI];
    return r->used ? r : NULL;
}

int kvm_irq_msi_alloc(struct kvm_irq *k)
{
    int gsi = -1;
    pthread_mutex_lock(&k->lock);
    for (unsigned i = 0; i < NUM_MSI; i++) {
        if (!k->msi[i].used) {
            k->msi[i] = (struct msi_route){ .used = true };
            gsi = (int)(KVM_IRQ_FIRST_MSI_GSI + i);
            break;
        }
    }
    pthread_mutex_unlock(&k->lock);
    return gsi;
}

int kvm_irq_msi_route(struct kvm_irq *k, unsigned gsi, uint64_t addr, uint32_t data)
{
    int rc = -1;
    pthread_mutex_lock(&k->lock);
    struct msi_route *r = msi_of(k, gsi);
    if (r) {
        if (r->routed && r->addr == addr && r->data == data) {
            rc = 0; /* each table costs KVM an SRCU grace period: skip */
        } else {
            struct msi_route old = *r;
            r->routed = true;
            r->addr = addr;
            r->data = data;
            rc = commit(k);
            if (rc < 0)
                *r = old; /* keep our copy what KVM has */
        }
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

void kvm_irq_msi_free(struct kvm_irq *k, unsigned gsi)
{
    pthread_mutex_lock(&k->lock);
    struct msi_route *r = msi_of(k, gsi);
    if (r) {
        bool was_routed = r->routed;
        *r = (struct msi_route){ 0 };
        if (was_routed)
            commit(k);
    }
    pthread_mutex_unlock(&k->lock);
}

/* ---- irqfd and ioeventfd ---------------------------------------------- */

int kvm_irq_irqfd(struct kvm_irq *k, int fd, unsigned gsi, bool assign)
{
    if (fd < 0 || gsi >= KVM_IRQ_MAX_GSI) {
        errno = EINVAL;
        return -1;
    }
    struct kvm_irqfd req = {
        .fd = (uint32_t)fd,
        .gsi = gsi,
        .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
    };
    pthread_mutex_lock(&k->lock);
    int rc = k->ioctl(k->ctx, KVM_IRQFD, &req);
    pthread_mutex_unlock(&k->lock);
    return rc < 0 ? -1 : 0;
}

int kvm_irq_ioeventfd(struct kvm_irq *k, int fd, uint64_t addr, bool assign)
{
    if (fd < 0) {
        errno = EINVAL;
        return -1;
    }
    struct kvm_ioeventfd req = {
        .addr = addr,
        .len = k->ioeventfd_len,
        .fd = fd,
        .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
    };
    pthread_mutex_lock(&k->lock);
    int rc = k->ioctl(k->ctx, KVM_IOEVENTFD, &req);
    pthread_mutex_unlock(&k->lock);
    return rc < 0 ? -1 : 0;
}
