/* libFuzzer target for the register files a guest reaches on the port bus:
 * the 16550A UART (src/dev/serial.c), the i8042 (src/dev/i8042.c) and the
 * ACPI PM1a event, control and reset registers (src/dev/acpi_pm.c), each
 * registered at its real ports on one bus (src/bus.c), as the vCPU loop
 * sees them. Build with clang -fsanitize=fuzzer,address,undefined
 * (docs/fuzzing.md), or with -DVMLET_FUZZ_STANDALONE and any compiler to
 * replay files.
 *
 * Every input gets fresh devices. Its first byte says where the UART's
 * output goes (% 3): 0 nowhere (fd -1), 1 /dev/null (every byte written
 * at once), 2 a pipe shrunk to one page and filled before the UART
 * starts, which nobody reads while the input runs, so output fills the
 * UART's 64 KiB host-side buffer (where THRE goes away: backpressure) and
 * then is dropped; the pipe is drained at the end. The rest of the input
 * is a sequence of operations, each
 *   byte 0: bits 2:0 what (0 UART, 1 i8042, 2 PM1a event, 3 PM1a control,
 *           4 reset register, 5 host side, 6 THR burst, 7 any port),
 *           bit 3 write, bits 5:4 width (1 << n bytes: 1, 2, 4 or 8)
 *   0-4:    1 byte b: the port is the device's base + (b & 15) - 4, so
 *           accesses also start before, straddle and follow the range
 *   5:      1 byte: even, host bytes for the UART's receiver (count in
 *           bits 5:1, the bytes follow); odd, the power button
 *   6:      2 bytes n: n + 1 THR writes of one byte each, as a console
 *           flood (at most 64 K + 1 K an input with the pipe, 4 K with
 *           no output, 64 bytes with /dev/null, where each is a write)
 *   7:      2 bytes: the port
 *   then, for a write (0-4, 7), width bytes of data.
 *
 * Besides memory errors and hangs, the target keeps a model of each
 * device written from its datasheet or spec (the 16550D register
 * descriptions and Table IV; the IBM AT i8042; ACPI 6.4 4.8) and checks:
 *   - a read fills exactly its width and nothing beyond; bytes no device
 *     claims read all-ones, and each register reads what the model says
 *     (UART: RBR in FIFO order, IER/MCR reserved bits 0, IIR priority,
 *     FIFO bits and bits 5:4 clear, LSR DR/OE/THRE/TEMT, MSR deltas in
 *     loopback; i8042: status and answers; PM1: lanes of STS/EN/CNT);
 *   - the UART's receive FIFO never holds more than 16 bytes (host input
 *     beyond it is refused, not dropped), its transmit buffer never more
 *     than 64 KiB, and THRE/TEMT read clear exactly while it has less
 *     than 16 bytes of room;
 *   - each IRQ line (COM1, SCI) is called only on a change and its level
 *     is the model's (an enabled source pending, the power button
 *     enabled and pressed);
 *   - power-off and reset requests come exactly when the model says:
 *     SLP_EN with SLP_TYP 5, 0x06 to the reset register, i8042 pulses;
 *   - the output counters say every byte was written (/dev/null), or
 *     buffered up to 64 KiB and then dropped (pipe);
 *   - at the end, the pipe holds exactly the first 64 KiB the guest
 *     transmitted, in order, after what filled it. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define FUZZ_TARGET "fuzz_legacy_io"
#include "fuzz_util.h"
#include "bus.h"
#include "layout.h"
#include "dev/acpi_pm.h"
#include "dev/i8042.h"
#include "dev/serial.h"

#define GUARD       0xa5
#define MAX_OPS     512
#define TX_BUF      (64 * 1024) /* the UART's host-side buffer (serial.c) */
#define PIPE_SMALL  4096
#define PIPE_LARGE  (256 * 1024) /* room for the pipe's page and the whole buffer */
#define STREAM_KEEP (128 * 1024)

enum out { OUT_DISCARD, OUT_DEVNULL, OUT_FULL_PIPE };
/* Burst bytes an input may send, by output: each costs a system call
 * with /dev/null. */
static const unsigned burst_max[] = { 4096, 64, TX_BUF + 1024 };

/* ---- the devices' models ---------------------------------------------- */

struct uart {
    uint8_t ier, lcr, mcr, scr, dll, dlm, msr;
    bool fifo;
    uint8_t trig;
    bool oe, thr_ipending;
    uint8_t rx[16];
    unsigned rx_head, rx_count;
    uint64_t sent; /* bytes written to THR (not looped back) */
};

