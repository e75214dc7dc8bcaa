/* ACPI tables for a stock Linux guest booted without firmware.
 *
 * Implements, from ACPI 6.4:
 *   5.2.3.2  Generic Address Structure
 *   5.2.5.3  Root System Description Pointer (RSDP) structure
 *   5.2.6    System description table header
 *   5.2.8    Extended System Description Table (XSDT)
 *   5.2.9    Fixed ACPI Description Table (FADT): 5.2.9.1 fixed feature
 *            flags, 5.2.9.3 IA-PC boot architecture flags
 *   5.2.10   Firmware ACPI Control Structure (FACS)
 *   5.2.11.1 Differentiated System Description Table (DSDT)
 *   5.2.12   Multiple APIC Description Table (MADT): 5.2.12.2 processor local
 *            APIC, 5.2.12.3 I/O APIC, 5.2.12.5 interrupt source override,
 *            5.2.12.7 local APIC NMI
 *   7.4.2    \_S5 system state package (SLP_TYP for soft-off)
 *   6.1.5 _HID, 6.1.12 _UID, 6.3.7 _STA, 6.2.2 _CRS for the COM1 device
 *   6.1.2 _CID, 6.5.5 _BBN, 6.5.6 _SEG for the PCI root bridge \_SB.PCI0
 *            (PNP0A08/PNP0A03), whose _CRS gives bus 0, the config ports
 *            it consumes and the I/O and memory windows it produces
 *   5.6.9    Generic Event Device (\_SB.GED0, ACPI0013: _CRS, _EVT) and
 *            5.6.6 device object notifications, for \_SB.VGEN, the VM
 *            generation ID device of Microsoft's "Virtual Machine
 *            Generation ID" (_HID/_CID, ADDR)
 * and from the PCI Firmware Specification 3.2, 4.1.2 MCFG table (ECAM
 * base for segment 0, bus 0), with 4.1.2's requirement that the range be
 * reserved by a motherboard resource (PNP0C02) met in the DSDT.
 *
 * Layout inside the buffer: RSDP at 0 (so a legacy scan of 0xe0000 finds
 * it), FACS at the next 64-byte boundary (the FACS must be 64-byte
 * aligned), then DSDT, FADT, MADT, MCFG (with PCI) and XSDT, each 16-byte
 * aligned.
 *
 * No _OSC on PCI0: without it Linux keeps PCIe native hotplug, AER, PME,
 * LTR and DPC off and disables ASPM ("platform retains control"), none of
 * which this machine has; config space, MSI and MSI-X do not depend on it.
 * No _PRT either: every PCI function here interrupts by MSI-X only
 * (Interrupt Pin 0), which Linux's virtio_pci accepts.
 */
#include "x86/acpi.h"

#include <string.h>

#include "layout.h"
#include "x86/aml.h"

#define OEM_ID           "VMLET "
#define OEM_TABLE_ID     "VMLETVM "
#define OEM_REVISION     1
#define CREATOR_ID       "VMLT"
#define CREATOR_REVISION 1

#define MAX_CPUS 255 /* APIC IDs 0..254 in 8-bit MADT entries (no x2APIC) */

#define SDT_HEADER_LEN  36
#define RSDP_LEN        36
#define RSDP_V1_LEN     20 /* the part the legacy checksum covers */
#define FACS_LEN        64
#define FADT_LEN        276 /* revision 6 */
#define MADT_HEADER_LEN 44
#define MCFG_LEN        (SDT_HEADER_LEN + 8 + 16) /* one allocation */

/* Table revisions for ACPI 6.4. */
#define RSDP_REVISION 2
#define XSDT_REVISION 1
#define FADT_REVISION 6
#define FADT_MINOR    4
#define MADT_REVISION 5
#define DSDT_REVISION 2 /* 2+: AML integers are 64 bits */
#define MCFG_REVISION 1
#define FACS_VERSION  2

