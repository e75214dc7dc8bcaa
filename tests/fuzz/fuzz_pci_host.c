/* libFuzzer target for the PCI host bridge (src/dev/pci.c) as a hostile
 * guest sees it: configuration mechanism #1 (ports 0xcf8..0xcff), ECAM and
 * the BAR window, driven through the real port and MMIO buses (src/bus.c)
 * the way a vCPU exit reaches them. Build with clang
 * -fsanitize=fuzzer,address,undefined (docs/fuzzing.md), or with
 * -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * Every input gets a fresh bus 0: the host bridge (00.0), a function at
 * 01.0 with a 32-bit, a 64-bit and a 64-bit prefetchable BAR and a vendor
 * capability with a writable dword and a write-1-to-clear byte, and a
 * multi-function device at 03.0 (one small BAR) and 03.5 (a 1 MiB BAR,
 * no hooks). The input is a sequence of accesses, each
 *   byte 0: bits 1:0 kind (0 port, 1 ECAM, 2 window, 3 BAR sizing),
 *           bit 2 write, bits 4:3 width (1 << n bytes: 1, 2, 4 or 8)
 *   port:   1 byte, port 0xcf4 + (b & 15) (so also straddling the range)
 *   ECAM:   1 byte devfn, 2 bytes register (& 0xfff)
 *   window: 4 bytes, address GUEST_PCI_MMIO_START + (v & (size - 1))
 *   sizing: 1 byte: function (b & 3), BAR ((b >> 2) % 6): write all-ones
 *           through 0xcfc, read back, restore (no width, no data)
 *   then, for a write, width bytes of data (little-endian).
 *
 * Besides memory errors, the target keeps its own model of every
 * function's configuration space (its initial bytes read raw, the write
 * masks taken from the PCI spec, not from pci.c) and checks after every
 * access:
 *   - a read fills exactly its width and nothing beyond: present
 *     functions give the model's bytes, absent functions, other buses,
 *     misaligned or odd-sized accesses and CONFIG_DATA with the enable bit
 *     clear give all-ones, CONFIG_ADDRESS reads back what was written
 *     (bits 1:0 and 30:28 clear), narrow accesses to 0xcf8..0xcfb do
 *     nothing;
 *   - a write changes only writable bits (and clears only W1C bits) of the
 *     addressed function, and its config hooks see exactly the access;
 *   - BAR sizing reads back ~(size - 1) with the type bits (the upper
 *     half of a 64-bit BAR all-ones, no BAR 0);
 *   - where each BAR decodes is memory space on and the whole BAR inside
 *     the window, else nothing; the remap hook has told the function
 *     every move (old address as it last heard); a window access reaches
 *     the first decoding BAR that holds it, with the right offset, only if
 *     it fits inside that BAR, and reads all-ones otherwise. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TARGET "fuzz_pci_host"
#include "fuzz_util.h"
#include "bus.h"
#include "layout.h"
#include "dev/pci.h"

#define WIN      GUEST_PCI_MMIO_START
#define WIN_SIZE GUEST_PCI_MMIO_SIZE
#define ECAM     GUEST_PCI_ECAM_START
#define NFUNCS   4
#define GUARD    0xa5
#define MAX_OPS  256
#define CAP_LEN  12

/* What a function's hooks saw. */
struct seen {
    unsigned bar_calls, cfg_reads, cfg_writes;
    unsigned bar, cfg_off, cfg_len;
    uint64_t bar_off;
    uint32_t bar_len;
    bool bar_write;
    uint64_t believed[PCI_NUM_BARS]; /* where the remap hook says each BAR is */
    bool remap_mismatch;
};

/* A function and our model of it. */
struct fn {
    struct rig *rig;
    struct pci_func *f;
    unsigned devfn;
    bool hooks;
    struct seen seen;
    bool ext_written;                /* a write reached beyond the first 256 bytes */
    uint64_t bar_size[PCI_NUM_BARS]; /* 0: none, or the upper half of a 64-bit BAR */
    bool bar_64[PCI_NUM_BARS];
    uint8_t cfg[PCI_CFG_SPACE_EXP_SIZE];
    uint8_t wmask[PCI_CFG_SPACE_EXP_SIZE];
    uint8_t w1c[PCI_CFG_SPACE_EXP_SIZE];
};

struct rig {
    struct bus pio, mmio;
    struct pci_host *host;
    struct fn fn[NFUNCS]; /* in creation order, as the host scans them */
    uint32_t cf8;
    unsigned written; /* bit i: fn[i] took a write since the last check */
};

