/* 16550A UART (COM1), the guest's ttyS0. */
#ifndef VMLET_DEV_SERIAL_H
#define VMLET_DEV_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include "../bus.h"

struct serial;

/* out_fd receives what the guest transmits (-1: discard). */
struct serial *serial_new(struct irq_line irq, int out_fd);
void serial_free(struct serial *s);

/* bus_handler for the 8-port range at PORT_COM1. */
void serial_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                bool is_write);

/* Host -> guest: queues up to len bytes into the receive FIFO, returns how
 * many were taken (0 when the FIFO is full: try again after
 * serial_wait_rx_space). Thread-safe. */
size_t serial_push_rx(struct serial *s, const uint8_t *buf, size_t len);

/* Blocks until the receive FIFO has room or serial_shutdown was called;
 * returns false after shutdown. For the console input thread. */
bool serial_wait_rx_space(struct serial *s);
void serial_shutdown(struct serial *s);

#endif
