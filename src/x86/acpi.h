/* ACPI tables that tell a stock Linux kernel about the machine: how many
 * CPUs (MADT), where the power-management registers are (FADT), how to
 * power off (\_S5 in the DSDT) and reset (FADT reset register), and, with
 * a PCI host bridge, its root bus (\_SB.PCI0) and ECAM (MCFG). */
#ifndef VMLET_X86_ACPI_H
#define VMLET_X86_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acpi_machine {
    unsigned ncpus; /* local APIC IDs 0..ncpus-1 */
    /* A PCI host bridge (src/dev/pci.c) at the layout.h addresses: adds
     * \_SB.PCI0 (bus 0, ports 0xcf8..0xcff, the I/O and memory windows),
     * a PNP0C02 device reserving the ECAM range, and the MCFG table. */
    bool pci;
    /* A VM generation ID device (\_SB.VGEN, the ID at GUEST_VMGENID_ADDR)
     * and the Generic Event Device (\_SB.GED0, GSI_ACPI_GED) that tells
     * the guest it changed. */
    bool vmgenid;
};

/* Writes RSDP, XSDT, FADT (with FACS), MADT, DSDT and, with pci, MCFG into
 * buf, which the guest sees at guest-physical address gpa (buf holds size
 * bytes). The
 * RSDP is placed at offset 0. Returns the number of bytes used, or -1 if
 * size is too small or the machine description is invalid. */
long acpi_build_tables(uint8_t *buf, uint64_t gpa, size_t size, const struct acpi_machine *m);

#endif