static void hook_bar(void *opaque, unsigned bar, uint64_t off, uint8_t *data, uint32_t len,
                     bool is_write)
{
    struct seen *s = opaque;
    s->bar_calls++;
    s->bar = bar;
    s->bar_off = off;
    s->bar_len = len;
    s->bar_write = is_write;
    if (!is_write)
        for (uint32_t i = 0; i < len; i++)
            data[i] = (uint8_t)((off + i) ^ (bar << 4));
}

static void hook_remap(void *opaque, unsigned bar, uint64_t old_gpa, uint64_t new_gpa)
{
    struct seen *s = opaque;
    if (bar >= PCI_NUM_BARS || s->believed[bar] != old_gpa || old_gpa == new_gpa)
        s->remap_mismatch = true;
    else
        s->believed[bar] = new_gpa;
}

static void hook_cfg_read(void *opaque, struct pci_func *f, unsigned off, unsigned len)
{
    struct seen *s = opaque;
    (void)f;
    s->cfg_reads++;
    s->cfg_off = off;
    s->cfg_len = len;
}

static void hook_cfg_write(void *opaque, struct pci_func *f, unsigned off, unsigned len)
{
    struct seen *s = opaque;
    (void)f;
    s->cfg_writes++;
    s->cfg_off = off;
    s->cfg_len = len;
}

static const struct pci_func_ops hooks = {
    .bar_access = hook_bar,
    .bar_remap = hook_remap,
    .config_read = hook_cfg_read,
    .config_write = hook_cfg_write,
};

static void mask(uint8_t *m, unsigned off, uint32_t v, unsigned len)
{
    put_le(m + off, v, len);
}

static struct fn *add(struct rig *r, unsigned i, int devfn, bool with_hooks)
{
    static const struct pci_id id = {
        .vendor = 0x1af4, .device = 0x1042, .revision = 1, .class_code = 0x018000
    };
    struct fn *fn = &r->fn[i];
    fn->hooks = with_hooks;
    fn->f = pci_func_new(r->host, devfn, &id, with_hooks ? &hooks : NULL, &fn->seen);
    check(fn->f != NULL, "cannot add a function");
    fn->devfn = pci_func_devfn(fn->f);
    return fn;
}

static void add_bar(struct fn *fn, unsigned bar, uint64_t size, unsigned flags)
{
    check(pci_func_add_bar(fn->f, bar, size, flags) == 0, "cannot add a BAR");
    fn->bar_size[bar] = size;
    fn->bar_64[bar] = flags & PCI_BAR_MEM_TYPE_64;
}

/* The header's writable bits per PCI Local Bus 3.0, 6.1-6.2.5, and the
 * BARs' address bits above their size; the rest is read-only. */
static void model_init(struct fn *fn)
{
    /* The extended space starts zero (and reads check that). */
    for (unsigned off = 0; off < PCI_CFG_SPACE_SIZE; off += 4)
        put_le(fn->cfg + off, pci_cfg_get(fn->f, off, 4), 4);
    mask(fn->wmask, PCI_COMMAND, 0x0547, 2); /* IO, MEM, MASTER, PARITY, SERR, INTX_DISABLE */
    mask(fn->w1c, PCI_STATUS, 0xf900, 2);
    fn->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    fn->wmask[PCI_LATENCY_TIMER] = 0xff;
    fn->wmask[PCI_INTERRUPT_LINE] = 0xff;
    for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
        if (!fn->bar_size[b])
            continue;
        mask(fn->wmask, PCI_BASE_ADDRESS_0 + 4 * b, (uint32_t) ~(fn->bar_size[b] - 1) & ~0xfu, 4);
        if (fn->bar_64[b])
            mask(fn->wmask, PCI_BASE_ADDRESS_0 + 4 * b + 4, 0xffffffff, 4);
    }
}

