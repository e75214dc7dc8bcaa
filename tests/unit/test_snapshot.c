/* The snapshot state file (src/snapshot_format.c) and the devices' saved
 * state (serial, ACPI PM, i8042, PCI host): a file the writer makes parses
 * back; other versions, bad magic, every truncation, a flipped byte,
 * missing, repeated and misplaced records are refused with their reason;
 * device states round-trip and values no guest could set are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "snapshot_format.h"
#include "dev/acpi_pm.h"
#include "dev/i8042.h"
#include "dev/pci.h"
#include "dev/serial.h"
#include "layout.h"
#include "virtio/pci.h"

/* Virtio devices in the files make_file writes (their three records each). */
static unsigned file_devices;

/* A whole state file for ncpus vCPUs, every record present, payload
 * bytes set to a pattern; skip_tag (and its instance) left out. */
static struct snap_writer make_file(unsigned ncpus, uint32_t skip_tag, uint32_t skip_inst)
{
    struct snap_writer w;
    snap_writer_init(&w);
    struct snap_config cfg = {
        .ncpus = ncpus, .memory = 256ull << 20, .shutdown_timeout = 10, .ndevices = file_devices
    };
    snap_put(&w, SNAP_CONFIG, 0, &cfg, sizeof cfg);
    static uint8_t blob[2 * SNAP_PCI_CFG]; /* the largest record: a device description */
    _Static_assert(sizeof(struct snap_device) <= sizeof blob, "every record fits the pattern");
    for (unsigned i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)(i * 7);
    for (unsigned c = 0; c < ncpus; c++)
        for (uint32_t tag = SNAP_VCPU_REGS; tag < SNAP_VCPU_PARTS_END; tag++) {
            if (tag == skip_tag && c == skip_inst)
                continue;
            uint32_t len = snap_record_size(tag);
            if (tag == SNAP_VCPU_XSAVE)
                len = SNAP_XSAVE_MIN;
            else if (tag == SNAP_VCPU_MSRS)
                len = 3 * sizeof(struct kvm_msr_entry);
            else if (tag == SNAP_VCPU_CPUID)
                len = 2 * sizeof(struct kvm_cpuid_entry2);
            snap_put(&w, tag, c, blob, len);
        }
    const uint32_t devs[] = { SNAP_PIT,     SNAP_CLOCK, SNAP_SERIAL,
                              SNAP_ACPI_PM, SNAP_I8042, SNAP_PCI_HOST };
    for (unsigned chip = 0; chip < 3; chip++)
        if (!(skip_tag == SNAP_IRQCHIP && skip_inst == chip))
            snap_put(&w, SNAP_IRQCHIP, chip, blob, snap_record_size(SNAP_IRQCHIP));
    for (unsigned i = 0; i < sizeof devs / sizeof devs[0]; i++)
        if (devs[i] != skip_tag)
            snap_put(&w, devs[i], 0, blob, snap_record_size(devs[i]));
    snap_put(&w, SNAP_PCI_FUNC, 0, blob, SNAP_PCI_CFG);
    for (unsigned d = 0; d < file_devices; d++) {
        const uint32_t tags[] = { SNAP_DEVICE, SNAP_VIRTIO_PCI, SNAP_VIRTIO_STATE };
        for (unsigned t = 0; t < 3; t++)
            if (!(tags[t] == skip_tag && d == skip_inst))
                snap_put(&w, tags[t], d, blob,
                         tags[t] == SNAP_VIRTIO_STATE ? 8 : snap_record_size(tags[t]));
    }
    assert_int_equal(snap_finish(&w), 0);
    return w;
}

static int parse(const uint8_t *buf, size_t len, char *why)
{
    struct snapshot s;
    uint32_t version;
    int rc = snap_parse(buf, len, &s, &version, why, 256);
    snap_free(&s);
    return rc;
}

/* The CRC of a file changed by a test, so that the change itself is what
 * the parser meets. */
static void fix_crc(struct snap_writer *w)
{
    size_t at = w->len - 8; /* the END record's payload */
    uint32_t crc = snap_crc32(0, w->buf, at);
    memcpy(w->buf + at, &crc, 4);
}

