/* An x86 vCPU set up the way a Linux kernel entered at its 64-bit boot
 * protocol entry expects: CPUID (what KVM supports, with this vCPU's
 * topology), boot MSRs, the LAPIC's LINT0/LINT1 wiring, and for the boot
 * vCPU the registers of the entry point. */
#ifndef VMLET_X86_VCPU_H
#define VMLET_X86_VCPU_H

#include <stdbool.h>
#include <linux/kvm.h>
#include "vmlet.h"

/* What KVM_GET_SUPPORTED_CPUID says on kvm_fd (the /dev/kvm fd), grown
 * until it fits. NULL on failure (errno set); free() the result. */
struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd);

/* Sets up vCPU index of ncpus on its fd: supported CPUID with the
 * topology and fixups applied (tsc_deadline: KVM emulates the TSC
 * deadline timer), the boot MSRs and the LAPIC LINTs. Returns 0, or -1
 * with err filled. */
int x86_vcpu_init(int vcpu_fd, const struct kvm_cpuid2 *supported, unsigned index, unsigned ncpus,
                  bool tsc_deadline, vmlet_error *err);

/* The boot vCPU's registers, segments and FPU at the kernel's 64-bit
 * entry rip (boot.h's boot_cpu_registers). Returns 0, or -1 with err
 * filled. */
int x86_vcpu_set_boot_registers(int vcpu_fd, uint64_t rip, vmlet_error *err);

#endif
