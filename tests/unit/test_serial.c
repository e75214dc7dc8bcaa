/* Unit tests for the 16550A UART (src/dev/serial.c).
 *
 * The register sequences below re-enact what Linux's 8250 driver does when
 * it probes (autoconfig, autoconfig_16550a, size_fifo) and starts a port
 * (serial8250_do_startup, set_termios, the interrupt handler), so a
 * regression that would make Linux mis-detect or hang the console shows
 * up here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dev/serial.h"

#include "raw_pty.h"

/* Register offsets and bits, as the guest driver names them. */
enum {
    RX = 0,
    TX = 0,
    DLL = 0,
    IER = 1,
    DLM = 1,
    IIR = 2,
    FCR = 2,
    EFR = 2,
    LCR = 3,
    MCR = 4,
    LSR = 5,
    MSR = 6,
    SCR = 7
};
#define IER_RDI     0x01
#define IER_THRI    0x02
#define IER_RLSI    0x04
#define IER_MSI     0x08
#define IER_UUE     0x40
#define IIR_NO_INT  0x01
#define FCR_ENABLE  0x01
#define FCR_CLR_RX  0x02
#define FCR_CLR_TX  0x04
#define FCR7_64BYTE 0x20
#define FCR_TRIG_8  0x80
#define LCR_DLAB    0x80
#define LCR_WLEN8   0x03
#define MCR_DTR     0x01
#define MCR_RTS     0x02
#define MCR_OUT1    0x04
#define MCR_OUT2    0x08
#define MCR_LOOP    0x10
#define LSR_DR      0x01
#define LSR_OE      0x02
#define LSR_THRE    0x20
#define LSR_TEMT    0x40

/* ---- a fake IRQ line that records every call ------------------------ */

struct irq_rec {
    pthread_mutex_t lock;
    int level;
    int calls[512];
    unsigned ncalls;
    unsigned rises; /* 0 -> 1 transitions: edges the IOAPIC sees */
    unsigned bad;   /* set(x) while already at x */
};

static void rec_set(void *opaque, unsigned gsi, int level)
{
    struct irq_rec *r = opaque;
    assert_int_equal(gsi, 4);
    pthread_mutex_lock(&r->lock);
    if (level == r->level)
        r->bad++;
    if (level && !r->level)
        r->rises++;
    r->level = level;
    if (r->ncalls < 512)
        r->calls[r->ncalls] = level;
    r->ncalls++;
    pthread_mutex_unlock(&r->lock);
}

struct fixture {
    struct irq_rec irq;
    struct serial *s;
    int pipe_rd, pipe_wr;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->irq.lock, NULL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    f->pipe_rd = p[0];
    f->pipe_wr = p[1];
    /* Reads of the pipe in tests never block. */
    fcntl(f->pipe_rd, F_SETFL, O_NONBLOCK);
    struct irq_line line = { .set = rec_set, .opaque = &f->irq, .gsi = 4 };
    f->s = serial_new(line, f->pipe_wr, VMLET_SECCOMP_OFF);
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    serial_free(f->s);
    if (f->pipe_rd >= 0)
        close(f->pipe_rd);
    if (f->pipe_wr >= 0)
        close(f->pipe_wr);
    pthread_mutex_destroy(&f->irq.lock);
    free(f);
    return 0;
}

static void wr(struct serial *s, unsigned off, uint8_t v)
{
    serial_pio(s, off, &v, 1, true);
}

static uint8_t rd(struct serial *s, unsigned off)
{
    uint8_t v = 0x5a;
    serial_pio(s, off, &v, 1, false);
    return v;
}

static void rec_reset(struct irq_rec *r)
{
    pthread_mutex_lock(&r->lock);
    r->ncalls = 0;
    r->rises = 0;
    r->bad = 0;
    pthread_mutex_unlock(&r->lock);
}

