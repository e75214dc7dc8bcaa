/* Address maps for port I/O and MMIO. Ranges are registered while the VM is
 * built and never change afterwards, so lookups need no lock. */
#include <stdlib.h>
#include <string.h>
#include "bus.h"

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_handler handler, void *opaque)
{
    if (len == 0 || base + len < base)
        return -1;
    unsigned i = 0;
    while (i < bus->count && bus->ranges[i].base < base)
        i++;
    /* Neighbours on both sides must not overlap the new range. */
    if (i > 0) {
        const struct bus_range *prev = &bus->ranges[i - 1];
        if (prev->base + prev->len > base)
            return -1;
    }
    if (i < bus->count && bus->ranges[i].base < base + len)
        return -1;
    if (bus->count == bus->cap) {
        unsigned cap = bus->cap ? bus->cap * 2 : 16;
        struct bus_range *r = realloc(bus->ranges, cap * sizeof *r);
        if (!r)
            return -1;
        bus->ranges = r;
        bus->cap = cap;
    }
    memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->count - i) * sizeof *bus->ranges);
    bus->ranges[i] = (struct bus_range){ base, len, handler, opaque };
    bus->count++;
    return 0;
}

static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
    unsigned lo = 0, hi = bus->count;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        const struct bus_range *r = &bus->ranges[mid];
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->len)
            lo = mid + 1;
        else
            return r;
    }
    return NULL;
}

bool bus_dispatch(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
    const struct bus_range *r = bus_find(bus, addr);
    if (!r) {
        if (!is_write)
            memset(data, 0xff, len);
        return false;
    }
    if (!is_write)
        memset(data, 0xff, len); /* bytes the device leaves alone */
    r->handler(r->opaque, addr - r->base, data, len, is_write);
    return true;
}

void bus_free(struct bus *bus)
{
    free(bus->ranges);
    memset(bus, 0, sizeof *bus);
}