static void round_trip(void **state)
{
    (void)state;
    struct snap_writer w = make_file(2, 0, 0);
    struct snapshot s;
    uint32_t version;
    char why[256] = "";
    assert_int_equal(snap_parse(w.buf, w.len, &s, &version, why, sizeof why), 0);
    assert_int_equal(version, SNAP_VERSION);
    assert_int_equal(s.config.ncpus, 2);
    assert_int_equal(s.config.memory, 256ull << 20);
    assert_int_equal(s.vcpus[1][SNAP_VCPU_MSRS - SNAP_VCPU_REGS].len,
                     3 * sizeof(struct kvm_msr_entry));
    assert_int_equal(s.vcpus[0][SNAP_VCPU_REGS - SNAP_VCPU_REGS].len, sizeof(struct kvm_regs));
    assert_int_equal(s.vcpus[0][0].data[1], 7);
    assert_non_null(s.pci_func[0].data);
    assert_null(s.pci_func[1].data);
    assert_int_equal(s.serial.len, sizeof(struct serial_state));
    snap_free(&s);
    snap_writer_free(&w);
}

static void other_version_refused(void **state)
{
    (void)state;
    struct snap_writer w = make_file(1, 0, 0);
    uint32_t v = 3;
    memcpy(w.buf + 8, &v, 4);
    fix_crc(&w);
    char why[256];
    struct snapshot s;
    uint32_t version;
    assert_int_equal(snap_parse(w.buf, w.len, &s, &version, why, sizeof why), -1);
    assert_int_equal(version, 3);
    assert_string_equal(why, "format version 3; this vmlet reads versions 1 to 2");
    /* Version 1 (before virtio devices) is still read. */
    v = 1;
    memcpy(w.buf + 8, &v, 4);
    fix_crc(&w);
    assert_int_equal(snap_parse(w.buf, w.len, &s, &version, why, sizeof why), 0);
    assert_int_equal(version, 1);
    snap_free(&s);
    memcpy(w.buf, "VMLETSNQ", 8);
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_non_null(strstr(why, "not a vmlet snapshot"));
    snap_writer_free(&w);
}

/* Every length short of the whole file is refused (ASan watches the reads:
 * the copy is exactly that long). */
static void every_truncation_refused(void **state)
{
    (void)state;
    struct snap_writer w = make_file(2, 0, 0);
    char why[256];
    for (size_t len = 0; len < w.len; len++) {
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, w.buf, len);
        assert_int_equal(parse(cut, len, why), -1);
        free(cut);
    }
    uint8_t *cut = malloc(w.len - 100);
    memcpy(cut, w.buf, w.len - 100);
    assert_int_equal(parse(cut, w.len - 100, why), -1);
    assert_non_null(strstr(why, "cut short"));
    free(cut);
    snap_writer_free(&w);
}

static void altered_byte_refused(void **state)
{
    (void)state;
    struct snap_writer w = make_file(1, 0, 0);
    char why[256];
    w.buf[w.len / 2] ^= 0x40; /* payload bytes: only the checksum sees it */
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_non_null(strstr(why, "checksum"));
    snap_writer_free(&w);
}

static void missing_records_refused(void **state)
{
    (void)state;
    char why[256];
    struct snap_writer w = make_file(2, SNAP_VCPU_MSRS, 1);
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_string_equal(why, "vCPU 1's MSRs are missing");
    snap_writer_free(&w);
    w = make_file(1, SNAP_IRQCHIP, 2);
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_string_equal(why, "irqchip 2 is missing");
    snap_writer_free(&w);
    w = make_file(1, SNAP_SERIAL, 0);
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_non_null(strstr(why, "missing"));
    snap_writer_free(&w);
}

