/* Unit tests for the ACPI tables (src/x86/acpi.c) and the AML builder
 * (src/x86/aml.c).
 *
 * Checks the structures of ACPI 6.4 5.2.5.3 (RSDP), 5.2.6 (header and
 * checksums), 5.2.8 (XSDT), 5.2.9 (FADT), 5.2.10 (FACS), 5.2.11.1 (DSDT),
 * 5.2.12 (MADT) and the PCI Firmware 3.2 MCFG (4.1.2) field by field, the
 * AML encodings of 20.2 and the resource descriptors of 6.4 (including
 * the PCI root bridge's _CRS), and finally
 * feeds every table to the ACPICA disassembler (iasl -d), then recompiles
 * the disassembled DSDT, because iasl is a stricter reader than these
 * checks. (The RSDP, which iasl -d cannot read, is rebuilt with iasl's
 * data table compiler instead and compared byte for byte.) $IASL (set by
 * Meson) is the path to iasl; without it the iasl tests fail rather than
 * skip, since they are the only independent check.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "layout.h"
#include "x86/acpi.h"
#include "x86/aml.h"

#define FADT_LEN 276
#define FACS_LEN 64

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
    return get16(p) | (uint32_t)get16(p + 2) << 16;
}
static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *p++);
    return s;
}

/* A built set of tables and the guest address it was built for. */
struct tables {
    uint8_t *buf;
    long len;
    uint64_t gpa;
    const uint8_t *rsdp, *xsdt, *fadt, *facs, *dsdt, *madt, *mcfg;
};

/* Resolves a guest address from a table pointer to the buffer, checking
 * that a whole header (and then the whole table) lies inside what
 * acpi_build_tables() said it used. */
static const uint8_t *resolve(const struct tables *t, uint64_t addr, size_t min_len)
{
    assert_true(addr >= t->gpa);
    assert_true(addr - t->gpa + min_len <= (uint64_t)t->len);
    const uint8_t *p = t->buf + (addr - t->gpa);
    assert_true(addr - t->gpa + get32(p + 4) <= (uint64_t)t->len);
    return p;
}

static void build_machine(struct tables *t, unsigned ncpus, bool pci, uint64_t gpa)
{
    /* With PCI, the whole machine vm.c describes: also the VM generation
     * ID and its Generic Event Device. */
    struct acpi_machine m = { .ncpus = ncpus, .pci = pci, .vmgenid = pci };

    memset(t, 0, sizeof(*t));
    t->buf = malloc(GUEST_ACPI_SIZE);
    assert_non_null(t->buf);
    memset(t->buf, 0xcc, GUEST_ACPI_SIZE); /* garbage the builder must overwrite */
    t->gpa = gpa;
    t->len = acpi_build_tables(t->buf, gpa, GUEST_ACPI_SIZE, &m);
    assert_true(t->len > 0);
    assert_true(t->len <= (long)GUEST_ACPI_SIZE);

    t->rsdp = t->buf;
    assert_memory_equal(t->rsdp, "RSD PTR ", 8);
    t->xsdt = resolve(t, get64(t->rsdp + 24), 36);
    assert_memory_equal(t->xsdt, "XSDT", 4);
    unsigned n = (get32(t->xsdt + 4) - 36) / 8;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *p = resolve(t, get64(t->xsdt + 36 + 8 * i), 36);
        if (!memcmp(p, "FACP", 4)) {
            assert_null(t->fadt);
            t->fadt = p;
        } else if (!memcmp(p, "APIC", 4)) {
            assert_null(t->madt);
            t->madt = p;
        } else if (!memcmp(p, "MCFG", 4) && pci) {
            assert_null(t->mcfg);
            t->mcfg = p;
        } else {
            fail_msg("unexpected table %.4s in the XSDT", (const char *)p);
        }
    }
    assert_non_null(t->fadt);
    assert_non_null(t->madt);
    assert_true(pci == (t->mcfg != NULL));
    t->dsdt = resolve(t, get64(t->fadt + 140), 36);
    assert_memory_equal(t->dsdt, "DSDT", 4);
    t->facs = resolve(t, get64(t->fadt + 132), FACS_LEN);
    assert_memory_equal(t->facs, "FACS", 4);
}

static void build_at(struct tables *t, unsigned ncpus, uint64_t gpa)
{
    build_machine(t, ncpus, false, gpa);
}

static void build(struct tables *t, unsigned ncpus)
{
    build_at(t, ncpus, GUEST_ACPI_ADDR);
}

/* The machine vm.c builds once the PCI host bridge is attached. */
static void build_pci(struct tables *t, unsigned ncpus)
{
    build_machine(t, ncpus, true, GUEST_ACPI_ADDR);
}

static void release(struct tables *t)
{
    free(t->buf);
}

static size_t madt_len(unsigned ncpus)
{
    return 44 + 8 * ncpus + 12 + 10 + 6;
}

/* ---- RSDP, XSDT, checksums, lengths ---- */

static void test_rsdp(void **state)
{
    struct tables t;
    build(&t, 2);
    assert_memory_equal(t.rsdp, "RSD PTR ", 8);
    assert_int_equal(sum(t.rsdp, 20), 0);     /* ACPI 1.0 checksum */
    assert_int_equal(t.rsdp[15], 2);          /* revision */
    assert_int_equal(get32(t.rsdp + 20), 36); /* length */
    assert_int_equal(sum(t.rsdp, 36), 0);     /* extended checksum */
    assert_memory_equal(t.rsdp + 9, "VMLET ", 6);
    assert_int_equal(get32(t.rsdp + 16), 0); /* no RSDT */
    assert_int_equal(t.rsdp[33] | t.rsdp[34] | t.rsdp[35], 0);
    /* A legacy scan only looks at 16-byte boundaries in 0xe0000..0xfffff. */
    assert_int_equal(GUEST_ACPI_ADDR % 16, 0);
    release(&t);
}

