/* The snapshot state file (snapshot_format.h): writing records, and the
 * parser that checks a file from disk before anything of it is used. */
#include "snapshot_format.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#include "dev/acpi_pm.h"
#include "dev/i8042.h"
#include "dev/pci.h"
#include "dev/serial.h"
#include "virtio/pci.h"
#include "vmlet.h"

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32): catches a file altered
 * or cut short by accident; it is no defence against a deliberate edit,
 * which the parser's checks are. */
uint32_t snap_crc32(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

uint32_t snap_record_size(uint32_t tag)
{
    switch (tag) {
    case SNAP_CONFIG: return sizeof(struct snap_config);
    case SNAP_VCPU_REGS: return sizeof(struct kvm_regs);
    case SNAP_VCPU_SREGS: return sizeof(struct kvm_sregs);
    case SNAP_VCPU_XCRS: return sizeof(struct kvm_xcrs);
    case SNAP_VCPU_LAPIC: return sizeof(struct kvm_lapic_state);
    case SNAP_VCPU_EVENTS: return sizeof(struct kvm_vcpu_events);
    case SNAP_VCPU_DEBUGREGS: return sizeof(struct kvm_debugregs);
    case SNAP_VCPU_MP_STATE: return sizeof(struct kvm_mp_state);
    case SNAP_IRQCHIP: return sizeof(struct kvm_irqchip);
    case SNAP_PIT: return sizeof(struct kvm_pit_state2);
    case SNAP_CLOCK: return sizeof(struct kvm_clock_data);
    case SNAP_SERIAL: return sizeof(struct serial_state);
    case SNAP_ACPI_PM: return sizeof(struct acpi_pm_state);
    case SNAP_I8042: return sizeof(struct i8042_state);
    case SNAP_PCI_HOST: return sizeof(struct pci_host_state);
    case SNAP_PCI_FUNC: return SNAP_PCI_CFG;
    case SNAP_DEVICE: return sizeof(struct snap_device);
    case SNAP_VIRTIO_PCI: return sizeof(struct virtio_pci_state);
    case SNAP_END: return 8;
    default: return 0;
    }
}

/* ---- writing ------------------------------------------------------------ */

void snap_writer_init(struct snap_writer *w)
{
    memset(w, 0, sizeof *w);
    uint8_t head[SNAP_HEADER_SIZE] = { 0 };
    memcpy(head, SNAP_MAGIC, 8);
    uint32_t version = SNAP_VERSION;
    memcpy(head + 8, &version, 4);
    /* head + 12: flags, none yet */
    w->cap = 1 << 16;
    w->buf = malloc(w->cap);
    if (!w->buf) {
        w->failed = true;
        return;
    }
    memcpy(w->buf, head, sizeof head);
    w->len = sizeof head;
}

void snap_put(struct snap_writer *w, uint32_t tag, uint32_t instance, const void *data,
              uint32_t len)
{
    if (w->failed)
        return;
    size_t need = SNAP_RECORD_HEAD + pad8(len);
    while (w->cap - w->len < need) {
        uint8_t *b = realloc(w->buf, w->cap * 2);
        if (!b) {
            w->failed = true;
            return;
        }
        w->buf = b;
        w->cap *= 2;
    }
    uint32_t head[4] = { tag, instance, len, 0 };
    memcpy(w->buf + w->len, head, sizeof head);
    memcpy(w->buf + w->len + SNAP_RECORD_HEAD, data, len);
    memset(w->buf + w->len + SNAP_RECORD_HEAD + len, 0, pad8(len) - len);
    w->len += need;
}

int snap_finish(struct snap_writer *w)
{
    if (w->failed)
        return -1;
    uint32_t end[2] = { 0, 0 };
    /* The CRC covers everything up to the END record's payload. */
    size_t at = w->len;
    snap_put(w, SNAP_END, 0, end, sizeof end);
    if (w->failed)
        return -1;
    uint32_t crc = snap_crc32(0, w->buf, at + SNAP_RECORD_HEAD);
    memcpy(w->buf + at + SNAP_RECORD_HEAD, &crc, 4);
    return 0;
}

void snap_writer_free(struct snap_writer *w)
{
    free(w->buf);
    w->buf = NULL;
}

/* ---- parsing ------------------------------------------------------------ */

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *const part_names[SNAP_VCPU_PARTS] = {
    "registers", "special registers", "XSAVE state", "XCRs", "LAPIC",
    "events",    "debug registers",   "MP state",    "MSRs", "CPUID",
};

/* Fills one slot; refuses a second record for it. */
static int take(struct snap_blob *slot, const uint8_t *data, uint32_t len, const char *name,
                char *why, size_t whylen)
{
    if (slot->data)
        return fail(why, whylen, "%s appears twice", name);
    slot->data = data;
    slot->len = len;
    return 0;
}

static int check_length(uint32_t tag, uint32_t len, char *why, size_t whylen)
{
    uint32_t want = snap_record_size(tag);
    if (want)
        return len == want ? 0
                           : fail(why, whylen, "record %u has %u bytes, not %u", tag, len, want);
    switch (tag) {
    case SNAP_VCPU_XSAVE:
        if (len < SNAP_XSAVE_MIN || len > SNAP_XSAVE_MAX || len % 4)
            return fail(why, whylen, "an XSAVE record of %u bytes", len);
        return 0;
    case SNAP_VCPU_MSRS:
        if (len == 0 || len % sizeof(struct kvm_msr_entry) ||
            len / sizeof(struct kvm_msr_entry) > SNAP_MAX_MSRS)
            return fail(why, whylen, "an MSR record of %u bytes", len);
        return 0;
    case SNAP_VIRTIO_STATE:
        if (len > VIRTIO_STATE_MAX)
            return fail(why, whylen, "a device state of %u bytes (at most %u)", len,
                        VIRTIO_STATE_MAX);
        return 0;
    case SNAP_VCPU_CPUID:
        if (len == 0 || len % sizeof(struct kvm_cpuid_entry2) ||
            len / sizeof(struct kvm_cpuid_entry2) > SNAP_MAX_CPUID)
            return fail(why, whylen, "a CPUID record of %u bytes", len);
        return 0;
    default: return fail(why, whylen, "unknown record tag %u", tag);
    }
}

static int parse(const uint8_t *buf, size_t len, struct snapshot *s, uint32_t *version, char *why,
                 size_t whylen)
{
    memset(s, 0, sizeof *s);
    *version = 0;
    if (len < SNAP_HEADER_SIZE || memcmp(buf, SNAP_MAGIC, 8) != 0)
        return fail(why, whylen, "not a vmlet snapshot (no %s header)", SNAP_MAGIC);
    *version = get32(buf + 8);
    /* Version 1 is version 2 without virtio devices (ndevices was 0). */
    if (*version < 1 || *version > SNAP_VERSION)
        return fail(why, whylen, "format version %u; this vmlet reads versions 1 to %u", *version,
                    SNAP_VERSION);
    if (get32(buf + 12) != 0)
        return fail(why, whylen, "unknown header flags 0x%x", get32(buf + 12));
    if (len > SNAP_STATE_MAX)
        return fail(why, whylen, "larger than %u bytes", SNAP_STATE_MAX);

    size_t off = SNAP_HEADER_SIZE;
    bool have_config = false, ended = false;
    while (!ended) {
        if (len - off < SNAP_RECORD_HEAD)
            return fail(why, whylen, "cut short at byte %zu (no END record)", off);
        uint32_t tag = get32(buf + off), inst = get32(buf + off + 4);
        uint32_t rlen = get32(buf + off + 8), rsv = get32(buf + off + 12);
        const uint8_t *data = buf + off + SNAP_RECORD_HEAD;
        size_t room = len - off - SNAP_RECORD_HEAD;
        if (rsv != 0)
            return fail(why, whylen, "record at byte %zu: reserved field set", off);
        if (rlen > room || pad8(rlen) > room)
            return fail(why, whylen, "cut short in record %u at byte %zu", tag, off);
        if (check_length(tag, rlen, why, whylen) < 0)
            return -1;
        int rc = 0;
        if (tag == SNAP_CONFIG) {
            if (have_config || inst != 0)
                return fail(why, whylen, "a second or misplaced CONFIG record");
            if (off != SNAP_HEADER_SIZE)
                return fail(why, whylen, "CONFIG is not the first record");
            memcpy(&s->config, data, sizeof s->config);
            if (s->config.ncpus == 0 || s->config.ncpus > SNAP_MAX_CPUS)
                return fail(why, whylen, "%u vCPUs (1 to %u)", s->config.ncpus, SNAP_MAX_CPUS);
            if (s->config.ndevices > SNAP_MAX_DEVICES)
                return fail(why, whylen, "%u devices (at most %u)", s->config.ndevices,
                            SNAP_MAX_DEVICES);
            if (s->config.memory == 0 || s->config.memory % 4096)
                return fail(why, whylen, "a memory size of %llu bytes",
                            (unsigned long long)s->config.memory);
            s->vcpus = calloc(s->config.ncpus, sizeof *s->vcpus);
            if (!s->vcpus)
                return fail(why, whylen, "out of memory");
            have_config = true;
        } else if (!have_config) {
            return fail(why, whylen, "CONFIG is not the first record");
        } else if (tag >= SNAP_VCPU_REGS && tag < SNAP_VCPU_PARTS_END) {
            if (inst >= s->config.ncpus)
                rc = fail(why, whylen, "a record for vCPU %u of %u", inst, s->config.ncpus);
            else {
                char name[64];
                snprintf(name, sizeof name, "vCPU %u's %s", inst, part_names[tag - SNAP_VCPU_REGS]);
                rc = take(&s->vcpus[inst][tag - SNAP_VCPU_REGS], data, rlen, name, why, whylen);
            }
        } else if (tag == SNAP_IRQCHIP) {
            rc = inst < 3 ? take(&s->irqchip[inst], data, rlen, "an irqchip", why, whylen)
                          : fail(why, whylen, "irqchip %u", inst);
        } else if (tag == SNAP_PCI_FUNC) {
            rc = inst < SNAP_PCI_FUNCS
                     ? take(&s->pci_func[inst], data, rlen, "a PCI function", why, whylen)
                     : fail(why, whylen, "PCI function %u", inst);
        } else if (tag == SNAP_DEVICE || tag == SNAP_VIRTIO_PCI || tag == SNAP_VIRTIO_STATE) {
            struct snap_blob *slots = tag == SNAP_DEVICE       ? s->device
                                      : tag == SNAP_VIRTIO_PCI ? s->virtio_pci
                                                               : s->virtio_state;
            rc = inst < s->config.ndevices
                     ? take(&slots[inst], data, rlen, "a device's record", why, whylen)
                     : fail(why, whylen, "a record for device %u of %u", inst, s->config.ndevices);
        } else if (tag == SNAP_END) {
            size_t crc_len = off + SNAP_RECORD_HEAD;
            if (snap_crc32(0, buf, crc_len) != get32(data))
                return fail(why, whylen, "checksum mismatch: the file was altered or damaged");
            if (len - off - SNAP_RECORD_HEAD != pad8(rlen))
                return fail(why, whylen, "%zu bytes after the END record",
                            len - off - SNAP_RECORD_HEAD - pad8(rlen));
            ended = true;
        } else {
            struct snap_blob *slot = tag == SNAP_PIT       ? &s->pit
                                     : tag == SNAP_CLOCK   ? &s->clock
                                     : tag == SNAP_SERIAL  ? &s->serial
                                     : tag == SNAP_ACPI_PM ? &s->acpi_pm
                                     : tag == SNAP_I8042   ? &s->i8042
                                                           : &s->pci_host;
            rc = inst != 0 ? fail(why, whylen, "record %u has instance %u", tag, inst)
                           : take(slot, data, rlen, "a device record", why, whylen);
        }
        if (rc < 0)
            return -1;
        off += SNAP_RECORD_HEAD + pad8(rlen);
    }
    /* Everything a restore needs. */
    for (uint32_t i = 0; i < s->config.ncpus; i++)
        for (unsigned p = 0; p < SNAP_VCPU_PARTS; p++)
            if (!s->vcpus[i][p].data)
                return fail(why, whylen, "vCPU %u's %s are missing", i, part_names[p]);
    for (unsigned i = 0; i < 3; i++)
        if (!s->irqchip[i].data)
            return fail(why, whylen, "irqchip %u is missing", i);
    if (!s->pit.data || !s->clock.data || !s->serial.data || !s->acpi_pm.data || !s->i8042.data ||
        !s->pci_host.data)
        return fail(why, whylen, "a device record is missing");
    for (uint32_t i = 0; i < s->config.ndevices; i++)
        if (!s->device[i].data || !s->virtio_pci[i].data || !s->virtio_state[i].data)
            return fail(why, whylen, "virtio device %u's records are missing", i);
    return 0;
}

const char *snap_device_kind_name(uint32_t kind)
{
    switch (kind) {
    case SNAP_DEV_DISK: return "disk";
    case SNAP_DEV_CONSOLE: return "virtio console";
    case SNAP_DEV_RNG: return "virtio-rng device";
    case SNAP_DEV_NET: return "NIC";
    case SNAP_DEV_VSOCK: return "vsock device";
    case SNAP_DEV_BALLOON: return "balloon";
    case SNAP_DEV_FS: return "shared directory";
    default: return NULL;
    }
}

static bool terminated(const char *s, size_t size)
{
    return memchr(s, 0, size) != NULL;
}

/* Nothing hidden after a record's last string. */
static bool zero_from(const char *p, size_t from, size_t size)
{
    for (size_t i = from; i < size; i++)
        if (p[i])
            return false;
    return true;
}

/* A balloon: its options as vmlet writes them (the restore parses them as
 * --balloon's), nothing else. */
static int balloon_check(const struct snap_device *d, char *why, size_t whylen)
{
    size_t len = strlen(d->text);
    if (d->read_only || d->serial[0] || !zero_from(d->text, len, sizeof d->text) ||
        !zero_from(d->serial, 0, sizeof d->serial))
        return fail(why, whylen, "a balloon record with fields of another kind");
    for (size_t i = 0; i < len; i++) {
        char c = d->text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == ',' || c == '='))
            return fail(why, whylen, "a balloon record whose options are not --balloon's");
    }
    return 0;
}

