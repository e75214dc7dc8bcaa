/* KVM interrupt plumbing for devices that bypass the vCPU loop: the VM's
 * GSI routing table (the in-kernel PIC/IOAPIC routes plus MSI routes),
 * irqfds (an eventfd write injects a GSI) and ioeventfds (a guest MMIO
 * write signals an eventfd without leaving the kernel).
 *
 * One object per VM, owned by it; every call is thread-safe (vCPU threads
 * reprogram MSI-X while device threads signal). KVM is reached through one
 * function pointer, so unit tests run it against a fake. */
#ifndef VMLET_KVM_IRQ_H
#define VMLET_KVM_IRQ_H

#include <stdbool.h>
#include <stdint.h>

/* GSIs 0..23 are the PIC/IOAPIC pins; MSI routes are numbered from here. */
#define KVM_IRQ_FIRST_MSI_GSI 24
#define KVM_IRQ_MAX_GSI       1024 /* KVM allows 4096 routes; we need far fewer */

struct kvm_irq;

/* ioctl(2) on the VM descriptor, or a stand-in: returns what ioctl would
 * (-1 with errno set on failure). */
typedef int (*kvm_irq_ioctl_fn)(void *ctx, unsigned long request, void *arg);

/* Uses ioctl on vm_fd (which the caller keeps). */
struct kvm_irq *kvm_irq_new(int vm_fd);
struct kvm_irq *kvm_irq_new_with(kvm_irq_ioctl_fn fn, void *ctx);
/* After every user is gone; leaves the routes and fds in KVM as they are
 * (closing the VM descriptor drops them). */
void kvm_irq_free(struct kvm_irq *k);

/* Reserves a GSI for an MSI route (>= KVM_IRQ_FIRST_MSI_GSI), or -1. It
 * has no route, and injects nothing, until kvm_irq_msi_route(). */
int kvm_irq_msi_alloc(struct kvm_irq *k);
/* Points an MSI GSI at a message (x86: address 0xfeexxxxx, data = vector
 * and delivery mode). Installs the whole table with KVM_SET_GSI_ROUTING,
 * unless the route is already exactly that. Returns 0 or -1. */
int kvm_irq_msi_route(struct kvm_irq *k, unsigned gsi, uint64_t addr, uint32_t data);
/* Drops the route (if any) and releases the GSI. */
void kvm_irq_msi_free(struct kvm_irq *k, unsigned gsi);

/* KVM_IRQFD: writes to eventfd fd inject gsi (assign), or no longer do. */
int kvm_irq_irqfd(struct kvm_irq *k, int fd, unsigned gsi, bool assign);

/* KVM_IOEVENTFD on the MMIO bus, no datamatch: a guest write at exactly
 * addr signals fd. The length is kvm_irq_ioeventfd_len(): 0 (any width,
 * and KVM's fast MMIO path on Intel) where KVM offers it, else 2 (the
 * 16-bit queue index a virtio driver writes). Deassign with the same
 * fd and addr. Returns 0 or -1 (errno EEXIST: that address is taken). */
int kvm_irq_ioeventfd(struct kvm_irq *k, int fd, uint64_t addr, bool assign);
unsigned kvm_irq_ioeventfd_len(const struct kvm_irq *k);

#endif