static void check_header(const uint8_t *p, const char *sig, uint32_t len, uint8_t rev)
{
    assert_memory_equal(p, sig, 4);
    assert_int_equal(get32(p + 4), len);
    assert_int_equal(p[8], rev);
    assert_int_equal(sum(p, len), 0);
    assert_memory_equal(p + 10, "VMLET ", 6);
    assert_memory_equal(p + 16, "VMLETVM ", 8);
    assert_memory_equal(p + 28, "VMLT", 4);
}

static void test_checksums_and_lengths(void **state)
{
    static const unsigned counts[] = { 1, 2, 64, 255 };
    for (size_t c = 0; c < 2 * sizeof(counts) / sizeof(counts[0]); c++) {
        struct tables t;
        bool pci = c & 1;
        build_machine(&t, counts[c / 2], pci, GUEST_ACPI_ADDR);
        check_header(t.xsdt, "XSDT", 36 + (pci ? 3 : 2) * 8, 1);
        if (pci)
            check_header(t.mcfg, "MCFG", 60, 1);
        check_header(t.fadt, "FACP", FADT_LEN, 6);
        check_header(t.madt, "APIC", (uint32_t)madt_len(counts[c / 2]), 5);
        check_header(t.dsdt, "DSDT", get32(t.dsdt + 4), 2);
        assert_true(get32(t.dsdt + 4) > 36);

        /* FACS: no checksum, fixed length, 64-byte aligned in the guest. */
        assert_int_equal(get32(t.facs + 4), FACS_LEN);
        assert_int_equal((t.gpa + (uint64_t)(t.facs - t.buf)) % 64, 0);
        assert_int_equal(t.facs[32], 2); /* version */

        /* The tables do not overlap, and the returned length is exactly
         * where the last one ends. */
        const uint8_t *tabs[] = { t.rsdp, t.facs, t.dsdt, t.fadt, t.madt, t.xsdt, t.mcfg };
        size_t ntabs = pci ? 7 : 6;
        size_t end = 0;
        for (size_t i = 0; i < ntabs; i++) {
            size_t a0 = (size_t)(tabs[i] - t.buf);
            size_t a1 = a0 + (i == 0 ? 36 : get32(tabs[i] + 4));
            if (a1 > end)
                end = a1;
            for (size_t j = 0; j < ntabs; j++) {
                if (i == j)
                    continue;
                size_t b0 = (size_t)(tabs[j] - t.buf);
                size_t b1 = b0 + (j == 0 ? 36 : get32(tabs[j] + 4));
                assert_true(a1 <= b0 || b1 <= a0);
            }
        }
        assert_int_equal(end, (size_t)t.len);
        release(&t);
    }
}

static void test_xsdt_pointers(void **state)
{
    struct tables t;
    build(&t, 4);
    assert_int_equal(get32(t.xsdt + 4), 36 + 16);
    /* Entry 0 is the FADT: some OSes expect it first. */
    assert_memory_equal(t.buf + (get64(t.xsdt + 36) - t.gpa), "FACP", 4);
    assert_memory_equal(t.buf + (get64(t.xsdt + 44) - t.gpa), "APIC", 4);
    release(&t);

    build_pci(&t, 4);
    assert_int_equal(get32(t.xsdt + 4), 36 + 24);
    assert_memory_equal(t.buf + (get64(t.xsdt + 36) - t.gpa), "FACP", 4);
    assert_memory_equal(t.buf + (get64(t.xsdt + 52) - t.gpa), "MCFG", 4);
    release(&t);
}

/* ---- MCFG ---- */

static void test_mcfg(void **state)
{
    struct tables t;
    build_pci(&t, 2);
    const uint8_t *m = t.mcfg;
    assert_int_equal(get32(m + 4), 60); /* header, reserved, one entry */
    assert_int_equal(get64(m + 36), 0); /* reserved */
    assert_int_equal(get64(m + 44), GUEST_PCI_ECAM_START);
    assert_int_equal(get16(m + 52), 0); /* segment */
    assert_int_equal(m[54], 0);         /* start bus */
    assert_int_equal(m[55], 0);         /* end bus: 1 MiB is bus 0 only */
    assert_int_equal(get32(m + 56), 0);
    /* Linux ignores MCFG ranges above 4 GiB from firmware older than 2010,
     * and ECAM must not overlap the BAR window. */
    assert_true(GUEST_PCI_ECAM_START + GUEST_PCI_ECAM_SIZE <= 0x100000000ULL);
    assert_true(GUEST_PCI_ECAM_START >= GUEST_PCI_MMIO_START + GUEST_PCI_MMIO_SIZE ||
                GUEST_PCI_ECAM_START + GUEST_PCI_ECAM_SIZE <= GUEST_PCI_MMIO_START);
    assert_int_equal(GUEST_PCI_ECAM_SIZE, 1u << 20);
    release(&t);
}

static void test_relocation(void **state)
{
    /* Pointers follow gpa; above 4 GiB only the 64-bit fields are used. */
    struct tables lo, hi;
    build_at(&lo, 2, 0x100000);
    assert_int_equal(get64(lo.rsdp + 24), 0x100000 + (uint64_t)(lo.xsdt - lo.buf));
    assert_int_equal(get32(lo.fadt + 40), get64(lo.fadt + 140));
    build_at(&hi, 2, 0x100000000ULL);
    assert_int_equal(get32(hi.fadt + 40), 0);
    assert_int_equal(get64(hi.fadt + 140), 0x100000000ULL + (uint64_t)(hi.dsdt - hi.buf));
    assert_int_equal(lo.len, hi.len);
    release(&lo);
    release(&hi);
}

/* ---- FADT ---- */

static void check_gas(const uint8_t *g, uint8_t space, uint8_t width, uint64_t addr)
{
    assert_int_equal(g[0], space);
    assert_int_equal(g[1], width);
    assert_int_equal(g[2], 0); /* bit offset */
    assert_true(g[3] <= 4);    /* access size */
    assert_int_equal(get64(g + 4), addr);
}