struct kbc {
    uint8_t ctr, out_port, obuf, pending;
    bool obf, last_cmd;
};

struct pm {
    uint16_t sts, en, cnt;
};

struct line {
    int level;
    unsigned calls, no_change;
};

struct requests {
    unsigned poweroff, reboot;
};

struct rig {
    struct bus pio;
    struct serial *serial;
    struct i8042 *kbc_dev;
    struct acpi_pm *pm_dev;
    enum out out;
    int out_fd, pipe_rd;
    struct line com1, sci;
    struct requests acpi_req, kbc_req;

    struct uart u;
    struct kbc k;
    struct pm p;
    struct requests want_acpi, want_kbc;
    uint8_t *stream; /* the first STREAM_KEEP bytes sent */
    uint64_t burst;
};

static size_t pipe_room; /* bytes a full one-page pipe still takes one at a time */

static void line_set(void *opaque, unsigned gsi, int level)
{
    struct line *l = opaque;
    (void)gsi;
    if (level == l->level)
        l->no_change++;
    l->level = level;
    l->calls++;
}

static void on_request(void *opaque, enum guest_request r)
{
    struct requests *q = opaque;
    if (r == GUEST_REQUEST_POWEROFF)
        q->poweroff++;
    else
        q->reboot++;
}

/* ---- UART (PC16550D) -------------------------------------------------- */

static unsigned rx_cap(const struct uart *u)
{
    return u->fifo ? 16 : 1;
}

/* Bytes waiting in the host-side buffer: with the pipe, it took the first
 * pipe_room (it is never read while the input runs), the buffer the next
 * TX_BUF, the rest was dropped; the other outputs never wait. */
static uint64_t tx_buffered(const struct rig *r)
{
    uint64_t b = r->u.sent > pipe_room ? r->u.sent - pipe_room : 0;
    return r->out != OUT_FULL_PIPE ? 0 : b < TX_BUF ? b : TX_BUF;
}

static bool tx_ready(const struct rig *r)
{
    return TX_BUF - tx_buffered(r) >= 16;
}

static uint8_t msr_lines(const struct uart *u)
{
    if (!(u->mcr & 0x10))
        return 0xb0; /* CTS, DSR, DCD: a console that is always there */
    return (uint8_t)((u->mcr & 2 ? 0x10 : 0) | (u->mcr & 1 ? 0x20 : 0) | (u->mcr & 4 ? 0x40 : 0) |
                     (u->mcr & 8 ? 0x80 : 0));
}

static unsigned uart_pending(const struct uart *u)
{
    return ((u->ier & 4) && u->oe ? 1 : 0) | ((u->ier & 1) && u->rx_count ? 2 : 0) |
           ((u->ier & 2) && u->thr_ipending ? 4 : 0) | ((u->ier & 8) && (u->msr & 0x0f) ? 8 : 0);
}

static uint8_t uart_iir(const struct uart *u)
{
    static const unsigned trig[4] = { 1, 4, 8, 14 };
    unsigned m = uart_pending(u);
    uint8_t id = m & 1   ? 0x06
                 : m & 2 ? (u->fifo && u->rx_count < trig[u->trig >> 6] ? 0x0c : 0x04)
                 : m & 4 ? 0x02
                 : m & 8 ? 0x00
                         : 0x01;
    return id | (u->fifo ? 0xc0 : 0);
}

static void uart_receive(struct uart *u, uint8_t b)
{
    if (u->rx_count < rx_cap(u)) {
        u->rx[(u->rx_head + u->rx_count++) % 16] = b;
        return;
    }
    if (!u->fifo)
        u->rx[u->rx_head] = b; /* the 16450 holding register is overwritten */
    u->oe = true;
}