/* FADT field offsets (5.2.9). */
enum {
    FADT_FIRMWARE_CTRL = 36,
    FADT_DSDT = 40,
    FADT_PM_PROFILE = 45,
    FADT_SCI_INT = 46,
    FADT_SMI_CMD = 48,
    FADT_PM1A_EVT_BLK = 56,
    FADT_PM1A_CNT_BLK = 64,
    FADT_PM1_EVT_LEN = 88,
    FADT_PM1_CNT_LEN = 89,
    FADT_PM_TMR_LEN = 91,
    FADT_P_LVL2_LAT = 96,
    FADT_P_LVL3_LAT = 98,
    FADT_IAPC_BOOT_ARCH = 109,
    FADT_FLAGS = 112,
    FADT_RESET_REG = 116,
    FADT_RESET_VALUE = 128,
    FADT_MINOR_VERSION = 131,
    FADT_X_FIRMWARE_CTRL = 132,
    FADT_X_DSDT = 140,
    FADT_X_PM1A_EVT_BLK = 148,
    FADT_X_PM1A_CNT_BLK = 172,
};

/* FADT fixed feature flags (5.2.9.1). */
#define FADT_F_WBINVD        (1u << 0)
#define FADT_F_PWR_BUTTON    (1u << 4) /* set = no fixed power button */
#define FADT_F_SLP_BUTTON    (1u << 5) /* set = no fixed sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)

/* IA-PC boot architecture flags (5.2.9.3). */
#define IAPC_LEGACY_DEVICES       (1u << 0)
#define IAPC_8042                 (1u << 1)
#define IAPC_VGA_NOT_PRESENT      (1u << 2)
#define IAPC_MSI_NOT_SUPPORTED    (1u << 3)
#define IAPC_PCIE_ASPM_CONTROLS   (1u << 4)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

/* C2/C3 latencies above these limits mean "not supported" (5.2.9). */
#define P_LVL2_LAT_NONE 101
#define P_LVL3_LAT_NONE 1001

/* Generic Address Structure (5.2.3.2). */
#define GAS_LEN         12
#define GAS_SYSTEM_IO   1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2

/* MADT (5.2.12). */
#define MADT_PCAT_COMPAT   (1u << 0)
#define MADT_LAPIC         0
#define MADT_LAPIC_LEN     8
#define MADT_IOAPIC        1
#define MADT_IOAPIC_LEN    12
#define MADT_ISO           2
#define MADT_ISO_LEN       10
#define MADT_LAPIC_NMI     4
#define MADT_LAPIC_NMI_LEN 6
#define MADT_LAPIC_ENABLED (1u << 0)
/* MPS INTI flags (5.2.12.5): polarity bits 1:0, trigger mode bits 3:2. */
#define MPS_ACTIVE_HIGH    0x1
#define MPS_LEVEL          (0x3 << 2)

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* The byte that makes p[0..n) sum to zero, assuming it is currently 0. */
static uint8_t checksum(const uint8_t *p, size_t n)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + p[i]);
    return (uint8_t)-sum;
}

struct out {
    uint8_t *buf;
    size_t size;
    size_t used;
    uint64_t gpa;
};

/* Claims len bytes at the next multiple of align, or returns NULL if they
 * would not fit: every table goes through here, so nothing is ever
 * written past size. The bytes and the padding before them are zeroed so
 * the output does not depend on what buf held. */
static uint8_t *reserve(struct out *o, size_t len, size_t align, size_t *off)
{
    size_t at = (o->used + align - 1) & ~(align - 1);
    if (at < o->used || at > o->size || len > o->size - at)
        return NULL;
    memset(o->buf + o->used, 0, at + len - o->used);
    o->used = at + len;
    *off = at;
    return o->buf + at;
}

/* Legacy 32-bit pointer fields can only hold addresses below 4 GiB; above
 * that they stay zero and the 64-bit X_ field alone is used. */
static uint32_t addr32(uint64_t addr)
{
    return addr <= UINT32_MAX ? (uint32_t)addr : 0;
}

static void sdt_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    put32(t + 4, len);
    t[8] = rev;
    t[9] = 0; /* checksum, set by sdt_checksum() */
    memcpy(t + 10, OEM_ID, 6);
    memcpy(t + 16, OEM_TABLE_ID, 8);
    put32(t + 24, OEM_REVISION);
    memcpy(t + 28, CREATOR_ID, 4);
    put32(t + 32, CREATOR_REVISION);
}

