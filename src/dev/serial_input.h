/* The serial console's input: a thread that copies a descriptor (the
 * host's stdin, usually) into the UART's receive FIFO as the guest makes
 * room, so a fast producer cannot overrun the 16-byte FIFO. */
#ifndef VMLET_DEV_SERIAL_INPUT_H
#define VMLET_DEV_SERIAL_INPUT_H

#include "dev/serial.h"

struct serial_input;

/* Starts copying in_fd into s (in_fd stays the caller's). NULL if the
 * thread or its eventfd cannot be made: the guest then gets no input. */
struct serial_input *serial_input_start(struct serial *s, int in_fd, vmlet_seccomp_mode mode);
/* Ends the thread and frees it; no-op for NULL. Shuts s's receive side
 * down (serial_shutdown), so call it only when the VM stops. */
void serial_input_stop(struct serial_input *in);

#endif
