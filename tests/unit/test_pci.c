/* Unit tests for the PCI host bridge (src/dev/pci.c), driven through the
 * real port and MMIO buses (src/bus.c) the way a vCPU exit reaches them.
 *
 * Covers PCI Local Bus 3.0 configuration mechanism #1 (3.2.2.3.2) and
 * PCIe ECAM (7.2.2) at every width and byte lane, the type 0 header's
 * read-only fields (6.1), command and status registers (6.2.2, 6.2.3),
 * BAR sizing for 32- and 64-bit memory BARs (6.2.5.1), BAR decoding gated
 * by Memory Space and following the guest's moves, the capability list
 * (6.7), absent functions reading all-ones, and hostile accesses (odd
 * widths, misaligned offsets, random writes) that must change nothing they
 * should not and never crash.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "layout.h"
#include "dev/pci.h"

#define WIN      GUEST_PCI_MMIO_START
#define WIN_SIZE GUEST_PCI_MMIO_SIZE
#define ECAM     GUEST_PCI_ECAM_START

/* ---- a fake device that records what reaches it ---------------------- */

struct fake {
    pthread_mutex_t lock; /* vCPU threads in test_concurrent_moves */
    uint8_t bar_mem[PCI_NUM_BARS][0x10000];
    unsigned accesses;
    unsigned last_bar;
    uint64_t last_off;
    uint32_t last_len;
    bool last_write;
    unsigned remaps;
    unsigned remap_bar;
    uint64_t remap_old, remap_new;
    unsigned cfg_reads, cfg_writes;
    unsigned cfg_off, cfg_len;
};

static void fake_bar(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len,
                     bool is_write)
{
    struct fake *f = opaque;
    pthread_mutex_lock(&f->lock);
    f->accesses++;
    f->last_bar = bar;
    f->last_off = off;
    f->last_len = len;
    f->last_write = is_write;
    if (off + len <= sizeof f->bar_mem[bar]) {
        if (is_write)
            memcpy(&f->bar_mem[bar][off], data, len);
        else
            memcpy(data, &f->bar_mem[bar][off], len);
    }
    pthread_mutex_unlock(&f->lock);
}

static void fake_remap(void *opaque, unsigned bar, uint64_t old_gpa, uint64_t new_gpa)
{
    struct fake *f = opaque;
    f->remaps++;
    f->remap_bar = bar;
    f->remap_old = old_gpa;
    f->remap_new = new_gpa;
}

static void fake_cfg_read(void *opaque, struct pci_func *fn, unsigned off, unsigned len)
{
    struct fake *f = opaque;
    f->cfg_reads++;
    f->cfg_off = off;
    f->cfg_len = len;
}

static void fake_cfg_write(void *opaque, struct pci_func *fn, unsigned off, unsigned len)
{
    struct fake *f = opaque;
    f->cfg_writes++;
    f->cfg_off = off;
    f->cfg_len = len;
}

static const struct pci_func_ops fake_ops = {
    .bar_access = fake_bar,
    .bar_remap = fake_remap,
    .config_read = fake_cfg_read,
    .config_write = fake_cfg_write,
};

static const struct pci_id fake_id = {
    .vendor = 0x1af4,
    .device = 0x1042,
    .revision = 1,
    .class_code = 0x018000,
    .subsys_vendor = 0x1af4,
    .subsys_id = 0x1100,
};

/* ---- the machine: buses, host, one fake function with three BARs ------ */

struct rig {
    struct bus pio, mmio;
    struct pci_host *host;
    struct pci_func *fn;
    struct fake *dev;
};

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof *r);
    r->dev = calloc(1, sizeof *r->dev);
    pthread_mutex_init(&r->dev->lock, NULL);
    r->host = pci_host_new(WIN, WIN_SIZE);
    if (!r->host || pci_host_attach(r->host, &r->pio, &r->mmio, ECAM) < 0)
        return -1;
    r->fn = pci_func_new(r->host, -1, &fake_id, &fake_ops, r->dev);
    if (!r->fn || pci_func_add_bar(r->fn, 0, 0x1000, 0) < 0 ||
        pci_func_add_bar(r->fn, 2, 0x8000, PCI_BAR_MEM_TYPE_64) < 0 ||
        pci_func_add_bar(r->fn, 4, 0x10000, PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH) < 0)
        return -1;
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    pci_host_free(r->host);
    bus_free(&r->pio);
    bus_free(&r->mmio);
    pthread_mutex_destroy(&r->dev->lock);
    free(r->dev);
    free(r);
    return 0;
}

static uint64_t get_le(const uint8_t *p, unsigned len)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t pio_in(struct rig *r, uint16_t port, unsigned len)
{
    uint8_t d[8];
    memset(d, 0x5a, sizeof d);
    bus_dispatch(&r->pio, port, d, len, false);
    return get_le(d, len);
}

