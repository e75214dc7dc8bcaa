/* PCI host bridge and bus 0.
 *
 * Implements, from PCI Local Bus 3.0:
 *   3.2.2.3.2  Configuration mechanism #1 (CONFIG_ADDRESS at 0xcf8,
 *              CONFIG_DATA at 0xcfc..0xcff, byte lanes by port offset)
 *   6.1        Type 0 configuration header (read-only fields protected)
 *   6.2.2      Command register (Memory Space enable gates BAR decoding),
 *   6.2.3      Status register (write-1-to-clear error bits)
 *   6.2.5.1    Base Address Registers: sizing by writing all-ones, 32- and
 *              64-bit memory BARs
 *   6.7        Capabilities list
 * and from PCI Express Base 4.0, 7.2.2 Enhanced Configuration Access
 * Mechanism (ECAM), bus 0 only, 4 KiB per function.
 *
 * Reads of absent functions return all-ones (that is how software finds
 * them absent) and writes to them are dropped. Accesses the hardware would
 * not produce (misaligned, crossing a dword) are ignored the same way:
 * nothing a guest writes reaches outside a function's 4 KiB.
 */
#include "dev/pci.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FUNCS        256  /* bus 0: 32 slots x 8 functions */
#define CAP_START        0x40 /* first byte after the type 0 header */
#define CF8_ENABLE       0x80000000u
/* CONFIG_ADDRESS bits 30:24 are reserved; AMD uses 27:24 for register
 * bits 11:8 (extended config through 0xcfc), which Linux may rely on. */
#define CF8_EXT_REG_MASK 0x0f000000u
#define CF8_WRITABLE     (CF8_ENABLE | CF8_EXT_REG_MASK | 0x00fffffcu)

struct pci_func {
    struct pci_host *host;
    unsigned devfn;
    const struct pci_func_ops *ops;
    void *opaque;
    uint8_t cfg[PCI_CFG_SPACE_EXP_SIZE];
    uint8_t wmask[PCI_CFG_SPACE_EXP_SIZE];
    uint8_t w1cmask[PCI_CFG_SPACE_EXP_SIZE];
    uint64_t bar_size[PCI_NUM_BARS]; /* 0: no BAR (or upper half of a 64-bit one) */
    bool bar_64[PCI_NUM_BARS];
    uint64_t bar_assigned[PCI_NUM_BARS];
    uint64_t bar_gpa[PCI_NUM_BARS]; /* decoded address or 0: map_lock */
    unsigned cap_end;               /* next free byte for a capability */
    unsigned cap_last;              /* offset of the last capability, or 0 */
};

struct pci_host {
    uint64_t window, window_size;
    uint64_t next_bar;         /* placement cursor in the window */
    pthread_mutex_t cfg_lock;  /* config spaces, CONFIG_ADDRESS, BAR moves */
    pthread_rwlock_t map_lock; /* bar_gpa of every function */
    uint32_t cf8;
    struct pci_func *funcs[MAX_FUNCS]; /* by devfn */
    struct pci_func *list[MAX_FUNCS];  /* in creation order, for the window scan */
    unsigned nfuncs;
};

/* ---- raw config space ------------------------------------------------- */

static bool cfg_range_ok(unsigned off, unsigned len)
{
    return (len == 1 || len == 2 || len == 4) && off < PCI_CFG_SPACE_EXP_SIZE &&
           len <= PCI_CFG_SPACE_EXP_SIZE - off;
}

