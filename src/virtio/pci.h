/* virtio over PCI, modern (non-transitional) interface only: one PCI
 * function per virtio device, one 64-bit memory BAR holding the common
 * configuration, ISR, notification area, device configuration and MSI-X
 * table and PBA. Interrupts are MSI-X only (Interrupt Pin 0): each vector
 * is an irqfd on its own MSI route; each queue's notification address is
 * an ioeventfd, so a driver's kick never leaves the kernel.
 *
 * BAR 0 layout (each part in its own 4 KiB page):
 *   0x0000 common configuration   0x1000 ISR status
 *   0x2000 device configuration   0x3000 notifications (4 bytes a queue)
 *   0x4000 MSI-X table            0x4800 MSI-X PBA
 */
#ifndef VMLET_VIRTIO_PCI_H
#define VMLET_VIRTIO_PCI_H

#include "../dev/pci.h"
#include "../kvm_irq.h"
#include "../memory.h"
#include "virtio.h"

#define VIRTIO_PCI_VENDOR      0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + virtio device ID */
#define VIRTIO_PCI_SUBSYS_ID   0x1100
#define VIRTIO_MSI_NO_VECTOR   0xffff

#define VIRTIO_PCI_BAR            0
#define VIRTIO_PCI_BAR_SIZE       0x8000
#define VIRTIO_PCI_COMMON_OFF     0x0000
#define VIRTIO_PCI_COMMON_LEN     0x38 /* through queue_device */
#define VIRTIO_PCI_ISR_OFF        0x1000
#define VIRTIO_PCI_DEVICE_OFF     0x2000
#define VIRTIO_PCI_NOTIFY_OFF     0x3000
#define VIRTIO_PCI_NOTIFY_MULT    4 /* queue n kicks at NOTIFY_OFF + 4n */
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF   0x4800

struct virtio_pci;

/* Creates the PCI function (next free slot on host's bus 0) for a device
 * described by ops (dev is passed back to them), with num_queues + 1 MSI-X
 * vectors (vector 0 is usually the config vector; the driver chooses).
 * mem is what the queues read. Build time only. Returns NULL if ops is
 * unusable (no queues or more than VIRTIO_MAX_QUEUES, a queue size that is
 * not a power of two up to VIRTQ_MAX_SIZE, config larger than 4 KiB) or
 * if PCI, KVM or the host are out of room. */
struct virtio_pci *virtio_pci_new(struct pci_host *host, struct kvm_irq *irq,
                                  const struct guest_memory *mem,
                                  const struct virtio_device_ops *ops, void *dev);
/* After every vCPU has stopped, before the device itself and before the
 * PCI host and kvm_irq are freed: resets the device (ops->reset), takes
 * the function off the bus, and drops the ioeventfds, irqfds, MSI routes
 * and eventfds. */
void virtio_pci_free(struct virtio_pci *vp);

struct virtio_transport *virtio_pci_transport(struct virtio_pci *vp);

/* ---- snapshots (docs/snapshot.md) ------------------------------------ */

/* The transport's state: fixed layout, in the snapshot file. */
struct virtio_pci_queue_state {
    uint16_t size, vector;
    uint8_t enabled, signalled_valid, pad[2];
    uint16_t last_avail, used_idx, signalled_used, pad2;
    uint64_t desc_gpa, avail_gpa, used_gpa;
};

struct virtio_pci_msix_state {
    uint32_t addr_lo, addr_hi, data, ctrl;
};

struct virtio_pci_state {
    uint16_t device_id;
    uint8_t nq, nvec;
    uint8_t status, isr, generation, active; /* active: the device was activated */
    uint32_t dfselect, gfselect;
    uint64_t driver_features;
    uint16_t queue_select, config_vector;
    uint32_t pad;
    uint64_t pba;
    struct virtio_pci_msix_state table[VIRTIO_MAX_QUEUES + 1];
    struct virtio_pci_queue_state queue[VIRTIO_MAX_QUEUES];
};

/* Before a save, with no vCPU running: ops->stop, so the device's thread
 * ends with nothing in flight and the state below is still. */
void virtio_pci_quiesce(struct virtio_pci *vp);
void virtio_pci_save(struct virtio_pci *vp, struct virtio_pci_state *st);
/* After a save, or once a restored VM's vCPUs and interrupt controllers
 * are in place (so that no interrupt the device sends is lost): the
 * device goes on (ops->activate, resume set) if it was running. Returns
 * 0, or -1 if it would not start (NEEDS_RESET is then set). */
int virtio_pci_resume(struct virtio_pci *vp);
/* Into a new function whose config space (BARs, MSI-X enable) is already
 * restored, and whose device took its own state (ops->load): checks every
 * field as the driver's write of it would be checked, then takes it and
 * routes the MSI-X vectors the driver can be sent. virtio_pci_resume
 * starts the device. Returns 0, or -1 with why (one line) and nothing
 * taken. */
int virtio_pci_restore(struct virtio_pci *vp, const struct virtio_pci_state *st, char *why,
                       size_t whylen);
struct pci_func *virtio_pci_func(struct virtio_pci *vp);

#endif
