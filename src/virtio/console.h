/* virtio-console (virtio 1.2 section 5.3) with a single port: the guest's
 * /dev/hvc0. Guest output goes to an output descriptor, host input is
 * copied into the guest's receive buffers. */
#ifndef VMLET_VIRTIO_CONSOLE_H
#define VMLET_VIRTIO_CONSOLE_H

#include <stdint.h>
#include "vmlet.h"
#include "virtio/virtio.h"

struct virtio_console;

/* in_fd: bytes read from it go to the guest (-1: no input). out_fd: bytes
 * the guest transmits are written to it (-1: discard). The caller keeps
 * ownership of both; they must stay open until virtio_console_free().
 * Neither descriptor's flags are changed. out_fd is written without ever
 * blocking (outfd.h: a second O_NONBLOCK description of a pipe or
 * terminal, MSG_DONTWAIT for a socket), so a stalled reader (a pager, a
 * terminal stopped with Ctrl-S, a full pipe) never holds the device
 * thread, and reset/free return promptly. A full output holds the guest's
 * transmit buffers back: backpressure, no buffering in vmlet; a reset
 * drops a partly written chain. After EPIPE or another write error the
 * output is dead: later guest output is dropped (the guest never stalls).
 * End of input (or a read error) just stops input; the guest sees no more
 * bytes.
 *
 * The console offers VIRTIO_CONSOLE_F_SIZE; cols/rows start from
 * TIOCGWINSZ on out_fd or in_fd if one is a terminal, else 0 x 0.
 * Returns NULL with err filled when out of memory or file descriptors. */
struct virtio_console *virtio_console_new(int in_fd, int out_fd, vmlet_error *err);

/* Stops the device (as ops->reset) and frees it. Call it only after the
 * transport will make no more ops calls on it. */
void virtio_console_free(struct virtio_console *c);

/* The device as the VM and the transport see it (NULL for NULL): its
 * ops (device.h) are the transport's callbacks; their dev argument is
 * the virtio_console.
 *
 * Threads: activate() starts one thread ("virtio-con") that serves both
 * queues: it polls the two kick eventfds, in_fd (only while the guest has
 * a receive buffer posted: no input is ever read ahead or queued in
 * vmlet), out_fd (only while waiting for it to become writable) and an
 * internal stop eventfd. It runs with every signal blocked. reset() (and
 * free) stop that thread and return only after it has been joined, so it
 * no longer touches the queues, guest memory or the two descriptors; a
 * partly written transmit chain is dropped. reset() must not be called
 * from the device's own thread, nor with a lock held that
 * virtio_notify_queue() or virtio_set_needs_reset() take, since the
 * thread may be inside them. config_read/config_write may be called from
 * any thread (vCPUs); activate/reset are serialised by a device mutex. */
struct virtio_device *virtio_console_device(struct virtio_console *c);
/* Bytes the guest wrote out (to out_fd) and bytes it was given (from
 * in_fd) so far; callable from any thread. */
void virtio_console_get_stats(const struct virtio_console *c, uint64_t *tx_bytes,
                              uint64_t *rx_bytes);

/* New terminal size (e.g. after SIGWINCH): updates cols/rows and, while
 * the driver has VIRTIO_CONSOLE_F_SIZE, sends a configuration change
 * notification. Any thread; calls virtio_notify_config() without the
 * device mutex held. */
void virtio_console_set_size(struct virtio_console *c, uint16_t cols, uint16_t rows);

/* Device-specific feature bits (section 5.3.3). */
#define VIRTIO_CONSOLE_F_SIZE        0
#define VIRTIO_CONSOLE_F_MULTIPORT   1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

/* Queue indexes for port 0 (section 5.3.2). */
#define VIRTIO_CONSOLE_RXQ 0 /* receiveq0: host -> guest */
#define VIRTIO_CONSOLE_TXQ 1 /* transmitq0: guest -> host */

#endif
