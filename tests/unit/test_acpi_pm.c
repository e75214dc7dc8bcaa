/* Unit tests for the ACPI PM1a/reset registers (src/dev/acpi_pm.c) and the
 * i8042 reset line (src/dev/i8042.c). Register layouts: ACPI 6.4 4.8.3. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <stdlib.h>

#include "dev/acpi_pm.h"
#include "dev/i8042.h"
#include "layout.h"

#define PWRBTN     0x0100
#define WAK_STS    0x8000
#define SLP_EN     (1u << 13)
#define SLP_TYP(t) ((unsigned)(t) << 10)

struct fixture {
    struct acpi_pm *pm;
    struct i8042 *kbc;
    int level;
    unsigned sci_calls, sci_bad;
    unsigned poweroffs, reboots;
    bool press_in_callback;
};

static void sci_set(void *opaque, unsigned gsi, int level)
{
    struct fixture *f = opaque;
    assert_int_equal(gsi, IRQ_ACPI_SCI);
    if (level == f->level)
        f->sci_bad++;
    f->level = level;
    f->sci_calls++;
}

static void on_request(void *opaque, enum guest_request r)
{
    struct fixture *f = opaque;
    if (r == GUEST_REQUEST_POWEROFF)
        f->poweroffs++;
    else if (r == GUEST_REQUEST_REBOOT)
        f->reboots++;
    /* Documented: called without the device lock, so calling back into
     * the device from here must not deadlock. */
    if (f->press_in_callback && f->pm)
        acpi_pm_press_power_button(f->pm);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    struct irq_line sci = { .set = sci_set, .opaque = f, .gsi = IRQ_ACPI_SCI };
    f->pm = acpi_pm_new(sci, on_request, f);
    f->kbc = i8042_new(on_request, f);
    assert_non_null(f->pm);
    assert_non_null(f->kbc);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    acpi_pm_free(f->pm);
    i8042_free(f->kbc);
    free(f);
    return 0;
}

