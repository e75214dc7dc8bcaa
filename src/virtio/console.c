/* virtio-console, virtio 1.2 section 5.3: device id 3 (5.3.1), port 0's
 * receiveq0/transmitq0 only (5.3.2; no VIRTIO_CONSOLE_F_MULTIPORT, so no
 * control queues), VIRTIO_CONSOLE_F_SIZE (5.3.3) with cols/rows in the
 * configuration layout of 5.3.4, and the data path of 5.3.6.
 *
 * Decisions where the spec leaves room or the driver misbehaves:
 * - A transmit chain's device-writable descriptors (5.3.6.1 forbids them)
 *   are ignored: only its readable part is output, used length 0.
 * - A receive chain's device-readable descriptors are ignored; a receive
 *   chain with no writable byte is returned at once with used length 0.
 * - A chain the queue code rejects (out of guest RAM, loops, bad lengths:
 *   VIRTQ_BROKEN) makes the device set NEEDS_RESET (2.1.2) and stop using
 *   that queue until the driver resets the device.
 * - emerg_wr (VIRTIO_CONSOLE_F_EMERG_WRITE) is not offered: writes to the
 *   configuration space are ignored; max_nr_ports reads 1.
 *
 * Input is read straight into the guest buffer the device holds, so vmlet
 * never buffers host input: with no receive buffer posted, in_fd is not
 * polled and its data stays where it is (the writer sees backpressure).
 */
#include "virtio/device.h"
#include "virtio/console.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <termios.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "error.h"
#include "outfd.h"

#define CONSOLE_QUEUE_MAX   256
#define CONSOLE_CONFIG_SIZE 12 /* cols, rows, max_nr_ports, emerg_wr */

/* out_fd is written without ever blocking (outfd.h), so a stalled reader
 * cannot hold the thread, and a reset never waits for one. */
#define TX_CHUNK     4096
/* Work done between two looks at the stop request and the other queue. */
#define TX_BUDGET    (256 * 1024)
#define RX_CHUNK     (64 * 1024)
#define CHAIN_BUDGET CONSOLE_QUEUE_MAX

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif
#define SLICE_MAX (IOV_MAX < VIRTQ_MAX_CHAIN ? IOV_MAX : VIRTQ_MAX_CHAIN)

enum tx_state {
    TX_IDLE,     /* nothing left to send; notifications enabled */
    TX_MORE,     /* budget used up: come back without sleeping */
    TX_WAIT_OUT, /* out_fd is full: sleep until POLLOUT */
};

struct virtio_console {
    struct virtio_device vdev; /* its lock also guards cols/rows/size_acked */
    int in_fd, out_fd;
    struct out_fd out; /* how out_fd is written without blocking */
    uint16_t cols, rows;
    bool size_acked; /* driver accepted VIRTIO_CONSOLE_F_SIZE */

    /* Sticky across resets: they describe the descriptors, not the guest. */
    bool in_open;  /* no EOF or read error on in_fd yet */
    bool out_dead; /* out_fd failed (EPIPE, EIO...): drop output */

    /* Owned by the device thread while it runs; set up by activate(). */
    struct virtq *rxq, *txq;
    int rx_kick, tx_kick;
    bool rx_broken, tx_broken;
    bool announce_size; /* send one config notification at start */
    bool rx_have;       /* rx_chain is held, waiting for input */
    bool tx_have;       /* tx_chain is partly written */
    uint64_t tx_off;    /* bytes of tx_chain already written */
    /* Bytes of the next transmit chain written before a stop for a
     * snapshot gave the chain back: not written twice. */
    uint64_t tx_resume_off;
    struct virtq_chain rx_chain, tx_chain;

    uint64_t tx_bytes, rx_bytes; /* relaxed atomics: guest -> out_fd, in_fd -> guest */
};
_Static_assert(offsetof(struct virtio_console, vdev) == 0, "the device is its virtio_device");

/* ---- helpers ---------------------------------------------------------- */

/* The guest's reader of out_fd is gone or the descriptor failed: later
 * output is dropped. EPIPE also raised SIGPIPE at this thread, where it is
 * blocked; take it so it is not left pending. */