/* Records that do not fit the format, each with its reason. */
static void bad_records_refused(void **state)
{
    (void)state;
    char why[256];
    static uint8_t blob[SNAP_XSAVE_MIN * 2];
    struct snap_config cfg = { .ncpus = 1, .memory = 1 << 24 };
    struct {
        uint32_t tag, inst, len;
        const char *why;
    } cases[] = {
        { SNAP_VCPU_REGS, 1, sizeof(struct kvm_regs), "a record for vCPU 1 of 1" },
        { SNAP_VCPU_REGS, 0, sizeof(struct kvm_regs) - 8, "record 16 has" },
        { SNAP_VCPU_XSAVE, 0, 100, "an XSAVE record of 100 bytes" },
        { SNAP_VCPU_MSRS, 0, 17, "an MSR record of 17 bytes" },
        { SNAP_IRQCHIP, 3, sizeof(struct kvm_irqchip), "irqchip 3" },
        { SNAP_PCI_FUNC, 256, SNAP_PCI_CFG, "PCI function 256" },
        { SNAP_SERIAL, 1, sizeof(struct serial_state), "instance 1" },
        { 999, 0, 8, "unknown record tag 999" },
        { SNAP_CONFIG, 0, sizeof cfg, "CONFIG" },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct snap_writer w;
        snap_writer_init(&w);
        snap_put(&w, SNAP_CONFIG, 0, &cfg, sizeof cfg);
        snap_put(&w, cases[i].tag, cases[i].inst, blob, cases[i].len);
        assert_int_equal(snap_finish(&w), 0);
        assert_int_equal(parse(w.buf, w.len, why), -1);
        if (!strstr(why, cases[i].why))
            fail_msg("case %u: '%s' lacks '%s'", i, why, cases[i].why);
        snap_writer_free(&w);
    }
    /* A duplicate. */
    struct snap_writer w = make_file(1, 0, 0);
    struct snap_writer d;
    snap_writer_init(&d);
    snap_put(&d, SNAP_CONFIG, 0, &cfg, sizeof cfg);
    snap_put(&d, SNAP_PIT, 0, blob, snap_record_size(SNAP_PIT));
    snap_put(&d, SNAP_PIT, 0, blob, snap_record_size(SNAP_PIT));
    assert_int_equal(snap_finish(&d), 0);
    assert_int_equal(parse(d.buf, d.len, why), -1);
    assert_non_null(strstr(why, "twice"));
    snap_writer_free(&d);
    /* Bytes after END, even with the CRC right. */
    uint8_t *more = calloc(1, w.len + 8);
    memcpy(more, w.buf, w.len);
    assert_int_equal(parse(more, w.len + 8, why), -1);
    assert_non_null(strstr(why, "after the END"));
    free(more);
    /* Absurd CPU counts and memory sizes. */
    cfg.ncpus = 0;
    snap_writer_init(&d);
    snap_put(&d, SNAP_CONFIG, 0, &cfg, sizeof cfg);
    assert_int_equal(snap_finish(&d), 0);
    assert_int_equal(parse(d.buf, d.len, why), -1);
    assert_non_null(strstr(why, "0 vCPUs"));
    snap_writer_free(&d);
    cfg.ncpus = 1;
    cfg.memory = 12345;
    snap_writer_init(&d);
    snap_put(&d, SNAP_CONFIG, 0, &cfg, sizeof cfg);
    assert_int_equal(snap_finish(&d), 0);
    assert_int_equal(parse(d.buf, d.len, why), -1);
    assert_non_null(strstr(why, "memory size"));
    snap_writer_free(&d);
    snap_writer_free(&w);
}

static void crc_known_answer(void **state)
{
    (void)state;
    /* The standard check value of CRC-32/ISO-HDLC. */
    assert_int_equal(snap_crc32(0, (const uint8_t *)"123456789", 9), 0xcbf43926u);
}

/* ---- devices ---------------------------------------------------------- */

struct line {
    int level, raises;
};

static void line_set(void *opaque, unsigned gsi, int level)
{
    (void)gsi;
    struct line *l = opaque;
    l->level = level;
    l->raises += level;
}

static void outb(struct serial *s, unsigned off, uint8_t v)
{
    serial_pio(s, off, &v, 1, true);
}