/* Little-endian accessors of any width, as the bus hands them over. */
static uint32_t evt_rd(struct fixture *f, uint64_t off, uint32_t len)
{
    uint8_t b[8];
    memset(b, 0x5a, sizeof(b));
    acpi_pm_evt_pio(f->pm, off, b, len, false);
    uint32_t v = 0;
    for (uint32_t i = 0; i < len && i < 4; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static void evt_wr(struct fixture *f, uint64_t off, uint32_t len, uint32_t v)
{
    uint8_t b[8] = { 0 };
    for (uint32_t i = 0; i < len && i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    acpi_pm_evt_pio(f->pm, off, b, len, true);
}

static uint32_t cnt_rd(struct fixture *f, uint64_t off, uint32_t len)
{
    uint8_t b[8];
    memset(b, 0x5a, sizeof(b));
    acpi_pm_cnt_pio(f->pm, off, b, len, false);
    uint32_t v = 0;
    for (uint32_t i = 0; i < len && i < 4; i++)
        v |= (uint32_t)b[i] << (8 * i);
    return v;
}

static void cnt_wr(struct fixture *f, uint64_t off, uint32_t len, uint32_t v)
{
    uint8_t b[8] = { 0 };
    for (uint32_t i = 0; i < len && i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    acpi_pm_cnt_pio(f->pm, off, b, len, true);
}

static void reset_wr(struct fixture *f, uint64_t off, uint8_t v)
{
    acpi_pm_reset_pio(f->pm, off, &v, 1, true);
}

/* ---- PM1 event block ------------------------------------------------- */

static void test_initial_state(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(evt_rd(f, 0, 4), 0);
    assert_int_equal(cnt_rd(f, 0, 2), 1); /* SCI_EN */
    assert_int_equal(f->sci_calls, 0);
}

static void test_power_button_sci(void **state)
{
    struct fixture *f = *state;
    /* Not enabled: status latches, no SCI. */
    acpi_pm_press_power_button(f->pm);
    assert_int_equal(evt_rd(f, 0, 2), PWRBTN);
    assert_int_equal(f->level, 0);
    /* Enabling with the status set raises the SCI. */
    evt_wr(f, 2, 2, PWRBTN);
    assert_int_equal(evt_rd(f, 2, 2), PWRBTN);
    assert_int_equal(f->level, 1);
    /* Writing 0 to status changes nothing. */
    evt_wr(f, 0, 2, 0);
    assert_int_equal(f->level, 1);
    assert_int_equal(evt_rd(f, 0, 2), PWRBTN);
    /* Write-1-to-clear lowers it. */
    evt_wr(f, 0, 2, PWRBTN);
    assert_int_equal(evt_rd(f, 0, 2), 0);
    assert_int_equal(f->level, 0);
    /* Enabled now: a press raises it at once; pressing again is no new
     * edge on a level line. */
    acpi_pm_press_power_button(f->pm);
    assert_int_equal(f->level, 1);
    acpi_pm_press_power_button(f->pm);
    /* Disabling lowers it while the status stays. */
    evt_wr(f, 2, 2, 0);
    assert_int_equal(f->level, 0);
    assert_int_equal(evt_rd(f, 0, 2), PWRBTN);
    assert_int_equal(f->sci_calls, 4);
    assert_int_equal(f->sci_bad, 0);
}

static void test_evt_widths(void **state)
{
    struct fixture *f = *state;
    acpi_pm_press_power_button(f->pm);
    /* One dword covers STS (low half) and EN (high half). */
    evt_wr(f, 0, 4, (uint32_t)PWRBTN << 16); /* EN only, no STS clear */
    assert_int_equal(evt_rd(f, 0, 4), PWRBTN | ((uint32_t)PWRBTN << 16));
    assert_int_equal(f->level, 1);
    /* Byte lanes. */
    assert_int_equal(evt_rd(f, 0, 1), 0x00);
    assert_int_equal(evt_rd(f, 1, 1), 0x01);
    assert_int_equal(evt_rd(f, 2, 1), 0x00);
    assert_int_equal(evt_rd(f, 3, 1), 0x01);
    assert_int_equal(evt_rd(f, 1, 2), 0x0001); /* STS high, EN low */
    evt_wr(f, 0, 1, 0xff);                     /* low STS byte only */
    assert_int_equal(evt_rd(f, 0, 2), PWRBTN);
    evt_wr(f, 1, 1, 0x01); /* clears PWRBTN_STS */
    assert_int_equal(evt_rd(f, 0, 2), 0);
    assert_int_equal(f->level, 0);
    evt_wr(f, 3, 1, 0x00); /* EN high byte */
    assert_int_equal(evt_rd(f, 2, 2), 0);
    evt_wr(f, 3, 1, 0x01);
    assert_int_equal(evt_rd(f, 2, 2), PWRBTN);
    /* A dword that clears STS and keeps EN, in one access. */
    acpi_pm_press_power_button(f->pm);
    assert_int_equal(f->level, 1);
    evt_wr(f, 0, 4, PWRBTN | ((uint32_t)PWRBTN << 16));
    assert_int_equal(evt_rd(f, 0, 4), (uint32_t)PWRBTN << 16);
    assert_int_equal(f->level, 0);
    /* Reserved enable bits do not stick; defined ones do. */
    evt_wr(f, 2, 2, 0xffff);
    assert_int_equal(evt_rd(f, 2, 2), 0x4721);
    /* WAK_STS is write-1-to-clear too (and never set here). */
    evt_wr(f, 0, 2, WAK_STS);
    assert_int_equal(evt_rd(f, 0, 2) & WAK_STS, 0);
    assert_int_equal(f->sci_bad, 0);
}

static void test_evt_out_of_range(void **state)
{
    struct fixture *f = *state;
    acpi_pm_press_power_button(f->pm);
    evt_wr(f, 2, 2, PWRBTN);
    /* Reads past the block give 0xff; writes there do nothing. */
    assert_int_equal(evt_rd(f, 4, 1), 0xff);
    assert_int_equal(evt_rd(f, 4, 4), 0xffffffff);
    assert_int_equal(evt_rd(f, UINT64_MAX, 4), 0xffffffff);
    assert_int_equal(evt_rd(f, 2, 4), 0xffff0000 | PWRBTN); /* straddles */
    assert_int_equal(evt_rd(f, 3, 2), 0xff01);
    evt_wr(f, 4, 4, 0xffffffff);
    evt_wr(f, UINT64_MAX, 4, 0xffffffff);
    evt_wr(f, UINT64_MAX - 1, 4, 0xffffffff);
    assert_int_equal(evt_rd(f, 0, 4), PWRBTN | ((uint32_t)PWRBTN << 16));
    /* Straddling write: lanes inside apply, the rest are dropped. */
    evt_wr(f, 3, 2, 0xff00); /* EN high byte := 0 */
    assert_int_equal(evt_rd(f, 2, 2), 0);
    /* 8-byte access at 0: four lanes in, four out. */
    uint8_t b[8];
    memset(b, 0, sizeof(b));
    acpi_pm_evt_pio(f->pm, 0, b, 8, false);
    assert_int_equal(b[1], 0x01);
    for (int i = 4; i < 8; i++)
        assert_int_equal(b[i], 0xff);
    acpi_pm_evt_pio(f->pm, 0, NULL, 4, false);
    acpi_pm_evt_pio(f->pm, 0, b, 0, true);
}

/* ---- PM1 control ----------------------------------------------------- */

static void test_s5_poweroff(void **state)
{
    struct fixture *f = *state;
    /* ACPICA writes SLP_TYP first, then SLP_TYP | SLP_EN. */
    cnt_wr(f, 0, 2, SLP_TYP(ACPI_SLP_TYP_S5) | 1);
    assert_int_equal(f->poweroffs, 0);
    assert_int_equal(cnt_rd(f, 0, 2), SLP_TYP(ACPI_SLP_TYP_S5) | 1);
    cnt_wr(f, 0, 2, SLP_TYP(ACPI_SLP_TYP_S5) | SLP_EN | 1);
    assert_int_equal(f->poweroffs, 1);
    assert_int_equal(f->reboots, 0);
    /* SLP_EN is write-only. */
    assert_int_equal(cnt_rd(f, 0, 2) & SLP_EN, 0);
}

static void test_s5_byte_and_dword(void **state)
{
    struct fixture *f = *state;
    /* The high byte alone carries SLP_TYP and SLP_EN. */
    cnt_wr(f, 1, 1, (SLP_TYP(ACPI_SLP_TYP_S5) | SLP_EN) >> 8);
    assert_int_equal(f->poweroffs, 1);
    /* SLP_EN with the type written earlier via the high byte. */
    cnt_wr(f, 0, 1, 0x00); /* low byte: no SLP_EN */
    assert_int_equal(f->poweroffs, 1);
    /* A dword at 0 reaches both bytes (the rest is outside). */
    cnt_wr(f, 0, 4, SLP_TYP(ACPI_SLP_TYP_S5) | SLP_EN);
    assert_int_equal(f->poweroffs, 2);
    /* Callback runs unlocked: pressing the button from it is fine. */
    f->press_in_callback = true;
    cnt_wr(f, 0, 2, SLP_TYP(ACPI_SLP_TYP_S5) | SLP_EN);
    assert_int_equal(f->poweroffs, 3);
    assert_int_equal(evt_rd(f, 0, 2), PWRBTN);
}

static void test_other_sleep_types_ignored(void **state)
{
    struct fixture *f = *state;
    for (unsigned t = 0; t < 8; t++) {
        if (t == ACPI_SLP_TYP_S5)
            continue;
        cnt_wr(f, 0, 2, SLP_TYP(t) | SLP_EN);
        assert_int_equal(cnt_rd(f, 0, 2), SLP_TYP(t) | 1);
    }
    assert_int_equal(f->poweroffs, 0);
    assert_int_equal(f->reboots, 0);
    /* SCI_EN cannot be cleared; GBL_RLS and reserved bits do not stick;
     * BM_RLD does. */
    cnt_wr(f, 0, 2, 0xc000 | 0x0004 | 0x0002);
    assert_int_equal(cnt_rd(f, 0, 2), 0x0003);
    /* Out of range. */
    assert_int_equal(cnt_rd(f, 2, 2), 0xffff);
    assert_int_equal(cnt_rd(f, 1, 2), 0xff00);
    cnt_wr(f, 2, 2, SLP_TYP(ACPI_SLP_TYP_S5) | SLP_EN);
    cnt_wr(f, UINT64_MAX, 2, SLP_TYP(ACPI_SLP_TYP_S5) | SLP_EN);
    assert_int_equal(f->poweroffs, 0);
}

/* ---- reset register --------------------------------------------------- */

static void test_reset_register(void **state)
{
    struct fixture *f = *state;
    reset_wr(f, 0, ACPI_RESET_VALUE ^ 1);
    reset_wr(f, 0, 0);
    reset_wr(f, 0, 0xff);
    reset_wr(f, 1, ACPI_RESET_VALUE); /* outside the 1-byte block */
    assert_int_equal(f->reboots, 0);
    reset_wr(f, 0, ACPI_RESET_VALUE);
    assert_int_equal(f->reboots, 1);
    assert_int_equal(f->poweroffs, 0);
    uint8_t b[4] = { 0x11, 0x22, 0x33, 0x44 };
    acpi_pm_reset_pio(f->pm, 0, b, 4, false);
    assert_int_equal(b[0], 0);
    assert_int_equal(b[1], 0xff);
    assert_int_equal(b[3], 0xff);
    acpi_pm_reset_pio(f->pm, 0, NULL, 1, true);
    assert_int_equal(f->reboots, 1);
}

static void test_no_callback(void **state)
{
    struct irq_line none = { 0 };
    struct acpi_pm *pm = acpi_pm_new(none, NULL, NULL);
    assert_non_null(pm);
    acpi_pm_press_power_button(pm);
    uint8_t v = ACPI_RESET_VALUE;
    acpi_pm_reset_pio(pm, 0, &v, 1, true);
    uint8_t c[2] = { 0, (SLP_TYP(ACPI_SLP_TYP_S5) | SLP_EN) >> 8 };
    acpi_pm_cnt_pio(pm, 0, c, 2, true);
    acpi_pm_free(pm);
    acpi_pm_free(NULL);
    struct i8042 *k = i8042_new(NULL, NULL);
    v = 0xfe;
    i8042_pio(k, 4, &v, 1, true);
    i8042_free(k);
    i8042_free(NULL);
}

/* ---- i8042 ------------------------------------------------------------ */

#define KBC_DATA 0
#define KBC_CMD  4
#define STS_OBF  0x01
#define STS_IBF  0x02
#define STS_AUX  0x20

static uint8_t kbc_rd(struct fixture *f, uint64_t off)
{
    uint8_t v = 0x5a;
    i8042_pio(f->kbc, off, &v, 1, false);
    return v;
}

static void kbc_wr(struct fixture *f, uint64_t off, uint8_t v)
{
    i8042_pio(f->kbc, off, &v, 1, true);
}

static void test_i8042_status_idle(void **state)
{
    struct fixture *f = *state;
    uint8_t st = kbc_rd(f, KBC_CMD);
    assert_int_equal(st & (STS_OBF | STS_IBF), 0);
    assert_true(st & 0x04); /* system flag: POST done */
    assert_int_equal(kbc_rd(f, KBC_DATA), 0x00);
    /* Linux's kb_wait() before its reset pulses: terminates at once. */
    int spins = 0;
    while ((kbc_rd(f, KBC_CMD) & STS_IBF) && spins < 0x10000)
        spins++;
    assert_int_equal(spins, 0);
}

static void test_i8042_reset(void **state)
{
    struct fixture *f = *state;
    kbc_wr(f, KBC_CMD, 0xff); /* pulse nothing */
    assert_int_equal(f->reboots, 0);
    /* native_machine_emergency_restart, BOOT_KBD: ten tries. */
    for (int i = 0; i < 10; i++)
        kbc_wr(f, KBC_CMD, 0xfe);
    assert_int_equal(f->reboots, 10);
    /* Output port write with the reset bit low. */
    kbc_wr(f, KBC_CMD, 0xd1);
    kbc_wr(f, KBC_DATA, 0xdf); /* A20 on, reset high */
    assert_int_equal(f->reboots, 10);
    kbc_wr(f, KBC_CMD, 0xd1);
    kbc_wr(f, KBC_DATA, 0xde);
    assert_int_equal(f->reboots, 11);
    /* Data writes without a pending command go nowhere. */
    kbc_wr(f, KBC_DATA, 0xfe);
    assert_int_equal(f->reboots, 11);
    assert_int_equal(f->poweroffs, 0);
}

static uint8_t kbc_command(struct fixture *f, uint8_t cmd)
{
    kbc_wr(f, KBC_CMD, cmd);
    assert_true(kbc_rd(f, KBC_CMD) & STS_OBF);
    uint8_t v = kbc_rd(f, KBC_DATA);
    assert_false(kbc_rd(f, KBC_CMD) & STS_OBF);
    return v;
}

static void test_i8042_linux_probe(void **state)
{
    struct fixture *f = *state;
    /* i8042_controller_check: flush finds nothing. */
    assert_false(kbc_rd(f, KBC_CMD) & STS_OBF);
    /* Self-test. */
    assert_int_equal(kbc_command(f, 0xaa), 0x55);
    /* CTR read twice (stable), modify, write back, read again. */
    uint8_t ctr = kbc_command(f, 0x20);
    assert_int_equal(kbc_command(f, 0x20), ctr);
    ctr = (uint8_t)((ctr | 0x10) & ~0x01);
    kbc_wr(f, KBC_CMD, 0x60);
    kbc_wr(f, KBC_DATA, ctr);
    assert_false(kbc_rd(f, KBC_CMD) & STS_OBF);
    assert_int_equal(kbc_command(f, 0x20), ctr);
    /* AUX loopback answers at once but not as AUX data, and the AUX
     * interface test reports a fault: no AUX port, without a timeout. */
    kbc_wr(f, KBC_CMD, 0xd3);
    kbc_wr(f, KBC_DATA, 0x5a);
    uint8_t st = kbc_rd(f, KBC_CMD);
    assert_true(st & STS_OBF);
    assert_false(st & STS_AUX);
    uint8_t t = kbc_command(f, 0xa9);
    assert_true(t != 0 && t != 0xfa && t != 0xff);
    /* Keyboard interface test passes; nothing answers keyboard bytes. */
    assert_int_equal(kbc_command(f, 0xab), 0x00);
    kbc_wr(f, KBC_DATA, 0xf2); /* GET ID */
    assert_false(kbc_rd(f, KBC_CMD) & STS_OBF);
    /* Enable/disable commands move the CTR bits. */
    kbc_wr(f, KBC_CMD, 0xae);
    assert_int_equal(kbc_command(f, 0x20) & 0x10, 0);
    kbc_wr(f, KBC_CMD, 0xad);
    assert_int_equal(kbc_command(f, 0x20) & 0x10, 0x10);
    kbc_wr(f, KBC_CMD, 0xa8);
    assert_int_equal(kbc_command(f, 0x20) & 0x20, 0);
    kbc_wr(f, KBC_CMD, 0xa7);
    assert_int_equal(kbc_command(f, 0x20) & 0x20, 0x20);
    /* D2 echoes a byte; the last byte stays readable. */
    kbc_wr(f, KBC_CMD, 0xd2);
    kbc_wr(f, KBC_DATA, 0x42);
    assert_int_equal(kbc_rd(f, KBC_DATA), 0x42);
    assert_int_equal(kbc_rd(f, KBC_DATA), 0x42);
    /* Output port read shows reset inactive. */
    assert_int_equal(kbc_command(f, 0xd0) & 1, 1);
    /* Status bit 3 tracks which port was last written. */
    kbc_wr(f, KBC_CMD, 0x00);
    assert_true(kbc_rd(f, KBC_CMD) & 0x08);
    kbc_wr(f, KBC_DATA, 0x00);
    assert_false(kbc_rd(f, KBC_CMD) & 0x08);
    assert_int_equal(f->reboots, 0);
}

static void test_i8042_hostile(void **state)
{
    struct fixture *f = *state;
    uint8_t b[8];
    for (uint64_t off = 1; off < 4; off++) {
        b[0] = 0;
        i8042_pio(f->kbc, off, b, 1, false);
        assert_int_equal(b[0], 0xff);
        b[0] = 0xfe;
        i8042_pio(f->kbc, off, b, 1, true);
    }
    static const uint64_t far[] = { 5, 0x100, UINT64_MAX };
    for (int i = 0; i < 3; i++) {
        b[0] = 0xfe;
        i8042_pio(f->kbc, far[i], b, 1, true);
        i8042_pio(f->kbc, far[i], b, 1, false);
        assert_int_equal(b[0], 0xff);
    }
    memset(b, 0xfe, sizeof(b));
    i8042_pio(f->kbc, 4, b, 2, true); /* wrong width: ignored */
    i8042_pio(f->kbc, 4, b, 4, false);
    assert_int_equal(b[0], 0xff);
    assert_int_equal(b[3], 0xff);
    i8042_pio(f->kbc, 4, NULL, 1, true);
    assert_int_equal(f->reboots, 0);
    /* Every command and data byte: no crash, and only the reset-line
     * commands (even F0-FE) and D1 with bit 0 low reboot. */
    unsigned expected = 0;
    for (unsigned c = 0; c < 256; c++) {
        for (unsigned d = 0; d < 256; d += 17) {
            kbc_wr(f, KBC_CMD, (uint8_t)c);
            if (c >= 0xf0 && !(c & 1))
                expected++;
            kbc_wr(f, KBC_DATA, (uint8_t)d);
            if (c == 0xd1 && !(d & 1))
                expected++;
            kbc_rd(f, KBC_DATA);
            assert_false(kbc_rd(f, KBC_CMD) & STS_IBF);
        }
    }
    assert_int_equal(f->reboots, expected);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_initial_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_button_sci, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evt_widths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evt_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s5_poweroff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s5_byte_and_dword, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_sleep_types_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_register, setup, teardown),
        cmocka_unit_test(test_no_callback),
        cmocka_unit_test_setup_teardown(test_i8042_status_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_i8042_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_i8042_linux_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_i8042_hostile, setup, teardown),
    };
    return cmocka_run_group_tests_name("acpi_pm", tests, NULL, NULL);
}
