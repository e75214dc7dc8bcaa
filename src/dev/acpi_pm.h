/* ACPI fixed hardware: PM1a event/control registers (power button, S5
 * soft-off) and the FADT reset register. These are how a guest powers off or reboots, and how the host presses the
 * power button. */
#ifndef VMLET_DEV_ACPI_PM_H
#define VMLET_DEV_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>
#include "../bus.h"

enum guest_request { GUEST_REQUEST_POWEROFF, GUEST_REQUEST_REBOOT };

struct acpi_pm;

/* on_request is called (from the vCPU thread that made the access) when
 * the guest enters S5 or asks for a reset. It is called WITHOUT the
 * device mutex held, so it may call acpi_pm_press_power_button. It may be
 * called more than once (a guest can repeat the write). sci is the SCI
 * line (IRQ_ACPI_SCI, level); sci.set is called with the mutex held, only
 * on change, and must not call back into the device. */
struct acpi_pm *acpi_pm_new(struct irq_line sci,
                            void (*on_request)(void *opaque, enum guest_request), void *opaque);
void acpi_pm_free(struct acpi_pm *pm);

/* bus_handlers for PORT_ACPI_PM1A_EVT (4 bytes), PORT_ACPI_PM1A_CNT (2
 * bytes) and PORT_ACPI_RESET (1 byte). */
void acpi_pm_evt_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void acpi_pm_cnt_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void acpi_pm_reset_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Presses the power button: sets PWRBTN_STS and raises the SCI if the guest
 * enabled it. Thread-safe. */
void acpi_pm_press_power_button(struct acpi_pm *pm);

/* For snapshots: PM1 status, enable and control, the SCI line. */
struct acpi_pm_state {
    uint16_t sts, en, cnt;
    uint8_t sci_level, reserved;
};
void acpi_pm_save(struct acpi_pm *pm, struct acpi_pm_state *st);
/* 0, or -1 (a value no guest could have set) with nothing changed. */
int acpi_pm_restore(struct acpi_pm *pm, const struct acpi_pm_state *st);

#endif
