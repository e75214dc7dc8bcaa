/* KVM's own per-vCPU counters (the binary statistics of KVM_GET_STATS_FD,
 * Linux 5.14+, Documentation/virt/kvm/api.rst 4.133): how often KVM left
 * the guest and why, including the exits it handled without vmlet.
 *
 * The descriptors are read once, when the stats are opened; values are
 * read with pread() on demand, from any thread. */
#ifndef VMLET_KVM_STATS_H
#define VMLET_KVM_STATS_H

#include <stdint.h>

struct kvm_stats;

/* NULL when the kernel has no binary stats for fd (too old, or not a
 * vCPU/VM fd); metrics then simply lack KVM's counters. */
struct kvm_stats *kvm_stats_open(int kvm_object_fd);
void kvm_stats_free(struct kvm_stats *s);

/* Calls fn for each cumulative, single-value counter (e.g. "exits",
 * "io_exits", "halt_exits", "irq_injections"). Returns 0, or -1 when the
 * values could not be read. */
int kvm_stats_read(const struct kvm_stats *s,
                   void (*fn)(void *opaque, const char *name, uint64_t value), void *opaque);

#endif
