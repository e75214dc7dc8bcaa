/* Port-I/O and MMIO address maps: a vCPU exit is looked up here and handed
 * to the device that claimed the range. */
#ifndef VMLET_BUS_H
#define VMLET_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Called with offset relative to the start of the claimed range, len 1, 2,
 * 4 or 8. On a read the handler fills data[0..len); unclaimed bytes read as
 * 0xff. Handlers run on vCPU threads and must do their own locking. */
typedef void (*bus_handler)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                            bool is_write);

struct bus_range {
    uint64_t base, len;
    bus_handler handler;
    void *opaque;
};

struct bus {
    struct bus_range *ranges; /* sorted by base, never overlapping */
    unsigned count, cap;
};

/* Returns 0, or -1 if the range overlaps one already claimed. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_handler handler, void *opaque);
/* Dispatches an access; returns false if nobody claims addr (reads are then
 * filled with 0xff, writes dropped). */
bool bus_dispatch(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);
void bus_free(struct bus *bus);

/* An interrupt line a device drives: set(opaque, gsi, level). */
struct irq_line {
    void (*set)(void *opaque, unsigned gsi, int level);
    void *opaque;
    unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *l, int level)
{
    if (l->set)
        l->set(l->opaque, l->gsi, level);
}

#endif