static void rig_init(struct rig *r)
{
    memset(r, 0, sizeof *r);
    for (unsigned i = 0; i < NFUNCS; i++)
        r->fn[i].rig = r;
    r->host = pci_host_new(WIN, WIN_SIZE);
    check(r->host && pci_host_attach(r->host, &r->pio, &r->mmio, ECAM) == 0, "no host");

    r->fn[0].f = NULL; /* the bridge, made by pci_host_new: 00.0, no hooks */
    struct fn *a = add(r, 1, -1, true);
    add_bar(a, 0, 0x1000, 0);
    add_bar(a, 2, 0x8000, PCI_BAR_MEM_TYPE_64);
    add_bar(a, 4, 0x10000, PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
    int cap = pci_func_add_cap(a->f, PCI_CAP_ID_VNDR, CAP_LEN);
    check(cap >= 0, "no room for a capability");
    pci_cfg_set_wmask(a->f, (unsigned)cap + 4, 0xffffffff, 4);
    pci_cfg_set(a->f, (unsigned)cap + 8, 0xff, 1);
    pci_cfg_set_w1cmask(a->f, (unsigned)cap + 8, 0x0f, 1);

    struct fn *b = add(r, 2, PCI_DEVFN(3, 0), true);
    add_bar(b, 1, 16, PCI_BAR_MEM_PREFETCH);
    struct fn *c = add(r, 3, PCI_DEVFN(3, 5), false);
    add_bar(c, 5, 1 << 20, 0);

    /* The bridge is in the host's list first; reach it through the bus. */
    r->fn[0].devfn = 0;
    for (unsigned i = 0; i < NFUNCS; i++) {
        struct fn *fn = &r->fn[i];
        if (i == 0) {
            /* No handle for the bridge: its header comes through ECAM
             * (the extended space is zero, which reads check). */
            for (unsigned off = 0; off < PCI_CFG_SPACE_SIZE; off += 4) {
                uint8_t d[4];
                bus_dispatch(&r->mmio, ECAM + off, d, 4, false);
                memcpy(fn->cfg + off, d, 4);
            }
            mask(fn->wmask, PCI_COMMAND, 0x0547, 2);
            mask(fn->w1c, PCI_STATUS, 0xf900, 2);
            fn->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
            fn->wmask[PCI_LATENCY_TIMER] = 0xff;
            fn->wmask[PCI_INTERRUPT_LINE] = 0xff;
        } else {
            model_init(fn);
        }
    }
    r->fn[1].wmask[cap + 4] = r->fn[1].wmask[cap + 5] = 0xff;
    r->fn[1].wmask[cap + 6] = r->fn[1].wmask[cap + 7] = 0xff;
    r->fn[1].w1c[cap + 8] = 0x0f;
}

static void rig_free(struct rig *r)
{
    pci_host_free(r->host);
    bus_free(&r->pio);
    bus_free(&r->mmio);
}

static struct fn *lookup(struct rig *r, unsigned bus, unsigned devfn)
{
    for (unsigned i = 0; bus == 0 && i < NFUNCS; i++)
        if (r->fn[i].devfn == devfn)
            return &r->fn[i];
    return NULL;
}

/* ---- the model --------------------------------------------------------- */

static uint64_t model_decode(const struct fn *fn, unsigned b)
{
    uint64_t size = fn->bar_size[b];
    if (!size || !(get_le(fn->cfg + PCI_COMMAND, 2) & PCI_COMMAND_MEMORY))
        return 0;
    uint64_t addr = get_le(fn->cfg + PCI_BASE_ADDRESS_0 + 4 * b, 4) & ~0xfull;
    if (fn->bar_64[b])
        addr |= get_le(fn->cfg + PCI_BASE_ADDRESS_0 + 4 * b + 4, 4) << 32;
    return addr >= WIN && addr - WIN <= WIN_SIZE - size ? addr : 0;
}

/* One configuration access the host should carry out (aligned, 1/2/4
 * bytes, inside the function's 4 KiB): what it must read, or apply. */
static void model_access(struct fn *fn, unsigned off, uint8_t *expect, unsigned len, bool is_write,
                         const uint8_t *data)
{
    if (!fn)
        return; /* absent: reads stay all-ones, writes vanish */
    if (!is_write) {
        memcpy(expect, fn->cfg + off, len);
        return;
    }
    fn->rig->written |= 1u << (fn - fn->rig->fn);
    fn->ext_written |= off >= PCI_CFG_SPACE_SIZE;
    for (unsigned i = 0; i < len; i++) {
        uint8_t *b = &fn->cfg[off + i];
        *b = (uint8_t)((*b & ~fn->wmask[off + i]) | (data[i] & fn->wmask[off + i]));
        *b &= (uint8_t) ~(data[i] & fn->w1c[off + i]);
    }
}

/* The config hooks of fn saw exactly this many accesses, the last at
 * [off, off + len). */
static void expect_hooks(struct fn *fn, const struct seen *before, unsigned n, bool is_write,
                         unsigned off, unsigned len)
{
    if (!fn || !fn->hooks)
        return;
    unsigned reads = fn->seen.cfg_reads - before->cfg_reads;
    unsigned writes = fn->seen.cfg_writes - before->cfg_writes;
    check(reads == (is_write ? 0 : n) && writes == (is_write ? n : 0),
          "config hook calls do not match the accesses");
    if (n)
        check(fn->seen.cfg_off == off && fn->seen.cfg_len == len, "config hook saw another range");
}

/* After every access: for each function written to (with full, every
 * function), the model and the host agree on the header and capabilities
 * (with full, also on the extended space if it was written) and on where
 * every BAR decodes, and each function heard of every move. */
static void check_state(struct rig *r, bool full)
{
    unsigned which = full ? ~0u : r->written;
    r->written = 0;
    for (unsigned i = 0; i < NFUNCS; i++) {
        struct fn *fn = &r->fn[i];
        check(!fn->seen.remap_mismatch, "remap with a stale or unchanged address");
        if (!(which & (1u << i)))
            continue;
        unsigned end = full && fn->ext_written ? PCI_CFG_SPACE_EXP_SIZE : PCI_CFG_SPACE_SIZE;
        if (i > 0)
            for (unsigned off = 0; off < end; off += 4)
                check(pci_cfg_get(fn->f, off, 4) == get_le(fn->cfg + off, 4),
                      "config space differs from the model (read-only bits changed?)");
        for (unsigned b = 0; i > 0 && b < PCI_NUM_BARS; b++) {
            uint64_t want = model_decode(fn, b);
            check(pci_func_bar_gpa(fn->f, b) == want, "BAR decodes where it should not");
            if (fn->hooks)
                check(fn->seen.believed[b] == want, "BAR moved without a remap");
        }
    }
}

/* ---- the accesses ------------------------------------------------------- */

static void port_access(struct rig *r, unsigned port, uint8_t *d, unsigned len, bool is_write)
{
    uint8_t expect[8];
    memset(expect, 0xff, sizeof expect);
    struct fn *fn = NULL;
    struct seen before = { 0 };
    unsigned reg = 0, n = 0, access_len = len;

    if (port >= 0xcf8 && port < 0xd00) {
        unsigned off = port - 0xcf8;
        if (off < 4) {
            if (off == 0 && len == 4) {
                if (is_write)
                    r->cf8 = (uint32_t)get_le(d, 4) & 0x8ffffffcu;
                else
                    put_le(expect, r->cf8, 4);
            }
        } else if ((len == 1 || len == 2 || len == 4) && (off - 4) % len == 0 &&
                   (r->cf8 & 0x80000000u)) {
            reg = (r->cf8 & 0xfc) + (off - 4) + ((r->cf8 >> 16) & 0xf00);
            fn = lookup(r, (r->cf8 >> 16) & 0xff, (r->cf8 >> 8) & 0xff);
            if (fn)
                before = fn->seen;
            n = fn ? 1 : 0;
            model_access(fn, reg, expect, len, is_write, d);
        }
    }
    bus_dispatch(&r->pio, port, d, len, is_write);
    if (!is_write)
        check(memcmp(d, expect, len) == 0, "port read differs from the model");
    expect_hooks(fn, &before, n, is_write, reg, access_len);
}

static void ecam_access(struct rig *r, unsigned devfn, unsigned reg, uint8_t *d, unsigned len,
                        bool is_write)
{
    uint8_t expect[8];
    memset(expect, 0xff, sizeof expect);
    struct fn *fn = lookup(r, 0, devfn);
    struct seen before = fn ? fn->seen : (struct seen){ 0 };
    unsigned n = 0, last_off = reg, last_len = len;
    if (len == 8 && reg % 8 == 0) {
        model_access(fn, reg, expect, 4, is_write, d);
        model_access(fn, reg + 4, expect + 4, 4, is_write, d + 4);
        n = 2;
        last_off = reg + 4;
        last_len = 4;
    } else if (len != 8 && reg % len == 0) {
        model_access(fn, reg, expect, len, is_write, d);
        n = 1;
    }
    bus_dispatch(&r->mmio, ECAM + ((uint64_t)devfn << 12) + reg, d, len, is_write);
    if (!is_write)
        check(memcmp(d, expect, len) == 0, "ECAM read differs from the model");
    expect_hooks(fn, &before, n, is_write, last_off, last_len);
}

static void window_access(struct rig *r, uint64_t addr, uint8_t *d, unsigned len, bool is_write)
{
    /* Which function should see it: the host scans functions in creation
     * order and BARs in index order. */
    struct fn *hit = NULL;
    unsigned bar = 0;
    uint64_t off = 0;
    for (unsigned i = 0; i < NFUNCS && !hit; i++) {
        for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
            uint64_t base = model_decode(&r->fn[i], b);
            if (base && addr >= base && addr - base < r->fn[i].bar_size[b]) {
                hit = &r->fn[i];
                bar = b;
                off = addr - base;
                break;
            }
        }
    }
    bool reaches = hit && hit->hooks && len <= hit->bar_size[bar] - off;
    unsigned calls[NFUNCS];
    for (unsigned i = 0; i < NFUNCS; i++)
        calls[i] = r->fn[i].seen.bar_calls;

    bus_dispatch(&r->mmio, addr, d, len, is_write);

    for (unsigned i = 0; i < NFUNCS; i++) {
        unsigned want = reaches && hit == &r->fn[i] ? 1 : 0;
        check(r->fn[i].seen.bar_calls - calls[i] == want, "window access reached the wrong BAR");
    }
    if (reaches) {
        const struct seen *s = &hit->seen;
        check(s->bar == bar && s->bar_off == off && s->bar_len == len && s->bar_write == is_write,
              "BAR access with the wrong offset or width");
    }
    if (!is_write)
        for (unsigned i = 0; i < len; i++)
            check(d[i] == (reaches ? (uint8_t)((off + i) ^ (bar << 4)) : 0xff),
                  "window read differs from what the BAR gave");
}