static void test_fadt(void **state)
{
    struct tables t;
    build(&t, 2);
    const uint8_t *f = t.fadt;
    uint64_t dsdt = t.gpa + (uint64_t)(t.dsdt - t.buf);
    uint64_t facs = t.gpa + (uint64_t)(t.facs - t.buf);

    assert_int_equal(get32(f + 4), FADT_LEN);
    assert_int_equal(f[8], 6);
    assert_int_equal(f[131] & 0x0f, 4); /* minor version: 6.4 */
    assert_int_equal(get32(f + 36), 0); /* FIRMWARE_CTRL: X_ only */
    assert_int_equal(get64(f + 132), facs);
    assert_int_equal(get32(f + 40), dsdt);
    assert_int_equal(get64(f + 140), dsdt);
    assert_int_equal(get16(f + 46), IRQ_ACPI_SCI);
    assert_int_equal(get32(f + 48), 0); /* SMI_CMD */
    assert_int_equal(f[52], 0);         /* ACPI_ENABLE */
    assert_int_equal(f[53], 0);         /* ACPI_DISABLE */

    assert_int_equal(get32(f + 56), PORT_ACPI_PM1A_EVT);
    assert_int_equal(get32(f + 60), 0); /* PM1b_EVT */
    assert_int_equal(get32(f + 64), PORT_ACPI_PM1A_CNT);
    assert_int_equal(get32(f + 68), 0); /* PM1b_CNT */
    assert_int_equal(get32(f + 72), 0); /* PM2_CNT */
    assert_int_equal(get32(f + 76), 0); /* PM_TMR */
    assert_int_equal(get32(f + 80), 0); /* GPE0 */
    assert_int_equal(get32(f + 84), 0); /* GPE1 */
    assert_int_equal(f[88], 4);         /* PM1_EVT_LEN */
    assert_int_equal(f[89], 2);         /* PM1_CNT_LEN */
    assert_int_equal(f[90], 0);         /* PM2_CNT_LEN */
    assert_int_equal(f[91], 0);         /* PM_TMR_LEN */
    assert_int_equal(f[92], 0);         /* GPE0_BLK_LEN */
    assert_int_equal(f[93], 0);         /* GPE1_BLK_LEN */
    check_gas(f + 148, 1, 32, PORT_ACPI_PM1A_EVT);
    check_gas(f + 172, 1, 16, PORT_ACPI_PM1A_CNT);
    for (size_t off = 160; off < 268; off += 12) {
        if (off != 172) /* X_PM1b.., X_PM2, X_PM_TMR, X_GPE0/1, SLEEP_* */
            check_gas(f + off, 0, 0, 0);
    }

    uint16_t boot = get16(f + 109);
    assert_true(boot & (1u << 2));  /* VGA not present */
    assert_true(boot & (1u << 4));  /* PCIe ASPM controls off */
    assert_true(boot & (1u << 5));  /* CMOS RTC not present */
    assert_false(boot & (1u << 1)); /* no 8042 */
    assert_false(boot & (1u << 3)); /* MSI is supported */

    uint32_t flags = get32(f + 112);
    assert_true(flags & (1u << 0));   /* WBINVD */
    assert_false(flags & (1u << 4));  /* fixed power button */
    assert_true(flags & (1u << 5));   /* no fixed sleep button */
    assert_true(flags & (1u << 10));  /* RESET_REG_SUP */
    assert_false(flags & (1u << 20)); /* not hardware-reduced */
    check_gas(f + 116, 1, 8, PORT_ACPI_RESET);
    assert_int_equal(f[128], ACPI_RESET_VALUE);
    release(&t);
}

/* ---- MADT ---- */

/* Walks the MADT's entries, checking their lengths add up exactly. */
static void check_madt(unsigned ncpus)
{
    struct tables t;
    build(&t, ncpus);
    const uint8_t *m = t.madt;
    uint32_t len = get32(m + 4);
    unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;

    assert_int_equal(len, madt_len(ncpus));
    assert_int_equal(get32(m + 36), GUEST_LAPIC_ADDR);
    assert_int_equal(get32(m + 40), 1); /* PCAT_COMPAT */

    for (uint32_t off = 44; off < len; off += m[off + 1]) {
        const uint8_t *e = m + off;
        assert_true(e[1] >= 2);
        assert_true(off + e[1] <= len);
        switch (e[0]) {
        case 0:
            assert_int_equal(e[1], 8);
            assert_int_equal(e[2], lapics);    /* UID */
            assert_int_equal(e[3], lapics);    /* APIC ID */
            assert_int_equal(get32(e + 4), 1); /* enabled */
            lapics++;
            break;
        case 1:
            assert_int_equal(e[1], 12);
            assert_int_equal(e[2], ncpus);
            assert_int_equal(get32(e + 4), GUEST_IOAPIC_ADDR);
            assert_int_equal(get32(e + 8), 0);
            ioapics++;
            break;
        case 2:
            assert_int_equal(e[1], 10);
            assert_int_equal(e[2], 0); /* ISA */
            assert_int_equal(e[3], IRQ_ACPI_SCI);
            assert_int_equal(get32(e + 4), IRQ_ACPI_SCI);
            assert_int_equal(get16(e + 8), 0x000d); /* level, active-high */
            isos++;
            break;
        case 4:
            assert_int_equal(e[1], 6);
            assert_int_equal(e[2], 0xff);
            assert_int_equal(get16(e + 3), 0);
            assert_int_equal(e[5], 1); /* LINT1 */
            nmis++;
            break;
        default: fail_msg("unexpected MADT entry type %u", e[0]);
        }
    }
    assert_int_equal(lapics, ncpus);
    assert_int_equal(ioapics, 1);
    assert_int_equal(isos, 1); /* IRQ 9 only: none for IRQ 0 */
    assert_int_equal(nmis, 1);
    release(&t);
}

static void test_madt_1(void **state)
{
    check_madt(1);
}
static void test_madt_2(void **state)
{
    check_madt(2);
}
static void test_madt_64(void **state)
{
    check_madt(64);
}
static void test_madt_255(void **state)
{
    check_madt(255);
}