static void pio_out(struct rig *r, uint16_t port, uint64_t v, unsigned len)
{
    uint8_t d[8];
    put_le(d, v, len);
    bus_dispatch(&r->pio, port, d, len, true);
}

static uint64_t mmio_read(struct rig *r, uint64_t addr, unsigned len)
{
    uint8_t d[8];
    memset(d, 0x5a, sizeof d);
    bus_dispatch(&r->mmio, addr, d, len, false);
    return get_le(d, len);
}

static void mmio_write(struct rig *r, uint64_t addr, uint64_t v, unsigned len)
{
    uint8_t d[8];
    put_le(d, v, len);
    bus_dispatch(&r->mmio, addr, d, len, true);
}

static uint32_t cf8(unsigned bus, unsigned devfn, unsigned reg)
{
    return 0x80000000u | bus << 16 | devfn << 8 | (reg & 0xfc) | (reg & 0xf00) << 16;
}

/* Config mechanism #1, as Linux's pci_conf1_read/write do it. */
static uint32_t conf1_read(struct rig *r, unsigned devfn, unsigned reg, unsigned len)
{
    pio_out(r, 0xcf8, cf8(0, devfn, reg), 4);
    return (uint32_t)pio_in(r, (uint16_t)(0xcfc + (reg & 3)), len);
}

static void conf1_write(struct rig *r, unsigned devfn, unsigned reg, uint32_t v, unsigned len)
{
    pio_out(r, 0xcf8, cf8(0, devfn, reg), 4);
    pio_out(r, (uint16_t)(0xcfc + (reg & 3)), v, len);
}

static uint64_t ecam_addr(unsigned devfn, unsigned reg)
{
    return ECAM + ((uint64_t)devfn << 12) + reg;
}

static uint32_t ecam_read(struct rig *r, unsigned devfn, unsigned reg, unsigned len)
{
    return (uint32_t)mmio_read(r, ecam_addr(devfn, reg), len);
}

static void ecam_write(struct rig *r, unsigned devfn, unsigned reg, uint32_t v, unsigned len)
{
    mmio_write(r, ecam_addr(devfn, reg), v, len);
}

/* ---- tests ------------------------------------------------------------- */

static void test_host_bridge_ids(void **state)
{
    struct rig *r = *state;
    /* What Linux's pci_sanity_check wants: a host bridge on bus 0. */
    assert_int_equal(conf1_read(r, 0, 0, 4), PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR);
    assert_int_equal(conf1_read(r, 0, PCI_CLASS_DEVICE, 2), 0x0600);
    assert_int_equal(conf1_read(r, 0, PCI_HEADER_TYPE, 1), 0);
    assert_int_equal(conf1_read(r, 0, PCI_INTERRUPT_PIN, 1), 0);
    assert_int_equal(ecam_read(r, 0, 8, 4), 0x06000000);
    /* The fake went to the next free slot. */
    assert_int_equal(pci_func_devfn(r->fn), PCI_DEVFN(1, 0));
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 0), 0, 4), 0x10421af4);
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 0), PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4);
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 0), 8, 4), 0x01800001);
}

static void test_conf1_address_register(void **state)
{
    struct rig *r = *state;
    /* Linux's pci_check_type1: byte write to 0xcfb, then the dword
     * address register must read back what was written. */
    pio_out(r, 0xcfb, 0x01, 1);
    pio_out(r, 0xcf8, 0x80000000, 4);
    assert_int_equal(pio_in(r, 0xcf8, 4), 0x80000000);
    /* Bits 1:0 and 30:28 read as zero. */
    pio_out(r, 0xcf8, 0xffffffff, 4);
    assert_int_equal(pio_in(r, 0xcf8, 4), 0x8ffffffc);
    /* Narrow accesses to 0xcf8..0xcfb are not the address register. */
    pio_out(r, 0xcf8, 0x80000800, 4);
    pio_out(r, 0xcf8, 0x12, 1);
    pio_out(r, 0xcfa, 0x3456, 2);
    pio_out(r, 0xcf9, 0x77, 1);
    assert_int_equal(pio_in(r, 0xcf8, 4), 0x80000800);
    assert_int_equal(pio_in(r, 0xcf8, 1), 0xff);
    assert_int_equal(pio_in(r, 0xcfa, 2), 0xffff);
    /* With the enable bit clear the data port reads all-ones, writes are
     * dropped. */
    pio_out(r, 0xcf8, 0x00000800, 4);
    assert_int_equal(pio_in(r, 0xcfc, 4), 0xffffffff);
    pio_out(r, 0xcfc, 0x0002, 2);
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 0), PCI_COMMAND, 2), 0);
}