static size_t drain_pipe(int fd, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* ---- Linux 8250 probe, re-enacted ----------------------------------- */

static int size_fifo(struct serial *s)
{
    uint8_t old_lcr = rd(s, LCR);
    wr(s, LCR, 0);
    uint8_t old_fcr = rd(s, IIR);
    uint8_t old_mcr = rd(s, MCR);
    wr(s, FCR, FCR_ENABLE | FCR_CLR_RX | FCR_CLR_TX);
    wr(s, MCR, MCR_LOOP);
    wr(s, LCR, LCR_DLAB);
    uint16_t old_dl = rd(s, DLL) | (rd(s, DLM) << 8);
    wr(s, DLL, 1);
    wr(s, DLM, 0);
    wr(s, LCR, LCR_WLEN8);
    for (int c = 0; c < 256; c++)
        wr(s, TX, (uint8_t)c);
    int count;
    for (count = 0; (rd(s, LSR) & LSR_DR) && count < 256; count++)
        rd(s, RX);
    wr(s, FCR, old_fcr);
    wr(s, MCR, old_mcr);
    wr(s, LCR, LCR_DLAB);
    wr(s, DLL, old_dl & 0xff);
    wr(s, DLM, old_dl >> 8);
    wr(s, LCR, old_lcr);
    return count;
}

/* Returns the type name the driver would print, or NULL if the port is
 * judged absent. */
static const char *linux_autoconfig(struct serial *s, bool skip_test)
{
    uint8_t scratch = rd(s, IER);
    wr(s, IER, 0);
    uint8_t scratch2 = rd(s, IER) & 0x0f;
    wr(s, IER, 0x0f);
    uint8_t scratch3 = rd(s, IER) & 0x0f;
    wr(s, IER, scratch);
    if (scratch2 != 0 || scratch3 != 0x0f)
        return NULL;

    uint8_t save_mcr = rd(s, MCR), save_lcr = rd(s, LCR);
    if (!skip_test) {
        wr(s, MCR, MCR_LOOP | 0x0a);
        uint8_t status1 = rd(s, MSR) & 0xf0;
        wr(s, MCR, save_mcr);
        if (status1 != 0x90)
            return NULL;
    }

    wr(s, LCR, 0xbf);
    wr(s, EFR, 0);
    wr(s, LCR, 0);
    wr(s, FCR, FCR_ENABLE);
    uint8_t iir = rd(s, IIR);
    const char *type;
    switch (iir >> 6) {
    case 0: type = "8250/16450"; goto done;
    case 1: type = "unknown"; goto done;
    case 2: type = "16550"; goto done;
    default: type = "16550A"; break;
    }

    /* autoconfig_16550a: EFR under DLAB means a ST16C650V1. */
    wr(s, LCR, 0x80);
    if (rd(s, EFR) == 0) {
        type = "16650 or FSL64";
        goto done;
    }
    wr(s, LCR, 0xbf);
    if (rd(s, EFR) == 0) {
        type = "16650V2 family";
        goto done;
    }
    /* National SuperIO: LOOP bit visible through bank 2. */
    wr(s, LCR, 0);
    uint8_t st1 = rd(s, MCR);
    wr(s, LCR, 0xe0);
    uint8_t st2 = rd(s, 2);
    if (!((st2 ^ st1) & MCR_LOOP)) {
        wr(s, LCR, 0);
        wr(s, MCR, st1 ^ MCR_LOOP);
        wr(s, LCR, 0xe0);
        st2 = rd(s, 2);
        wr(s, LCR, 0);
        wr(s, MCR, st1);
        if ((st2 ^ st1) & MCR_LOOP) {
            type = "NS16550A";
            goto done;
        }
    }
    /* TI16750: IIR bit 5 with 64-byte mode. */
    wr(s, LCR, 0);
    wr(s, FCR, FCR_ENABLE | FCR7_64BYTE);
    st1 = rd(s, IIR) >> 5;
    wr(s, FCR, FCR_ENABLE);
    wr(s, LCR, 0x80);
    wr(s, FCR, FCR_ENABLE | FCR7_64BYTE);
    st2 = rd(s, IIR) >> 5;
    wr(s, FCR, FCR_ENABLE);
    wr(s, LCR, 0);
    if (st1 == 6 && st2 == 7) {
        type = "16750";
        goto done;
    }
    /* XScale: IER bit 6 writable. */
    uint8_t iersave = rd(s, IER);
    wr(s, IER, iersave & ~IER_UUE);
    if (!(rd(s, IER) & IER_UUE)) {
        wr(s, IER, iersave | IER_UUE);
        if (rd(s, IER) & IER_UUE) {
            type = "XScale";
            goto done;
        }
    }
    wr(s, IER, iersave);
    if (size_fifo(s) == 64)
        type = "U6_16550A";

done:
    wr(s, LCR, save_lcr);
    /* "Reset the UART". */
    wr(s, MCR, save_mcr);
    wr(s, FCR, FCR_ENABLE);
    wr(s, FCR, FCR_ENABLE | FCR_CLR_RX | FCR_CLR_TX);
    wr(s, FCR, 0);
    rd(s, RX);
    wr(s, IER, 0);
    return type;
}

/* serial8250_do_startup's checks and port setup. Returns false where the
 * driver would give up, and reports the two THRE workarounds it decides. */
static bool linux_startup(struct serial *s, bool *bug_thre, bool *bug_txen)
{
    wr(s, FCR, FCR_ENABLE);
    wr(s, FCR, FCR_ENABLE | FCR_CLR_RX | FCR_CLR_TX);
    wr(s, FCR, 0);
    rd(s, LSR);
    rd(s, RX);
    rd(s, IIR);
    rd(s, MSR);
    if (rd(s, LSR) == 0xff)
        return false;

    /* THRE re-assertion test. */
    assert_true(rd(s, LSR) & LSR_THRE);
    wr(s, IER, IER_THRI);
    uint8_t iir1 = rd(s, IIR);
    wr(s, IER, 0);
    wr(s, IER, IER_THRI);
    uint8_t iir = rd(s, IIR);
    wr(s, IER, 0);
    *bug_thre = !(iir1 & IIR_NO_INT) && (iir & IIR_NO_INT);

    wr(s, LCR, LCR_WLEN8);
    wr(s, MCR, MCR_DTR | MCR_RTS | MCR_OUT2);

    /* "quick test to see if we receive an interrupt when we enable the TX
     * irq" */
    wr(s, IER, IER_THRI);
    uint8_t lsr = rd(s, LSR);
    iir = rd(s, IIR);
    wr(s, IER, 0);
    *bug_txen = (lsr & LSR_TEMT) && (iir & IIR_NO_INT);

    rd(s, LSR);
    rd(s, RX);
    rd(s, IIR);
    rd(s, MSR);
    wr(s, IER, IER_RLSI | IER_RDI);

    /* set_termios: 115200 8N1, FIFO with an 8-byte trigger. */
    wr(s, LCR, LCR_DLAB | LCR_WLEN8);
    wr(s, DLL, 1);
    wr(s, DLM, 0);
    wr(s, LCR, LCR_WLEN8);
    wr(s, FCR, FCR_ENABLE | FCR_TRIG_8);
    return true;
}

/* ---- tests ---------------------------------------------------------- */

static void test_reset_state(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    assert_int_equal(rd(s, IER), 0);
    assert_int_equal(rd(s, IIR), 0x01);
    assert_int_equal(rd(s, LCR), 0);
    assert_int_equal(rd(s, MCR), 0);
    assert_int_equal(rd(s, LSR), LSR_THRE | LSR_TEMT);
    assert_int_equal(rd(s, MSR), 0xb0); /* CTS, DSR, DCD; no deltas */
    assert_int_equal(rd(s, SCR), 0);
    assert_int_equal(f->irq.ncalls, 0);
}

static void test_scratch_register(void **state)
{
    struct serial *s = ((struct fixture *)*state)->s;
    wr(s, SCR, 0xa5);
    assert_int_equal(rd(s, SCR), 0xa5);
    wr(s, SCR, 0x5a);
    assert_int_equal(rd(s, SCR), 0x5a);
    /* DLAB does not hide the scratch register. */
    wr(s, LCR, LCR_DLAB);
    assert_int_equal(rd(s, SCR), 0x5a);
}

static void test_ier_existence_test(void **state)
{
    struct serial *s = ((struct fixture *)*state)->s;
    wr(s, IER, 0);
    assert_int_equal(rd(s, IER) & 0x0f, 0);
    wr(s, IER, 0x0f);
    assert_int_equal(rd(s, IER), 0x0f);
    /* Upper bits do not exist on a 16550A (the XScale UUE probe). */
    wr(s, IER, 0xff);
    assert_int_equal(rd(s, IER), 0x0f);
    wr(s, IER, 0);
}

static void test_lcr_dlab(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    wr(s, IER, IER_RDI);
    wr(s, LCR, LCR_DLAB | LCR_WLEN8);
    assert_int_equal(rd(s, LCR), LCR_DLAB | LCR_WLEN8);
    wr(s, DLL, 0x34);
    wr(s, DLM, 0x12);
    assert_int_equal(rd(s, DLL), 0x34);
    assert_int_equal(rd(s, DLM), 0x12);
    wr(s, LCR, LCR_WLEN8);
    /* IER came back untouched, and the DLL write sent nothing. */
    assert_int_equal(rd(s, IER), IER_RDI);
    uint8_t buf[4];
    assert_int_equal(drain_pipe(f->pipe_rd, buf, sizeof(buf)), 0);
    wr(s, LCR, LCR_DLAB);
    assert_int_equal(rd(s, DLL), 0x34);
    assert_int_equal(rd(s, DLM), 0x12);
}

static void test_loopback_msr(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    /* autoconfig's test: LOOP | RTS | OUT2 -> CTS | DCD. */
    wr(s, MCR, MCR_LOOP | 0x0a);
    assert_int_equal(rd(s, MSR) & 0xf0, 0x90);
    wr(s, MCR, 0);
    assert_int_equal(rd(s, MSR) & 0xf0, 0xb0);

    /* Each MCR output maps to its MSR input, with delta bits. */
    wr(s, MCR, MCR_LOOP);
    rd(s, MSR); /* clear deltas */
    wr(s, MCR, MCR_LOOP | MCR_DTR);
    assert_int_equal(rd(s, MSR), 0x20 | 0x02); /* DSR, DDSR */
    assert_int_equal(rd(s, MSR), 0x20);        /* deltas cleared */
    wr(s, MCR, MCR_LOOP | MCR_DTR | MCR_RTS);
    assert_int_equal(rd(s, MSR), 0x30 | 0x01); /* + CTS, DCTS */
    wr(s, MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2);
    assert_int_equal(rd(s, MSR), 0xb0 | 0x08); /* + DCD, DDCD */
    wr(s, MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2 | MCR_OUT1);
    assert_int_equal(rd(s, MSR), 0xf0); /* RI rising: no TERI */
    wr(s, MCR, MCR_LOOP | MCR_DTR | MCR_RTS | MCR_OUT2);
    assert_int_equal(rd(s, MSR), 0xb0 | 0x04); /* RI falling: TERI */
    /* MCR bits 7:5 do not exist. */
    wr(s, MCR, 0xe0 | MCR_DTR);
    assert_int_equal(rd(s, MCR), MCR_DTR);
    /* Loopback bytes never reach the host. */
    wr(s, MCR, MCR_LOOP);
    wr(s, TX, 'x');
    uint8_t buf[4];
    assert_int_equal(drain_pipe(f->pipe_rd, buf, sizeof(buf)), 0);
    assert_true(rd(s, LSR) & LSR_DR);
    assert_int_equal(rd(s, RX), 'x');
}

static void test_linux_detects_16550a(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    assert_string_equal(linux_autoconfig(s, false), "16550A");
    /* The probe leaves the port quiet, and sent nothing to the host. */
    assert_int_equal(rd(s, IIR), 0x01);
    assert_int_equal(rd(s, MCR), 0);
    assert_int_equal(rd(s, LCR), 0);
    uint8_t buf[8];
    assert_int_equal(drain_pipe(f->pipe_rd, buf, sizeof(buf)), 0);
    assert_int_equal(size_fifo(s), 16);
    assert_int_equal(f->irq.level, 0);
    /* Probing again (e.g. setserial autoconfig) gives the same answer. */
    assert_string_equal(linux_autoconfig(s, true), "16550A");
}

static void test_fifo_bits_in_iir(void **state)
{
    struct serial *s = ((struct fixture *)*state)->s;
    assert_int_equal(rd(s, IIR) & 0xc0, 0);
    wr(s, FCR, FCR_ENABLE);
    assert_int_equal(rd(s, IIR), 0xc1);
    /* 64-byte mode does not exist: IIR bit 5 stays 0. */
    wr(s, FCR, FCR_ENABLE | FCR7_64BYTE);
    assert_int_equal(rd(s, IIR), 0xc1);
    /* FCR is reachable with DLAB set (it shares nothing with DLL/DLM). */
    wr(s, LCR, LCR_DLAB);
    wr(s, FCR, 0);
    assert_int_equal(rd(s, IIR), 0x01);
    wr(s, FCR, FCR_ENABLE);
    assert_int_equal(rd(s, IIR), 0xc1);
}

static void test_linux_startup_thre(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    assert_string_equal(linux_autoconfig(s, true), "16550A");
    rec_reset(&f->irq);
    bool bug_thre = true, bug_txen = true;
    assert_true(linux_startup(s, &bug_thre, &bug_txen));
    assert_false(bug_thre);
    assert_false(bug_txen);
    /* Each of the three THRI enables was a fresh edge, and every raise
     * was followed by a drop once IIR acknowledged it. */
    assert_int_equal(f->irq.rises, 3);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(f->irq.bad, 0);
    assert_int_equal(rd(s, IIR), 0xc1);
}

static void test_thre_interrupt_semantics(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    wr(s, IER, IER_THRI);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(rd(s, IIR), 0x02);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(rd(s, IIR), 0x01); /* acknowledged */
    /* Writing THR empties it at once: THRE pending again, a new edge. */
    wr(s, TX, 'a');
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(f->irq.rises, 2);
    assert_int_equal(rd(s, LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
    /* Disabling ETBEI drops it; re-enabling re-raises it. */
    wr(s, IER, 0);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(rd(s, IIR), 0x01);
    wr(s, IER, IER_THRI);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(f->irq.rises, 3);
    /* Rewriting IER with THRI already set is not a new THRE event. */
    rd(s, IIR);
    wr(s, IER, IER_THRI);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(rd(s, IIR), 0x01);
    assert_int_equal(f->irq.bad, 0);
}

static void test_tx_to_pipe(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    const char *msg = "Linux version 6.1.0\r\n";
    for (const char *p = msg; *p; p++) {
        assert_true(rd(s, LSR) & LSR_THRE);
        wr(s, TX, (uint8_t)*p);
    }
    uint8_t buf[64];
    size_t n = drain_pipe(f->pipe_rd, buf, sizeof(buf));
    assert_int_equal(n, strlen(msg));
    assert_memory_equal(buf, msg, n);
}

static void test_tx_errors_ignored(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    /* A full non-blocking pipe: EAGAIN loses bytes, never blocks. */
    fcntl(f->pipe_wr, F_SETFL, O_NONBLOCK);
    uint8_t junk[4096];
    memset(junk, 'j', sizeof(junk));
    while (write(f->pipe_wr, junk, sizeof(junk)) > 0)
        ;
    for (int i = 0; i < 100; i++)
        wr(s, TX, 'x');
    assert_true(rd(s, LSR) & LSR_TEMT);
    /* Reader gone: EPIPE, and no SIGPIPE kills this process. */
    close(f->pipe_rd);
    f->pipe_rd = -1;
    for (int i = 0; i < 100; i++)
        wr(s, TX, 'y');
    assert_true(rd(s, LSR) & LSR_THRE);
}

static void test_tx_discard_fd(void **state)
{
    struct irq_line none = { 0 };
    struct serial *s = serial_new(none, -1, VMLET_SECCOMP_OFF);
    assert_non_null(s);
    wr(s, IER, IER_THRI); /* no set callback: must not crash */
    wr(s, TX, 'z');
    assert_int_equal(rd(s, IIR), 0x02);
    serial_free(s);
    serial_free(NULL);
}

static void test_rx_fifo(void **state)
{
    struct serial *s = ((struct fixture *)*state)->s;
    uint8_t in[20];
    for (int i = 0; i < 20; i++)
        in[i] = (uint8_t)(0x40 + i);
    /* 16450 mode: one holding register. */
    assert_int_equal(serial_push_rx(s, in, 20), 1);
    assert_int_equal(serial_push_rx(s, in, 20), 0);
    assert_int_equal(rd(s, RX), 0x40);
    /* FIFO mode: sixteen. */
    wr(s, FCR, FCR_ENABLE);
    assert_int_equal(serial_push_rx(s, in, 20), 16);
    assert_int_equal(serial_push_rx(s, in + 16, 4), 0);
    for (int i = 0; i < 16; i++) {
        assert_true(rd(s, LSR) & LSR_DR);
        assert_int_equal(rd(s, RX), 0x40 + i);
    }
    assert_false(rd(s, LSR) & LSR_DR);
    assert_int_equal(rd(s, RX), 0); /* empty FIFO reads as 0 */
    assert_int_equal(serial_push_rx(s, in + 16, 4), 4);
    assert_int_equal(rd(s, RX), 0x50);
    /* Clearing the RX FIFO drops what is left. */
    wr(s, FCR, FCR_ENABLE | FCR_CLR_RX);
    assert_false(rd(s, LSR) & LSR_DR);
    /* So does switching FIFOs off. */
    assert_int_equal(serial_push_rx(s, in, 3), 3);
    wr(s, FCR, 0);
    assert_false(rd(s, LSR) & LSR_DR);
    assert_int_equal(serial_push_rx(s, NULL, 3), 0);
    assert_int_equal(serial_push_rx(s, in, 0), 0);
}

static void test_rx_overflow_oe(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    wr(s, FCR, FCR_ENABLE);
    wr(s, MCR, MCR_LOOP);
    for (int i = 0; i < 20; i++)
        wr(s, TX, (uint8_t)i);
    uint8_t lsr = rd(s, LSR);
    assert_int_equal(lsr & (LSR_DR | LSR_OE), LSR_DR | LSR_OE);
    assert_false(rd(s, LSR) & LSR_OE); /* OE clears on read */
    /* The FIFO kept the first sixteen; the rest were lost. */
    for (int i = 0; i < 16; i++)
        assert_int_equal(rd(s, RX), i);
    assert_false(rd(s, LSR) & LSR_DR);

    /* 16450 mode overwrites the holding register instead. */
    wr(s, FCR, 0);
    wr(s, TX, 'a');
    wr(s, TX, 'b');
    assert_int_equal(rd(s, LSR) & (LSR_DR | LSR_OE), LSR_DR | LSR_OE);
    assert_int_equal(rd(s, RX), 'b');
    assert_false(rd(s, LSR) & LSR_DR);
}

static void test_rx_trigger_and_timeout(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    wr(s, FCR, FCR_ENABLE | FCR_TRIG_8);
    wr(s, IER, IER_RDI);
    uint8_t in[8] = "abcdefgh";
    assert_int_equal(serial_push_rx(s, in, 3), 3);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(rd(s, IIR), 0xcc); /* below trigger: timeout */
    assert_int_equal(serial_push_rx(s, in + 3, 5), 5);
    assert_int_equal(rd(s, IIR), 0xc4); /* at trigger: data available */
    assert_int_equal(f->irq.rises, 1);
    for (int i = 0; i < 7; i++)
        rd(s, RX);
    assert_int_equal(rd(s, IIR), 0xcc);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(rd(s, RX), 'h');
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(rd(s, IIR), 0xc1);
    /* 16450 mode reports plain data available. */
    wr(s, FCR, 0);
    serial_push_rx(s, in, 1);
    assert_int_equal(rd(s, IIR), 0x04);
}

static void test_iir_priority(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    wr(s, FCR, FCR_ENABLE);
    wr(s, MCR, MCR_LOOP);
    rd(s, MSR);
    /* Build every condition with interrupts masked: an overrun (line
     * status), data, THR empty and a modem-status delta. */
    for (int i = 0; i < 17; i++)
        wr(s, TX, (uint8_t)i);
    wr(s, MCR, MCR_LOOP | MCR_RTS);
    assert_int_equal(f->irq.ncalls, 0);
    wr(s, IER, 0x0f);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(rd(s, IIR), 0xc6); /* line status first */
    assert_int_equal(rd(s, IIR), 0xc6); /* ...until LSR is read */
    assert_true(rd(s, LSR) & LSR_OE);
    assert_int_equal(rd(s, IIR), 0xc4); /* then data */
    for (int i = 0; i < 16; i++)
        rd(s, RX);
    assert_int_equal(rd(s, IIR), 0xc2); /* then THRE (cleared now) */
    assert_int_equal(rd(s, IIR), 0xc0); /* then modem status */
    assert_int_equal(rd(s, MSR) & 0x0f, 0x01);
    assert_int_equal(rd(s, IIR), 0xc1);
    assert_int_equal(f->irq.level, 0);
    assert_int_equal(f->irq.bad, 0);
}

static void test_irq_edges(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    wr(s, FCR, FCR_ENABLE);
    wr(s, IER, IER_RDI);
    uint8_t c = 'k';
    /* Each new character after the FIFO was drained is a new edge. */
    for (int i = 0; i < 3; i++) {
        serial_push_rx(s, &c, 1);
        assert_int_equal(f->irq.level, 1);
        rd(s, RX);
        assert_int_equal(f->irq.level, 0);
    }
    assert_int_equal(f->irq.rises, 3);

    /* More data while the line is already up: no spurious toggling. */
    serial_push_rx(s, &c, 1);
    serial_push_rx(s, &c, 1);
    assert_int_equal(f->irq.rises, 4);
    assert_int_equal(f->irq.bad, 0);

    /* Two sources; servicing one leaves the other pending: the line is
     * dropped and raised again so the IOAPIC sees a new edge. */
    wr(s, IER, IER_RDI | IER_THRI);
    assert_int_equal(f->irq.level, 1);
    unsigned calls = f->irq.ncalls, rises = f->irq.rises;
    rd(s, RX);
    rd(s, RX); /* RX serviced, THRE remains */
    assert_int_equal(f->irq.ncalls, calls + 2);
    assert_int_equal(f->irq.calls[calls], 0);
    assert_int_equal(f->irq.calls[calls + 1], 1);
    assert_int_equal(f->irq.rises, rises + 1);
    assert_int_equal(rd(s, IIR), 0xc2);
    assert_int_equal(f->irq.level, 0);

    /* A THR write while THRE is pending re-arms it without a glitch. */
    wr(s, TX, 'q');
    assert_int_equal(f->irq.level, 1);
    calls = f->irq.ncalls;
    wr(s, TX, 'r');
    assert_int_equal(f->irq.ncalls, calls);
    /* Masking (IER) is not servicing: plain level change only. */
    serial_push_rx(s, &c, 1);
    calls = f->irq.ncalls;
    wr(s, IER, IER_RDI);
    assert_int_equal(f->irq.ncalls, calls);
    assert_int_equal(f->irq.level, 1);
    assert_int_equal(f->irq.bad, 0);
}

/* A guest interrupt handler in the style of serial8250_handle_irq, run
 * whenever the line rose (like a latched LAPIC IRR bit). */
struct guest {
    struct serial *s;
    const uint8_t *tx;
    size_t tx_len, tx_pos;
    uint8_t rx[4096];
    size_t rx_len;
    uint8_t ier;
};

static void guest_isr(struct guest *g)
{
    for (int pass = 0; pass < 512; pass++) {
        uint8_t iir = rd(g->s, IIR);
        if (iir & IIR_NO_INT)
            return;
        uint8_t lsr = rd(g->s, LSR);
        for (int n = 0; (lsr & LSR_DR) && n < 256; n++) {
            uint8_t b = rd(g->s, RX);
            if (g->rx_len < sizeof(g->rx))
                g->rx[g->rx_len++] = b;
            lsr = rd(g->s, LSR);
        }
        rd(g->s, MSR);
        if ((lsr & LSR_THRE) && (g->ier & IER_THRI)) {
            for (int n = 0; n < 16 && g->tx_pos < g->tx_len; n++)
                wr(g->s, TX, g->tx[g->tx_pos++]);
            if (g->tx_pos == g->tx_len) {
                g->ier &= ~IER_THRI; /* __stop_tx */
                wr(g->s, IER, g->ier);
            }
        }
    }
    fail_msg("handler looped 512 times");
}

static void test_linux_interrupt_driven_io(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    assert_string_equal(linux_autoconfig(s, true), "16550A");
    bool bt, bx;
    assert_true(linux_startup(s, &bt, &bx));

    static uint8_t out[1000], in[300];
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)('A' + i % 26);
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;

    struct guest g = { .s = s, .tx = out, .tx_len = sizeof(out), .ier = IER_RLSI | IER_RDI };
    rec_reset(&f->irq);
    /* start_tx: THRI on. */
    g.ier |= IER_THRI;
    wr(s, IER, g.ier);
    size_t pushed = 0;
    unsigned handled_rises = 0;
    for (int round = 0; round < 10000; round++) {
        if (pushed < sizeof(in))
            pushed += serial_push_rx(s, in + pushed,
                                     sizeof(in) - pushed < 5 ? sizeof(in) - pushed : 5);
        if (f->irq.rises == handled_rises) {
            if (pushed == sizeof(in) && g.tx_pos == g.tx_len)
                break;
            continue; /* nothing latched: the guest idles */
        }
        handled_rises = f->irq.rises;
        guest_isr(&g);
        /* After each handler run, the line is low: nothing is lost. */
        assert_int_equal(f->irq.level, 0);
    }
    assert_int_equal(g.tx_pos, sizeof(out));
    assert_int_equal(g.rx_len, sizeof(in));
    assert_memory_equal(g.rx, in, sizeof(in));
    uint8_t buf[2048];
    assert_int_equal(drain_pipe(f->pipe_rd, buf, sizeof(buf)), sizeof(out));
    assert_memory_equal(buf, out, sizeof(out));
    assert_int_equal(f->irq.bad, 0);
}

/* ---- host input thread ---------------------------------------------- */

struct pusher {
    struct serial *s;
    const uint8_t *buf;
    size_t len;
    _Atomic size_t done; /* peeked at by the main thread */
    bool result;
};

static void *push_thread(void *arg)
{
    struct pusher *p = arg;
    p->result = true;
    while (p->done < p->len) {
        size_t n = serial_push_rx(p->s, p->buf + p->done, p->len - p->done);
        p->done += n;
        if (n == 0 && !serial_wait_rx_space(p->s)) {
            p->result = false;
            break;
        }
    }
    return NULL;
}

static void test_push_rx_from_thread(void **state)
{
    struct serial *s = ((struct fixture *)*state)->s;
    wr(s, FCR, FCR_ENABLE);
    static uint8_t data[5000], got[5000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    struct pusher p = { .s = s, .buf = data, .len = sizeof(data) };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, push_thread, &p), 0);
    size_t n = 0;
    int toggles = 0;
    while (n < sizeof(data)) {
        if (rd(s, LSR) & LSR_DR) {
            got[n++] = rd(s, RX);
            /* Now and then hold the port in loopback for a while: host
             * input must wait (not be lost) until it ends. */
            if (n % 1000 == 0 && toggles < 3) {
                wr(s, MCR, MCR_LOOP);
                struct timespec ts = { 0, 2000000 };
                nanosleep(&ts, NULL);
                while (rd(s, LSR) & LSR_DR) /* nothing new arrived */
                    got[n++] = rd(s, RX);
                wr(s, MCR, 0);
                toggles++;
            }
        } else {
            sched_yield();
        }
    }
    pthread_join(t, NULL);
    assert_true(p.result);
    assert_memory_equal(got, data, sizeof(data));
}

static void test_shutdown_wakes_waiter(void **state)
{
    struct serial *s = ((struct fixture *)*state)->s;
    uint8_t big[100] = { 0 };
    /* 16450 mode, holding register full: the pusher will wait. */
    struct pusher p = { .s = s, .buf = big, .len = sizeof(big) };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, push_thread, &p), 0);
    /* Wait (bounded) for the first byte, then give the thread time to
     * block; shutdown wakes it whether or not it got there yet. */
    struct timespec ts = { 0, 1000000 };
    for (int i = 0; i < 5000 && p.done == 0; i++)
        nanosleep(&ts, NULL);
    assert_int_equal(p.done, 1);
    nanosleep(&ts, NULL);
    serial_shutdown(s);
    pthread_join(t, NULL);
    assert_false(p.result);
    assert_false(serial_wait_rx_space(s));
    rd(s, RX);
    assert_int_equal(serial_push_rx(s, big, 1), 0);
}

