/* CPUID for each vCPU: what KVM supports, with the topology rewritten so
 * that vCPU i is core i of one socket (one thread per core) and its APIC
 * ID is i. */
#ifndef VMLET_X86_CPUID_H
#define VMLET_X86_CPUID_H

#include <linux/kvm.h>

/* Rewrites entries[0..*nent) (a copy of KVM_GET_SUPPORTED_CPUID) in place
 * for vCPU cpu_index of ncpus: leaves 0x1, 0x4, 0xB, 0x1F, 0x80000001,
 * 0x80000008, 0x8000001E. May add entries (e.g. sub-leaves of 0xB) up to
 * max. Keeps the KVM hypervisor leaves (0x40000000...). Returns 0, or -1
 * if max is too small. */
int cpuid_apply_topology(struct kvm_cpuid_entry2 *entries, unsigned *nent,
                         unsigned max, unsigned cpu_index, unsigned ncpus);

#endif