static void test_rejects_bad_machine(void **state)
{
    static const unsigned bad[] = { 0, 256, 1000 };
    uint8_t buf[4096];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct acpi_machine m = { .ncpus = bad[i] };
        memset(buf, 0xa5, sizeof(buf));
        assert_int_equal(acpi_build_tables(buf, GUEST_ACPI_ADDR, sizeof(buf), &m), -1);
        for (size_t j = 0; j < sizeof(buf); j++)
            assert_int_equal(buf[j], 0xa5);
    }
    assert_int_equal(acpi_build_tables(buf, GUEST_ACPI_ADDR, sizeof(buf), NULL), -1);
}

/* ---- buffer bounds ---- */

/* Every size short of what is needed must fail without touching a byte at
 * or past size; the exact size must succeed. */
static void check_too_small(unsigned ncpus, bool pci)
{
    struct acpi_machine m = { .ncpus = ncpus, .pci = pci };
    enum { SLACK = 64 };
    uint8_t *big = malloc(GUEST_ACPI_SIZE);
    assert_non_null(big);
    long need = acpi_build_tables(big, GUEST_ACPI_ADDR, GUEST_ACPI_SIZE, &m);
    assert_true(need > 0);

    uint8_t *buf = malloc((size_t)need + SLACK);
    assert_non_null(buf);
    for (size_t size = 0; size < (size_t)need; size++) {
        memset(buf, 0xa5, (size_t)need + SLACK);
        assert_int_equal(acpi_build_tables(buf, GUEST_ACPI_ADDR, size, &m), -1);
        for (size_t i = size; i < (size_t)need + SLACK; i++) {
            if (buf[i] != 0xa5)
                fail_msg("size %zu: byte %zu written", size, i);
        }
    }
    memset(buf, 0xa5, (size_t)need + SLACK);
    assert_int_equal(acpi_build_tables(buf, GUEST_ACPI_ADDR, (size_t)need, &m), need);
    for (size_t i = (size_t)need; i < (size_t)need + SLACK; i++)
        assert_int_equal(buf[i], 0xa5);
    assert_memory_equal(buf, big, (size_t)need); /* same bytes as with room to spare */
    free(buf);
    free(big);
}

static void test_too_small_1(void **state)
{
    check_too_small(1, false);
}
static void test_too_small_255(void **state)
{
    check_too_small(255, false);
}
static void test_too_small_pci(void **state)
{
    check_too_small(4, true);
}

/* ---- AML ---- */

static const uint8_t *find(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++) {
        if (!memcmp(hay + i, needle, m))
            return hay + i;
    }
    return NULL;
}

static size_t decode_pkglength(const uint8_t *p, size_t *nbytes)
{
    size_t n = (size_t)(p[0] >> 6) + 1;
    size_t v;
    *nbytes = n;
    if (n == 1)
        return p[0] & 0x3f;
    v = p[0] & 0x0f;
    for (size_t i = 1; i < n; i++)
        v |= (size_t)p[i] << (4 + 8 * (i - 1));
    return v;
}

static void test_dsdt_aml(void **state)
{
    struct tables t;
    build(&t, 1);
    size_t len = get32(t.dsdt + 4);

    /* Name(\_S5, Package(){5, 5, 0, 0}) */
    /* clang-format off */
    static const uint8_t s5[] = {
        0x08, '\\', '_', 'S', '5', '_',
        0x12, 0x08, 0x04, 0x0a, ACPI_SLP_TYP_S5, 0x0a, ACPI_SLP_TYP_S5, 0x00, 0x00,
    };
    /* clang-format on */
    assert_non_null(find(t.dsdt, len, s5, sizeof(s5)));

    /* Name(_HID, EisaId("PNP0501")) */
    static const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01 };
    assert_non_null(find(t.dsdt, len, hid, sizeof(hid)));

    /* _CRS: Buffer(13) { IO(Decode16, 0x3f8, 0x3f8, 0, 8), IRQNoFlags(){4}, EndTag } */
    /* clang-format off */
    static const uint8_t crs[] = {
        0x08, '_', 'C', 'R', 'S', 0x11, 0x10, 0x0a, 0x0d,
        0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,
        0x22, 0x10, 0x00,
        0x79, 0x00,
    };
    /* clang-format on */
    assert_non_null(find(t.dsdt, len, crs, sizeof(crs)));

    /* Scope(\_SB) { Device(COM1) { ... } } runs to the end of the table. */
    static const uint8_t sb[] = { 0x10 };
    const uint8_t *scope = find(t.dsdt + 36, len - 36, sb, 1);
    size_t nbytes;
    assert_non_null(scope);
    assert_int_equal(decode_pkglength(scope + 1, &nbytes), (size_t)(t.dsdt + len - scope - 1));
    assert_memory_equal(scope + 1 + nbytes, "\\_SB_\x5b\x82", 7);
    release(&t);
}

/* \_SB.VGEN gives the generation ID's address; \_SB.GED0's edge
 * interrupt on GSI_ACPI_GED runs _EVT, which notifies VGEN. */