static void uart_write(struct rig *r, unsigned off, uint8_t v)
{
    struct uart *u = &r->u;
    bool dlab = u->lcr & 0x80;
    switch (off) {
    case 0:
        if (dlab) {
            u->dll = v;
        } else if (u->mcr & 0x10) {
            uart_receive(u, v);
            u->thr_ipending = tx_ready(r);
        } else {
            if (u->sent < STREAM_KEEP)
                r->stream[u->sent] = v;
            u->sent++;
            u->thr_ipending = tx_ready(r);
        }
        break;
    case 1:
        if (dlab) {
            u->dlm = v;
        } else {
            bool changed = (u->ier ^ v) & 2;
            u->ier = v & 0x0f;
            if (changed)
                u->thr_ipending = (u->ier & 2) && tx_ready(r);
        }
        break;
    case 2:
        if ((v & 1) != u->fifo)
            u->rx_count = u->rx_head = 0;
        if (v & 1) {
            if (v & 2)
                u->rx_count = u->rx_head = 0;
            u->fifo = true;
            u->trig = v & 0xc0;
        } else {
            u->fifo = false;
        }
        break;
    case 3: u->lcr = v; break;
    case 4: {
        u->mcr = v & 0x1f;
        uint8_t old = u->msr & 0xf0, now = msr_lines(u), diff = old ^ now, d = 0;
        d |= diff & 0x10 ? 0x01 : 0;
        d |= diff & 0x20 ? 0x02 : 0;
        d |= diff & 0x80 ? 0x08 : 0;
        d |= (old & 0x40) && !(now & 0x40) ? 0x04 : 0; /* RI trailing edge */
        u->msr = now | (u->msr & 0x0f) | d;
        break;
    }
    case 7: u->scr = v; break;
    default: break; /* LSR, MSR: factory test, ignored */
    }
}

static uint8_t uart_read(struct rig *r, unsigned off)
{
    struct uart *u = &r->u;
    bool dlab = u->lcr & 0x80;
    uint8_t v;
    switch (off) {
    case 0:
        if (dlab)
            return u->dll;
        if (!u->rx_count)
            return 0;
        v = u->rx[u->rx_head];
        u->rx_head = (u->rx_head + 1) % 16;
        u->rx_count--;
        return v;
    case 1: return dlab ? u->dlm : u->ier;
    case 2:
        v = uart_iir(u);
        if ((v & 0x0f) == 0x02)
            u->thr_ipending = false;
        return v;
    case 3: return u->lcr;
    case 4: return u->mcr;
    case 5:
        v = (u->oe ? 0x02 : 0) | (tx_ready(r) ? 0x60 : 0) | (u->rx_count ? 0x01 : 0);
        u->oe = false;
        return v;
    case 6:
        v = u->msr;
        u->msr &= 0xf0;
        return v;
    default: return u->scr;
    }
}

/* ---- i8042 (IBM AT keyboard controller) -------------------------------- */

static void kbc_respond(struct kbc *k, uint8_t v)
{
    k->obuf = v;
    k->obf = true;
}

static bool kbc_command(struct kbc *k, uint8_t c)
{
    k->pending = 0;
    k->last_cmd = true;
    if (c >= 0x20 && c <= 0x3f)
        kbc_respond(k, c == 0x20 ? k->ctr : 0);
    else if ((c >= 0x60 && c <= 0x7f) || (c >= 0xd1 && c <= 0xd4))
        k->pending = c;
    else if (c >= 0xf0)
        return !(c & 1); /* pulse output port bit 0: CPU reset */
    else if (c == 0xa7)
        k->ctr |= 0x20;
    else if (c == 0xa8)
        k->ctr &= (uint8_t)~0x20;
    else if (c == 0xa9)
        kbc_respond(k, 0x02);
    else if (c == 0xaa) {
        kbc_respond(k, 0x55);
        k->ctr |= 0x04;
    } else if (c == 0xab)
        kbc_respond(k, 0x00);
    else if (c == 0xad)
        k->ctr |= 0x10;
    else if (c == 0xae)
        k->ctr &= (uint8_t)~0x10;
    else if (c == 0xd0)
        kbc_respond(k, k->out_port);
    return false;
}

static bool kbc_data(struct kbc *k, uint8_t v)
{
    uint8_t c = k->pending;
    k->pending = 0;
    k->last_cmd = false;
    if (c == 0x60)
        k->ctr = v;
    else if (c == 0xd1) {
        k->out_port = v;
        return !(v & 1);
    } else if (c == 0xd2 || c == 0xd3)
        kbc_respond(k, v);
    return false;
}

/* ---- the port model: who claims a port, and what an access does -------- */

enum dev { D_NONE, D_UART, D_KBC, D_EVT, D_CNT, D_RESET };

static const struct {
    uint16_t base, len;
} ranges[] = {
    [D_UART] = { PORT_COM1, PORT_COM1_LEN },
    [D_KBC] = { PORT_I8042_DATA, 5 },
    [D_EVT] = { PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN },
    [D_CNT] = { PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN },
    [D_RESET] = { PORT_ACPI_RESET, 1 },
};