static void test_conf1_every_width_and_lane(void **state)
{
    struct rig *r = *state;
    unsigned devfn = PCI_DEVFN(1, 0);
    uint32_t id = 0x10421af4;
    for (unsigned lane = 0; lane < 4; lane++)
        assert_int_equal(conf1_read(r, devfn, lane, 1), (id >> (8 * lane)) & 0xff);
    assert_int_equal(conf1_read(r, devfn, 0, 2), 0x1af4);
    assert_int_equal(conf1_read(r, devfn, 2, 2), 0x1042);
    /* A word at 0xcfd straddles a byte lane pair; a dword at 0xcfe runs
     * off the data port: ignored. */
    pio_out(r, 0xcf8, cf8(0, devfn, 0), 4);
    assert_int_equal(pio_in(r, 0xcfd, 2), 0xffff);
    assert_int_equal(pio_in(r, 0xcfe, 4), 0xffffffff);
    assert_int_equal(pio_in(r, 0xcff, 4), 0xffffffff);
    assert_int_equal(pio_in(r, 0xcfd, 4), 0xffffffff);

    /* Writes at each lane reach the right byte: interrupt line (0x3c) is
     * writable, the pin beside it (0x3d) is not. */
    conf1_write(r, devfn, PCI_INTERRUPT_LINE, 0xa5, 1);
    assert_int_equal(conf1_read(r, devfn, PCI_INTERRUPT_LINE, 4) & 0xffff, 0x00a5);
    conf1_write(r, devfn, PCI_INTERRUPT_LINE, 0xffff, 2);
    assert_int_equal(conf1_read(r, devfn, PCI_INTERRUPT_LINE, 2), 0x00ff);
    conf1_write(r, devfn, PCI_CACHE_LINE_SIZE, 0x10, 1);
    conf1_write(r, devfn, PCI_LATENCY_TIMER, 0x40, 1);
    assert_int_equal(conf1_read(r, devfn, PCI_CACHE_LINE_SIZE, 4) & 0xffff, 0x4010);
    /* A misaligned word write (lane 1) changes nothing. */
    pio_out(r, 0xcf8, cf8(0, devfn, PCI_CACHE_LINE_SIZE), 4);
    pio_out(r, 0xcfd, 0xeeee, 2);
    assert_int_equal(conf1_read(r, devfn, PCI_CACHE_LINE_SIZE, 4) & 0xffff, 0x4010);
}

