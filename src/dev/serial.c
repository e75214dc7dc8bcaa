/* 16550A UART, as described by the TI/National "PC16550D Universal
 * Asynchronous Receiver/Transmitter with FIFOs" datasheet: Table II
 * (register summary), Table IV (interrupt control functions: IIR values,
 * priorities, how each source is reset), and the register descriptions of
 * the FCR (FIFO enable/reset, trigger level), LSR, MCR (loopback: outputs
 * looped to the modem status inputs, receiver cut off) and MSR (deltas).
 *
 * Shaped by what Linux's 8250 driver checks: autoconfig() (IER scratch
 * test, MCR loopback reading MSR & 0xf0 == 0x90, FCR -> IIR[7:6] == 11,
 * IIR bits 5:4 reading 0, size_fifo() counting 16 looped-back bytes) and
 * serial8250_do_startup() (re-asserting THRE when ETBEI is toggled).
 *
 * Transmit: a THR write goes to out_fd at once (without ever blocking, see
 * outfd.h) when the host keeps up. When it does not, bytes wait in a
 * 64 KiB host-side buffer that a "console-out" thread drains as out_fd
 * takes them; while that buffer has less room than a 16-byte transmit
 * FIFO, THRE/TEMT read 0 (backpressure: the guest waits for the THRE
 * interrupt, raised when room comes back). A byte written anyway with the
 * buffer full is dropped and counted. Receive has a real 16-byte FIFO
 * that the console input thread fills.
 */
#include "dev/serial.h"
#include "layout.h"
#include "outfd.h"
#include "sandbox.h"
#include "thread.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Register offsets (DLAB = LCR bit 7 remaps 0 and 1 to the divisor). */
enum {
    R_RBR_THR = 0,
    R_IER = 1,
    R_IIR_FCR = 2,
    R_LCR = 3,
    R_MCR = 4,
    R_LSR = 5,
    R_MSR = 6,
    R_SCR = 7
};

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* THR empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK  0x0f /* bits 7:4 read 0 on a 16550A */

#define IIR_NO_INT 0x01
#define IIR_MSI    0x00
#define IIR_THRI   0x02
#define IIR_RDI    0x04
#define IIR_RLSI   0x06
#define IIR_CTI    0x0c /* character timeout (FIFO mode) */
#define IIR_FIFO   0xc0

#define FCR_ENABLE 0x01
#define FCR_CLR_RX 0x02
#define FCR_CLR_TX 0x04
#define FCR_TRIG   0xc0

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f /* bits 7:5 read 0 on a 16550A */

#define LSR_DR     0x01
#define LSR_OE     0x02
#define LSR_PE     0x04
#define LSR_FE     0x08
#define LSR_BI     0x10
#define LSR_THRE   0x20
#define LSR_TEMT   0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80

#define RX_FIFO_SIZE 16

/* Host-side transmit buffer. THRE reads 1 only while a whole 16-byte FIFO
 * load fits: Linux's serial8250_tx_chars writes up to 16 bytes per THRE
 * without looking at LSR in between, and none of them may be lost. */
#define TX_BUF_SIZE  (64 * 1024)
#define TX_FIFO_SIZE 16
#define TX_CHUNK     4096
/* At serial_free, how long what is still buffered may take to go out. */
#define TX_FLUSH_MS  500

/* Interrupt sources, one bit each, for the level/edge logic. */
enum { SRC_LS = 1, SRC_RX = 2, SRC_THR = 4, SRC_MS = 8 };

struct serial {
    pthread_mutex_t lock;
    pthread_cond_t rx_space; /* FIFO got room, loopback ended, shutdown */
    struct irq_line irq;
    struct out_fd out;
    bool out_dead; /* out_fd failed (EPIPE...): output is discarded */
    bool shutdown;
    int irq_level;

    uint8_t ier, lcr, mcr, lsr_errors, msr, scr, dll, dlm;
    uint8_t fcr;       /* FCR_ENABLE | FCR_TRIG as last programmed */
    bool thr_ipending; /* THRE interrupt not yet acknowledged */

    uint8_t rx[RX_FIFO_SIZE];
    unsigned rx_head, rx_count;