static uint32_t get_le(const uint8_t *p, unsigned len)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < len; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *p, uint32_t v, unsigned len)
{
    for (unsigned i = 0; i < len; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t pci_cfg_get(const struct pci_func *f, unsigned off, unsigned len)
{
    return cfg_range_ok(off, len) ? get_le(f->cfg + off, len) : 0;
}

void pci_cfg_set(struct pci_func *f, unsigned off, uint32_t value, unsigned len)
{
    if (cfg_range_ok(off, len))
        put_le(f->cfg + off, value, len);
}

void pci_cfg_set_wmask(struct pci_func *f, unsigned off, uint32_t mask, unsigned len)
{
    if (cfg_range_ok(off, len))
        put_le(f->wmask + off, mask, len);
}

void pci_cfg_set_w1cmask(struct pci_func *f, unsigned off, uint32_t mask, unsigned len)
{
    if (cfg_range_ok(off, len))
        put_le(f->w1cmask + off, mask, len);
}

/* ---- functions -------------------------------------------------------- */

static void init_header(struct pci_func *f, const struct pci_id *id)
{
    pci_cfg_set(f, PCI_VENDOR_ID, id->vendor, 2);
    pci_cfg_set(f, PCI_DEVICE_ID, id->device, 2);
    pci_cfg_set(f, PCI_REVISION_ID, id->revision, 1);
    pci_cfg_set(f, PCI_CLASS_PROG, id->class_code & 0xff, 1);
    pci_cfg_set(f, PCI_CLASS_DEVICE, (id->class_code >> 8) & 0xffff, 2);
    pci_cfg_set(f, PCI_SUBSYSTEM_VENDOR_ID, id->subsys_vendor, 2);
    pci_cfg_set(f, PCI_SUBSYSTEM_ID, id->subsys_id, 2);
    /* What software may change in the header; everything else (IDs,
     * class, header type, BIST, ROM BAR, capability pointer, Interrupt
     * Pin) is read-only. */
    pci_cfg_set_wmask(f, PCI_COMMAND,
                      PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                          PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE,
                      2);
    /* Master/target abort, parity and SERR bits: we never set them, but a
     * driver clearing them must see them clear. */
    pci_cfg_set_w1cmask(f, PCI_STATUS, 0xf900, 2);
    pci_cfg_set_wmask(f, PCI_CACHE_LINE_SIZE, 0xff, 1);
    pci_cfg_set_wmask(f, PCI_LATENCY_TIMER, 0xff, 1);
    pci_cfg_set_wmask(f, PCI_INTERRUPT_LINE, 0xff, 1);
    f->cap_end = CAP_START;
}

struct pci_func *pci_func_new(struct pci_host *h, int devfn, const struct pci_id *id,
                              const struct pci_func_ops *ops, void *opaque)
{
    if (devfn < 0) {
        for (unsigned slot = 0; slot < 32 && devfn < 0; slot++) {
            bool used = false;
            for (unsigned fn = 0; fn < 8; fn++)
                used |= h->funcs[PCI_DEVFN(slot, fn)] != NULL;
            if (!used)
                devfn = (int)PCI_DEVFN(slot, 0);
        }
        if (devfn < 0)
            return NULL;
    }
    if (devfn >= MAX_FUNCS || h->funcs[devfn])
        return NULL;
    struct pci_func *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->host = h;
    f->devfn = (unsigned)devfn;
    f->ops = ops;
    f->opaque = opaque;
    init_header(f, id);
    h->funcs[devfn] = f;
    h->list[h->nfuncs++] = f;

    /* Software scans functions 1..7 only if function 0 says the device
     * has several. */
    struct pci_func *fn0 = h->funcs[devfn & ~7];
    for (unsigned fn = 1; fn0 && fn < 8; fn++)
        if (h->funcs[(devfn & ~7) + (int)fn])
            fn0->cfg[PCI_HEADER_TYPE] |= PCI_HEADER_TYPE_MULTI;
    return f;
}

unsigned pci_func_devfn(const struct pci_func *f)
{
    return f->devfn;
}

void pci_func_remove(struct pci_func *f)
{
    if (!f)
        return;
    struct pci_host *h = f->host;
    pthread_mutex_lock(&h->cfg_lock);
    pthread_rwlock_wrlock(&h->map_lock);
    h->funcs[f->devfn] = NULL;
    for (unsigned i = 0; i < h->nfuncs; i++) {
        if (h->list[i] == f) {
            memmove(&h->list[i], &h->list[i + 1], (h->nfuncs - i - 1) * sizeof h->list[0]);
            h->nfuncs--;
            break;
        }
    }
    pthread_rwlock_unlock(&h->map_lock);
    pthread_mutex_unlock(&h->cfg_lock);
    free(f);
}

int pci_func_add_bar(struct pci_func *f, unsigned bar, uint64_t size, unsigned flags)
{
    struct pci_host *h = f->host;
    bool is64 = flags & PCI_BAR_MEM_TYPE_64;
    if (bar >= PCI_NUM_BARS || (is64 && bar + 1 >= PCI_NUM_BARS))
        return -1;
    if (size < 16 || (size & (size - 1)) || size > h->window_size)
        return -1;
    if (f->bar_size[bar] || (bar > 0 && f->bar_64[bar - 1]) || (is64 && f->bar_size[bar + 1]))
        return -1;

    uint64_t at = (h->next_bar + size - 1) & ~(size - 1);
    if (at < h->next_bar || at - h->window > h->window_size - size)
        return -1;
    h->next_bar = at + size;

    f->bar_size[bar] = size;
    f->bar_64[bar] = is64;
    f->bar_assigned[bar] = at;
    unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint32_t type = (is64 ? PCI_BAR_MEM_TYPE_64 : 0) | (flags & PCI_BAR_MEM_PREFETCH);
    /* The low 4 bits say what the BAR is; the address bits below the
     * size read back as 0, which is how software sizes it. */
    pci_cfg_set(f, off, (uint32_t)at | type, 4);
    pci_cfg_set_wmask(f, off, (uint32_t) ~(size - 1) & ~0xfu, 4);
    if (is64) {
        pci_cfg_set(f, off + 4, (uint32_t)(at >> 32), 4);
        pci_cfg_set_wmask(f, off + 4, 0xffffffffu, 4);
    }
    return 0;
}

uint64_t pci_func_bar_assigned(const struct pci_func *f, unsigned bar)
{
    return bar < PCI_NUM_BARS ? f->bar_assigned[bar] : 0;
}

uint64_t pci_func_bar_gpa(struct pci_func *f, unsigned bar)
{
    if (bar >= PCI_NUM_BARS)
        return 0;
    pthread_rwlock_rdlock(&f->host->map_lock);
    uint64_t gpa = f->bar_gpa[bar];
    pthread_rwlock_unlock(&f->host->map_lock);
    return gpa;
}

int pci_func_add_cap(struct pci_func *f, uint8_t id, unsigned len)
{
    unsigned at = (f->cap_end + 3) & ~3u;
    if (len < 2 || at + len > PCI_CFG_SPACE_SIZE)
        return -1;
    f->cfg[at] = id;
    f->cfg[at + 1] = 0; /* end of list */
    if (f->cap_last)
        f->cfg[f->cap_last + 1] = (uint8_t)at;
    else
        f->cfg[PCI_CAPABILITY_LIST] = (uint8_t)at;
    f->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    f->cap_last = at;
    f->cap_end = at + len;
    return (int)at;
}

/* ---- BAR decoding ----------------------------------------------------- */

/* Where BAR bar decodes given the current header: memory space on and the
 * whole BAR inside the window, or 0. Config lock held. */
static uint64_t bar_decode(const struct pci_func *f, unsigned bar)
{
    const struct pci_host *h = f->host;
    uint64_t size = f->bar_size[bar];
    if (!size || !(pci_cfg_get(f, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY))
        return 0;
    unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
    uint64_t addr = pci_cfg_get(f, off, 4) & ~0xfu;
    if (f->bar_64[bar])
        addr |= (uint64_t)pci_cfg_get(f, off + 4, 4) << 32;
    if (addr < h->window || addr - h->window > h->window_size - size)
        return 0;
    return addr;
}

/* After a write to the command register or a BAR: moves the decode map,
 * then tells the function which of its BARs moved. Config lock held. */
static void update_bars(struct pci_func *f)
{
    uint64_t old[PCI_NUM_BARS], now[PCI_NUM_BARS];
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        now[i] = bar_decode(f, i);
    pthread_rwlock_wrlock(&f->host->map_lock);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        old[i] = f->bar_gpa[i];
        f->bar_gpa[i] = now[i];
    }
    pthread_rwlock_unlock(&f->host->map_lock);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        if (old[i] != now[i] && f->ops && f->ops->bar_remap)
            f->ops->bar_remap(f->opaque, i, old[i], now[i]);
}

/* ---- configuration accesses ------------------------------------------ */

static bool overlaps(unsigned off, unsigned len, unsigned start, unsigned end)
{
    return off < end && start < off + len;
}

/* Config lock held. */
static uint32_t config_read(struct pci_func *f, unsigned off, unsigned len)
{
    if (f->ops && f->ops->config_read)
        f->ops->config_read(f->opaque, f, off, len);
    return get_le(f->cfg + off, len);
}

static void config_write(struct pci_func *f, unsigned off, uint32_t value, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        uint8_t v = (uint8_t)(value >> (8 * i));
        uint8_t *b = &f->cfg[off + i];
        *b = (uint8_t)((*b & ~f->wmask[off + i]) | (v & f->wmask[off + i]));
        *b &= (uint8_t) ~(v & f->w1cmask[off + i]);
    }
    if (overlaps(off, len, PCI_COMMAND, PCI_COMMAND + 2) ||
        overlaps(off, len, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS))
        update_bars(f);
    if (f->ops && f->ops->config_write)
        f->ops->config_write(f->opaque, f, off, len);
}

/* One access from either mechanism; len 1, 2 or 4 and naturally aligned
 * (the callers check). data is little-endian. */
static void config_access(struct pci_host *h, unsigned bus, unsigned devfn, unsigned off,
                          uint8_t *data, unsigned len, bool is_write)
{
    pthread_mutex_lock(&h->cfg_lock);
    struct pci_func *f = bus == 0 && devfn < MAX_FUNCS ? h->funcs[devfn] : NULL;
    if (f) {
        if (is_write)
            config_write(f, off, get_le(data, len), len);
        else
            put_le(data, config_read(f, off, len), len);
    }
    pthread_mutex_unlock(&h->cfg_lock);
}

void pci_host_cf8_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct pci_host *h = opaque;

    if (offset < 4) {
        /* CONFIG_ADDRESS is a dword register; byte and word accesses to
         * 0xcf8..0xcfb are other (legacy) registers we do not have, such
         * as the 0xcfb mechanism selector Linux pokes while probing. */
        if (offset != 0 || len != 4)
            return;
        pthread_mutex_lock(&h->cfg_lock);
        if (is_write)
            h->cf8 = get_le(data, 4) & CF8_WRITABLE;
        else
            put_le(data, h->cf8, 4);
        pthread_mutex_unlock(&h->cfg_lock);
        return;
    }

    /* CONFIG_DATA: the port's offset in 0xcfc..0xcff picks the byte lanes
     * of the addressed dword. */
    unsigned lane = (unsigned)(offset - 4);
    if (offset >= 8 || (len != 1 && len != 2 && len != 4) || lane % len)
        return;
    pthread_mutex_lock(&h->cfg_lock);
    uint32_t a = h->cf8;
    pthread_mutex_unlock(&h->cfg_lock);
    if (!(a & CF8_ENABLE))
        return;
    /* Another vCPU may rewrite CONFIG_ADDRESS in between: the guest
     * serializes its own pairs (Linux's pci_config_lock); we only need
     * each access to be consistent. */
    unsigned reg = (a & 0xfc) | ((a & CF8_EXT_REG_MASK) >> 16);
    config_access(h, (a >> 16) & 0xff, (a >> 8) & 0xff, reg + lane, data, len, is_write);
}

