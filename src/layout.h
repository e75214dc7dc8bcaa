/* The guest's physical address map and legacy I/O ports, in one place.
 *
 * Every other file takes addresses from here, so the map can be read (and
 * changed) without hunting through device code.
 *
 *   0x0000_0000  real-mode IVT/BDA (left zero)
 *   0x0000_0500  GDT for the 64-bit entry
 *   0x0000_7000  boot_params ("zero page")
 *   0x0000_9000  page tables: PML4, PDPT, 4 x PD (identity map of 0..4 GiB)
 *   0x0002_0000  kernel command line
 *   0x0009_fc00  end of low RAM; 0x9fc00..0x100000 reserved
 *   0x000e_0000  ACPI tables (RSDP first, so a legacy scan also finds it)
 *   0x000f_f000  VM generation ID (16 bytes; the DSDT's \_SB.VGEN points here)
 *   0x0010_0000  protected-mode kernel (bzImage payload)
 *   ...          RAM; initrd at the top of low RAM
 *   0xc000_0000  start of the 32-bit MMIO hole (RAM beyond it moves above 4 GiB)
 *   0xc000_0000  PCI memory window: BARs live here (512 MiB, _CRS of \_SB.PCI0)
 *   0xe000_0000  PCI ECAM, bus 0 only (1 MiB, MCFG)
 *   0xfec0_0000  I/O APIC (in-kernel)
 *   0xfee0_0000  local APICs (in-kernel)
 *   0xfffb_c000  KVM's identity-map page and, from 0xfffb_d000, its 3-page
 *                TSS (what Intel VMX needs for real mode), in the MMIO hole
 *   4 GiB        RAM above the hole
 */
#ifndef VMLET_LAYOUT_H
#define VMLET_LAYOUT_H

#define GUEST_GDT_ADDR         0x500ULL
#define GUEST_BOOT_PARAMS_ADDR 0x7000ULL
#define GUEST_PML4_ADDR        0x9000ULL
#define GUEST_PDPT_ADDR        0xa000ULL
#define GUEST_PD_ADDR          0xb000ULL /* four pages: 0xb000..0xefff */
#define GUEST_CMDLINE_ADDR     0x20000ULL
#define GUEST_CMDLINE_MAX      0x10000ULL /* up to 64 KiB, below EBDA */
#define GUEST_LOW_RAM_END      0x9fc00ULL
#define GUEST_ACPI_ADDR        0xe0000ULL /* RSDP here, then the tables */
#define GUEST_ACPI_SIZE        0x1f000ULL /* up to the generation ID's page */
/* The VM generation ID (src/x86/vmgenid.c): a 128-bit value the guest
 * reads at this address, changed on every restore from a snapshot, with
 * an interrupt on this GSI (an IOAPIC pin no ISA device uses) through the
 * ACPI Generic Event Device. Reserved memory (E820 type 2), not RAM. */
#define GUEST_VMGENID_ADDR     0xff000ULL
#define GUEST_VMGENID_SIZE     16
#define GSI_ACPI_GED           16
#define GUEST_KERNEL_ADDR      0x100000ULL
/* Below this lies everything vmlet itself writes into guest RAM (boot
 * structures, command line, ACPI tables): the balloon never discards it. */
#define GUEST_BALLOON_FLOOR    GUEST_KERNEL_ADDR
#define GUEST_MMIO_HOLE_START  0xc0000000ULL
#define GUEST_HIGH_RAM_START   0x100000000ULL
#define GUEST_IOAPIC_ADDR      0xfec00000ULL
#define GUEST_LAPIC_ADDR       0xfee00000ULL
/* Pages KVM itself uses on Intel hosts (KVM_SET_TSS_ADDR, 3 pages, and
 * KVM_SET_IDENTITY_MAP_ADDR, 1 page): in the hole, away from every BAR. */
#define KVM_TSS_ADDR           0xfffbd000ULL
#define KVM_IDENTITY_MAP_ADDR  0xfffbc000ULL

/* PCI (src/dev/pci.c). BARs are placed in, and only decoded in, the
 * memory window, which the DSDT gives Linux as the root bridge's only
 * memory aperture; ECAM covers bus 0 (32 devices x 8 functions x 4 KiB)
 * and is reserved to the OS by a PNP0C02 device in the DSDT. */
#define GUEST_PCI_MMIO_START 0xc0000000ULL
#define GUEST_PCI_MMIO_SIZE  0x20000000ULL /* up to 0xdfff_ffff */
#define GUEST_PCI_ECAM_START 0xe0000000ULL
#define GUEST_PCI_ECAM_SIZE  0x100000ULL /* bus 0 only */

/* Legacy I/O ports and ISA IRQs. */
#define PORT_COM1              0x3f8
#define PORT_COM1_LEN          8
#define IRQ_COM1               4
#define PORT_I8042_DATA        0x60
#define PORT_I8042_CMD         0x64
/* PCI configuration mechanism #1: address at 0xcf8, data at 0xcfc..0xcff. */
#define PORT_PCI_CONFIG        0xcf8
#define PORT_PCI_CONFIG_LEN    8
/* ACPI fixed hardware (FADT): PM1a event block (status + enable),
 * PM1a control block, and the reset register. */
#define PORT_ACPI_PM1A_EVT     0x600
#define PORT_ACPI_PM1A_EVT_LEN 4
#define PORT_ACPI_PM1A_CNT     0x604
#define PORT_ACPI_PM1A_CNT_LEN 2
#define PORT_ACPI_RESET        0x608
#define ACPI_RESET_VALUE       0x06
#define IRQ_ACPI_SCI           9
/* SLP_TYP value the DSDT's \_S5 package gives for soft-off. */
#define ACPI_SLP_TYP_S5        5

#endif