static void test_wait_returns_when_room(void **state)
{
    struct serial *s = ((struct fixture *)*state)->s;
    wr(s, FCR, FCR_ENABLE);
    assert_true(serial_wait_rx_space(s)); /* room now: no wait */
}

static void test_loopback_holds_host_input(void **state)
{
    struct serial *s = ((struct fixture *)*state)->s;
    wr(s, FCR, FCR_ENABLE);
    wr(s, MCR, MCR_LOOP);
    uint8_t msg[4] = "abc";
    /* The receiver is cut off from the line: nothing taken... */
    assert_int_equal(serial_push_rx(s, msg, 3), 0);
    assert_false(rd(s, LSR) & LSR_DR);
    /* ...and the input thread waits until loopback ends. */
    struct pusher p = { .s = s, .buf = msg, .len = 3 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, push_thread, &p), 0);
    struct timespec ts = { 0, 20000000 };
    nanosleep(&ts, NULL);
    assert_int_equal(p.done, 0);
    wr(s, MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
    pthread_join(t, NULL);
    assert_true(p.result);
    assert_int_equal(p.done, 3);
    assert_int_equal(rd(s, RX), 'a');
    assert_int_equal(rd(s, RX), 'b');
    assert_int_equal(rd(s, RX), 'c');
}