static void test_dsdt_vmgenid(void **state)
{
    struct tables t;
    build_pci(&t, 1);
    size_t len = get32(t.dsdt + 4);
    /* clang-format off */
    static const uint8_t addr[] = { /* Name(ADDR, Package(){0x000ff000, 0}) */
        0x08, 'A', 'D', 'D', 'R', 0x12, 0x08, 0x02, 0x0c, 0x00, 0xf0, 0x0f, 0x00, 0x00,
    };
    static const uint8_t hid[] = { /* Name(_HID, "VMLT0001"), Name(_CID, "VM_Gen_Counter") */
        0x08, '_', 'H', 'I', 'D', 0x0d, 'V', 'M', 'L', 'T', '0', '0', '0', '1', 0x00,
        0x08, '_', 'C', 'I', 'D', 0x0d, 'V', 'M', '_', 'G', 'e', 'n', '_',
        'C', 'o', 'u', 'n', 't', 'e', 'r', 0x00,
    };
    static const uint8_t irq[] = { /* Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) {16} */
        0x89, 0x06, 0x00, 0x03, 0x01, GSI_ACPI_GED, 0x00, 0x00, 0x00, 0x79, 0x00,
    };
    static const uint8_t evt[] = { /* Method(_EVT, 1) { Notify(\_SB.VGEN, 0x80) } */
        0x14, 0x13, '_', 'E', 'V', 'T', 0x01,
        0x86, 0x5c, 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N', 0x0a, 0x80,
    };
    /* clang-format on */
    assert_non_null(find(t.dsdt, len, addr, sizeof addr));
    assert_non_null(find(t.dsdt, len, hid, sizeof hid));
    assert_non_null(find(t.dsdt, len, irq, sizeof irq));
    assert_non_null(find(t.dsdt, len, evt, sizeof evt));
    assert_non_null(find(t.dsdt, len, "ACPI0013", 8));
    release(&t);

    /* Statements only inside a method; at most 7 arguments. */
    uint8_t buf[64];
    struct aml a;
    aml_init(&a, buf, sizeof buf);
    aml_notify(&a, "\\_SB.VGEN", 0x80);
    assert_false(aml_ok(&a));
    aml_init(&a, buf, sizeof buf);
    aml_method_begin(&a, "_EVT", 8);
    assert_false(aml_ok(&a));
}

/* Without a PCI host the DSDT says nothing about PCI. */
static void test_dsdt_no_pci(void **state)
{
    struct tables t;
    build(&t, 1);
    size_t len = get32(t.dsdt + 4);
    assert_null(find(t.dsdt, len, "PCI0", 4));
    assert_null(find(t.dsdt, len, "ECAM", 4));
    release(&t);
}

static void test_dsdt_pci(void **state)
{
    struct tables t;
    build_pci(&t, 1);
    size_t len = get32(t.dsdt + 4);

    /* Device(PCI0) and Device(ECAM) inside \_SB, after COM1. */
    const uint8_t *pci0 = find(t.dsdt, len, "\x5b\x82", 2);
    assert_non_null(pci0);
    assert_non_null(find(t.dsdt, len, "PCI0", 4));
    assert_true(find(t.dsdt, len, "PCI0", 4) > find(t.dsdt, len, "COM1", 4));
    assert_true(find(t.dsdt, len, "ECAM", 4) > find(t.dsdt, len, "PCI0", 4));

    /* _HID EisaId("PNP0A08"), _CID EisaId("PNP0A03"), _SEG 0, _BBN 0, _UID 0 */
    /* clang-format off */
    static const uint8_t ids[] = {
        0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08,
        0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03,
        0x08, '_', 'S', 'E', 'G', 0x00,
        0x08, '_', 'B', 'B', 'N', 0x00,
        0x08, '_', 'U', 'I', 'D', 0x00,
    };
    /* clang-format on */
    assert_non_null(find(t.dsdt, len, ids, sizeof(ids)));

    /* _CRS of PCI0: 16 + 8 + 16 + 16 + 26 bytes of descriptors + end tag. */
    /* clang-format off */
    static const uint8_t crs[] = {
        0x08, '_', 'C', 'R', 'S', 0x11, 0x48, 0x05, 0x0a, 0x54,  /* 2-byte PkgLength */
        /* WordBusNumber: producer, MinFixed, MaxFixed, 0..0, length 1 */
        0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
        /* IO(Decode16, 0xcf8, 0xcf8, 1, 8): what the bridge consumes */
        0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08,
        /* WordIO 0x0000..0x0cf7, EntireRange */
        0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x00, 0xf7, 0x0c, 0, 0, 0xf8, 0x0c,
        /* WordIO 0x0d00..0xffff */
        0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x0d, 0xff, 0xff, 0, 0, 0x00, 0xf3,
        /* DWordMemory 0xc0000000..0xdfffffff, NonCacheable, ReadWrite */
        0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0,
        0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x20,
        0x79, 0x00,
    };
    /* clang-format on */
    assert_non_null(find(t.dsdt, len, crs, sizeof(crs)));

    /* ECAM: _HID EisaId("PNP0C02"), _CRS Memory32Fixed(ReadWrite, base, 1 MiB) */
    /* clang-format off */
    static const uint8_t ecam[] = {
        0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x02,
        0x08, '_', 'U', 'I', 'D', 0x01,
        0x08, '_', 'C', 'R', 'S', 0x11, 0x11, 0x0a, 0x0e,
        0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x10, 0x00,
        0x79, 0x00,
    };
    /* clang-format on */
    assert_non_null(find(t.dsdt, len, ecam, sizeof(ecam)));
    /* The window and ECAM the tables describe are the layout's. */
    assert_int_equal(GUEST_PCI_MMIO_START, 0xc0000000ULL);
    assert_int_equal(GUEST_PCI_MMIO_SIZE, 0x20000000ULL);
    assert_int_equal(GUEST_PCI_ECAM_START, 0xe0000000ULL);
    assert_int_equal(PORT_PCI_CONFIG, 0xcf8);
    release(&t);
}