/* Bytes [off, off + len) of a block_len-byte little-endian register image:
 * lanes past the block stay all-ones. */
static void lanes_read(uint8_t *expect, unsigned off, unsigned len, unsigned block_len,
                       uint32_t image)
{
    for (unsigned i = 0; i < len && off + i < block_len; i++)
        expect[i] = (uint8_t)(image >> (8 * (off + i)));
}

static uint32_t lanes_mask(unsigned off, unsigned len, unsigned block_len, const uint8_t *d,
                           uint32_t *val)
{
    uint32_t m = 0;
    *val = 0;
    for (unsigned i = 0; i < len && off + i < block_len; i++) {
        m |= 0xffu << (8 * (off + i));
        *val |= (uint32_t)d[i] << (8 * (off + i));
    }
    return m;
}

/* What the access should do to the model; for a read, fills expect. */
static void model_access(struct rig *r, unsigned port, uint8_t *expect, const uint8_t *d,
                         unsigned len, bool is_write)
{
    enum dev dev = D_NONE;
    unsigned off = 0;
    for (unsigned i = D_UART; i <= D_RESET; i++) {
        if (port >= ranges[i].base && port - ranges[i].base < ranges[i].len) {
            dev = (enum dev)i;
            off = port - ranges[i].base;
        }
    }
    switch (dev) {
    case D_NONE: break;
    case D_UART:
        if (len != 1)
            break;
        if (is_write)
            uart_write(r, off, d[0]);
        else
            expect[0] = uart_read(r, off);
        break;
    case D_KBC:
        if (len != 1 || (off != 0 && off != 4))
            break;
        if (!is_write && off == 4) {
            expect[0] = (uint8_t)((r->k.obf ? 1 : 0) | (r->k.ctr & 4) | (r->k.last_cmd ? 8 : 0) |
                                  0x10);
        } else if (!is_write) {
            expect[0] = r->k.obuf;
            r->k.obf = false;
        } else if (off == 4 ? kbc_command(&r->k, d[0]) : kbc_data(&r->k, d[0])) {
            r->want_kbc.reboot++;
        }
        break;
    case D_EVT:
        if (!is_write) {
            lanes_read(expect, off, len, 4, r->p.sts | (uint32_t)r->p.en << 16);
        } else {
            uint32_t v, m = lanes_mask(off, len, 4, d, &v);
            r->p.sts &= (uint16_t) ~(v & m);
            uint16_t em = (uint16_t)(m >> 16);
            /* Enable bits that exist: TMR, GBL, PWRBTN, SLPBTN, RTC, PCIEXP_WAKE. */
            r->p.en = (uint16_t)(((r->p.en & ~em) | ((v >> 16) & em)) & 0x4721);
        }
        break;
    case D_CNT:
        if (!is_write) {
            lanes_read(expect, off, len, 2, r->p.cnt | 1u); /* SCI_EN: always ACPI mode */
        } else {
            uint32_t v, m = lanes_mask(off, len, 2, d, &v);
            r->p.cnt = (uint16_t)(((r->p.cnt & ~m) | (v & m)) & 0x1c02); /* BM_RLD, SLP_TYP */
            if ((v & m & 0x2000) && (r->p.cnt >> 10 & 7) == ACPI_SLP_TYP_S5)
                r->want_acpi.poweroff++;
        }
        break;
    case D_RESET:
        if (!is_write && off == 0)
            expect[0] = 0;
        if (is_write && off == 0 && d[0] == ACPI_RESET_VALUE)
            r->want_acpi.reboot++;
        break;
    }
}