/* ---- hostile guest -------------------------------------------------- */

static void test_malformed_accesses(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    wr(s, SCR, 0x11);
    uint8_t buf[8];
    static const uint32_t lens[] = { 2, 3, 4, 8 };
    for (unsigned i = 0; i < 4; i++) {
        memset(buf, 0x77, sizeof(buf));
        serial_pio(s, SCR, buf, lens[i], true); /* ignored */
        serial_pio(s, 0, buf, lens[i], false);
        for (uint32_t j = 0; j < lens[i]; j++)
            assert_int_equal(buf[j], 0xff);
    }
    assert_int_equal(rd(s, SCR), 0x11);
    static const uint64_t offs[] = { 8, 9, 255, 0x10000, UINT64_MAX };
    for (unsigned i = 0; i < 5; i++) {
        buf[0] = 0x22;
        serial_pio(s, offs[i], buf, 1, true);
        buf[0] = 0;
        serial_pio(s, offs[i], buf, 1, false);
        assert_int_equal(buf[0], 0xff);
    }
    serial_pio(s, 0, NULL, 1, false);
    serial_pio(s, 0, buf, 0, true);
    assert_int_equal(rd(s, SCR), 0x11);
    uint8_t tmp[4];
    assert_int_equal(drain_pipe(f->pipe_rd, tmp, sizeof(tmp)), 0);
}