static void test_ecam_every_width(void **state)
{
    struct rig *r = *state;
    unsigned devfn = PCI_DEVFN(1, 0);
    assert_int_equal(ecam_read(r, devfn, 0, 4), 0x10421af4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(ecam_read(r, devfn, i, 1), (0x10421af4u >> (8 * i)) & 0xff);
    assert_int_equal(ecam_read(r, devfn, 2, 2), 0x1042);
    /* A qword is two dwords. */
    assert_int_equal(mmio_read(r, ecam_addr(devfn, 0), 8), 0x0000000010421af4ULL);
    /* Misaligned: ignored. */
    assert_int_equal(ecam_read(r, devfn, 1, 2), 0xffff);
    assert_int_equal(ecam_read(r, devfn, 2, 4), 0xffffffff);
    assert_int_equal(mmio_read(r, ecam_addr(devfn, 4), 8), 0xffffffffffffffffULL);
    /* Extended config space exists (ECAM reaches it) and is empty. */
    assert_int_equal(ecam_read(r, devfn, 0x100, 4), 0);
    assert_int_equal(ecam_read(r, devfn, 0xffc, 4), 0);
    ecam_write(r, devfn, 0x100, 0xdeadbeef, 4);
    assert_int_equal(ecam_read(r, devfn, 0x100, 4), 0);
    /* Writes through ECAM and reads through conf1 agree. */
    ecam_write(r, devfn, PCI_INTERRUPT_LINE, 0x0b, 1);
    assert_int_equal(conf1_read(r, devfn, PCI_INTERRUPT_LINE, 1), 0x0b);
    ecam_write(r, devfn, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    assert_int_equal(conf1_read(r, devfn, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
    mmio_write(r, ecam_addr(devfn, PCI_COMMAND), 0, 8); /* misaligned qword: dropped */
    assert_int_equal(conf1_read(r, devfn, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
    mmio_write(r, ecam_addr(devfn, 0), 0, 8); /* IDs read-only, command 0 */
    assert_int_equal(conf1_read(r, devfn, 0, 4), 0x10421af4);
    assert_int_equal(conf1_read(r, devfn, PCI_COMMAND, 2), 0);
    /* conf1 with AMD's extended register bits reaches the same bytes. */
    assert_int_equal(conf1_read(r, devfn, 0x100, 4), 0);
}

static void test_absent_functions(void **state)
{
    struct rig *r = *state;
    static const unsigned devfns[] = { PCI_DEVFN(0, 1), PCI_DEVFN(1, 1), PCI_DEVFN(2, 0),
                                       PCI_DEVFN(31, 7) };
    for (size_t i = 0; i < sizeof devfns / sizeof devfns[0]; i++) {
        unsigned d = devfns[i];
        conf1_write(r, d, 0, 0x12345678, 4);
        ecam_write(r, d, PCI_COMMAND, 0xffff, 2);
        assert_int_equal(conf1_read(r, d, 0, 4), 0xffffffff);
        assert_int_equal(conf1_read(r, d, 0, 2), 0xffff);
        assert_int_equal(conf1_read(r, d, 3, 1), 0xff);
        assert_int_equal(ecam_read(r, d, 0, 4), 0xffffffff);
        assert_int_equal(ecam_read(r, d, 0x3c, 1), 0xff);
    }
    /* Buses other than 0 do not exist either. */
    pio_out(r, 0xcf8, 0x80010000, 4);
    assert_int_equal(pio_in(r, 0xcfc, 4), 0xffffffff);
    pio_out(r, 0xcf8, 0x80ff0800, 4);
    assert_int_equal(pio_in(r, 0xcfc, 4), 0xffffffff);
    /* The fake's own header is untouched by all that. */
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 0), PCI_COMMAND, 2), 0);
}

static void test_read_only_fields(void **state)
{
    struct rig *r = *state;
    unsigned devfn = PCI_DEVFN(1, 0);
    uint8_t before[256];
    for (unsigned off = 0; off < 256; off += 4)
        put_le(before + off, conf1_read(r, devfn, off, 4), 4);
    /* IDs, revision, class, header type, BIST, subsystem, ROM BAR,
     * capability pointer, pin and the reserved dwords ignore writes. */
    static const unsigned ro[] = { 0x00, 0x08, 0x2c, 0x30, 0x34, 0x38, 0x28 };
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
        conf1_write(r, devfn, ro[i], 0xffffffff, 4);
        conf1_write(r, devfn, ro[i], 0, 4);
        assert_int_equal(conf1_read(r, devfn, ro[i], 4), get_le(before + ro[i], 4));
    }
    conf1_write(r, devfn, PCI_HEADER_TYPE, 0xff, 1);
    conf1_write(r, devfn, 0x0f, 0xff, 1);
    conf1_write(r, devfn, PCI_INTERRUPT_PIN, 0x01, 1);
    assert_int_equal(conf1_read(r, devfn, PCI_HEADER_TYPE, 2), 0);
    assert_int_equal(conf1_read(r, devfn, PCI_INTERRUPT_PIN, 1), 0);
    assert_int_equal(conf1_read(r, 0, 0, 4), PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR);

    /* Command: only the bits a device implements stick. */
    conf1_write(r, devfn, PCI_COMMAND, 0xffff, 2);
    assert_int_equal(conf1_read(r, devfn, PCI_COMMAND, 2), 0x0547);
    conf1_write(r, devfn, PCI_COMMAND, 0, 2);
    assert_int_equal(conf1_read(r, devfn, PCI_COMMAND, 2), 0);
    /* Status: capability bit is read-only; error bits clear on write-1. */
    uint32_t status = conf1_read(r, devfn, PCI_STATUS, 2);
    conf1_write(r, devfn, PCI_STATUS, 0xffff, 2);
    assert_int_equal(conf1_read(r, devfn, PCI_STATUS, 2), status);
    pci_cfg_set(r->fn, PCI_STATUS, status | 0x2000, 2); /* "master abort" */
    conf1_write(r, devfn, PCI_STATUS, 0x0010, 2);       /* not that bit */
    assert_int_equal(conf1_read(r, devfn, PCI_STATUS, 2), status | 0x2000);
    conf1_write(r, devfn, PCI_STATUS, 0x2000, 2);
    assert_int_equal(conf1_read(r, devfn, PCI_STATUS, 2), status);
}

static void test_bar_sizing(void **state)
{
    struct rig *r = *state;
    unsigned devfn = PCI_DEVFN(1, 0);
    uint32_t bar[6];
    for (unsigned i = 0; i < 6; i++)
        bar[i] = conf1_read(r, devfn, PCI_BASE_ADDRESS_0 + 4 * i, 4);
    /* Types in the low bits: 32-bit, 64-bit, 64-bit prefetchable. */
    assert_int_equal(bar[0] & 0xf, 0x0);
    assert_int_equal(bar[2] & 0xf, 0x4);
    assert_int_equal(bar[4] & 0xf, 0xc);
    assert_int_equal(bar[1], 0);
    assert_int_equal(bar[3], 0); /* upper halves: below 4 GiB */
    assert_int_equal(bar[5], 0);

    /* Linux's __pci_read_base: write all-ones, read the mask, restore. */
    for (unsigned i = 0; i < 6; i++)
        conf1_write(r, devfn, PCI_BASE_ADDRESS_0 + 4 * i, 0xffffffff, 4);
    assert_int_equal(conf1_read(r, devfn, 0x10, 4), 0xfffff000);
    assert_int_equal(conf1_read(r, devfn, 0x14, 4), 0); /* no BAR 1 */
    assert_int_equal(conf1_read(r, devfn, 0x18, 4), 0xffff8004);
    assert_int_equal(conf1_read(r, devfn, 0x1c, 4), 0xffffffff);
    assert_int_equal(conf1_read(r, devfn, 0x20, 4), 0xffff000c);
    assert_int_equal(conf1_read(r, devfn, 0x24, 4), 0xffffffff);
    uint64_t size64 = ~((uint64_t)conf1_read(r, devfn, 0x1c, 4) << 32 |
                        (conf1_read(r, devfn, 0x18, 4) & ~0xfu)) +
                      1;
    assert_int_equal(size64, 0x8000);
    for (unsigned i = 0; i < 6; i++)
        conf1_write(r, devfn, PCI_BASE_ADDRESS_0 + 4 * i, bar[i], 4);
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(conf1_read(r, devfn, PCI_BASE_ADDRESS_0 + 4 * i, 4), bar[i]);
    /* Byte-wise sizing works the same way through ECAM. */
    for (unsigned b = 0; b < 4; b++)
        ecam_write(r, devfn, 0x10 + b, 0xff, 1);
    assert_int_equal(ecam_read(r, devfn, 0x10, 4), 0xfffff000);
    ecam_write(r, devfn, 0x10, bar[0], 4);
    /* The host bridge has no BARs. */
    conf1_write(r, 0, 0x10, 0xffffffff, 4);
    assert_int_equal(conf1_read(r, 0, 0x10, 4), 0);
}

static void test_bar_assignment(void **state)
{
    struct rig *r = *state;
    uint64_t sizes[6] = { 0x1000, 0, 0x8000, 0, 0x10000, 0 };
    for (unsigned i = 0; i < 6; i += 2) {
        uint64_t a = pci_func_bar_assigned(r->fn, i);
        assert_true(a >= WIN && a + sizes[i] <= WIN + WIN_SIZE);
        assert_int_equal(a % sizes[i], 0); /* naturally aligned */
        for (unsigned j = 0; j < i; j += 2) {
            uint64_t b = pci_func_bar_assigned(r->fn, j);
            assert_true(a + sizes[i] <= b || b + sizes[j] <= a);
        }
        /* The header says the same. */
        uint32_t lo = conf1_read(r, PCI_DEVFN(1, 0), PCI_BASE_ADDRESS_0 + 4 * i, 4);
        assert_int_equal(lo & ~0xfu, (uint32_t)a);
        /* Nothing decodes until the driver enables memory space. */
        assert_int_equal(pci_func_bar_gpa(r->fn, i), 0);
    }

    /* Bad BARs are refused at build time. */
    struct pci_func *g = pci_func_new(r->host, -1, &fake_id, NULL, NULL);
    assert_non_null(g);
    assert_int_equal(pci_func_add_bar(g, 0, 0x1800, 0), -1);       /* not a power of 2 */
    assert_int_equal(pci_func_add_bar(g, 0, 8, 0), -1);            /* too small */
    assert_int_equal(pci_func_add_bar(g, 0, WIN_SIZE * 2, 0), -1); /* bigger than the window */
    assert_int_equal(pci_func_add_bar(g, 5, 0x1000, PCI_BAR_MEM_TYPE_64), -1);
    assert_int_equal(pci_func_add_bar(g, 6, 0x1000, 0), -1);
    assert_int_equal(pci_func_add_bar(g, 0, 0x1000, PCI_BAR_MEM_TYPE_64), 0);
    assert_int_equal(pci_func_add_bar(g, 1, 0x1000, 0), -1); /* upper half of BAR 0 */
    assert_int_equal(pci_func_add_bar(g, 0, 0x1000, 0), -1); /* taken */
    /* The window fills up. */
    assert_int_equal(pci_func_add_bar(g, 2, WIN_SIZE / 2, 0), 0);
    assert_int_equal(pci_func_add_bar(g, 3, WIN_SIZE / 2, 0), -1);
    /* A taken place, or no free slot, gives no function. */
    assert_null(pci_func_new(r->host, 0, &fake_id, NULL, NULL));
    assert_null(pci_func_new(r->host, 256, &fake_id, NULL, NULL));
}

static void enable_memory(struct rig *r, bool on)
{
    conf1_write(r, PCI_DEVFN(1, 0), PCI_COMMAND, on ? PCI_COMMAND_MEMORY : 0, 2);
}

static void test_memory_enable_gates_decoding(void **state)
{
    struct rig *r = *state;
    uint64_t bar0 = pci_func_bar_assigned(r->fn, 0);
    uint64_t bar2 = pci_func_bar_assigned(r->fn, 2);

    mmio_write(r, bar0 + 0x10, 0x11223344, 4);
    assert_int_equal(mmio_read(r, bar0 + 0x10, 4), 0xffffffff);
    assert_int_equal(r->dev->accesses, 0);

    enable_memory(r, true);
    assert_int_equal(pci_func_bar_gpa(r->fn, 0), bar0);
    assert_int_equal(pci_func_bar_gpa(r->fn, 2), bar2);
    mmio_write(r, bar0 + 0x10, 0x11223344, 4);
    assert_int_equal(r->dev->last_bar, 0);
    assert_int_equal(r->dev->last_off, 0x10);
    assert_int_equal(r->dev->last_len, 4);
    assert_true(r->dev->last_write);
    assert_int_equal(mmio_read(r, bar0 + 0x10, 4), 0x11223344);
    mmio_write(r, bar2 + 0x7ff8, 0x0102030405060708ULL, 8);
    assert_int_equal(r->dev->last_bar, 2);
    assert_int_equal(r->dev->last_off, 0x7ff8);
    assert_int_equal(mmio_read(r, bar2 + 0x7ff8, 8), 0x0102030405060708ULL);
    /* An access running off the end of a BAR is not forwarded. */
    unsigned n = r->dev->accesses;
    assert_int_equal(mmio_read(r, bar0 + 0xffe, 4), 0xffffffff);
    assert_int_equal(r->dev->accesses, n);
    /* Between BARs: nothing there. */
    assert_int_equal(mmio_read(r, WIN + WIN_SIZE - 4, 4), 0xffffffff);

    enable_memory(r, false);
    assert_int_equal(pci_func_bar_gpa(r->fn, 0), 0);
    n = r->dev->accesses;
    assert_int_equal(mmio_read(r, bar0 + 0x10, 4), 0xffffffff);
    assert_int_equal(r->dev->accesses, n);
}

static void test_bar_move(void **state)
{
    struct rig *r = *state;
    unsigned devfn = PCI_DEVFN(1, 0);
    uint64_t old0 = pci_func_bar_assigned(r->fn, 0);
    uint64_t old2 = pci_func_bar_assigned(r->fn, 2);

    r->dev->remaps = 0;
    enable_memory(r, true);
    assert_int_equal(r->dev->remaps, 3); /* every BAR starts decoding */

    /* Move BAR 0 up the window while decoding. */
    uint64_t new0 = WIN + 0x10000000;
    r->dev->remaps = 0;
    conf1_write(r, devfn, 0x10, (uint32_t)new0, 4);
    assert_int_equal(r->dev->remaps, 1);
    assert_int_equal(r->dev->remap_bar, 0);
    assert_int_equal(r->dev->remap_old, old0);
    assert_int_equal(r->dev->remap_new, new0);
    mmio_write(r, new0 + 8, 0xabcd, 2);
    assert_int_equal(r->dev->last_off, 8);
    unsigned n = r->dev->accesses;
    assert_int_equal(mmio_read(r, old0 + 8, 2), 0xffff);
    assert_int_equal(r->dev->accesses, n);
    assert_int_equal(mmio_read(r, new0 + 8, 2), 0xabcd);

    /* Move the 64-bit BAR 2 the way Linux does (low, then high). */
    uint64_t new2 = WIN + 0x18000000;
    conf1_write(r, devfn, 0x18, (uint32_t)new2 | 0x4, 4);
    conf1_write(r, devfn, 0x1c, 0, 4);
    assert_int_equal(pci_func_bar_gpa(r->fn, 2), new2);
    assert_int_equal(r->dev->remap_bar, 2);
    assert_int_equal(r->dev->remap_old, old2);
    mmio_write(r, new2, 0x55, 1);
    assert_int_equal(r->dev->last_bar, 2);
    assert_int_equal(r->dev->last_off, 0);

    /* Above 4 GiB, or outside the window: the BAR stops decoding. */
    conf1_write(r, devfn, 0x1c, 1, 4);
    assert_int_equal(pci_func_bar_gpa(r->fn, 2), 0);
    assert_int_equal(r->dev->remap_new, 0);
    conf1_write(r, devfn, 0x1c, 0, 4);
    assert_int_equal(pci_func_bar_gpa(r->fn, 2), new2);
    conf1_write(r, devfn, 0x10, (uint32_t)(WIN - 0x1000), 4);
    assert_int_equal(pci_func_bar_gpa(r->fn, 0), 0);
    conf1_write(r, devfn, 0x10, (uint32_t)(WIN + WIN_SIZE - 0x1000), 4);
    assert_int_equal(pci_func_bar_gpa(r->fn, 0), WIN + WIN_SIZE - 0x1000);
    conf1_write(r, devfn, 0x10, (uint32_t)(WIN + WIN_SIZE), 4); /* ECAM's address */
    assert_int_equal(pci_func_bar_gpa(r->fn, 0), 0);

    /* Rewriting the same value reports no move. */
    conf1_write(r, devfn, 0x10, (uint32_t)new0, 4);
    r->dev->remaps = 0;
    conf1_write(r, devfn, 0x10, (uint32_t)new0, 4);
    conf1_write(r, devfn, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    assert_int_equal(r->dev->remaps, 0);

    /* Two BARs put on top of each other: the first decodes, nothing
     * crashes. */
    conf1_write(r, devfn, 0x18, (uint32_t)new0 | 0x4, 4);
    mmio_write(r, new0 + 4, 0x77, 1);
    assert_true(r->dev->last_bar == 0 || r->dev->last_bar == 2);
}

static void test_capability_list(void **state)
{
    struct rig *r = *state;
    int c1 = pci_func_add_cap(r->fn, PCI_CAP_ID_VNDR, 16);
    int c2 = pci_func_add_cap(r->fn, PCI_CAP_ID_VNDR, 19);
    int c3 = pci_func_add_cap(r->fn, PCI_CAP_ID_MSIX, 12);
    assert_int_equal(c1, 0x40);
    assert_int_equal(c2, 0x50);
    assert_int_equal(c3, 0x64); /* dword aligned after 0x50 + 19 */
    pci_cfg_set(r->fn, (unsigned)c2 + 4, 0xcafe, 2);
    pci_cfg_set_wmask(r->fn, (unsigned)c3 + 2, 0xc000, 2);

    unsigned devfn = PCI_DEVFN(1, 0);
    assert_true(conf1_read(r, devfn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    /* Walk it the way pci_find_capability does. */
    const uint8_t want[] = { PCI_CAP_ID_VNDR, PCI_CAP_ID_VNDR, PCI_CAP_ID_MSIX };
    unsigned pos = conf1_read(r, devfn, PCI_CAPABILITY_LIST, 1), n = 0;
    while (pos) {
        assert_true(n < 3);
        assert_int_equal(pos & 3, 0);
        assert_true(pos >= 0x40);
        assert_int_equal(conf1_read(r, devfn, pos, 1), want[n]);
        pos = conf1_read(r, devfn, pos + 1, 1);
        n++;
    }
    assert_int_equal(n, 3);
    assert_int_equal(ecam_read(r, devfn, (unsigned)c2 + 4, 2), 0xcafe);
    /* IDs and next pointers are read-only; so are bytes nobody opened. */
    ecam_write(r, devfn, (unsigned)c1, 0xffffffff, 4);
    ecam_write(r, devfn, (unsigned)c2 + 4, 0, 2);
    assert_int_equal(ecam_read(r, devfn, (unsigned)c1, 2), 0x5009);
    assert_int_equal(ecam_read(r, devfn, (unsigned)c2 + 4, 2), 0xcafe);
    /* Only the opened bits of a capability take writes. */
    ecam_write(r, devfn, (unsigned)c3, 0xffffffff, 4);
    assert_int_equal(ecam_read(r, devfn, (unsigned)c3, 4), 0xc0000011);

    /* The list cannot run past 0xff. */
    assert_int_equal(pci_func_add_cap(r->fn, PCI_CAP_ID_VNDR, 200), -1);
    assert_int_equal(pci_func_add_cap(r->fn, PCI_CAP_ID_VNDR, 1), -1);
    /* The host bridge has none. */
    assert_false(conf1_read(r, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
    assert_int_equal(conf1_read(r, 0, PCI_CAPABILITY_LIST, 1), 0);
}

static void test_config_hooks(void **state)
{
    struct rig *r = *state;
    unsigned devfn = PCI_DEVFN(1, 0);
    r->dev->cfg_reads = r->dev->cfg_writes = 0;
    conf1_read(r, devfn, 0x42, 2);
    assert_int_equal(r->dev->cfg_reads, 1);
    assert_int_equal(r->dev->cfg_off, 0x42);
    assert_int_equal(r->dev->cfg_len, 2);
    ecam_write(r, devfn, 0x44, 0, 4);
    assert_int_equal(r->dev->cfg_writes, 1);
    assert_int_equal(r->dev->cfg_off, 0x44);
    assert_int_equal(r->dev->cfg_len, 4);
    /* Dropped accesses do not reach the function at all. */
    ecam_write(r, devfn, 0x45, 0, 4);
    mmio_read(r, ecam_addr(devfn, 0x43), 2);
    assert_int_equal(r->dev->cfg_writes, 1);
    assert_int_equal(r->dev->cfg_reads, 1);
}

static void test_multifunction(void **state)
{
    struct rig *r = *state;
    /* A function 1 on the fake's slot makes function 0 say so. */
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 0), PCI_HEADER_TYPE, 1), 0);
    struct pci_func *f1 = pci_func_new(r->host, PCI_DEVFN(1, 1), &fake_id, NULL, NULL);
    assert_non_null(f1);
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 0), PCI_HEADER_TYPE, 1), 0x80);
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 1), 0, 2), 0x1af4);
    /* Function 0 added after function 3 of another slot. */
    assert_non_null(pci_func_new(r->host, PCI_DEVFN(5, 3), &fake_id, NULL, NULL));
    assert_non_null(pci_func_new(r->host, PCI_DEVFN(5, 0), &fake_id, NULL, NULL));
    assert_int_equal(conf1_read(r, PCI_DEVFN(5, 0), PCI_HEADER_TYPE, 1), 0x80);
    /* The next free slot skips slots with any function. */
    struct pci_func *g = pci_func_new(r->host, -1, &fake_id, NULL, NULL);
    assert_int_equal(pci_func_devfn(g), PCI_DEVFN(2, 0));
    /* Removing a function makes it absent again. */
    pci_func_remove(f1);
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 1), 0, 4), 0xffffffff);
    pci_func_remove(NULL);
}

