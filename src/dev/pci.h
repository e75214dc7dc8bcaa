/* PCI host bridge and bus 0: configuration mechanism #1 (ports 0xcf8..0xcff)
 * and ECAM, type 0 configuration headers, BAR placement and decoding.
 *
 * Devices register functions; the host owns their configuration space and
 * applies the guest's writes through per-byte masks (read-only, writable,
 * write-1-to-clear), then tells the function through its hooks. BARs are
 * memory BARs only (32- or 64-bit), placed in the PCI memory window when
 * they are added; the guest may move them. The host claims the whole window
 * on the MMIO bus once and forwards each access to the BAR that decodes it.
 *
 * Locking: one mutex (the config lock) serializes configuration accesses
 * and BAR moves; the decode map is an rwlock, so BAR accesses from several
 * vCPUs run in parallel. Hooks other than bar_access run with the config
 * lock held: they must not call pci_host_* functions (the pci_cfg_*
 * accessors on their own function are fine), and their own locks rank
 * below it. */
#ifndef VMLET_DEV_PCI_H
#define VMLET_DEV_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include "../bus.h"

#define PCI_CFG_SPACE_SIZE     256
#define PCI_CFG_SPACE_EXP_SIZE 4096 /* what ECAM reaches; 256.. read 0 */
#define PCI_NUM_BARS           6
#define PCI_DEVFN(slot, fn)    ((unsigned)(((slot) << 3) | (fn)))

/* Type 0 header offsets (PCI Local Bus 3.0, 6.1). */
#define PCI_VENDOR_ID           0x00
#define PCI_DEVICE_ID           0x02
#define PCI_COMMAND             0x04
#define PCI_STATUS              0x06
#define PCI_REVISION_ID         0x08
#define PCI_CLASS_PROG          0x09
#define PCI_CLASS_DEVICE        0x0a
#define PCI_CACHE_LINE_SIZE     0x0c
#define PCI_LATENCY_TIMER       0x0d
#define PCI_HEADER_TYPE         0x0e
#define PCI_BASE_ADDRESS_0      0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID        0x2e
#define PCI_ROM_ADDRESS         0x30
#define PCI_CAPABILITY_LIST     0x34
#define PCI_INTERRUPT_LINE      0x3c
#define PCI_INTERRUPT_PIN       0x3d

#define PCI_COMMAND_IO           0x0001
#define PCI_COMMAND_MEMORY       0x0002
#define PCI_COMMAND_MASTER       0x0004
#define PCI_COMMAND_PARITY       0x0040
#define PCI_COMMAND_SERR         0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST      0x0010
#define PCI_HEADER_TYPE_MULTI    0x80

#define PCI_BAR_MEM_TYPE_64  0x04
#define PCI_BAR_MEM_PREFETCH 0x08

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* The host bridge at 00:00.0: QEMU's "generic PCIe host bridge" ID, which
 * no Linux quirk matches. */
#define PCI_HOST_VENDOR       0x1b36
#define PCI_HOST_DEVICE       0x0008
#define PCI_CLASS_BRIDGE_HOST 0x060000

struct pci_host;
struct pci_func;

struct pci_id {
    uint16_t vendor, device;
    uint8_t revision;
    uint32_t class_code; /* base class << 16 | subclass << 8 | prog-if */
    uint16_t subsys_vendor, subsys_id;
};

struct pci_func_ops {
    /* An access to [offset, offset + len) of BAR bar, entirely inside it;
     * len 1, 2, 4 or 8; reads come filled with 0xff. Called on a vCPU
     * thread without any PCI lock held. */
    void (*bar_access)(void *opaque, unsigned bar, uint64_t offset, uint8_t *data, uint32_t len,
                       bool is_write);
    /* Where BAR bar decodes changed (0: it no longer decodes, because
     * memory space is disabled or the BAR lies outside the window). For
     * moving ioeventfds along. Config lock held. */
    void (*bar_remap)(void *opaque, unsigned bar, uint64_t old_gpa, uint64_t new_gpa);
    /* Before the guest reads [off, off + len) of config space (to refresh
     * bytes), and after its write was applied through the masks. Config
     * lock held. Optional. */
    void (*config_read)(void *opaque, struct pci_func *f, unsigned off, unsigned len);
    void (*config_write)(void *opaque, struct pci_func *f, unsigned off, unsigned len);
};