static void test_fuzz_registers(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    uint8_t in[32] = { 1, 2, 3 };
    uint32_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        x = x * 1103515245u + 12345u;
        unsigned off = (x >> 8) & 7;
        uint8_t v = (uint8_t)(x >> 16);
        if ((x >> 28) & 1) {
            wr(s, off, v);
        } else {
            uint8_t r = rd(s, off);
            if (off == IIR)
                assert_int_equal(r & 0x30, 0); /* never a 16750/EFR */
        }
        if ((i & 63) == 0)
            serial_push_rx(s, in, (x >> 3) & 31);
        /* Drain the pipe now and then so blocking writes never stall. */
        if ((i & 1023) == 0) {
            uint8_t junk[2048];
            drain_pipe(f->pipe_rd, junk, sizeof(junk));
        }
    }
    /* The line always matches the last level set, never set twice. */
    assert_int_equal(f->irq.bad, 0);
    wr(s, LCR, 0);
    wr(s, IER, 0);
    assert_int_equal(f->irq.level, 0);
}

/* ---- a stalled console reader (issue 10) ---------------------------- */

/* The tests below call into the device as a vCPU would. With output that
 * blocked on a full pipe they would hang forever: the alarm turns that
 * into a failure. */
static void watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "test_serial: watchdog: a register access blocked\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(1);
}