/* Linux's __pci_read_base: all-ones into the BAR, read back, restore. */
static void size_bar(struct rig *r, struct fn *fn, unsigned b)
{
    uint8_t a[4], d[4], saved[4];
    unsigned reg = PCI_BASE_ADDRESS_0 + 4 * b;
    put_le(a, 0x80000000u | fn->devfn << 8 | reg, 4);
    port_access(r, 0xcf8, a, 4, true);
    memset(saved, 0xff, sizeof saved);
    port_access(r, 0xcfc, saved, 4, false);
    memset(d, 0xff, sizeof d);
    port_access(r, 0xcfc, d, 4, true);
    check_state(r, false);
    memset(d, 0, sizeof d);
    port_access(r, 0xcfc, d, 4, false);
    uint32_t got = (uint32_t)get_le(d, 4);

    uint32_t want = 0;
    if (fn->bar_size[b])
        want = ((uint32_t) ~(fn->bar_size[b] - 1) & ~0xfu) | (fn->cfg[reg] & 0xf);
    else if (b > 0 && fn->bar_64[b - 1])
        want = 0xffffffff;
    check(got == want, "BAR sizing read back the wrong mask");
    port_access(r, 0xcfc, saved, 4, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rig rig;
    struct rig *r = &rig;
    rig_init(r);
    struct input in = { data, size };
    uint8_t op;
    for (unsigned k = 0; k < MAX_OPS && take(&in, &op, 1); k++) {
        unsigned kind = op & 3, len = 1u << ((op >> 3) & 3);
        bool is_write = op & 4;
        uint8_t a[4], d[16];
        memset(d, GUARD, sizeof d);
        if (kind == 0 && !take(&in, a, 1))
            break;
        if (kind == 1 && !take(&in, a, 3))
            break;
        if (kind == 2 && !take(&in, a, 4))
            break;
        if (kind == 3) {
            if (!take(&in, a, 1))
                break;
            size_bar(r, &r->fn[a[0] & 3], (a[0] >> 2) % PCI_NUM_BARS);
            check_state(r, false);
            continue;
        }
        if (is_write && !take(&in, d, len))
            break;
        if (kind == 0)
            port_access(r, 0xcf4 + (a[0] & 15u), d, len, is_write);
        else if (kind == 1)
            ecam_access(r, a[0], (unsigned)get_le(a + 1, 2) & 0xfff, d, len, is_write);
        else
            window_access(r, WIN + (get_le(a, 4) & (WIN_SIZE - 1)), d, len, is_write);
        for (unsigned i = len; i < sizeof d; i++)
            check(d[i] == GUARD, "an access wrote past its width");
        check_state(r, false);
    }
    check_state(r, true);
    rig_free(r);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
