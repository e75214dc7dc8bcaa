/* ACPI tables that tell a stock Linux kernel about the machine: how many
 * CPUs (MADT), where the power-management registers are (FADT), how to
 * power off (\_S5 in the DSDT) and reset (FADT reset register). */
#ifndef VMLET_X86_ACPI_H
#define VMLET_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct acpi_machine {
    unsigned ncpus;            /* local APIC IDs 0..ncpus-1 */
};

/* Writes RSDP, XSDT, FADT (with FACS), MADT and DSDT into buf, which the
 * guest sees at guest-physical address gpa (buf holds size bytes). The
 * RSDP is placed at offset 0. Returns the number of bytes used, or -1 if
 * size is too small or the machine description is invalid. */
long acpi_build_tables(uint8_t *buf, uint64_t gpa, size_t size,
                       const struct acpi_machine *m);

#endif