static void test_aml_resources(void **state)
{
    uint8_t buf[256];
    struct aml a;

    aml_init(&a, buf, sizeof(buf));
    aml_resources_begin(&a);
    aml_memory32_fixed(&a, 0x12345678, 0x1000, false);
    aml_word_bus_number(&a, 1, 0x10);
    aml_word_io(&a, 0x1000, 0x1fff);
    aml_dword_memory(&a, 0x80000000, 0x8fffffff, true);
    aml_end(&a);
    assert_true(aml_ok(&a));
    /* clang-format off */
    static const uint8_t want[] = {
        0x11, 0x4c, 0x04, 0x0a, 0x48,   /* Buffer, PkgLength 76, size 72 */
        0x86, 0x09, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12, 0x00, 0x10, 0x00, 0x00,
        0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0x01, 0x00, 0x10, 0x00, 0, 0, 0x10, 0x00,
        0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0x00, 0x10, 0xff, 0x1f, 0, 0, 0x00, 0x10,
        0x87, 0x17, 0x00, 0x00, 0x0c, 0x03, 0, 0, 0, 0,
        0x00, 0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0x8f, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x10,
        0x79, 0x00,
    };
    /* clang-format on */
    assert_int_equal(aml_len(&a), sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));

    /* Outside a template, reversed ranges and lengths that do not fit the
     * descriptor are errors. */
    aml_init(&a, buf, sizeof(buf));
    aml_memory32_fixed(&a, 0, 1, true);
    assert_false(aml_ok(&a));
    aml_init(&a, buf, sizeof(buf));
    aml_word_io(&a, 0, 1);
    assert_false(aml_ok(&a));
    aml_init(&a, buf, sizeof(buf));
    aml_dword_memory(&a, 0, 1, false);
    assert_false(aml_ok(&a));

    static const struct {
        uint32_t min, max;
        int kind;
    } bad[] = {
        { 2, 1, 0 },      { 0, 0xffff, 0 }, { 5, 4, 1 },
        { 0, 0xffff, 1 }, { 2, 1, 2 },      { 0, 0xffffffffu, 2 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aml_init(&a, buf, sizeof(buf));
        aml_resources_begin(&a);
        if (bad[i].kind == 0)
            aml_word_io(&a, (uint16_t)bad[i].min, (uint16_t)bad[i].max);
        else if (bad[i].kind == 1)
            aml_word_bus_number(&a, (uint16_t)bad[i].min, (uint16_t)bad[i].max);
        else
            aml_dword_memory(&a, bad[i].min, bad[i].max, false);
        aml_end(&a);
        assert_false(aml_ok(&a));
    }
}

static void test_aml_pkglength(void **state)
{
    static const struct {
        size_t body;
        int bytes;
    } cases[] = {
        { 0, 1 },
        { 1, 1 },
        { 62, 1 },
        { 63, 2 },
        { 64, 2 },
        { 4093, 2 },
        { 4094, 3 },
        { (1u << 20) - 4, 3 },
        { (1u << 20) - 3, 4 },
        { (1u << 28) - 5, 4 },
    };
    uint8_t out[4];
    size_t nbytes;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = aml_pkglength(out, cases[i].body);
        assert_int_equal(n, cases[i].bytes);
        assert_int_equal(decode_pkglength(out, &nbytes), cases[i].body + (size_t)n);
        assert_int_equal(nbytes, (size_t)n);
        if (n > 1)
            assert_int_equal(out[0] & 0x30, 0); /* reserved bits */
    }
    assert_int_equal(aml_pkglength(out, (1u << 28) - 4), 0);
}

static void test_aml_objects(void **state)
{
    uint8_t buf[512];
    struct aml a;

    aml_init(&a, buf, sizeof(buf));
    aml_integer(&a, 0);
    aml_integer(&a, 1);
    aml_integer(&a, 0xff);
    aml_integer(&a, 0x100);
    aml_integer(&a, 0x12345678);
    aml_integer(&a, 0x100000000ULL);
    aml_string(&a, "hi");
    aml_name(&a, "^^AB.C");
    aml_name(&a, "\\A.B.C");
    assert_true(aml_ok(&a));
    /* clang-format off */
    static const uint8_t want[] = {
        0x00, 0x01, 0x0a, 0xff, 0x0b, 0x00, 0x01, 0x0c, 0x78, 0x56, 0x34, 0x12,
        0x0e, 0, 0, 0, 0, 1, 0, 0, 0,
        0x0d, 'h', 'i', 0,
        0x08, '^', '^', 0x2e, 'A', 'B', '_', '_', 'C', '_', '_', '_',
        0x08, '\\', 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_',
    };
    /* clang-format on */
    assert_int_equal(aml_len(&a), sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));

    /* Bad names, unbalanced blocks and descriptors outside a template
     * are errors. */
    static const char *bad[] = { "abc", "TOOLONG", "1AB", "A..B", "A.", "A-B" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aml_init(&a, buf, sizeof(buf));
        aml_name(&a, bad[i]);
        assert_false(aml_ok(&a));
    }
    aml_init(&a, buf, sizeof(buf));
    aml_scope_begin(&a, "\\_SB");
    assert_false(aml_ok(&a));
    aml_end(&a);
    assert_true(aml_ok(&a));
    aml_end(&a);
    assert_false(aml_ok(&a));
    aml_init(&a, buf, sizeof(buf));
    aml_io(&a, 1, 1, 1, 1);
    assert_false(aml_ok(&a));
}

static void test_aml_nesting(void **state)
{
    /* A package whose body exceeds 63 bytes needs a 2-byte PkgLength, and
     * nested packages count as one element of their parent. */
    uint8_t buf[4096];
    struct aml a;
    size_t nbytes;

    aml_init(&a, buf, sizeof(buf));
    aml_package_begin(&a);
    for (int i = 0; i < 40; i++)
        aml_integer(&a, 0x1000 + (unsigned)i); /* 3 bytes each */
    aml_package_begin(&a);
    aml_integer(&a, 7);
    aml_end(&a);
    aml_buffer(&a, (const uint8_t *)"xyz", 3);
    aml_end(&a);
    assert_true(aml_ok(&a));

    assert_int_equal(buf[0], 0x12);
    size_t pkglen = decode_pkglength(buf + 1, &nbytes);
    assert_int_equal(nbytes, 2);
    assert_int_equal(1 + pkglen, aml_len(&a));
    assert_int_equal(buf[1 + nbytes], 42); /* NumElements */
    /* Inner package, then Buffer(3){"xyz"} at the very end. */
    /* clang-format off */
    static const uint8_t tail[] = { 0x12, 0x04, 0x01, 0x0a, 0x07,
                                    0x11, 0x06, 0x0a, 0x03, 'x', 'y', 'z' };
    /* clang-format on */
    assert_memory_equal(buf + aml_len(&a) - sizeof(tail), tail, sizeof(tail));

    /* A device body over 4 KiB - 3 needs a 3-byte PkgLength. */
    static uint8_t big[8192];
    aml_init(&a, big, sizeof(big));
    aml_device_begin(&a, "DEV0");
    for (int i = 0; i < 700; i++) {
        aml_name(&a, "X");
        aml_integer(&a, 2);
    }
    aml_end(&a);
    assert_true(aml_ok(&a));
    assert_int_equal(big[0], 0x5b);
    assert_int_equal(big[1], 0x82);
    pkglen = decode_pkglength(big + 2, &nbytes);
    assert_int_equal(nbytes, 3);
    assert_int_equal(2 + pkglen, aml_len(&a));
    assert_memory_equal(big + 2 + nbytes, "DEV0", 4);
}

