/* 16550A UART (COM1), the guest's ttyS0. */
#ifndef VMLET_DEV_SERIAL_H
#define VMLET_DEV_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include "../bus.h"
#include "vmlet.h"

struct serial;

/* out_fd receives what the guest transmits (-1: discard). Nothing ever
 * blocks on it (outfd.h; its flags are not changed): a THR write goes
 * straight out when out_fd takes it at once, else into a 64 KiB buffer
 * that a "console-out" thread drains on POLLOUT. While that buffer is
 * nearly full (less than 16 bytes of room) LSR reads THRE/TEMT clear, and
 * THRE is raised again when room comes back; a byte written with the
 * buffer full is dropped and counted (serial_get_tx_stats). A write error
 * other than EAGAIN (EPIPE, ...) ends output: later bytes are discarded,
 * and no SIGPIPE is delivered. The caller keeps ownership of out_fd; it
 * must stay open until serial_free. NULL when out of memory or threads.
 *
 * irq.set is called with the device mutex held (so levels reach KVM in
 * order); it must not call back into this device. It sees only changes,
 * except that a drop-and-raise pulse (0 then 1) is sent when an access
 * services one interrupt source while another stays pending, so that an
 * edge-triggered IOAPIC pin sees the remaining condition as a new edge. */
/* The console-out thread enters the sandbox in mode (src/sandbox.h). */
struct serial *serial_new(struct irq_line irq, int out_fd, vmlet_seccomp_mode mode);
/* After every thread using the device has stopped. Ends the output
 * thread, then gives what is still buffered up to 500 ms to go out
 * (dropped after that: a stalled reader cannot hold up the exit). */
void serial_free(struct serial *s);
/* Bytes written to out_fd, and bytes dropped (buffer full, or buffered
 * when out_fd failed or at serial_free). Any thread; takes no lock. */
void serial_get_tx_stats(const struct serial *s, uint64_t *bytes, uint64_t *dropped);

/* bus_handler for the 8-port range at PORT_COM1. */
void serial_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Host -> guest: queues up to len bytes into the receive FIFO, returns how
 * many were taken (0 when the FIFO is full, while the guest holds the UART
 * in loopback, or after serial_shutdown: try again after
 * serial_wait_rx_space). Nothing is ever dropped. Thread-safe. */
size_t serial_push_rx(struct serial *s, const uint8_t *buf, size_t len);

/* Blocks until the receive FIFO has room (and loopback is off) or
 * serial_shutdown was called; returns false after shutdown. For the
 * console input thread. */
bool serial_wait_rx_space(struct serial *s);
void serial_shutdown(struct serial *s);

/* The guest-visible state, for snapshots (snapshot_format.h): registers,
 * the receive FIFO and the interrupt line. Fixed layout. */
struct serial_state {
    uint8_t ier, lcr, mcr, lsr_errors, msr, scr, dll, dlm;
    uint8_t fcr, thr_ipending, irq_level, rx_head, rx_count, reserved[3];
    uint8_t rx[16];
};
/* Only while no vCPU runs. */
void serial_save(struct serial *s, struct serial_state *st);
/* Checks st (it comes from a file): 0, or -1 with nothing changed. Then
 * sets the state and raises the interrupt line if st had it raised. */
int serial_state_check(const struct serial_state *st);
int serial_restore(struct serial *s, const struct serial_state *st);

#endif