static void sdt_checksum(uint8_t *t, size_t len)
{
    t[9] = 0;
    t[9] = checksum(t, len);
}

static void put_gas(uint8_t *p, uint8_t space, uint8_t bit_width, uint8_t access, uint64_t addr)
{
    p[0] = space;
    p[1] = bit_width;
    p[2] = 0; /* bit offset */
    p[3] = access;
    put64(p + 4, addr);
}

static int build_facs(struct out *o, uint64_t *addr)
{
    size_t off;
    uint8_t *t = reserve(o, FACS_LEN, 64, &off);
    if (!t)
        return -1;
    /* No checksum and no S4BIOS/64-bit wake support: the guest never
     * sleeps, but Linux maps the FACS and expects it to exist. */
    memcpy(t, "FACS", 4);
    put32(t + 4, FACS_LEN);
    t[32] = FACS_VERSION;
    *addr = o->gpa + off;
    return 0;
}

/* \_SB.PCI0, the root bridge of the host in src/dev/pci.c, and \_SB.ECAM,
 * the motherboard resource Linux checks before it uses the MCFG range. */
static void dsdt_pci(struct aml *a)
{
    aml_device_begin(a, "PCI0");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0A08"); /* PCI Express root bridge */
    aml_name(a, "_CID");
    aml_eisaid(a, "PNP0A03"); /* PCI root bridge */
    aml_name(a, "_SEG");
    aml_integer(a, 0);
    aml_name(a, "_BBN");
    aml_integer(a, 0);
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_name(a, "_CRS");
    aml_resources_begin(a);
    aml_word_bus_number(a, 0, 0);
    /* Consumed by the bridge itself (Linux drops it from the windows). */
    aml_io(a, PORT_PCI_CONFIG, PORT_PCI_CONFIG, 1, PORT_PCI_CONFIG_LEN);
    /* All other ports pass through, as on a PC: the legacy devices are
     * described on their own. */
    aml_word_io(a, 0x0000, PORT_PCI_CONFIG - 1);
    aml_word_io(a, PORT_PCI_CONFIG + PORT_PCI_CONFIG_LEN, 0xffff);
    /* Linux keeps the BAR addresses the host assigned because they lie in
     * this window. */
    aml_dword_memory(a, (uint32_t)GUEST_PCI_MMIO_START,
                     (uint32_t)(GUEST_PCI_MMIO_START + GUEST_PCI_MMIO_SIZE - 1), false);
    aml_end(a); /* _CRS */
    aml_end(a); /* PCI0 */

    aml_device_begin(a, "ECAM");
    aml_name(a, "_HID");
    aml_eisaid(a, "PNP0C02"); /* motherboard resources */
    aml_name(a, "_UID");
    aml_integer(a, 1);
    aml_name(a, "_CRS");
    aml_resources_begin(a);
    aml_memory32_fixed(a, (uint32_t)GUEST_PCI_ECAM_START, (uint32_t)GUEST_PCI_ECAM_SIZE, true);
    aml_end(a); /* _CRS */
    aml_end(a); /* ECAM */
}

/* The VM generation ID (Microsoft's "Virtual Machine Generation ID"
 * paper; Linux's drivers/virt/vmgenid.c): a device whose ADDR package
 * gives the guest-physical address of the 16-byte ID, and a Generic Event
 * Device (ACPI 6.4 5.6.9, ACPI0013) whose edge interrupt runs _EVT, which
 * notifies the device (0x80) so the driver reads the ID again. */
static void dsdt_vmgenid(struct aml *a)
{
    aml_device_begin(a, "VGEN");
    aml_name(a, "_HID");
    aml_string(a, "VMLT0001");
    aml_name(a, "_CID");
    aml_string(a, "VM_Gen_Counter"); /* what guests match (ACPICA upcases it) */
    aml_name(a, "_DDN");
    aml_string(a, "VM_Gen_Counter");
    aml_name(a, "ADDR");
    aml_package_begin(a);
    aml_integer(a, GUEST_VMGENID_ADDR & 0xffffffffULL); /* low, high dwords */
    aml_integer(a, GUEST_VMGENID_ADDR >> 32);
    aml_end(a); /* ADDR */
    aml_end(a); /* VGEN */

    aml_device_begin(a, "GED0");
    aml_name(a, "_HID");
    aml_string(a, "ACPI0013");
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_name(a, "_CRS");
    aml_resources_begin(a);
    aml_interrupt(a, GSI_ACPI_GED, true);
    aml_end(a); /* _CRS */
    aml_method_begin(a, "_EVT", 1);
    aml_notify(a, "\\_SB.VGEN", 0x80);
    aml_end(a); /* _EVT */
    aml_end(a); /* GED0 */
}

