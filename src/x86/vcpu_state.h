/* An x86 vCPU's whole state in and out of KVM, for snapshots: the ioctls
 * and the order a restore needs them in. */
#ifndef VMLET_X86_VCPU_STATE_H
#define VMLET_X86_VCPU_STATE_H

#include <stdint.h>
#include "snapshot_format.h"
#include "vmlet.h"

/* Appends vCPU index's records to w. The vCPU must be out of KVM_RUN with
 * its last exit completed (vm.c's vcpu_park). 0, or -1 with err. */
int x86_vcpu_save(int kvm_fd, int vm_fd, int vcpu_fd, unsigned index, struct snap_writer *w,
                  vmlet_error *err);

/* The TSC frequency KVM gives the vCPU (kHz), or 0 if it cannot say. */
uint64_t x86_vcpu_tsc_khz(int vcpu_fd);

/* Puts a saved state into a vCPU made by x86_vcpu_init (CPUID and boot
 * MSRs set, never run). The saved CPUID must be the one this host gives
 * (the same CPU and KVM), else -1 with err naming the first leaf that
 * differs. tsc_advance: TSC ticks to add to the saved TSC (the time the
 * snapshot spent on disk). Every value comes from a file: KVM checks the
 * registers, this checks sizes and IDs. 0, or -1 with err. */
int x86_vcpu_restore(int vm_fd, int vcpu_fd, unsigned index, const struct snap_blob *parts,
                     uint64_t tsc_advance, vmlet_error *err);

#endif
