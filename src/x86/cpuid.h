/* CPUID for each vCPU: what KVM supports, with the topology rewritten so
 * that vCPU i is core i of one socket (one thread per core) and its APIC
 * ID is i. */
#ifndef VMLET_X86_CPUID_H
#define VMLET_X86_CPUID_H

#include <linux/kvm.h>
#include <stdbool.h>

/* Rewrites entries[0..*nent) (a copy of KVM_GET_SUPPORTED_CPUID) in place
 * for vCPU cpu_index of ncpus: leaves 0x1, 0x4 (Intel), 0xB, 0x1F,
 * 0x80000001, 0x80000008, 0x8000001D, 0x8000001E (AMD/Hygon). May add
 * sub-leaves 0-2 of 0xB and 0x1F (when leaf 0's max basic leaf covers
 * them) up to max entries in all. Keeps the KVM hypervisor leaves
 * (0x40000000...) and every other leaf as given. Returns 0, or -1 (with
 * entries and *nent unchanged) if max is too small, *nent > max, ncpus is
 * 0 or > 255, or cpu_index >= ncpus. Call it on a fresh copy per vCPU. */
int cpuid_apply_topology(struct kvm_cpuid_entry2 *entries, unsigned *nent, unsigned max,
                         unsigned cpu_index, unsigned ncpus);

/* What every vCPU needs whatever its topology, and KVM_GET_SUPPORTED_CPUID
 * leaves clear: the "hypervisor" bit (leaf 0x1 ECX[31]) and, when the host
 * has KVM_CAP_TSC_DEADLINE_TIMER, the TSC-deadline timer (ECX[24]). */
void cpuid_apply_fixups(struct kvm_cpuid_entry2 *entries, unsigned nent, bool tsc_deadline);

#endif