static void check_lines(struct rig *r)
{
    check(r->com1.no_change == 0 && r->sci.no_change == 0, "IRQ line set to the level it had");
    check(r->com1.level == (uart_pending(&r->u) != 0), "COM1 IRQ level differs from the model");
    check(r->sci.level == ((r->p.sts & r->p.en & 0x100) != 0), "SCI level differs from the model");
    check(r->acpi_req.poweroff == r->want_acpi.poweroff &&
              r->acpi_req.reboot == r->want_acpi.reboot,
          "ACPI power-off/reset request differs from the model");
    check(r->kbc_req.reboot == r->want_kbc.reboot && r->kbc_req.poweroff == 0,
          "i8042 reset request differs from the model");
    /* /dev/null takes everything at once; nothing drains the pipe while
     * the input runs: it took the first pipe_room bytes, the buffer holds
     * the next TX_BUF, the rest is dropped; with no output nothing is
     * counted. */
    uint64_t bytes, dropped, sent = r->u.sent;
    uint64_t want_bytes = r->out == OUT_DEVNULL     ? sent
                          : r->out == OUT_FULL_PIPE ? (sent < pipe_room ? sent : pipe_room)
                                                    : 0;
    uint64_t want_dropped = r->out == OUT_FULL_PIPE && sent > pipe_room + TX_BUF
                                ? sent - pipe_room - TX_BUF
                                : 0;
    serial_get_tx_stats(r->serial, &bytes, &dropped);
    check(bytes == want_bytes && dropped == want_dropped,
          "UART output counts differ from the model (buffer not bounded?)");
}

static void port_access(struct rig *r, unsigned port, uint8_t *d, unsigned len, bool is_write)
{
    uint8_t expect[8];
    memset(expect, 0xff, sizeof expect);
    model_access(r, port, expect, d, len, is_write);
    bus_dispatch(&r->pio, port, d, len, is_write);
    if (!is_write)
        check(memcmp(d, expect, len) == 0, "read differs from the model");
}

/* ---- set-up and the end ------------------------------------------------ */

/* A blocking pipe of one page (so the UART reopens it non-blocking, as
 * it does a terminal), filled: the UART's first byte finds it full. */
static void full_pipe(int p[2], uint8_t *buf)
{
    check(pipe2(p, O_CLOEXEC) == 0, "no pipe");
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    check(fcntl(p[1], F_SETPIPE_SZ, PIPE_SMALL) == PIPE_SMALL, "cannot shrink a pipe");
    memset(buf, 0xee, PIPE_SMALL);
    check(write(p[1], buf, PIPE_SMALL) == PIPE_SMALL, "cannot fill a pipe");
}

/* How many one-byte non-blocking writes such a pipe still takes (none,
 * on Linux): what the UART's output gets before it has to buffer. */
static size_t measure_pipe(uint8_t *buf)
{
    int p[2];
    full_pipe(p, buf);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[1]);
    int w = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    check(w >= 0, "cannot reopen a pipe (/proc)");
    size_t n = 0;
    uint8_t b = 0;
    struct iovec v = { .iov_base = &b, .iov_len = 1 };
    while (n < PIPE_SMALL && writev(w, &v, 1) == 1)
        n++;
    close(w);
    close(p[0]);
    close(p[1]);
    return n;
}

static void rig_init(struct rig *r, enum out out, uint8_t *stream, uint8_t *buf)
{
    memset(r, 0, sizeof *r);
    r->stream = stream;
    r->out = out;
    r->out_fd = r->pipe_rd = -1;
    if (out == OUT_DEVNULL) {
        r->out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        check(r->out_fd >= 0, "no /dev/null");
    } else if (out == OUT_FULL_PIPE) {
        int p[2];
        full_pipe(p, buf);
        r->pipe_rd = p[0];
        r->out_fd = p[1];
    }
    r->serial = serial_new((struct irq_line){ line_set, &r->com1, IRQ_COM1 }, r->out_fd,
                           VMLET_SECCOMP_OFF);
    r->kbc_dev = i8042_new(on_request, &r->kbc_req);
    r->pm_dev = acpi_pm_new((struct irq_line){ line_set, &r->sci, IRQ_ACPI_SCI }, on_request,
                            &r->acpi_req);
    check(r->serial && r->kbc_dev && r->pm_dev, "cannot make the devices");
    check(bus_register(&r->pio, PORT_COM1, PORT_COM1_LEN, serial_pio, r->serial) == 0 &&
              bus_register(&r->pio, PORT_I8042_DATA, 5, i8042_pio, r->kbc_dev) == 0 &&
              bus_register(&r->pio, PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_EVT_LEN, acpi_pm_evt_pio,
                           r->pm_dev) == 0 &&
              bus_register(&r->pio, PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_CNT_LEN, acpi_pm_cnt_pio,
                           r->pm_dev) == 0 &&
              bus_register(&r->pio, PORT_ACPI_RESET, 1, acpi_pm_reset_pio, r->pm_dev) == 0,
          "cannot claim the ports");
    /* Reset states: the UART a 16450 at 9600 baud with the modem lines of
     * a cable that is always there; the i8042 as firmware leaves it. */
    r->u.dll = 12;
    r->u.msr = 0xb0;
    r->k.ctr = 0x65; /* translate, AUX off, POST passed, IRQ 1 on */
    r->k.out_port = 0x03;
}

