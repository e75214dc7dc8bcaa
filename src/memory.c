/* Guest RAM allocation and the one bounds-checked way to reach it. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include "error.h"
#include "layout.h"
#include "memory.h"

#define HUGE_PAGE_SIZE (2u << 20)

void guest_memory_layout(uint64_t size, uint64_t *low, uint64_t *high)
{
    *low = size < GUEST_MMIO_HOLE_START ? size : GUEST_MMIO_HOLE_START;
    *high = size - *low;
}

int guest_memory_alloc(struct guest_memory *m, uint64_t size, vmlet_error *err)
{
    memset(m, 0, sizeof *m);
    /* Reserve lazily: pages are only taken when the guest touches them.
     * The mapping starts on a 2 MiB boundary so that guest-physical 2 MiB
     * pages line up with transparent huge pages on the host: KVM can then
     * map the guest with large nested-page entries, and a booting guest
     * takes one nested page fault per 2 MiB instead of one per 4 KiB. */
    size_t slack = HUGE_PAGE_SIZE;
    uint8_t *p = mmap(NULL, size + slack, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return set_error(err, VMLET_ERR_NOMEM, "memory: cannot reserve %llu MiB of host memory: %s",
                         (unsigned long long)(size >> 20), strerror(errno));
    uint8_t *aligned = (uint8_t *)(((uintptr_t)p + slack - 1) & ~(uintptr_t)(slack - 1));
    if (aligned > p)
        munmap(p, aligned - p);
    size_t tail = (p + size + slack) - (aligned + size);
    if (tail)
        munmap(aligned + size, tail);
    madvise(aligned, size, MADV_HUGEPAGE); /* best effort */
    m->host = aligned;
    m->size = size;
    guest_memory_layout(size, &m->low_size, &m->high_size);
    return 0;
}

int guest_memory_map_file(struct guest_memory *m, uint64_t size, int fd, vmlet_error *err)
{
    /* The same 2 MiB-aligned reservation, then the file over it. */
    if (guest_memory_alloc(m, size, err) < 0)
        return -1;
    void *p = mmap(m->host, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE,
                   fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        guest_memory_free(m);
        return set_error(err, VMLET_ERR_HOST, "memory: cannot map the snapshot's memory file: %s",
                         strerror(e));
    }
    return 0;
}

void guest_memory_free(struct guest_memory *m)
{
    if (m->host)
        munmap(m->host, m->size);
    m->host = NULL;
}

void *gpa_to_hva(const struct guest_memory *m, uint64_t gpa, uint64_t len)
{
    /* Written so that no sum can overflow: gpa and len come from the guest. */
    if (gpa < m->low_size) {
        if (len > m->low_size - gpa)
            return NULL;
        return m->host + gpa;
    }
    if (gpa >= GUEST_HIGH_RAM_START) {
        uint64_t off = gpa - GUEST_HIGH_RAM_START;
        if (off >= m->high_size || len > m->high_size - off)
            return NULL;
        return m->host + m->low_size + off;
    }
    return NULL;
}