/* A share: tag (1 to VMLET_SHARE_TAG_MAX bytes, as virtio_fs_new takes),
 * NUL, absolute path, NUL, zeros; options "cache=always" or none. */
static int share_check(const struct snap_device *d, char *why, size_t whylen)
{
    size_t tag = strlen(d->text);
    if (tag == 0 || tag > VMLET_SHARE_TAG_MAX)
        return fail(why, whylen, "a shared directory record with a tag of %zu bytes (1 to %d)", tag,
                    VMLET_SHARE_TAG_MAX);
    const char *path = d->text + tag + 1;
    size_t room = sizeof d->text - tag - 1;
    const char *end = memchr(path, 0, room);
    if (!end || path[0] != '/')
        return fail(why, whylen, "a shared directory record without an absolute path");
    if (!zero_from(d->text, (size_t)(end - d->text), sizeof d->text) ||
        !zero_from(d->serial, strlen(d->serial), sizeof d->serial))
        return fail(why, whylen, "a shared directory record with bytes after its strings");
    if (d->serial[0] && strcmp(d->serial, "cache=always") != 0)
        return fail(why, whylen, "a shared directory record with unknown options");
    return 0;
}

int snap_device_check(const struct snap_device *d, char *why, size_t whylen)
{
    if (!snap_device_kind_name(d->kind))
        return fail(why, whylen, "a device of unknown kind %u", d->kind);
    if (d->devfn >= SNAP_PCI_FUNCS || d->read_only > 1 || d->reserved)
        return fail(why, whylen, "a %s record with bad fields", snap_device_kind_name(d->kind));
    if (!terminated(d->text, sizeof d->text) || !terminated(d->serial, sizeof d->serial))
        return fail(why, whylen, "a %s record with an unterminated string",
                    snap_device_kind_name(d->kind));
    if (d->kind == SNAP_DEV_BALLOON)
        return balloon_check(d, why, whylen);
    if (d->kind == SNAP_DEV_FS)
        return share_check(d, why, whylen);
    bool needs_text = d->kind == SNAP_DEV_DISK || d->kind == SNAP_DEV_NET ||
                      d->kind == SNAP_DEV_VSOCK;
    if (needs_text != (d->text[0] != 0) ||
        (d->kind != SNAP_DEV_DISK && (d->serial[0] || d->read_only)))
        return fail(why, whylen, "a %s record with fields of another kind",
                    snap_device_kind_name(d->kind));
    size_t slen = strlen(d->serial);
    if (slen > 20)
        return fail(why, whylen, "a disk serial of %zu bytes (at most 20)", slen);
    for (size_t i = 0; i < slen; i++)
        if (d->serial[i] < 0x20 || d->serial[i] > 0x7e)
            return fail(why, whylen, "a disk serial that is not printable ASCII");
    return 0;
}

int snap_parse(const uint8_t *buf, size_t len, struct snapshot *s, uint32_t *version, char *why,
               size_t whylen)
{
    int rc = parse(buf, len, s, version, why, whylen);
    if (rc < 0)
        snap_free(s);
    return rc;
}

void snap_free(struct snapshot *s)
{
    free(s->vcpus);
    s->vcpus = NULL;
}