/* Random writes of every width to every offset of every function, by
 * both mechanisms, and random port and window traffic: nothing may crash,
 * and the read-only identity of every function survives. */
static void test_hostile_fuzz(void **state)
{
    struct rig *r = *state;
    unsigned seed = 12345;
    static const unsigned widths[] = { 1, 2, 3, 4, 5, 8 };
    enable_memory(r, true);
    for (int i = 0; i < 200000; i++) {
        seed = seed * 1103515245 + 12345;
        unsigned rnd = seed >> 8;
        unsigned len = widths[rnd % 6];
        uint64_t v = (uint64_t)rnd * 0x9e3779b97f4a7c15ULL;
        switch ((rnd >> 3) % 5) {
        case 0: {
            /* Keep the fake's BARs and command alone a little more often,
             * so the window traffic below has something to hit. */
            unsigned devfn = (rnd >> 6) % 16;
            unsigned reg = (rnd >> 10) % 4096;
            if (devfn == PCI_DEVFN(1, 0) && reg < 0x28)
                break;
            mmio_write(r, ECAM + ((uint64_t)devfn << 12) + reg, v, len);
            break;
        }
        case 1: pio_out(r, (uint16_t)(0xcf8 + (rnd >> 6) % 8), v, len > 4 ? 4 : len); break;
        case 2: mmio_read(r, ECAM + (rnd >> 6) % (1u << 20), len); break;
        case 3: mmio_write(r, WIN + (rnd >> 6) % 0x100000, v, len); break;
        default: pio_in(r, (uint16_t)(0xcf8 + (rnd >> 6) % 8), len > 4 ? 4 : len); break;
        }
    }
    assert_int_equal(conf1_read(r, 0, 0, 4), PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR);
    assert_int_equal(conf1_read(r, PCI_DEVFN(1, 0), 0, 4), 0x10421af4);
    assert_int_equal(ecam_read(r, PCI_DEVFN(1, 0), 8, 4), 0x01800001);
    assert_int_equal(ecam_read(r, PCI_DEVFN(1, 0), PCI_INTERRUPT_PIN, 1), 0);
    /* Host-side raw accessors refuse out-of-range offsets quietly. */
    pci_cfg_set(r->fn, 4095, 0xffff, 2);
    pci_cfg_set(r->fn, 5000, 1, 1);
    pci_cfg_set(r->fn, 0, 1, 3);
    assert_int_equal(pci_cfg_get(r->fn, 4094, 4), 0);
    assert_int_equal(pci_cfg_get(r->fn, 0, 4), 0x10421af4);
}