static void watchdog_arm(unsigned seconds)
{
    struct sigaction sa = { .sa_handler = watchdog_fired };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#define STALL_TOTAL (1024 * 1024)

/* Reads exactly want bytes from the non-blocking pipe, waiting for them
 * up to 10 s. */
static size_t read_exactly(int fd, uint8_t *buf, size_t want)
{
    size_t got = 0;
    double end = now_s() + 10;
    while (got < want && now_s() < end) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        poll(&p, 1, 100);
    }
    return got;
}

static void test_tx_stalled_reader(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    watchdog_arm(30);
    wr(s, FCR, FCR_ENABLE);
    wr(s, IER, IER_THRI);
    rd(s, IIR); /* acknowledge the THRE that enabling ETBEI raised */

    /* The pipe is never read: write 1 MiB, as a driver that honours THRE
     * while it can and then writes anyway (Linux's console after its
     * 10 ms wait). No access may block. */
    size_t accepted = 0;
    double t0 = now_s(), worst = 0;
    bool busy_seen = false;
    for (size_t i = 0; i < STALL_TOTAL; i++) {
        double a = now_s();
        uint8_t lsr = rd(s, LSR);
        if (!busy_seen && (lsr & LSR_THRE)) {
            wr(s, TX, (uint8_t)(accepted++ % 251));
        } else {
            if (!busy_seen) {
                /* Host side full: transmitter busy, no THRE interrupt. */
                assert_int_equal(lsr & (LSR_THRE | LSR_TEMT), 0);
                assert_int_not_equal(rd(s, IIR) & 0x0f, 0x02);
                busy_seen = true;
            }
            wr(s, TX, 0xee);
        }
        double d = now_s() - a;
        if (d > worst)
            worst = d;
    }
    assert_true(busy_seen);
    assert_false(rd(s, LSR) & LSR_THRE);
    /* Pipe (64 KiB) plus the 64 KiB buffer, less than one FIFO load. */
    assert_in_range(accepted, 64 * 1024, 192 * 1024);
    assert_true(worst < 0.5);
    assert_true(now_s() - t0 < 20);

    uint64_t bytes, dropped;
    serial_get_tx_stats(s, &bytes, &dropped);
    /* Writes past THRE fill the last few bytes, the rest is counted. */
    size_t extra = STALL_TOTAL - accepted - (size_t)dropped;
    assert_in_range(extra, 0, 15);

    /* The reader wakes up: everything accepted arrives, in order. */
    rec_reset(&f->irq);
    size_t want = accepted + extra;
    uint8_t *buf = malloc(want + 1);
    assert_non_null(buf);
    assert_int_equal(read_exactly(f->pipe_rd, buf, want), want);
    for (size_t i = 0; i < accepted; i++)
        if (buf[i] != (uint8_t)(i % 251))
            fail_msg("byte %zu is 0x%02x, not 0x%02x", i, buf[i], (unsigned)(i % 251));
    for (size_t i = accepted; i < want; i++)
        assert_int_equal(buf[i], 0xee);
    assert_int_equal(drain_pipe(f->pipe_rd, buf, 1), 0);
    free(buf);

    /* THRE is back, and its interrupt was raised for the waiting driver. */
    assert_int_equal(rd(s, LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
    pthread_mutex_lock(&f->irq.lock);
    unsigned rises = f->irq.rises;
    pthread_mutex_unlock(&f->irq.lock);
    assert_true(rises >= 1);
    assert_int_equal(rd(s, IIR) & 0x0f, 0x02);
    serial_get_tx_stats(s, &bytes, &dropped);
    assert_int_equal(bytes, want);
    alarm(0);
}

struct slow_reader {
    int fd;
    uint8_t *buf;
    size_t want, got;
};

static void *slow_reader_thread(void *arg)
{
    struct slow_reader *r = arg;
    /* Asleep at first, long enough for the pipe and the buffer to fill. */
    static const struct timespec nap = { 0, 300 * 1000 * 1000 };
    nanosleep(&nap, NULL);
    r->got = read_exactly(r->fd, r->buf, r->want);
    return NULL;
}

#define SLOW_TOTAL (256 * 1024) /* one syscall a byte while the pipe keeps up */

/* A driver that waits for THRE loses nothing however slow the reader. */
static void test_tx_backpressure_no_loss(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    watchdog_arm(30);
    fcntl(f->pipe_wr, F_SETPIPE_SZ, 4096); /* a small pipe: more stalls */
    struct slow_reader r = { .fd = f->pipe_rd, .want = SLOW_TOTAL };
    r.buf = malloc(SLOW_TOTAL);
    assert_non_null(r.buf);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_reader_thread, &r), 0);
    unsigned busy = 0;
    for (size_t i = 0; i < SLOW_TOTAL; i++) {
        while (!(rd(s, LSR) & LSR_THRE)) {
            busy++;
            sched_yield();
        }
        wr(s, TX, (uint8_t)(i % 253));
    }
    pthread_join(t, NULL);
    assert_int_equal(r.got, SLOW_TOTAL);
    assert_true(busy > 0); /* the reader did hold the guest back */
    for (size_t i = 0; i < SLOW_TOTAL; i++)
        if (r.buf[i] != (uint8_t)(i % 253))
            fail_msg("byte %zu is 0x%02x", i, r.buf[i]);
    free(r.buf);
    uint64_t bytes, dropped;
    serial_get_tx_stats(s, &bytes, &dropped);
    assert_int_equal(bytes, SLOW_TOTAL);
    assert_int_equal(dropped, 0);
    alarm(0);
}