static void serial_round_trip(void **state)
{
    (void)state;
    struct line a = { 0 }, b = { 0 };
    struct serial *s1 = serial_new((struct irq_line){ line_set, &a, IRQ_COM1 }, -1,
                                   VMLET_SECCOMP_OFF);
    struct serial *s2 = serial_new((struct irq_line){ line_set, &b, IRQ_COM1 }, -1,
                                   VMLET_SECCOMP_OFF);
    outb(s1, 3, 0x83); /* DLAB, 8 bits */
    outb(s1, 0, 1);    /* 115200 */
    outb(s1, 3, 0x03);
    outb(s1, 2, 0xc1); /* FIFO on, trigger 14 */
    outb(s1, 4, 0x0b); /* DTR RTS OUT2 */
    outb(s1, 7, 0x5a);
    assert_int_equal(serial_push_rx(s1, (const uint8_t *)"hey", 3), 3);
    outb(s1, 1, 0x01); /* RX interrupt: raised */
    assert_int_equal(a.level, 1);
    struct serial_state st, again;
    serial_save(s1, &st);
    assert_int_equal(st.rx_count, 3);
    assert_int_equal(serial_restore(s2, &st), 0);
    assert_int_equal(b.level, 1); /* the new one drives the line as the old did */
    serial_save(s2, &again);
    assert_memory_equal(&st, &again, sizeof st);
    uint8_t c;
    serial_pio(s2, 0, &c, 1, false);
    assert_int_equal(c, 'h');
    /* Values no guest could set. */
    struct serial_state bad = st;
    bad.rx_count = 17;
    assert_int_equal(serial_restore(s2, &bad), -1);
    bad = st;
    bad.fcr = 0;
    bad.rx_count = 2; /* no FIFO: one byte at most */
    assert_int_equal(serial_restore(s2, &bad), -1);
    bad = st;
    bad.ier = 0xff;
    assert_int_equal(serial_state_check(&bad), -1);
    serial_free(s1);
    serial_free(s2);
}

static void noop_request(void *opaque, enum guest_request r)
{
    (void)opaque;
    (void)r;
}

static void acpi_pm_and_i8042_round_trip(void **state)
{
    (void)state;
    struct line a = { 0 };
    struct acpi_pm *pm = acpi_pm_new((struct irq_line){ line_set, &a, IRQ_ACPI_SCI }, noop_request,
                                     NULL);
    struct acpi_pm_state st = { .sts = 0x100, .en = 0x100, .cnt = 0 };
    assert_int_equal(acpi_pm_restore(pm, &st), 0);
    assert_int_equal(a.level, 1); /* power button pending and enabled */
    struct acpi_pm_state got;
    acpi_pm_save(pm, &got);
    assert_int_equal(got.sts, 0x100);
    assert_int_equal(got.en, 0x100);
    st.en = 0x8000; /* not an enable bit */
    assert_int_equal(acpi_pm_restore(pm, &st), -1);
    acpi_pm_free(pm);

    struct i8042 *k = i8042_new(noop_request, NULL);
    struct i8042_state ks, back;
    i8042_save(k, &ks);
    ks.ctr = 0x47;
    assert_int_equal(i8042_restore(k, &ks), 0);
    i8042_save(k, &back);
    assert_memory_equal(&ks, &back, sizeof ks);
    ks.obf = 2;
    assert_int_equal(i8042_restore(k, &ks), -1);
    i8042_free(k);
}

/* Only the bytes a guest may write come back from a saved config space. */
static void pci_restore_takes_writable_bytes_only(void **state)
{
    (void)state;
    struct pci_host *h = pci_host_new(0xe0000000, 1 << 24);
    struct pci_func *f = pci_host_func(h, 0); /* the host bridge itself */
    assert_non_null(f);
    uint8_t cfg[SNAP_PCI_CFG];
    memset(cfg, 0xab, sizeof cfg);
    assert_int_equal(pci_func_restore(f, cfg), 0);
    assert_int_equal(pci_cfg_get(f, PCI_VENDOR_ID, 2), 0x1b36);    /* read-only: kept */
    assert_int_equal(pci_cfg_get(f, PCI_INTERRUPT_LINE, 1), 0xab); /* writable: taken */
    struct pci_host_state hs = { .cf8 = 0x80000010, .nfuncs = 1 };
    assert_int_equal(pci_host_restore(h, &hs), 0);
    struct pci_host_state back;
    pci_host_save(h, &back);
    assert_int_equal(back.cf8, 0x80000010);
    hs.nfuncs = 2;
    assert_int_equal(pci_host_restore(h, &hs), -1);
    hs.nfuncs = 1;
    hs.cf8 = 0x00000001; /* reserved bits */
    assert_int_equal(pci_host_restore(h, &hs), -1);
    /* A function with a BAR: the BAR decodes where the saved header puts
     * it, its size bits stay read-only, and one outside the window does
     * not decode at all (as after the guest's own writes). */
    struct pci_id id = { .vendor = 0x1af4, .device = 0x1042, .class_code = 0x010000 };
    struct pci_func *g = pci_func_new(h, -1, &id, NULL, NULL);
    assert_int_equal(pci_func_add_bar(g, 0, 4096, 0), 0);
    uint8_t gcfg[SNAP_PCI_CFG];
    pci_func_save(g, gcfg);
    assert_int_equal(pci_func_bar_gpa(g, 0), 0); /* memory space off */
    gcfg[PCI_COMMAND] |= PCI_COMMAND_MEMORY;
    uint32_t bar = 0xe0345fff; /* low bits below the size: ignored */
    memcpy(gcfg + PCI_BASE_ADDRESS_0, &bar, 4);
    assert_int_equal(pci_func_restore(g, gcfg), 0);
    assert_int_equal(pci_func_bar_gpa(g, 0), 0xe0345000);
    bar = 0xd0000000; /* outside the window */
    memcpy(gcfg + PCI_BASE_ADDRESS_0, &bar, 4);
    assert_int_equal(pci_func_restore(g, gcfg), 0);
    assert_int_equal(pci_func_bar_gpa(g, 0), 0);
    pci_host_free(h);
}