    /* Output not yet taken by out_fd, oldest at tx_head. */
    uint8_t *tx;
    size_t tx_head, tx_count;
    uint64_t tx_bytes, tx_dropped; /* relaxed atomics: metrics read them */
    /* The drain thread: sleeps on tx_kick (new output) and POLLOUT. */
    pthread_t tx_thread;
    bool tx_thread_running, tx_stop;
    int tx_kick;
};

static unsigned rx_capacity(const struct serial *s)
{
    /* Without FIFOs the 16550 behaves as a 16450: one holding register. */
    return (s->fcr & FCR_ENABLE) ? RX_FIFO_SIZE : 1;
}

static unsigned rx_trigger(const struct serial *s)
{
    static const unsigned levels[4] = { 1, 4, 8, 14 };
    return levels[(s->fcr & FCR_TRIG) >> 6];
}

static uint8_t rx_pop(struct serial *s)
{
    uint8_t b = s->rx[s->rx_head];
    s->rx_head = (s->rx_head + 1) % RX_FIFO_SIZE;
    s->rx_count--;
    return b;
}

static void rx_clear(struct serial *s)
{
    s->rx_head = 0;
    s->rx_count = 0;
}

/* A byte arriving at the receiver from the line (loopback). A full FIFO
 * loses the new byte; a full 16450 holding register is overwritten. Both
 * set OE (LSR bit 1). */
static void rx_receive(struct serial *s, uint8_t b)
{
    if (s->rx_count < rx_capacity(s)) {
        s->rx[(s->rx_head + s->rx_count) % RX_FIFO_SIZE] = b;
        s->rx_count++;
        return;
    }
    if (!(s->fcr & FCR_ENABLE))
        s->rx[s->rx_head] = b;
    s->lsr_errors |= LSR_OE;
}

/* Modem status inputs: looped from MCR in loopback, else a cable with
 * CTS, DSR and DCD asserted (a console that is always there). */
static uint8_t msr_lines(const struct serial *s)
{
    if (!(s->mcr & MCR_LOOP))
        return MSR_CTS | MSR_DSR | MSR_DCD;
    uint8_t v = 0;
    if (s->mcr & MCR_RTS)
        v |= MSR_CTS;
    if (s->mcr & MCR_DTR)
        v |= MSR_DSR;
    if (s->mcr & MCR_OUT1)
        v |= MSR_RI;
    if (s->mcr & MCR_OUT2)
        v |= MSR_DCD;
    return v;
}

/* Recomputes MSR[7:4] and latches the delta bits for what changed. */
static void msr_update(struct serial *s)
{
    uint8_t old = s->msr & 0xf0, now = msr_lines(s);
    uint8_t diff = old ^ now, delta = 0;
    if (diff & MSR_CTS)
        delta |= MSR_DCTS;
    if (diff & MSR_DSR)
        delta |= MSR_DDSR;
    if (diff & MSR_DCD)
        delta |= MSR_DDCD;
    if ((old & MSR_RI) && !(now & MSR_RI)) /* trailing edge only */
        delta |= MSR_TERI;
    s->msr = now | (s->msr & 0x0f) | delta;
}

/* Enabled, pending interrupt sources. */
static unsigned pending(const struct serial *s)
{
    unsigned m = 0;
    if ((s->ier & IER_ELSI) && (s->lsr_errors & LSR_ERRORS))
        m |= SRC_LS;
    if ((s->ier & IER_ERBFI) && s->rx_count)
        m |= SRC_RX;
    if ((s->ier & IER_ETBEI) && s->thr_ipending)
        m |= SRC_THR;
    if ((s->ier & IER_EDSSI) && (s->msr & 0x0f))
        m |= SRC_MS;
    return m;
}

/* IIR in priority order (datasheet Table IV). Below the trigger level the
 * FIFO reports a character timeout: there is no timer here, so the
 * "four character times" are taken to have passed already. */