/* The reader goes away while the transmitter is busy: the buffered bytes
 * are dropped (counted) and THRE comes back with its interrupt, so a
 * driver waiting for it is not left waiting. */
static void test_tx_reader_gone_while_busy(void **state)
{
    struct fixture *f = *state;
    struct serial *s = f->s;
    watchdog_arm(30);
    wr(s, IER, IER_THRI);
    rd(s, IIR);
    size_t n = 0;
    while (rd(s, LSR) & LSR_THRE) {
        wr(s, TX, 'b');
        n++;
        assert_true(n < 1024 * 1024);
    }
    rec_reset(&f->irq);
    close(f->pipe_rd);
    f->pipe_rd = -1;
    double end = now_s() + 10;
    while (!(rd(s, LSR) & LSR_THRE) && now_s() < end) {
        static const struct timespec ms = { 0, 1000 * 1000 };
        nanosleep(&ms, NULL);
    }
    assert_true(rd(s, LSR) & LSR_THRE);
    pthread_mutex_lock(&f->irq.lock);
    unsigned rises = f->irq.rises;
    pthread_mutex_unlock(&f->irq.lock);
    assert_true(rises >= 1);
    uint64_t bytes, dropped;
    serial_get_tx_stats(s, &bytes, &dropped);
    assert_int_equal(bytes + dropped, n);
    assert_true(dropped > 0);
    alarm(0);
}