/* vCPUs hammer the BARs while another moves them: the decode map must
 * stay consistent (run under TSan/ASan to see races). */
struct hammer {
    struct rig *r;
    atomic_bool stop;
    atomic_uint hits;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    while (!atomic_load(&h->stop)) {
        for (uint64_t a = WIN; a < WIN + 0x20000; a += 0x800) {
            mmio_read(h->r, a, 4);
            atomic_fetch_add(&h->hits, 1);
        }
    }
    return NULL;
}

static void test_concurrent_moves(void **state)
{
    struct rig *r = *state;
    struct hammer h = { .r = r };
    pthread_t t[2];
    enable_memory(r, true);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h), 0);
    /* Keep moving until the vCPU threads have really run alongside. */
    for (int i = 0; i < 2000 || atomic_load(&h.hits) < 20000; i++) {
        conf1_write(r, PCI_DEVFN(1, 0), 0x10, (uint32_t)(WIN + 0x1000 * (i % 16)), 4);
        enable_memory(r, i % 3 != 0);
    }
    atomic_store(&h.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_true(atomic_load(&h.hits) > 0);
}

static void test_host_errors(void **state)
{
    assert_null(pci_host_new(WIN, 0));
    assert_null(pci_host_new(~0ULL - 10, 100));
    /* Attaching twice claims taken ranges: refused. */
    struct rig *r = *state;
    assert_int_equal(pci_host_attach(r->host, &r->pio, &r->mmio, ECAM), -1);
    pci_host_free(NULL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_host_bridge_ids),
        T(test_conf1_address_register),
        T(test_conf1_every_width_and_lane),
        T(test_ecam_every_width),
        T(test_absent_functions),
        T(test_read_only_fields),
        T(test_bar_sizing),
        T(test_bar_assignment),
        T(test_memory_enable_gates_decoding),
        T(test_bar_move),
        T(test_capability_list),
        T(test_config_hooks),
        T(test_multifunction),
        T(test_hostile_fuzz),
        T(test_concurrent_moves),
        T(test_host_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
