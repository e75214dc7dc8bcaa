/* The snapshot's state file (docs/snapshot.md): a header (magic, format
 * version), then records (tag, instance, length, payload padded to 8
 * bytes), ending with an END record that holds the CRC-32 of everything
 * before it. Guest memory is a separate sparse file ("memory").
 *
 * The writer builds the file in memory; the parser checks every length,
 * count and instance against the format and hands back pointers into the
 * caller's buffer. The parser trusts nothing: the directory restored from
 * is user input (tests/fuzz/fuzz_snapshot.c). */
#ifndef VMLET_SNAPSHOT_FORMAT_H
#define VMLET_SNAPSHOT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC       "VMLETSNP"
#define SNAP_VERSION     2 /* 1 (no virtio devices) is read too */
#define SNAP_HEADER_SIZE 16
#define SNAP_RECORD_HEAD 16
#define SNAP_STATE_MAX   (64u << 20) /* bytes of the state file */
#define SNAP_MAX_CPUS    255
#define SNAP_MAX_MSRS    4096
#define SNAP_MAX_CPUID   1024
#define SNAP_XSAVE_MIN   4096
#define SNAP_XSAVE_MAX   (1u << 20)
#define SNAP_PCI_FUNCS   256
#define SNAP_PCI_CFG     4096
#define SNAP_MAX_DEVICES 64 /* virtio devices */
#define SNAP_DEVICE_TEXT 4096
#define SNAP_STATE_FILE  "state"
#define SNAP_MEMORY_FILE "memory"

enum snap_tag {
    SNAP_CONFIG = 1,
    /* One each per vCPU (instance: the vCPU's index). */
    SNAP_VCPU_REGS = 16,
    SNAP_VCPU_SREGS,
    SNAP_VCPU_XSAVE,
    SNAP_VCPU_XCRS,
    SNAP_VCPU_LAPIC,
    SNAP_VCPU_EVENTS,
    SNAP_VCPU_DEBUGREGS,
    SNAP_VCPU_MP_STATE,
    SNAP_VCPU_MSRS,  /* struct kvm_msr_entry[] */
    SNAP_VCPU_CPUID, /* struct kvm_cpuid_entry2[] */
    SNAP_VCPU_PARTS_END,
    /* The VM's in-kernel devices. */
    SNAP_IRQCHIP = 48, /* instance: KVM_IRQCHIP_PIC_MASTER, _SLAVE, _IOAPIC */
    SNAP_PIT,
    SNAP_CLOCK,
    /* vmlet's emulated devices. */
    SNAP_SERIAL = 64,
    SNAP_ACPI_PM,
    SNAP_I8042,
    SNAP_PCI_HOST,
    SNAP_PCI_FUNC, /* instance: devfn; payload: its config space */
    /* One each per virtio device (instance: its index, in PCI slot order). */
    SNAP_DEVICE = 80,  /* struct snap_device: what it is, what it was made from */
    SNAP_VIRTIO_PCI,   /* struct virtio_pci_state: its transport */
    SNAP_VIRTIO_STATE, /* the device's own state (ops->save), up to VIRTIO_STATE_MAX */
    SNAP_END = 0xffff,
};

#define SNAP_VCPU_PARTS (SNAP_VCPU_PARTS_END - SNAP_VCPU_REGS)

/* SNAP_CONFIG: what the VM was. Fixed little-endian layout (x86 only). */
struct snap_config {
    uint32_t ncpus;
    uint32_t console; /* vmlet_console_kind */
    uint64_t memory;  /* bytes; the memory file's exact size */
    uint32_t shutdown_timeout;
    uint32_t ndevices;         /* virtio devices, up to SNAP_MAX_DEVICES */
    int64_t saved_realtime_ns; /* host CLOCK_REALTIME when the clock was read */
    uint64_t tsc_khz;          /* the vCPUs' TSC frequency, 0 if unknown */
    uint64_t reserved;
};

/* The kinds of virtio device a snapshot can hold. */
enum snap_device_kind {
    SNAP_DEV_DISK = 1,
    SNAP_DEV_CONSOLE,
    SNAP_DEV_RNG,
    SNAP_DEV_NET,
    SNAP_DEV_VSOCK = 5,
    /* Numbered explicitly: a kind is part of the file format. */
    SNAP_DEV_BALLOON = 6,
    SNAP_DEV_FS = 7,
};

/* SNAP_DEVICE: how to make the device again. Fixed layout. */
struct snap_device {
    uint32_t kind;      /* snap_device_kind */
    uint32_t devfn;     /* its PCI function */
    uint32_t read_only; /* disk: 0 or 1 */
    uint32_t reserved;
    /* NUL-terminated: a disk's image path, a NIC's --net spec (parsed
     * again on restore, exactly as the command line's), a vsock device's
     * "cid=N,uds=PATH" (as --vsock); else empty.
     * A balloon: its --balloon options as vmlet writes them
     * ("deflate-on-oom,free-page-reporting,stats=5", or empty), parsed
     * again on restore. A share (read_only: ro): its tag, NUL, its
     * absolute host path, NUL. Bytes after the last string are zero. */
    char text[SNAP_DEVICE_TEXT];
    /* disk: its serial, NUL-terminated (up to 20 bytes); a share:
     * "cache=always" or empty */
    char serial[24];
};

/* The kind's name for messages ("disk"); NULL if unknown. */
const char *snap_device_kind_name(uint32_t kind);
/* Checks a device record's fields that need no host: a known kind, the
 * strings terminated, a serial of printable ASCII. 0, or -1 with why. */
int snap_device_check(const struct snap_device *d, char *why, size_t whylen);

struct snap_blob {
    const uint8_t *data; /* NULL: absent */
    uint32_t len;
};

struct snapshot {
    struct snap_config config;
    struct snap_blob (*vcpus)[SNAP_VCPU_PARTS]; /* config.ncpus of them */
    struct snap_blob irqchip[3], pit, clock, serial, acpi_pm, i8042, pci_host;
    struct snap_blob pci_func[SNAP_PCI_FUNCS];
    /* config.ndevices of each, all present when the parse succeeds. */
    struct snap_blob device[SNAP_MAX_DEVICES], virtio_pci[SNAP_MAX_DEVICES],
        virtio_state[SNAP_MAX_DEVICES];
};

/* Checks buf[0..len) as a whole state file: header, every record's tag,
 * instance and length, no duplicates, every required record present, the
 * END record last with a matching CRC. Returns 0 with s filled (pointers
 * into buf; snap_free releases s's own allocation), or -1 with why: one
 * line ("format version 2; this vmlet reads version 1"), s left empty.
 * version gets
 * the header's version whenever the header was readable, else 0. */
int snap_parse(const uint8_t *buf, size_t len, struct snapshot *s, uint32_t *version, char *why,
               size_t whylen);
void snap_free(struct snapshot *s);

/* The writer: records appended to a growing buffer. A failed allocation
 * is remembered; snap_finish then returns -1. */
struct snap_writer {
    uint8_t *buf;
    size_t len, cap;
    bool failed;
};
void snap_writer_init(struct snap_writer *w);
void snap_put(struct snap_writer *w, uint32_t tag, uint32_t instance, const void *data,
              uint32_t len);
/* Appends END; 0, or -1 when out of memory. w->buf/len is the file. */
int snap_finish(struct snap_writer *w);
void snap_writer_free(struct snap_writer *w);

uint32_t snap_crc32(uint32_t crc, const uint8_t *p, size_t len);

/* The exact payload size of a fixed-size record, 0 for a variable one. */
uint32_t snap_record_size(uint32_t tag);

#endif