/* The output is a terminal nobody reads (a pty whose master is left
 * alone, like a terminal stopped with Ctrl-S), and blocking, as stdout
 * usually is: no access blocks, the descriptor's flags stay as they were,
 * and what was accepted arrives once the terminal is read. */
static void test_tx_stalled_tty(void **state)
{
    (void)state;
    watchdog_arm(30);
    int master, slave = raw_pty_open(&master);
    if (slave < 0)
        skip(); /* no ptys here */
    int flags = fcntl(slave, F_GETFL);

    struct irq_line none = { 0 };
    struct serial *s = serial_new(none, slave, VMLET_SECCOMP_OFF);
    assert_non_null(s);
    size_t accepted = 0;
    for (int i = 0; i < 512 * 1024 && (rd(s, LSR) & LSR_THRE); i++)
        wr(s, TX, (uint8_t)(accepted++ % 249));
    assert_false(rd(s, LSR) & LSR_THRE); /* the terminal filled up */
    assert_int_equal(fcntl(slave, F_GETFL), flags);

    fcntl(master, F_SETFL, O_NONBLOCK);
    uint8_t *buf = malloc(accepted);
    assert_non_null(buf);
    assert_int_equal(read_exactly(master, buf, accepted), accepted);
    for (size_t i = 0; i < accepted; i++)
        if (buf[i] != (uint8_t)(i % 249))
            fail_msg("byte %zu is 0x%02x", i, buf[i]);
    free(buf);
    assert_true(rd(s, LSR) & LSR_THRE);
    serial_free(s);
    close(slave);
    close(master);
    alarm(0);
}

/* Freeing the device with output stalled returns within its flush time;
 * the bytes that never went out are counted as dropped. */
static void test_free_with_stalled_output(void **state)
{
    (void)state;
    watchdog_arm(30);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct irq_line none = { 0 };
    struct serial *s = serial_new(none, p[1], VMLET_SECCOMP_OFF);
    assert_non_null(s);
    for (int i = 0; i < 256 * 1024; i++)
        wr(s, TX, 'q');
    double t0 = now_s();
    serial_free(s);
    assert_true(now_s() - t0 < 2);
    close(p[0]);
    close(p[1]);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scratch_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ier_existence_test, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lcr_dlab, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_msr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linux_detects_16550a, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_bits_in_iir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linux_startup_thre, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thre_interrupt_semantics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_to_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_errors_ignored, setup, teardown),
        cmocka_unit_test(test_tx_discard_fd),
        cmocka_unit_test_setup_teardown(test_rx_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_overflow_oe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rx_trigger_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iir_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_irq_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linux_interrupt_driven_io, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_rx_from_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_wakes_waiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_returns_when_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_holds_host_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_accesses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz_registers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_stalled_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_backpressure_no_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_reader_gone_while_busy, setup, teardown),
        cmocka_unit_test(test_tx_stalled_tty),
        cmocka_unit_test(test_free_with_stalled_output),
    };
    return cmocka_run_group_tests_name("serial", tests, NULL, NULL);
}