void pci_host_ecam_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct pci_host *h = opaque;
    unsigned bus = (unsigned)(offset >> 20);
    unsigned devfn = (unsigned)(offset >> 12) & 0xff;
    unsigned reg = (unsigned)offset & 0xfff;

    if (len == 8 && reg % 8 == 0) {
        /* A 64-bit access is two dword accesses, low first. */
        config_access(h, bus, devfn, reg, data, 4, is_write);
        config_access(h, bus, devfn, reg + 4, data + 4, 4, is_write);
        return;
    }
    if ((len != 1 && len != 2 && len != 4) || reg % len)
        return;
    config_access(h, bus, devfn, reg, data, len, is_write);
}

void pci_host_window_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct pci_host *h = opaque;
    uint64_t addr = h->window + offset;
    struct pci_func *hit = NULL;
    unsigned bar = 0;
    uint64_t bar_off = 0;

    pthread_rwlock_rdlock(&h->map_lock);
    for (unsigned i = 0; i < h->nfuncs && !hit; i++) {
        struct pci_func *f = h->list[i];
        for (unsigned b = 0; b < PCI_NUM_BARS; b++) {
            uint64_t base = f->bar_gpa[b];
            if (base && addr >= base && addr - base < f->bar_size[b]) {
                hit = f;
                bar = b;
                bar_off = addr - base;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&h->map_lock);

    /* Functions live as long as the host, so the handler may run unlocked;
     * an access racing a BAR move lands at the old place, as on hardware. */
    if (!hit || !hit->ops || !hit->ops->bar_access || len > hit->bar_size[bar] - bar_off)
        return;
    hit->ops->bar_access(hit->opaque, bar, bar_off, data, len, is_write);
}

/* ---- the host --------------------------------------------------------- */

struct pci_host *pci_host_new(uint64_t window, uint64_t window_size)
{
    if (!window_size || window + window_size < window)
        return NULL;
    struct pci_host *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->window = window;
    h->window_size = window_size;
    h->next_bar = window;
    pthread_mutex_init(&h->cfg_lock, NULL);
    pthread_rwlock_init(&h->map_lock, NULL);
    static const struct pci_id bridge = {
        .vendor = PCI_HOST_VENDOR,
        .device = PCI_HOST_DEVICE,
        .class_code = PCI_CLASS_BRIDGE_HOST,
    };
    /* Linux's conf1 probe looks for a host bridge or VGA class on bus 0. */
    if (!pci_func_new(h, 0, &bridge, NULL, NULL)) {
        pci_host_free(h);
        return NULL;
    }
    return h;
}

void pci_host_free(struct pci_host *h)
{
    if (!h)
        return;
    for (unsigned i = 0; i < h->nfuncs; i++)
        free(h->list[i]);
    pthread_rwlock_destroy(&h->map_lock);
    pthread_mutex_destroy(&h->cfg_lock);
    free(h);
}

int pci_host_attach(struct pci_host *h, struct bus *pio, struct bus *mmio, uint64_t ecam)
{
    if (bus_register(pio, 0xcf8, 8, pci_host_cf8_pio, h) < 0 ||
        bus_register(mmio, ecam, 1u << 20, pci_host_ecam_mmio, h) < 0 ||
        bus_register(mmio, h->window, h->window_size, pci_host_window_mmio, h) < 0)
        return -1;
    return 0;
}

/* ---- snapshots -------------------------------------------------------- */

void pci_host_save(struct pci_host *h, struct pci_host_state *st)
{
    pthread_mutex_lock(&h->cfg_lock);
    st->cf8 = h->cf8;
    st->nfuncs = h->nfuncs;
    pthread_mutex_unlock(&h->cfg_lock);
}

int pci_host_restore(struct pci_host *h, const struct pci_host_state *st)
{
    if ((st->cf8 & ~CF8_WRITABLE) || st->nfuncs != h->nfuncs)
        return -1;
    pthread_mutex_lock(&h->cfg_lock);
    h->cf8 = st->cf8;
    pthread_mutex_unlock(&h->cfg_lock);
    return 0;
}

struct pci_func *pci_host_func(struct pci_host *h, unsigned devfn)
{
    return devfn < MAX_FUNCS ? h->funcs[devfn] : NULL;
}

void pci_func_save(const struct pci_func *f, uint8_t *cfg)
{
    pthread_mutex_lock(&f->host->cfg_lock);
    memcpy(cfg, f->cfg, sizeof f->cfg);
    pthread_mutex_unlock(&f->host->cfg_lock);
}

int pci_func_restore(struct pci_func *f, const uint8_t *cfg)
{
    pthread_mutex_lock(&f->host->cfg_lock);
    for (unsigned i = 0; i < sizeof f->cfg; i++)
        f->cfg[i] = (uint8_t)((f->cfg[i] & ~f->wmask[i]) | (cfg[i] & f->wmask[i]));
    /* The BARs decode where the guest had put them (if memory space is
     * on and they lie in the window, as for its own writes), and the
     * function moves what follows them (ioeventfds). */
    update_bars(f);
    pthread_mutex_unlock(&f->host->cfg_lock);
    return 0;
}