static void test_aml_bounds(void **state)
{
    /* Building into every short capacity fails and stays inside it. */
    uint8_t ref[256], buf[256 + 16];
    struct aml a;

    aml_init(&a, ref, sizeof(ref));
    aml_scope_begin(&a, "\\_SB");
    aml_device_begin(&a, "COM1");
    aml_name(&a, "_STR");
    aml_string(&a, "a string long enough to need a two byte package length");
    aml_name(&a, "_CRS");
    aml_resources_begin(&a);
    aml_io(&a, 0x3f8, 0x3f8, 0, 8);
    aml_end(&a);
    aml_end(&a);
    aml_end(&a);
    assert_true(aml_ok(&a));
    size_t need = aml_len(&a);

    for (size_t cap = 0; cap <= need; cap++) {
        memset(buf, 0xa5, sizeof(buf));
        aml_init(&a, buf, cap);
        aml_scope_begin(&a, "\\_SB");
        aml_device_begin(&a, "COM1");
        aml_name(&a, "_STR");
        aml_string(&a, "a string long enough to need a two byte package length");
        aml_name(&a, "_CRS");
        aml_resources_begin(&a);
        aml_io(&a, 0x3f8, 0x3f8, 0, 8);
        aml_end(&a);
        aml_end(&a);
        aml_end(&a);
        assert_int_equal(aml_ok(&a), cap == need);
        for (size_t i = cap; i < sizeof(buf); i++)
            assert_int_equal(buf[i], 0xa5);
    }
    assert_memory_equal(buf, ref, need);
}

/* ---- iasl ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s) {
        size_t got = fread(s, 1, (size_t)n, f);
        s[got] = '\0';
    }
    fclose(f);
    return s;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Runs argv in dir with stdout and stderr going to dir/log; returns the
 * exit status (or -1 if it did not exit normally). */
static int run_in(const char *dir, char *const argv[], const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(dir) < 0)
            _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Fails on any line mentioning "Error" other than iasl's "0 Errors" tally,
 * and on ACPICA's "Firmware Warning"s, which are complaints about the
 * table itself (a bad checksum is only a warning to iasl). Other warnings,
 * such as unresolved external references, are fine. */