static int build_dsdt(struct out *o, const struct acpi_machine *m, uint64_t *addr)
{
    size_t off;
    uint8_t *t = reserve(o, SDT_HEADER_LEN, 16, &off);
    if (!t)
        return -1;

    /* The AML body goes straight after the header, bounded by what is
     * left of the buffer. */
    struct aml a;
    aml_init(&a, t + SDT_HEADER_LEN, o->size - o->used);

    /* Soft-off: Linux writes SLP_TYPa (element 0) with SLP_EN to PM1a_CNT. */
    aml_name(&a, "\\_S5");
    aml_package_begin(&a);
    aml_integer(&a, ACPI_SLP_TYP_S5); /* SLP_TYPa */
    aml_integer(&a, ACPI_SLP_TYP_S5); /* SLP_TYPb (no PM1b block) */
    aml_integer(&a, 0);               /* reserved */
    aml_integer(&a, 0);               /* reserved */
    aml_end(&a);

    /* COM1 described in the namespace so the 8250 PNP driver claims it
     * with the right port and IRQ. */
    aml_scope_begin(&a, "\\_SB");
    aml_device_begin(&a, "COM1");
    aml_name(&a, "_HID");
    aml_eisaid(&a, "PNP0501"); /* 16550A-compatible UART */
    aml_name(&a, "_UID");
    aml_integer(&a, 1);
    aml_name(&a, "_STA");
    aml_integer(&a, 0xf); /* present, enabled, shown, working */
    aml_name(&a, "_CRS");
    aml_resources_begin(&a);
    aml_io(&a, PORT_COM1, PORT_COM1, 0, PORT_COM1_LEN);
    aml_irq_noflags(&a, 1u << IRQ_COM1);
    aml_end(&a); /* _CRS */
    aml_end(&a); /* COM1 */
    if (m->pci)
        dsdt_pci(&a);
    if (m->vmgenid)
        dsdt_vmgenid(&a);
    aml_end(&a); /* \_SB */

    if (!aml_ok(&a))
        return -1;
    o->used += aml_len(&a);

    size_t len = SDT_HEADER_LEN + aml_len(&a);
    sdt_header(t, "DSDT", (uint32_t)len, DSDT_REVISION);
    sdt_checksum(t, len);
    *addr = o->gpa + off;
    return 0;
}