/* Virtio devices: three records each, all required, none beyond the
 * count the configuration gives; a device state has a size cap. */
static void device_records(void **state)
{
    (void)state;
    char why[256];
    file_devices = 2;
    struct snap_writer w = make_file(1, 0, 0);
    struct snapshot s;
    uint32_t version;
    assert_int_equal(snap_parse(w.buf, w.len, &s, &version, why, sizeof why), 0);
    for (unsigned d = 0; d < 2; d++) {
        assert_int_equal(s.device[d].len, sizeof(struct snap_device));
        assert_int_equal(s.virtio_pci[d].len, sizeof(struct virtio_pci_state));
        assert_int_equal(s.virtio_state[d].len, 8);
    }
    assert_null(s.device[2].data);
    snap_free(&s);
    snap_writer_free(&w);

    w = make_file(1, SNAP_VIRTIO_STATE, 1);
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_string_equal(why, "virtio device 1's records are missing");
    snap_writer_free(&w);

    /* The config says one device; the file has records for a second. */
    w = make_file(1, 0, 0);
    struct snap_config cfg;
    size_t cfg_at = SNAP_HEADER_SIZE + SNAP_RECORD_HEAD;
    memcpy(&cfg, w.buf + cfg_at, sizeof cfg);
    cfg.ndevices = 1;
    memcpy(w.buf + cfg_at, &cfg, sizeof cfg);
    fix_crc(&w);
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_string_equal(why, "a record for device 1 of 1");
    snap_writer_free(&w);
    file_devices = 0;

    /* A device state larger than any device saves. */
    static uint8_t big[VIRTIO_STATE_MAX + 8];
    snap_writer_init(&w);
    cfg = (struct snap_config){ .ncpus = 1, .memory = 256ull << 20, .ndevices = 1 };
    snap_put(&w, SNAP_CONFIG, 0, &cfg, sizeof cfg);
    snap_put(&w, SNAP_VIRTIO_STATE, 0, big, VIRTIO_STATE_MAX + 8);
    assert_int_equal(snap_finish(&w), 0);
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_string_equal(why, "a device state of 4104 bytes (at most 4096)");
    snap_writer_free(&w);

    /* More devices than any VM has. */
    w = make_file(1, 0, 0);
    memcpy(&cfg, w.buf + cfg_at, sizeof cfg);
    cfg.ndevices = SNAP_MAX_DEVICES + 1;
    memcpy(w.buf + cfg_at, &cfg, sizeof cfg);
    fix_crc(&w);
    assert_int_equal(parse(w.buf, w.len, why), -1);
    assert_string_equal(why, "65 devices (at most 64)");
    snap_writer_free(&w);
}

/* What a device record may hold before anything is made from it. */
static void device_record_checks(void **state)
{
    (void)state;
    char why[256];
    struct snap_device d;
    memset(&d, 0, sizeof d);
    d.kind = SNAP_DEV_DISK;
    d.devfn = 8;
    strcpy(d.text, "/var/lib/vm/root.img");
    strcpy(d.serial, "root");
    assert_int_equal(snap_device_check(&d, why, sizeof why), 0);
    d.serial[0] = 0x7f;
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a disk serial that is not printable ASCII");
    memset(d.serial, 'a', sizeof d.serial);
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a disk record with an unterminated string");
    memset(d.serial, 0, sizeof d.serial);
    memset(d.serial, 'a', 21);
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a disk serial of 21 bytes (at most 20)");
    memset(d.serial, 0, sizeof d.serial);
    d.text[0] = 0;
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a disk record with fields of another kind");
    memset(d.text, 'x', sizeof d.text);
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a disk record with an unterminated string");
    memset(&d, 0, sizeof d);
    d.kind = SNAP_DEV_RNG;
    assert_int_equal(snap_device_check(&d, why, sizeof why), 0);
    d.read_only = 1;
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a virtio-rng device record with fields of another kind");
    d.read_only = 0;
    d.devfn = 256;
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    d.devfn = 0;
    d.kind = 99;
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a device of unknown kind 99");
    d.kind = SNAP_DEV_NET;
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1); /* no spec */
    strcpy(d.text, "user,mac=52:54:00:12:34:56");
    assert_int_equal(snap_device_check(&d, why, sizeof why), 0);
}

