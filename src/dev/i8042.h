/* The i8042 keyboard controller, reduced to what a VM needs: the reset line
 * (command 0xfe on port 0x64), the last way Linux tries to reboot. */
#ifndef VMLET_DEV_I8042_H
#define VMLET_DEV_I8042_H

#include "acpi_pm.h" /* enum guest_request */

struct i8042;
/* on_request(opaque, GUEST_REQUEST_REBOOT) when the guest pulses reset
 * (command 0xfe, or any even 0xf0-0xfe, or 0xd1 writing the output port
 * with bit 0 clear), from the vCPU thread, without the internal mutex
 * held. Linux's reboot loop sends 0xfe ten times: expect repeats. */
struct i8042 *i8042_new(void (*on_request)(void *opaque, enum guest_request), void *opaque);
void i8042_free(struct i8042 *k);
/* bus_handler for a 5-port range at PORT_I8042_DATA (0x60..0x64); only
 * offsets 0 (data) and 4 (status/command) mean anything. */
/* For snapshots: the controller's bytes. */
struct i8042_state {
    uint8_t ctr, out_port, obuf, obf, last_cmd, pending, reserved[2];
};
void i8042_save(struct i8042 *k, struct i8042_state *st);
int i8042_restore(struct i8042 *k, const struct i8042_state *st);
void i8042_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