static uint8_t iir_value(const struct serial *s)
{
    unsigned m = pending(s);
    uint8_t id;
    if (m & SRC_LS)
        id = IIR_RLSI;
    else if (m & SRC_RX)
        id = ((s->fcr & FCR_ENABLE) && s->rx_count < rx_trigger(s)) ? IIR_CTI : IIR_RDI;
    else if (m & SRC_THR)
        id = IIR_THRI;
    else if (m & SRC_MS)
        id = IIR_MSI;
    else
        id = IIR_NO_INT;
    return id | ((s->fcr & FCR_ENABLE) ? IIR_FIFO : 0);
}

/* Drives the IRQ line after an access. The line feeds an edge-triggered
 * IOAPIC pin, so it only moves on change; but when the access serviced one
 * source while another stays pending, the line is dropped and raised again
 * so that the remaining condition is a fresh edge (for guests whose handler
 * does not loop until IIR reports no interrupt). */
static void irq_update(struct serial *s, unsigned before, bool may_pulse)
{
    unsigned after = pending(s);
    int level = after != 0;
    if (may_pulse && s->irq_level && level && (before & ~after)) {
        irq_line_set(&s->irq, 0);
        irq_line_set(&s->irq, 1);
    } else if (level != s->irq_level) {
        irq_line_set(&s->irq, level);
    }
    s->irq_level = level;
}

static bool tx_ready(const struct serial *s)
{
    return TX_BUF_SIZE - s->tx_count >= TX_FIFO_SIZE;
}

/* Counters that metrics read without the lock. Their writers hold the
 * lock (or are alone, at serial_free), so a relaxed atomic store of the
 * sum is enough; a fetch-add here trips GCC's -Wstringop-overflow under
 * ASan (a false positive). */
static void count(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, *c + n, __ATOMIC_RELAXED);
}

/* Empties the buffer by w bytes (written, or dropped); when that brings
 * THR back from busy, raises THRE for the guest waiting on it (lock
 * held). */
static void tx_release(struct serial *s, size_t w)
{
    bool was_ready = tx_ready(s);
    unsigned before = pending(s);
    s->tx_head = (s->tx_head + w) % TX_BUF_SIZE;
    s->tx_count -= w;
    if (!was_ready && tx_ready(s)) {
        s->thr_ipending = true;
        irq_update(s, before, false);
    }
}

static void tx_consume(struct serial *s, size_t w)
{
    count(&s->tx_bytes, w);
    tx_release(s, w);
}

/* out_fd failed for good: what is buffered will never go out. */
static void tx_dead(struct serial *s)
{
    s->out_dead = true;
    count(&s->tx_dropped, s->tx_count);
    tx_release(s, s->tx_count);
}

/* One byte from the guest (lock held). With nothing buffered it is
 * written at once when that cannot block, so output order and latency
 * are those of a direct write; otherwise it joins the buffer for the
 * drain thread. A full buffer drops it: the guest wrote THR while THRE
 * read 0 (Linux's console write does, after waiting 10 ms). */
static void tx_byte(struct serial *s, uint8_t b)
{
    if (s->out.kind == OUT_NONE || s->out_dead)
        return;
    if (s->tx_count == 0 && s->out.kind != OUT_POLLED) {
        struct iovec v = { .iov_base = &b, .iov_len = 1 };
        ssize_t n = out_fd_writev(&s->out, &v, 1);
        if (n == 1) {
            count(&s->tx_bytes, 1);
            return;
        }
        if (errno != EAGAIN) {
            tx_dead(s);
            return;
        }
    }
    if (s->tx_count == TX_BUF_SIZE) {
        count(&s->tx_dropped, 1);
        return;
    }
    s->tx[(s->tx_head + s->tx_count) % TX_BUF_SIZE] = b;
    if (s->tx_count++ == 0)
        eventfd_kick(s->tx_kick); /* the thread sleeps while it is empty */
}

/* Drains the buffer into out_fd. Writes happen without the lock, so even
 * the OUT_POLLED fallback's small writes never hold up a vCPU; the bytes
 * stay in the buffer (and so keep their order) until written. */