static int build_fadt(struct out *o, uint64_t facs, uint64_t dsdt, uint64_t *addr)
{
    size_t off;
    uint8_t *t = reserve(o, FADT_LEN, 16, &off);
    if (!t)
        return -1;

    sdt_header(t, "FACP", FADT_LEN, FADT_REVISION);

    /* Only X_FIRMWARE_CTRL: the spec allows at most one FACS pointer to
     * be non-zero. Both DSDT fields may be set, and must then agree. */
    put32(t + FADT_FIRMWARE_CTRL, 0);
    put64(t + FADT_X_FIRMWARE_CTRL, facs);
    put32(t + FADT_DSDT, addr32(dsdt));
    put64(t + FADT_X_DSDT, dsdt);

    t[FADT_PM_PROFILE] = 0; /* unspecified */
    put16(t + FADT_SCI_INT, IRQ_ACPI_SCI);
    /* SMI_CMD = 0: no SMM, the hardware is always in ACPI mode (SCI_EN
     * reads as 1), so ACPI_ENABLE/ACPI_DISABLE stay 0 too. */
    put32(t + FADT_SMI_CMD, 0);

    put32(t + FADT_PM1A_EVT_BLK, PORT_ACPI_PM1A_EVT);
    put32(t + FADT_PM1A_CNT_BLK, PORT_ACPI_PM1A_CNT);
    t[FADT_PM1_EVT_LEN] = PORT_ACPI_PM1A_EVT_LEN;
    t[FADT_PM1_CNT_LEN] = PORT_ACPI_PM1A_CNT_LEN;
    t[FADT_PM_TMR_LEN] = 0; /* no PM timer; the guest uses the TSC/kvm-clock */
    /* The 64-bit blocks must match the legacy ones; ACPICA checks that
     * bit_width == 8 * length. Status/enable and control are 16-bit
     * registers, hence word access. */
    put_gas(t + FADT_X_PM1A_EVT_BLK, GAS_SYSTEM_IO, PORT_ACPI_PM1A_EVT_LEN * 8, GAS_ACCESS_WORD,
            PORT_ACPI_PM1A_EVT);
    put_gas(t + FADT_X_PM1A_CNT_BLK, GAS_SYSTEM_IO, PORT_ACPI_PM1A_CNT_LEN * 8, GAS_ACCESS_WORD,
            PORT_ACPI_PM1A_CNT);

    /* No C2/C3: the guest idles with HLT (C1). */
    put16(t + FADT_P_LVL2_LAT, P_LVL2_LAT_NONE);
    put16(t + FADT_P_LVL3_LAT, P_LVL3_LAT_NONE);

    /* No VGA, no CMOS RTC, no 8042 (Linux then skips probing them), and
     * the OS must leave PCIe ASPM alone. MSI stays allowed for
     * virtio-pci MSI-X. */
    put16(t + FADT_IAPC_BOOT_ARCH,
          IAPC_VGA_NOT_PRESENT | IAPC_PCIE_ASPM_CONTROLS | IAPC_CMOS_RTC_NOT_PRESENT);

    /* Fixed power button present (PWR_BUTTON clear), no sleep button;
     * reboot through the reset register. */
    put32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP);
    /* Linux only uses a reset register that is 8 bits wide at offset 0. */
    put_gas(t + FADT_RESET_REG, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE, PORT_ACPI_RESET);
    t[FADT_RESET_VALUE] = ACPI_RESET_VALUE;
    t[FADT_MINOR_VERSION] = FADT_MINOR; /* FADT 6.4; errata 0 */

    sdt_checksum(t, FADT_LEN);
    *addr = o->gpa + off;
    return 0;
}

static int build_madt(struct out *o, unsigned ncpus, uint64_t *addr)
{
    size_t len = MADT_HEADER_LEN + ncpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN + MADT_ISO_LEN +
                 MADT_LAPIC_NMI_LEN;
    size_t off;
    uint8_t *t = reserve(o, len, 16, &off);
    if (!t)
        return -1;

    sdt_header(t, "APIC", (uint32_t)len, MADT_REVISION);
    put32(t + 36, (uint32_t)GUEST_LAPIC_ADDR);
    /* PCAT_COMPAT: there are 8259 PICs (KVM's in-kernel irqchip) that
     * Linux must mask before using the I/O APIC. */
    put32(t + 40, MADT_PCAT_COMPAT);

    uint8_t *e = t + MADT_HEADER_LEN;
    for (unsigned i = 0; i < ncpus; i++, e += MADT_LAPIC_LEN) {
        e[0] = MADT_LAPIC;
        e[1] = MADT_LAPIC_LEN;
        e[2] = (uint8_t)i; /* ACPI processor UID */
        e[3] = (uint8_t)i; /* APIC ID: KVM numbers vCPUs from 0 */
        put32(e + 4, MADT_LAPIC_ENABLED);
    }

    /* The ID only has to differ from the local APIC IDs. */
    e[0] = MADT_IOAPIC;
    e[1] = MADT_IOAPIC_LEN;
    e[2] = (uint8_t)ncpus;
    put32(e + 4, (uint32_t)GUEST_IOAPIC_ADDR);
    put32(e + 8, 0); /* GSI base: pins 0..23 are GSIs 0..23 */
    e += MADT_IOAPIC_LEN;

    /* The SCI is level-triggered, active-high (ISA IRQs default to edge).
     * No override for IRQ 0: KVM routes it to pin 0, the identity. */
    e[0] = MADT_ISO;
    e[1] = MADT_ISO_LEN;
    e[2] = 0; /* bus: ISA */
    e[3] = IRQ_ACPI_SCI;
    put32(e + 4, IRQ_ACPI_SCI);
    put16(e + 8, MPS_ACTIVE_HIGH | MPS_LEVEL);
    e += MADT_ISO_LEN;

    /* NMI arrives on LINT1 of every processor, as on a PC. */
    e[0] = MADT_LAPIC_NMI;
    e[1] = MADT_LAPIC_NMI_LEN;
    e[2] = 0xff;     /* all processors */
    put16(e + 3, 0); /* flags: conforms to the bus */
    e[5] = 1;        /* LINT1 */

    sdt_checksum(t, len);
    *addr = o->gpa + off;
    return 0;
}