/* Lets the buffered output out (the pipe grows so it all fits at once:
 * serial_free never waits), frees everything and checks what arrived. */
static void rig_end(struct rig *r, uint8_t *buf)
{
    if (r->out == OUT_FULL_PIPE)
        check(fcntl(r->out_fd, F_SETPIPE_SZ, PIPE_LARGE) >= 0, "cannot grow the pipe");
    serial_free(r->serial);
    if (r->out == OUT_FULL_PIPE) {
        size_t got = 0;
        ssize_t n;
        while ((n = read(r->pipe_rd, buf + got, PIPE_LARGE - got)) > 0)
            got += (size_t)n;
        check(n == 0 || errno == EAGAIN, "cannot drain the pipe");
        uint64_t keep = pipe_room + TX_BUF;
        uint64_t want = PIPE_SMALL + (r->u.sent < keep ? r->u.sent : keep);
        check(got == want, "the pipe did not get the first bytes sent, no more, no less");
        check(memcmp(buf + PIPE_SMALL, r->stream, got - PIPE_SMALL) == 0,
              "output differs from what the guest sent");
        close(r->pipe_rd);
    }
    if (r->out_fd >= 0)
        close(r->out_fd);
    i8042_free(r->kbc_dev);
    acpi_pm_free(r->pm_dev);
    bus_free(&r->pio);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rig rig;
    static uint8_t *stream, *buf;
    if (!stream) {
        stream = malloc(STREAM_KEEP);
        buf = malloc(PIPE_LARGE);
        check(stream && buf, "out of memory");
        pipe_room = measure_pipe(buf);
        check(pipe_room + TX_BUF + 1024 <= STREAM_KEEP, "the pipe takes too much");
    }
    if (size < 1)
        return 0;
    struct rig *r = &rig;
    rig_init(r, (enum out)(data[0] % 3), stream, buf);
    struct input in = { data + 1, size - 1 };
    uint8_t op;
    for (unsigned k = 0; k < MAX_OPS && take(&in, &op, 1); k++) {
        unsigned what = op & 7, len = 1u << ((op >> 4) & 3);
        bool is_write = op & 8;
        uint8_t a[2], d[16];
        memset(d, GUARD, sizeof d);
        unsigned port;
        if (what <= 4) {
            if (!take(&in, a, 1))
                break;
            port = ranges[what + 1].base + (a[0] & 15u) - 4;
        } else if (what == 7) {
            if (!take(&in, a, 2))
                break;
            port = (unsigned)(a[0] | a[1] << 8);
        } else if (what == 5) {
            if (!take(&in, a, 1))
                break;
            if (a[0] & 1) {
                acpi_pm_press_power_button(r->pm_dev);
                r->p.sts |= 0x100;
            } else {
                uint8_t host[32];
                size_t n = (a[0] >> 1) & 31;
                if (!take(&in, host, n))
                    break;
                size_t took = serial_push_rx(r->serial, host, n);
                size_t room = r->u.mcr & 0x10 ? 0 : rx_cap(&r->u) - r->u.rx_count;
                check(took == (n < room ? n : room), "host input taken beyond the FIFO's room");
                for (size_t i = 0; i < took; i++)
                    r->u.rx[(r->u.rx_head + r->u.rx_count++) % 16] = host[i];
            }
            check_lines(r);
            continue;
        } else {
            if (!take(&in, a, 2))
                break;
            unsigned n = (unsigned)(a[0] | a[1] << 8) + 1;
            for (unsigned i = 0; i < n && r->burst < burst_max[r->out]; i++, r->burst++) {
                /* Straight to the UART (the bus is checked elsewhere):
                 * tens of thousands of these fill its buffer. */
                uint8_t b = (uint8_t)(r->burst * 7 + 1);
                uart_write(r, 0, b);
                serial_pio(r->serial, 0, &b, 1, true);
            }
            check_lines(r);
            continue;
        }
        if (is_write && !take(&in, d, len))
            break;
        port_access(r, port, d, len, is_write);
        for (unsigned i = len; i < sizeof d; i++)
            check(d[i] == GUARD, "an access wrote past its width");
        check_lines(r);
    }
    rig_end(r, buf);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