static void *tx_thread(void *arg)
{
    struct serial *s = arg;
    uint8_t chunk[TX_CHUNK];
    pthread_setname_np(pthread_self(), "console-out");

    pthread_mutex_lock(&s->lock);
    while (!s->tx_stop) {
        size_t n = 0;
        if (!s->out_dead) {
            n = s->tx_count < TX_CHUNK ? s->tx_count : TX_CHUNK;
            size_t first = TX_BUF_SIZE - s->tx_head;
            if (first > n)
                first = n;
            memcpy(chunk, s->tx + s->tx_head, first);
            memcpy(chunk + first, s->tx, n - first);
        }
        pthread_mutex_unlock(&s->lock);

        bool wait_out = false;
        if (n) {
            struct iovec v = { .iov_base = chunk, .iov_len = n };
            ssize_t w = out_fd_writev(&s->out, &v, 1);
            int e = errno;
            pthread_mutex_lock(&s->lock);
            if (w > 0)
                tx_consume(s, (size_t)w);
            else if (e == EAGAIN)
                wait_out = true;
            else
                tx_dead(s);
            pthread_mutex_unlock(&s->lock);
        }
        if (!n || wait_out) {
            struct pollfd p[2] = {
                { .fd = s->tx_kick, .events = POLLIN },
                { .fd = s->out.fd, .events = POLLOUT },
            };
            if (poll(p, wait_out ? 2 : 1, -1) < 0 && errno != EINTR)
                thread_wait_failed();
            if (p[0].revents)
                eventfd_drain(s->tx_kick);
        }
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* At the end: what is still buffered gets TX_FLUSH_MS to go out (the
 * guest's last words), then is dropped. The thread has been joined. */
static void tx_flush_final(struct serial *s)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (s->tx_count && !s->out_dead) {
        size_t n = TX_BUF_SIZE - s->tx_head;
        if (n > s->tx_count)
            n = s->tx_count;
        struct iovec v = { .iov_base = s->tx + s->tx_head, .iov_len = n };
        ssize_t w = out_fd_writev(&s->out, &v, 1);
        if (w > 0) {
            s->tx_head = (s->tx_head + (size_t)w) % TX_BUF_SIZE;
            s->tx_count -= (size_t)w;
            count(&s->tx_bytes, (uint64_t)w);
            continue;
        }
        if (errno != EAGAIN)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= TX_FLUSH_MS)
            break;
        struct pollfd p = { .fd = s->out.fd, .events = POLLOUT };
        poll(&p, 1, (int)(TX_FLUSH_MS - ms));
    }
    count(&s->tx_dropped, s->tx_count);
    s->tx_count = 0;
}

static uint8_t reg_read(struct serial *s, unsigned off, bool *signal)
{
    uint8_t v;
    switch (off) {
    case R_RBR_THR:
        if (s->lcr & LCR_DLAB)
            return s->dll;
        if (!s->rx_count)
            return 0;
        v = rx_pop(s);
        *signal = true;
        return v;
    case R_IER: return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
    case R_IIR_FCR:
        v = iir_value(s);
        /* Reading IIR acknowledges THRE only when it is what IIR shows. */
        if ((v & 0x0f) == IIR_THRI)
            s->thr_ipending = false;
        return v;
    case R_LCR: return s->lcr;
    case R_MCR: return s->mcr;
    case R_LSR:
        v = s->lsr_errors | (tx_ready(s) ? LSR_THRE | LSR_TEMT : 0) | (s->rx_count ? LSR_DR : 0);
        s->lsr_errors = 0; /* error bits clear on read */
        return v;
    case R_MSR:
        v = s->msr;
        s->msr &= 0xf0; /* delta bits clear on read */
        return v;
    default: return s->scr;
    }
}

static void reg_write(struct serial *s, unsigned off, uint8_t v, bool *signal)
{
    switch (off) {
    case R_RBR_THR:
        if (s->lcr & LCR_DLAB) {
            s->dll = v;
        } else {
            if (s->mcr & MCR_LOOP)
                rx_receive(s, v); /* looped back, not sent */
            else
                tx_byte(s, v);
            /* The byte left THR at once: THR is empty again, unless the
             * host side is full (tx_consume raises THRE later). */
            s->thr_ipending = tx_ready(s);
        }
        break;
    case R_IER:
        if (s->lcr & LCR_DLAB) {
            s->dlm = v;
        } else {
            uint8_t changed = (s->ier ^ v) & IER_ETBEI;
            s->ier = v & IER_MASK;
            /* Enabling ETBEI with THR empty raises THRE (Linux's startup
             * THRE test relies on it); disabling drops it. */
            if (changed)
                s->thr_ipending = (s->ier & IER_ETBEI) && tx_ready(s);
        }
        break;
    case R_IIR_FCR:
        /* FCR is written regardless of DLAB. Changing FCR0 resets the
         * FIFOs; other bits only take effect with FCR0 set. */
        if ((v ^ s->fcr) & FCR_ENABLE) {
            rx_clear(s);
            *signal = true;
        }
        if (v & FCR_ENABLE) {
            /* FCR_CLR_TX leaves the host-side buffer alone: on hardware
             * those bytes would long have been sent. */
            if (v & FCR_CLR_RX) {
                rx_clear(s);
                *signal = true;
            }
            s->fcr = v & (FCR_ENABLE | FCR_TRIG);
        } else {
            s->fcr &= ~FCR_ENABLE;
        }
        break;
    case R_LCR: s->lcr = v; break;
    case R_MCR: {
        bool was_loop = s->mcr & MCR_LOOP;
        s->mcr = v & MCR_MASK;
        msr_update(s);
        if (was_loop && !(s->mcr & MCR_LOOP))
            *signal = true; /* host input may flow again */
        break;
    }
    case R_LSR:
    case R_MSR: break; /* factory test only: ignored */
    default: s->scr = v; break;
    }
}

void serial_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct serial *s = opaque;
    if (!data || len == 0)
        return;
    if (len != 1 || offset >= PORT_COM1_LEN) {
        if (!is_write)
            memset(data, 0xff, len);
        return;
    }

    pthread_mutex_lock(&s->lock);
    unsigned before = pending(s);
    bool signal = false;
    unsigned off = (unsigned)offset;
    if (is_write)
        reg_write(s, off, data[0], &signal);
    else
        data[0] = reg_read(s, off, &signal);
    /* An IER write only masks or unmasks; it services nothing. */
    irq_update(s, before, !(is_write && off == R_IER));
    if (signal)
        pthread_cond_broadcast(&s->rx_space);
    pthread_mutex_unlock(&s->lock);
}

