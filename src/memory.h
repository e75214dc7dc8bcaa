/* Guest RAM: one host mapping, seen by the guest as low RAM below the
 * 32-bit MMIO hole and, for larger VMs, high RAM from 4 GiB. */
#ifndef VMLET_MEMORY_H
#define VMLET_MEMORY_H

#include <stddef.h>
#include <stdint.h>
#include "vmlet.h"

struct guest_memory {
    uint8_t *host;      /* host mapping of all RAM, low then high */
    uint64_t size;      /* total bytes */
    uint64_t low_size;  /* guest [0, low_size) -> host[0, low_size) */
    uint64_t high_size; /* guest [4 GiB, 4 GiB + high_size) -> host[low_size, ...) */
};

/* Splits size around the MMIO hole without mapping anything. */
void guest_memory_layout(uint64_t size, uint64_t *low, uint64_t *high);
int guest_memory_alloc(struct guest_memory *m, uint64_t size, vmlet_error *err);
/* Guest RAM from a snapshot's memory file (fd, exactly size bytes),
 * mapped copy-on-write: pages are read from the file when the guest first
 * touches them, and its writes never reach the file. */
int guest_memory_map_file(struct guest_memory *m, uint64_t size, int fd, vmlet_error *err);
void guest_memory_free(struct guest_memory *m);

/* Host pointer for guest range [gpa, gpa + len), or NULL unless the whole
 * range lies inside one RAM region. Every guest-supplied address goes
 * through here. */
void *gpa_to_hva(const struct guest_memory *m, uint64_t gpa, uint64_t len);

#endif