static void assert_no_error_lines(const char *what, const char *text)
{
    const char *line = text;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char *copy = strndup(line, n);
        assert_non_null(copy);
        if ((strstr(copy, "Error") && !strstr(copy, " 0 Errors")) ||
            strstr(copy, "Firmware Warning"))
            fail_msg("%s: %s", what, copy);
        free(copy);
        line = nl ? nl + 1 : NULL;
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Each iasl test works in its own temporary directory, removed by the
 * teardown even when the test fails half-way. */
static int make_tmpdir(void **state)
{
    char *dir = strdup("/tmp/vmlet-acpi-XXXXXX");
    if (!dir || !mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int remove_tmpdir(void **state)
{
    char *dir = *state;
    if (dir)
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
    return 0;
}

static const char *iasl_path(void)
{
    const char *iasl = getenv("IASL");
    if (!iasl || !*iasl)
        fail_msg("IASL is not set: these checks need iasl from acpica-tools "
                 "(apt install acpica-tools), then reconfigure Meson so it passes IASL");
    return iasl;
}

static char *disassemble(const char *iasl, const char *dir, const char *name, const uint8_t *table,
                         size_t len)
{
    char path[512], dsl[512];

    snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
    write_file(path, table, len);
    snprintf(path, sizeof(path), "%s.dat", name);
    char *argv[] = { (char *)iasl, "-d", path, NULL };
    int rc = run_in(dir, argv, "disasm.log");

    snprintf(path, sizeof(path), "%s/disasm.log", dir);
    char *log = read_file(path);
    assert_non_null(log);
    if (rc != 0)
        fail_msg("iasl -d %s.dat exited with %d:\n%s", name, rc, log);
    assert_no_error_lines(name, log);
    free(log);

    snprintf(dsl, sizeof(dsl), "%s/%s.dsl", dir, name);
    char *text = read_file(dsl);
    assert_non_null(text);
    assert_no_error_lines(name, text);
    return text;
}

static void check_iasl(void **state, bool pci)
{
    const char *iasl = iasl_path();
    const char *dir = *state;

    struct tables t;
    build_machine(&t, 4, pci, GUEST_ACPI_ADDR);
    struct {
        const char *name;
        const uint8_t *p;
        size_t len;
    } tabs[] = {
        { "xsdt", t.xsdt, get32(t.xsdt + 4) }, { "facp", t.fadt, get32(t.fadt + 4) },
        { "facs", t.facs, get32(t.facs + 4) }, { "apic", t.madt, get32(t.madt + 4) },
        { "dsdt", t.dsdt, get32(t.dsdt + 4) }, { "mcfg", t.mcfg, t.mcfg ? get32(t.mcfg + 4) : 0 },
    };
    for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
        if (!tabs[i].p)
            continue;
        char *text = disassemble(iasl, dir, tabs[i].name, tabs[i].p, tabs[i].len);
        if (!strcmp(tabs[i].name, "dsdt")) {
            assert_non_null(strstr(text, "_S5"));
            assert_non_null(strstr(text, "PNP0501"));
            assert_non_null(strstr(text, "IRQNoFlags"));
            if (pci) {
                assert_non_null(strstr(text, "PNP0A08"));
                assert_non_null(strstr(text, "PNP0A03"));
                assert_non_null(strstr(text, "PNP0C02"));
                assert_non_null(strstr(text, "WordBusNumber (ResourceProducer, MinFixed, "
                                             "MaxFixed, PosDecode"));
                assert_non_null(strstr(text, "0xDFFFFFFF"));
                assert_non_null(strstr(text, "Memory32Fixed (ReadWrite"));
                assert_non_null(strstr(text, "ACPI0013"));
                assert_non_null(strstr(text, "VM_Gen_Counter"));
                assert_non_null(strstr(text, "Interrupt (ResourceConsumer, Edge, ActiveHigh, "
                                             "Exclusive, ,, )"));
                assert_non_null(strstr(text, "Method (_EVT, 1"));
                assert_non_null(strstr(text, "Notify (\\_SB.VGEN, 0x80"));
            }
        }
        if (!strcmp(tabs[i].name, "mcfg")) {
            assert_non_null(strstr(text, "Base Address : 00000000E0000000"));
            assert_non_null(strstr(text, "End Bus Number : 00"));
        }
        free(text);
    }

    /* The disassembled DSDT must compile back: it is valid ASL. -oa turns
     * off iasl's optimizations (which shorten \_SB to _SB at the root) so
     * the result can be compared byte for byte. */
    char *argv[] = { (char *)iasl, "-oa", "-p", "recompiled", "dsdt.dsl", NULL };
    int rc = run_in(dir, argv, "compile.log");
    char path[512];
    snprintf(path, sizeof(path), "%s/compile.log", dir);
    char *log = read_file(path);
    assert_non_null(log);
    if (rc != 0)
        fail_msg("iasl dsdt.dsl exited with %d:\n%s", rc, log);
    assert_no_error_lines("recompiling dsdt.dsl", log);
    free(log);

    /* And gives back the same AML after the header (iasl puts its own
     * compiler ID there). */
    snprintf(path, sizeof(path), "%s/recompiled.aml", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t aml[4096];
    size_t n = fread(aml, 1, sizeof(aml), f);
    fclose(f);
    assert_int_equal(n, get32(t.dsdt + 4));
    assert_memory_equal(aml + 36, t.dsdt + 36, n - 36);

    release(&t);
}

static void test_iasl(void **state)
{
    check_iasl(state, false);
}
static void test_iasl_pci(void **state)
{
    check_iasl(state, true);
}

/* iasl cannot read a bare RSDP (its table reader wants a four-letter
 * signature), but its data table compiler can build one and computes both
 * checksums itself. Describe our RSDP's fields with zeroed checksums and
 * expect iasl to produce exactly our 36 bytes. */
static void test_iasl_rsdp(void **state)
{
    const char *iasl = iasl_path();
    const char *dir = *state;
    char path[512], src[1024];

    struct tables t;
    build(&t, 4);
    snprintf(src, sizeof(src),
             "[0008]        Signature : \"RSD PTR \"\n"
             "[0001]         Checksum : 00\n"
             "[0006]           Oem ID : \"%.6s\"\n"
             "[0001]         Revision : %02X\n"
             "[0004]     RSDT Address : %08X\n"
             "[0004]           Length : %08X\n"
             "[0008]     XSDT Address : %016llX\n"
             "[0001] Extended Checksum : 00\n"
             "[0003]         Reserved : 000000\n",
             (const char *)t.rsdp + 9, t.rsdp[15], get32(t.rsdp + 16), get32(t.rsdp + 20),
             (unsigned long long)get64(t.rsdp + 24));
    snprintf(path, sizeof(path), "%s/rsdp.asl", dir);
    write_file(path, src, strlen(src));

    char *argv[] = { (char *)iasl, "rsdp.asl", NULL };
    int rc = run_in(dir, argv, "rsdp.log");
    snprintf(path, sizeof(path), "%s/rsdp.log", dir);
    char *log = read_file(path);
    assert_non_null(log);
    if (rc != 0)
        fail_msg("iasl rsdp.asl exited with %d:\n%s", rc, log);
    assert_no_error_lines("rsdp", log);
    free(log);

    snprintf(path, sizeof(path), "%s/rsdp.aml", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t aml[64];
    size_t n = fread(aml, 1, sizeof(aml), f);
    fclose(f);
    assert_int_equal(n, 36);
    assert_memory_equal(aml, t.rsdp, 36);

    release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsdp),
        cmocka_unit_test(test_checksums_and_lengths),
        cmocka_unit_test(test_xsdt_pointers),
        cmocka_unit_test(test_relocation),
        cmocka_unit_test(test_fadt),
        cmocka_unit_test(test_madt_1),
        cmocka_unit_test(test_madt_2),
        cmocka_unit_test(test_madt_64),
        cmocka_unit_test(test_madt_255),
        cmocka_unit_test(test_rejects_bad_machine),
        cmocka_unit_test(test_too_small_1),
        cmocka_unit_test(test_too_small_255),
        cmocka_unit_test(test_too_small_pci),
        cmocka_unit_test(test_mcfg),
        cmocka_unit_test(test_dsdt_no_pci),
        cmocka_unit_test(test_dsdt_pci),
        cmocka_unit_test(test_dsdt_vmgenid),
        cmocka_unit_test(test_aml_resources),
        cmocka_unit_test(test_dsdt_aml),
        cmocka_unit_test(test_aml_pkglength),
        cmocka_unit_test(test_aml_objects),
        cmocka_unit_test(test_aml_nesting),
        cmocka_unit_test(test_aml_bounds),
        cmocka_unit_test_setup_teardown(test_iasl, make_tmpdir, remove_tmpdir),
        cmocka_unit_test_setup_teardown(test_iasl_pci, make_tmpdir, remove_tmpdir),
        cmocka_unit_test_setup_teardown(test_iasl_rsdp, make_tmpdir, remove_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