static bool rx_open(const struct serial *s)
{
    /* In loopback the receiver is cut off from the line (MCR bit 4). */
    return !(s->mcr & MCR_LOOP) && s->rx_count < rx_capacity(s);
}

size_t serial_push_rx(struct serial *s, const uint8_t *buf, size_t len)
{
    if (!buf || len == 0)
        return 0;
    pthread_mutex_lock(&s->lock);
    size_t n = 0;
    unsigned before = pending(s);
    while (n < len && !s->shutdown && rx_open(s)) {
        s->rx[(s->rx_head + s->rx_count) % RX_FIFO_SIZE] = buf[n++];
        s->rx_count++;
    }
    irq_update(s, before, false);
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool serial_wait_rx_space(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->shutdown && !rx_open(s))
        pthread_cond_wait(&s->rx_space, &s->lock);
    bool ok = !s->shutdown;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void serial_shutdown(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    s->shutdown = true;
    pthread_cond_broadcast(&s->rx_space);
    pthread_mutex_unlock(&s->lock);
}

/* The console-out thread: writes to the console (a pipe, terminal or
 * socket: outfd.c), waits in poll. */
static const int console_out_syscalls[] = { __NR_sendmsg, __NR_fcntl };
static const struct sandbox_rules console_out_rules = {
    .kind = "console-out",
    .syscalls = console_out_syscalls,
    .nsyscalls = sizeof console_out_syscalls / sizeof console_out_syscalls[0],
};

struct serial *serial_new(struct irq_line irq, int out_fd, vmlet_seccomp_mode mode)
{
    struct serial *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->tx_kick = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    if (pthread_cond_init(&s->rx_space, NULL) != 0) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    s->irq = irq;
    out_fd_open(&s->out, out_fd);
    if (out_fd >= 0) {
        s->tx = malloc(TX_BUF_SIZE);
        s->tx_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (!s->tx || s->tx_kick < 0 ||
            sandbox_thread_start(&s->tx_thread, tx_thread, s, &console_out_rules, mode, true,
                                 NULL) != 0) {
            serial_free(s);
            return NULL;
        }
        s->tx_thread_running = true;
    }
    /* Reset state: 16450 mode, 9600 baud divisor, all interrupts off. */
    s->dll = 12;
    s->msr = msr_lines(s);
    return s;
}

void serial_free(struct serial *s)
{
    if (!s)
        return;
    if (s->tx_thread_running) {
        /* The thread never blocks in write (outfd.h): it is in poll or
         * about to look at tx_stop, so this join returns promptly. */
        pthread_mutex_lock(&s->lock);
        s->tx_stop = true;
        pthread_mutex_unlock(&s->lock);
        eventfd_kick(s->tx_kick);
        pthread_join(s->tx_thread, NULL);
        tx_flush_final(s);
    }
    if (s->tx_kick >= 0)
        close(s->tx_kick);
    out_fd_close(&s->out);
    free(s->tx);
    pthread_cond_destroy(&s->rx_space);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void serial_get_tx_stats(const struct serial *s, uint64_t *bytes, uint64_t *dropped)
{
    *bytes = __atomic_load_n(&s->tx_bytes, __ATOMIC_RELAXED);
    *dropped = __atomic_load_n(&s->tx_dropped, __ATOMIC_RELAXED);
}

/* ---- snapshots ------------------------------------------------------- */

void serial_save(struct serial *s, struct serial_state *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&s->lock);
    st->ier = s->ier;
    st->lcr = s->lcr;
    st->mcr = s->mcr;
    st->lsr_errors = s->lsr_errors;
    st->msr = s->msr;
    st->scr = s->scr;
    st->dll = s->dll;
    st->dlm = s->dlm;
    st->fcr = s->fcr;
    st->thr_ipending = s->thr_ipending;
    st->irq_level = (uint8_t)s->irq_level;
    /* The FIFO goes out in order from index 0: the head is not state. */
    for (unsigned i = 0; i < s->rx_count; i++)
        st->rx[i] = s->rx[(s->rx_head + i) % RX_FIFO_SIZE];
    st->rx_count = (uint8_t)s->rx_count;
    pthread_mutex_unlock(&s->lock);
}

int serial_state_check(const struct serial_state *st)
{
    if ((st->ier & ~IER_MASK) || (st->mcr & ~MCR_MASK) || (st->lsr_errors & ~LSR_ERRORS) ||
        (st->fcr & ~(FCR_ENABLE | FCR_TRIG)) || st->thr_ipending > 1 || st->irq_level > 1 ||
        st->rx_head != 0 || st->rx_count > ((st->fcr & FCR_ENABLE) ? RX_FIFO_SIZE : 1))
        return -1;
    return 0;
}

int serial_restore(struct serial *s, const struct serial_state *st)
{
    if (serial_state_check(st) < 0)
        return -1;
    pthread_mutex_lock(&s->lock);
    s->ier = st->ier;
    s->lcr = st->lcr;
    s->mcr = st->mcr;
    s->lsr_errors = st->lsr_errors;
    s->scr = st->scr;
    s->dll = st->dll;
    s->dlm = st->dlm;
    s->fcr = st->fcr;
    s->thr_ipending = st->thr_ipending;
    s->rx_head = 0;
    s->rx_count = st->rx_count;
    memcpy(s->rx, st->rx, sizeof s->rx);
    /* The lines follow MCR; only the latched deltas are the file's. */
    s->msr = (uint8_t)(msr_lines(s) | (st->msr & 0x0f));
    /* The line as these registers drive it (the file's level is not
     * trusted): raised before the irqchip's own state is put back. */
    int level = pending(s) != 0;
    if (level)
        irq_line_set(&s->irq, 1);
    s->irq_level = level;
    pthread_cond_broadcast(&s->rx_space);
    pthread_mutex_unlock(&s->lock);
    return 0;
}