/* A balloon's record: its options as --balloon's, nothing else. A
 * share's: tag, NUL, absolute path, NUL, zeros; "cache=always" or no
 * options. Each refusal names the kind and what is wrong. */
static void balloon_and_share_records(void **state)
{
    (void)state;
    char why[256];
    struct snap_device d;
    memset(&d, 0, sizeof d);
    d.kind = SNAP_DEV_BALLOON;
    d.devfn = 40;
    assert_int_equal(snap_device_check(&d, why, sizeof why), 0); /* no options */
    strcpy(d.text, "deflate-on-oom,free-page-reporting,stats=5");
    assert_int_equal(snap_device_check(&d, why, sizeof why), 0);
    assert_string_equal(snap_device_kind_name(SNAP_DEV_BALLOON), "balloon");
    d.text[3] = ' ';
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a balloon record whose options are not --balloon's");
    d.text[3] = 'l';
    d.text[100] = 'x'; /* hidden after the string */
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a balloon record with fields of another kind");
    d.text[100] = 0;
    d.read_only = 1;
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a balloon record with fields of another kind");
    d.read_only = 0;
    strcpy(d.serial, "x");
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);

    memset(&d, 0, sizeof d);
    d.kind = SNAP_DEV_FS;
    d.devfn = 48;
    d.read_only = 1;
    memcpy(d.text, "work\0/home/me/project", 22);
    assert_int_equal(snap_device_check(&d, why, sizeof why), 0);
    assert_string_equal(snap_device_kind_name(SNAP_DEV_FS), "shared directory");
    strcpy(d.serial, "cache=always");
    assert_int_equal(snap_device_check(&d, why, sizeof why), 0);
    strcpy(d.serial, "cache=never");
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a shared directory record with unknown options");
    memset(d.serial, 0, sizeof d.serial);
    d.read_only = 2;
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a shared directory record with bad fields");
    d.read_only = 0;
    d.text[5] = 'h'; /* a relative path */
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a shared directory record without an absolute path");
    d.text[5] = '/';
    d.text[4] = '/'; /* no path at all: tag "work/home/me/project" */
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a shared directory record without an absolute path");
    d.text[4] = 0;
    d.text[40] = 'x'; /* after the path */
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a shared directory record with bytes after its strings");
    memset(d.text, 0, sizeof d.text);
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a shared directory record with a tag of 0 bytes (1 to 36)");
    memset(d.text, 't', 37);
    strcpy(d.text + 38, "/x");
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
    assert_string_equal(why, "a shared directory record with a tag of 37 bytes (1 to 36)");
    d.text[36] = 0; /* 36 bytes: the most */
    memset(d.text + 37, 0, 3);
    strcpy(d.text + 37, "/x");
    assert_int_equal(snap_device_check(&d, why, sizeof why), 0);
    memset(d.text + 37, 'p', sizeof d.text - 37); /* the path unterminated */
    assert_int_equal(snap_device_check(&d, why, sizeof why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(other_version_refused),
        cmocka_unit_test(every_truncation_refused),
        cmocka_unit_test(altered_byte_refused),
        cmocka_unit_test(missing_records_refused),
        cmocka_unit_test(bad_records_refused),
        cmocka_unit_test(crc_known_answer),
        cmocka_unit_test(serial_round_trip),
        cmocka_unit_test(acpi_pm_and_i8042_round_trip),
        cmocka_unit_test(pci_restore_takes_writable_bytes_only),
        cmocka_unit_test(device_records),
        cmocka_unit_test(device_record_checks),
        cmocka_unit_test(balloon_and_share_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