static void output_failed(struct virtio_console *c, int err)
{
    c->out_dead = true;
    if (err == EPIPE) {
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        static const struct timespec zero = { 0, 0 };
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
}

/* ---- transmitq0: guest -> out_fd -------------------------------------- */

/* Writes what is left of tx_chain's readable part. */
static enum tx_state tx_write(struct virtio_console *c, size_t *budget)
{
    const struct virtq_chain *ch = &c->tx_chain;
    while (c->tx_off < ch->out_len) {
        if (c->out_fd < 0 || c->out_dead) {
            c->tx_off = ch->out_len; /* discarded, still completed */
            break;
        }
        if (*budget == 0 || atomic_load_explicit(&c->vdev.thread.stopping, memory_order_relaxed))
            return TX_MORE;

        struct iovec v[SLICE_MAX];
        size_t want = *budget < TX_CHUNK ? *budget : TX_CHUNK;
        unsigned n = iov_slice(ch->iov, ch->n_out, c->tx_off, want, v, SLICE_MAX);
        ssize_t w = out_fd_writev(&c->out, v, (int)n);
        if (w > 0) {
            c->tx_off += (uint64_t)w;
            __atomic_fetch_add(&c->tx_bytes, (uint64_t)w, __ATOMIC_RELAXED);
            *budget -= (size_t)w < *budget ? (size_t)w : *budget;
            continue;
        }
        if (errno == EAGAIN)
            return TX_WAIT_OUT;
        output_failed(c, errno);
    }
    return TX_IDLE;
}

static enum tx_state tx_run(struct virtio_console *c)
{
    struct virtq *q = c->txq;
    if (!q || c->tx_broken)
        return TX_IDLE;

    enum tx_state st = TX_IDLE;
    size_t budget = TX_BUDGET;
    unsigned chains = 0;
    bool pushed = false;
    virtq_disable_notify(q); /* we are looking anyway */
    for (;;) {
        if (atomic_load_explicit(&c->vdev.thread.stopping, memory_order_relaxed)) {
            st = TX_MORE;
            break;
        }
        if (!c->tx_have) {
            if (chains >= CHAIN_BUDGET) {
                st = TX_MORE;
                break;
            }
            /* Empty: idle, notifications on, a kick wakes us. */
            if (virtio_device_pop(&c->vdev, q, &c->tx_chain, &c->tx_broken) != VIRTQ_CHAIN)
                break;
            c->tx_have = true;
            c->tx_off = c->tx_resume_off;
            c->tx_resume_off = 0;
            chains++;
        }
        st = tx_write(c, &budget);
        if (st != TX_IDLE)
            break;
        /* The device writes nothing into a transmit buffer (5.3.6.1). */
        virtq_push(q, c->tx_chain.head, 0);
        c->tx_have = false;
        pushed = true;
    }
    if (pushed && virtq_should_notify(q))
        virtio_notify_queue(c->vdev.transport, VIRTIO_CONSOLE_TXQ);
    return st;
}

/* ---- receiveq0: in_fd -> guest ---------------------------------------- */

/* Takes one receive buffer from the guest, if it posted one, to hold until
 * input arrives. Returns true if it stopped early with more to look at. */
static bool rx_fill(struct virtio_console *c)
{
    struct virtq *q = c->rxq;
    if (!q || c->rx_broken || c->rx_have)
        return false;

    bool pushed = false, more = false;
    virtq_disable_notify(q);
    for (unsigned i = 0;; i++) {
        if (i >= CHAIN_BUDGET) {
            more = true;
            break;
        }
        /* Empty: no buffer, so in_fd is left alone until a kick. */
        if (virtio_device_pop(&c->vdev, q, &c->rx_chain, &c->rx_broken) != VIRTQ_CHAIN)
            break;
        if (c->rx_chain.in_len == 0) {
            /* Nothing we could write into: hand it straight back. */
            virtq_push(q, c->rx_chain.head, 0);
            pushed = true;
            continue;
        }
        c->rx_have = true;
        break;
    }
    if (pushed && virtq_should_notify(q))
        virtio_notify_queue(c->vdev.transport, VIRTIO_CONSOLE_RXQ);
    return more;
}

/* in_fd is readable and a buffer is held: read straight into it. */
static void rx_read(struct virtio_console *c)
{
    struct virtq_chain *ch = &c->rx_chain;
    struct iovec v[SLICE_MAX];
    unsigned n = iov_slice(ch->iov + ch->n_out, ch->n_in, 0, RX_CHUNK, v, SLICE_MAX);
    ssize_t r = readv(c->in_fd, v, (int)n);
    if (r > 0) {
        __atomic_fetch_add(&c->rx_bytes, (uint64_t)r, __ATOMIC_RELAXED);
        virtq_push(c->rxq, ch->head, (uint32_t)r);
        c->rx_have = false;
        if (virtq_should_notify(c->rxq))
            virtio_notify_queue(c->vdev.transport, VIRTIO_CONSOLE_RXQ);
        return;
    }
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    /* End of input or a read error: the guest just sees no more bytes
     * (its buffer stays posted). */
    c->in_open = false;
}

/* ---- the device thread ------------------------------------------------ */

static void *console_thread(void *arg)
{
    struct virtio_console *c = arg;
    pthread_setname_np(pthread_self(), "virtio-con");

    /* Linux reads cols/rows on a configuration change, not at probe. */
    if (c->announce_size)
        virtio_notify_config(c->vdev.transport);

    while (!atomic_load(&c->vdev.thread.stopping)) {
        bool rx_more = rx_fill(c);
        enum tx_state tx = tx_run(c);
        if (atomic_load(&c->vdev.thread.stopping))
            break;

        struct pollfd p[5];
        int n = 0, i_rxk = -1, i_txk = -1, i_in = -1, i_out = -1;
        p[n++] = (struct pollfd){ .fd = c->vdev.thread.stop_fd, .events = POLLIN };
        if (c->rxq && !c->rx_broken && c->rx_kick >= 0) {
            i_rxk = n;
            p[n++] = (struct pollfd){ .fd = c->rx_kick, .events = POLLIN };
        }
        if (c->txq && !c->tx_broken && c->tx_kick >= 0) {
            i_txk = n;
            p[n++] = (struct pollfd){ .fd = c->tx_kick, .events = POLLIN };
        }
        /* Backpressure: input is only looked at with a buffer to put it in. */
        if (c->rx_have && c->in_open) {
            i_in = n;
            p[n++] = (struct pollfd){ .fd = c->in_fd, .events = POLLIN };
        }
        if (tx == TX_WAIT_OUT) {
            i_out = n;
            p[n++] = (struct pollfd){ .fd = c->out_fd, .events = POLLOUT };
        }

        int r = poll(p, (nfds_t)n, (rx_more || tx == TX_MORE) ? 0 : -1);
        if (r < 0) {
            if (errno != EINTR)
                thread_wait_failed();
            continue;
        }
        if (p[0].revents)
            break;
        if (i_rxk >= 0 && p[i_rxk].revents)
            virtio_take_kick(&c->rx_kick, p[i_rxk].revents);
        if (i_txk >= 0 && p[i_txk].revents)
            virtio_take_kick(&c->tx_kick, p[i_txk].revents);
        if (i_in >= 0 && p[i_in].revents) {
            if (p[i_in].revents & POLLNVAL)
                c->in_open = false;
            else
                rx_read(c);
        }
        if (i_out >= 0 && (p[i_out].revents & POLLNVAL))
            output_failed(c, EBADF);
        /* Other out_fd events: tx_run writes, or sees the error, next round. */
    }
    return NULL;
}

/* The thread is gone: the driver owns its buffers again. A held chain is
 * always its queue's last one popped, so it goes back to the ring; after
 * a stop for a snapshot, how much of a transmit chain was written is
 * kept, so the next run does not write it again. */
static void con_release_queues(void *dev)
{
    struct virtio_console *c = dev;
    if (c->rx_have && c->rxq)
        virtq_unpop(c->rxq, 1);
    if (c->tx_have && c->txq) {
        virtq_unpop(c->txq, 1);
        c->tx_resume_off = c->vdev.quiescing ? c->tx_off : 0;
    }
    c->rx_have = c->tx_have = false;
    c->size_acked = false;
}

/* ---- virtio_device_ops ------------------------------------------------ */

/* struct virtio_console_config (5.3.4): le16 cols, le16 rows,
 * le32 max_nr_ports, le32 emerg_wr (write-only: reads 0). Bytes past the
 * end read as all-ones, like any unclaimed register. */
static void con_config_read(void *dev, size_t offset, uint8_t *data, size_t len)
{
    struct virtio_console *c = dev;
    uint8_t cfg[CONSOLE_CONFIG_SIZE] = { 0 };
    pthread_mutex_lock(&c->vdev.lock);
    put_le16(cfg + 0, c->cols);
    put_le16(cfg + 2, c->rows);
    pthread_mutex_unlock(&c->vdev.lock);
    put_le32(cfg + 4, 1);
    config_copy_out(cfg, sizeof cfg, offset, data, len, 0xff);
}

static void con_config_write(void *dev, size_t offset, const uint8_t *data, size_t len)
{
    /* cols/rows/max_nr_ports are read-only; emerg_wr needs
     * VIRTIO_CONSOLE_F_EMERG_WRITE, which is not offered. */
    (void)dev;
    (void)offset;
    (void)data;
    (void)len;
}

/* Activation (lock held, thread not running): takes both queues. */
static int con_take_queues(void *dev, const struct virtio_queues *qs)
{
    struct virtio_console *c = dev;
    c->rxq = qs->count > VIRTIO_CONSOLE_RXQ ? qs->q[VIRTIO_CONSOLE_RXQ] : NULL;
    c->txq = qs->count > VIRTIO_CONSOLE_TXQ ? qs->q[VIRTIO_CONSOLE_TXQ] : NULL;
    c->rx_kick = c->rxq ? qs->kick_fd[VIRTIO_CONSOLE_RXQ] : -1;
    c->tx_kick = c->txq ? qs->kick_fd[VIRTIO_CONSOLE_TXQ] : -1;
    c->rx_broken = c->tx_broken = false;
    c->rx_have = c->tx_have = false;
    c->tx_off = 0;
    if (!qs->resume)
        c->tx_resume_off = 0;
    c->size_acked = (qs->features >> VIRTIO_CONSOLE_F_SIZE) & 1;
    /* Sent by the thread: the transport may hold its own lock here. */
    c->announce_size = c->size_acked && (c->cols || c->rows);
    return 0;
}

static void con_metrics(void *dev, virtio_metric_fn fn, void *opaque)
{
    uint64_t tx, rx;
    virtio_console_get_stats(dev, &tx, &rx);
    fn(opaque, "tx_bytes", tx);
    fn(opaque, "rx_bytes", rx);
}

static void con_free(void *dev)
{
    struct virtio_console *c = dev;
    virtio_device_destroy(&c->vdev); /* the thread is gone */
    out_fd_close(&c->out);
    free(c);
}

/* Snapshots: the transport and queues hold the rest; the terminal's
 * size is the new process's. */
static int con_save(void *dev, uint8_t *buf, size_t cap)
{
    struct virtio_console *c = dev;
    if (cap < 8)
        return -1;
    put_le64(buf, c->tx_resume_off);
    return 8;
}

static int con_load(void *dev, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
    struct virtio_console *c = dev;
    if (len != 8) {
        snprintf(why, whylen, "console state of %zu bytes, not 8", len);
        return -1;
    }
    /* Any count is safe: a chain shorter than it is just completed. */
    c->tx_resume_off = get_le64(buf);
    return 0;
}

static const struct virtio_device_ops console_ops = {
    .name = "console",
    .device_id = VIRTIO_ID_CONSOLE,
    .num_queues = 2,
    .queue_max_size = CONSOLE_QUEUE_MAX,
    .features = 1ULL << VIRTIO_CONSOLE_F_SIZE,
    .config_size = CONSOLE_CONFIG_SIZE,
    .config_read = con_config_read,
    .config_write = con_config_write,
    .metrics = con_metrics,
    .free = con_free,
    .save = con_save,
    .load = con_load,
};

/* The console thread: reads its input, writes the console (a pipe,
 * terminal or socket: outfd.c). */
static const int console_syscalls[] = { __NR_sendmsg, __NR_recvfrom, __NR_fcntl };
static const struct sandbox_rules console_rules = {
    .kind = "virtio-con",
    .syscalls = console_syscalls,
    .nsyscalls = sizeof console_syscalls / sizeof console_syscalls[0],
};

static const struct virtio_device_hooks console_hooks = {
    .sandbox = &console_rules,
    .thread_fn = console_thread,
    .take_queues = con_take_queues,
    .release_queues = con_release_queues,
};

/* ---- life cycle ------------------------------------------------------- */

static bool term_size(int fd, uint16_t *cols, uint16_t *rows)
{
    struct winsize ws;
    if (fd < 0 || !isatty(fd) || ioctl(fd, TIOCGWINSZ, &ws) < 0)
        return false;
    *cols = ws.ws_col;
    *rows = ws.ws_row;
    return true;
}

struct virtio_console *virtio_console_new(int in_fd, int out_fd, vmlet_error *err)
{
    struct virtio_console *c = virtio_device_new(sizeof *c, &console_ops, &console_hooks, err);
    if (!c)
        return NULL;
    c->in_fd = in_fd;
    c->out_fd = out_fd;
    out_fd_open(&c->out, out_fd);
    c->in_open = in_fd >= 0;
    c->rx_kick = c->tx_kick = -1;
    if (!term_size(out_fd, &c->cols, &c->rows))
        term_size(in_fd, &c->cols, &c->rows);
    return c;
}

void virtio_console_free(struct virtio_console *c)
{
    if (c)
        con_free(c);
}

struct virtio_device *virtio_console_device(struct virtio_console *c)
{
    return c ? &c->vdev : NULL;
}

void virtio_console_set_size(struct virtio_console *c, uint16_t cols, uint16_t rows)
{
    pthread_mutex_lock(&c->vdev.lock);
    bool changed = c->cols != cols || c->rows != rows;
    c->cols = cols;
    c->rows = rows;
    bool notify = changed && c->vdev.thread.running && c->size_acked;
    struct virtio_transport *t = notify ? c->vdev.transport : NULL;
    pthread_mutex_unlock(&c->vdev.lock);
    if (t)
        virtio_notify_config(t);
}

void virtio_console_get_stats(const struct virtio_console *c, uint64_t *tx_bytes,
                              uint64_t *rx_bytes)
{
    *tx_bytes = __atomic_load_n(&c->tx_bytes, __ATOMIC_RELAXED);
    *rx_bytes = __atomic_load_n(&c->rx_bytes, __ATOMIC_RELAXED);
}