static int build_mcfg(struct out *o, uint64_t *addr)
{
    size_t off;
    uint8_t *t = reserve(o, MCFG_LEN, 16, &off);
    if (!t)
        return -1;
    sdt_header(t, "MCFG", MCFG_LEN, MCFG_REVISION);
    /* 8 reserved bytes, then one allocation: base, segment, first and last
     * bus (the bytes reserve() zeroed cover the rest). */
    uint8_t *e = t + SDT_HEADER_LEN + 8;
    put64(e, GUEST_PCI_ECAM_START);
    put16(e + 8, 0);
    e[10] = 0;
    e[11] = (uint8_t)(GUEST_PCI_ECAM_SIZE / (1u << 20) - 1);
    sdt_checksum(t, MCFG_LEN);
    *addr = o->gpa + off;
    return 0;
}

static int build_xsdt(struct out *o, const uint64_t *tables, size_t n, uint64_t *addr)
{
    size_t len = SDT_HEADER_LEN + 8 * n;
    size_t off;
    uint8_t *t = reserve(o, len, 16, &off);
    if (!t)
        return -1;
    sdt_header(t, "XSDT", (uint32_t)len, XSDT_REVISION);
    for (size_t i = 0; i < n; i++)
        put64(t + SDT_HEADER_LEN + 8 * i, tables[i]);
    sdt_checksum(t, len);
    *addr = o->gpa + off;
    return 0;
}

static void build_rsdp(uint8_t *r, uint64_t xsdt)
{
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, OEM_ID, 6);
    r[15] = RSDP_REVISION;
    put32(r + 16, 0); /* no RSDT: revision 2 guests use the XSDT */
    put32(r + 20, RSDP_LEN);
    put64(r + 24, xsdt);
    /* Two checksums: the ACPI 1.0 part, then the whole structure. */
    r[8] = checksum(r, RSDP_V1_LEN);
    r[32] = checksum(r, RSDP_LEN);
}

long acpi_build_tables(uint8_t *buf, uint64_t gpa, size_t size, const struct acpi_machine *m)
{
    struct out o = { .buf = buf, .size = buf ? size : 0, .used = 0, .gpa = gpa };
    uint64_t facs, dsdt, fadt, madt, mcfg = 0, xsdt;
    size_t rsdp_off;

    if (!m || m->ncpus == 0 || m->ncpus > MAX_CPUS)
        return -1;

    /* The RSDP is filled in last, once the XSDT address is known. */
    uint8_t *rsdp = reserve(&o, RSDP_LEN, 16, &rsdp_off);
    if (!rsdp)
        return -1;
    if (build_facs(&o, &facs) < 0 || build_dsdt(&o, m, &dsdt) < 0 ||
        build_fadt(&o, facs, dsdt, &fadt) < 0 || build_madt(&o, m->ncpus, &madt) < 0 ||
        (m->pci && build_mcfg(&o, &mcfg) < 0))
        return -1;

    /* FACS and DSDT are reached through the FADT, not the XSDT. */
    const uint64_t tables[] = { fadt, madt, mcfg };
    if (build_xsdt(&o, tables, m->pci ? 3 : 2, &xsdt) < 0)
        return -1;
    build_rsdp(rsdp, xsdt);
    return (long)o.used;
}