/* A host bridge whose BARs go into [window, window + window_size). The
 * bridge itself is 00:00.0. */
struct pci_host *pci_host_new(uint64_t window, uint64_t window_size);
/* After every vCPU has stopped. Frees the functions too (not their
 * opaque device state). */
void pci_host_free(struct pci_host *h);

/* Claims ports 0xcf8..0xcff, the ECAM range at ecam (bus 0: 1 MiB) and the
 * memory window. Returns 0, or -1 if a range is already taken. */
int pci_host_attach(struct pci_host *h, struct bus *pio, struct bus *mmio, uint64_t ecam);

/* bus_handlers behind pci_host_attach (for tests). */
void pci_host_cf8_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void pci_host_ecam_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void pci_host_window_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                          bool is_write);

/* Adds a function at devfn (bus 0), or at function 0 of the next free slot
 * if devfn < 0. ops may be NULL. Returns NULL if the place is taken or out
 * of memory. Build time only. The header starts with memory space
 * disabled and Interrupt Pin 0 (no INTx). */
struct pci_func *pci_func_new(struct pci_host *h, int devfn, const struct pci_id *id,
                              const struct pci_func_ops *ops, void *opaque);
unsigned pci_func_devfn(const struct pci_func *f);
/* Takes f off the bus and frees it (its hooks are not called again). Only
 * while no vCPU runs: at build time, to undo a failed device, or at
 * teardown. */
void pci_func_remove(struct pci_func *f);

/* Memory BAR bar of size bytes (a power of two, 16 bytes to the window
 * size); PCI_BAR_MEM_TYPE_64 takes bar and bar + 1. It is given the next
 * naturally aligned address in the window. Build time only. Returns 0 or
 * -1 (bad index or size, slot taken, window full). */
int pci_func_add_bar(struct pci_func *f, unsigned bar, uint64_t size, unsigned flags);
/* Where BAR bar currently decodes, or 0. Thread-safe. */
uint64_t pci_func_bar_gpa(struct pci_func *f, unsigned bar);
/* The address the bridge gave BAR bar (whether or not it decodes). */
uint64_t pci_func_bar_assigned(const struct pci_func *f, unsigned bar);

/* Appends a capability of len bytes (>= 2) with the given ID to the
 * list, dword aligned in 0x40..0xff; its ID and next pointer are filled in
 * and read-only, the rest is zero and read-only until the caller says
 * otherwise. Returns its offset, or -1 if there is no room. Build time
 * only. */
int pci_func_add_cap(struct pci_func *f, uint8_t id, unsigned len);

/* Raw config space access for the owner of f: at build time, or inside
 * its own hooks. Little-endian, len 1, 2 or 4; out of range does nothing
 * (reads 0). */
uint32_t pci_cfg_get(const struct pci_func *f, unsigned off, unsigned len);
void pci_cfg_set(struct pci_func *f, unsigned off, uint32_t value, unsigned len);
/* Which bits the guest may write, and which it clears by writing 1. */
void pci_cfg_set_wmask(struct pci_func *f, unsigned off, uint32_t mask, unsigned len);
void pci_cfg_set_w1cmask(struct pci_func *f, unsigned off, uint32_t mask, unsigned len);

/* For snapshots: CONFIG_ADDRESS and each function's config space. Only
 * while no vCPU runs. */
struct pci_host_state {
    uint32_t cf8;
    uint32_t nfuncs;
};
void pci_host_save(struct pci_host *h, struct pci_host_state *st);
/* The function at devfn, or NULL. */
struct pci_func *pci_host_func(struct pci_host *h, unsigned devfn);
/* Copies the config space out (PCI_CFG_SPACE_EXP_SIZE bytes). */
void pci_func_save(const struct pci_func *f, uint8_t *cfg);
/* Takes back only what the guest could have written (the write mask): a
 * snapshot cannot change IDs or capabilities. BARs then decode as that
 * header says (bar_remap is called for each that moved), exactly as
 * after the guest's own writes. Always 0. */
int pci_func_restore(struct pci_func *f, const uint8_t *cfg);
int pci_host_restore(struct pci_host *h, const struct pci_host_state *st);
#endif
