/* libFuzzer target for the snapshot state file's parser
 * (src/snapshot_format.c) and the device states a restore takes from it:
 * any bytes as the "state" file of a directory given to `vmlet run
 * --restore`. Build with clang -fsanitize=fuzzer,address,undefined, or
 * with -DVMLET_FUZZ_STANDALONE and any compiler to replay files.
 *
 * The file's last 8 bytes are taken as an END record's payload and given
 * the right CRC first: otherwise almost every mutation would stop at the
 * checksum and the parser's other checks would go unexercised. Each call
 * parses a heap copy of exactly the input, so ASan reports any read past
 * it. Besides memory errors it checks what snapshot_format.h promises: a
 * file that parses has every record a restore needs, each inside the
 * buffer with its format's length; a refused one says why in one line. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>

#define FUZZ_TARGET "fuzz_snapshot"
#include "fuzz_util.h"
#include "snapshot_format.h"
#include "dev/serial.h"
#include "virtio/pci.h"

static bool inside(const struct snap_blob *b, const uint8_t *buf, size_t len)
{
    return b->data && b->data >= buf && b->len <= len && (size_t)(b->data - buf) <= len - b->len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    check(copy != NULL, "out of memory");
    memcpy(copy, data, size);
    if (size >= SNAP_HEADER_SIZE + 8) {
        uint32_t crc = snap_crc32(0, copy, size - 8);
        memcpy(copy + size - 8, &crc, 4);
    }
    struct snapshot s;
    uint32_t version;
    char why[256] = "";
    if (snap_parse(copy, size, &s, &version, why, sizeof why) < 0) {
        check(why[0] != '\0' && !strchr(why, '\n'), "a refusal without its one-line reason");
        check(s.vcpus == NULL, "a refused file left an allocation");
        free(copy);
        return 0;
    }
    check(version >= 1 && version <= SNAP_VERSION, "another version parsed");
    check(s.config.ncpus >= 1 && s.config.ncpus <= SNAP_MAX_CPUS, "a CPU count out of range");
    for (uint32_t c = 0; c < s.config.ncpus; c++)
        for (unsigned p = 0; p < SNAP_VCPU_PARTS; p++) {
            const struct snap_blob *b = &s.vcpus[c][p];
            check(inside(b, copy, size), "a vCPU record outside the file");
            uint32_t want = snap_record_size(SNAP_VCPU_REGS + p);
            check(!want || b->len == want, "a vCPU record of the wrong size");
        }
    const struct snap_blob *devs[] = { &s.irqchip[0], &s.irqchip[1], &s.irqchip[2],
                                       &s.pit,        &s.clock,      &s.serial,
                                       &s.acpi_pm,    &s.i8042,      &s.pci_host };
    for (unsigned i = 0; i < sizeof devs / sizeof devs[0]; i++)
        check(inside(devs[i], copy, size), "a device record missing or outside the file");
    for (unsigned f = 0; f < SNAP_PCI_FUNCS; f++)
        check(!s.pci_func[f].data ||
                  (inside(&s.pci_func[f], copy, size) && s.pci_func[f].len == SNAP_PCI_CFG),
              "a PCI function record outside the file");
    /* Each virtio device's three records, and what a restore checks in
     * its description before making anything from it. */
    check(s.config.ndevices <= SNAP_MAX_DEVICES, "a device count out of range");
    for (uint32_t d = 0; d < SNAP_MAX_DEVICES; d++) {
        bool want = d < s.config.ndevices;
        check(!!s.device[d].data == want && !!s.virtio_pci[d].data == want &&
                  !!s.virtio_state[d].data == want,
              "device records missing, or beyond the device count");
        if (!want)
            continue;
        check(inside(&s.device[d], copy, size) && s.device[d].len == sizeof(struct snap_device) &&
                  inside(&s.virtio_pci[d], copy, size) &&
                  (s.virtio_state[d].len == 0 || inside(&s.virtio_state[d], copy, size)) &&
                  s.virtio_state[d].len <= VIRTIO_STATE_MAX,
              "a device record outside the file or of the wrong size");
        struct snap_device dev;
        memcpy(&dev, s.device[d].data, sizeof dev);
        char dwhy[256] = "";
        if (snap_device_check(&dev, dwhy, sizeof dwhy) < 0)
            check(dwhy[0] != '\0' && !strchr(dwhy, '\n'), "a refused device without its reason");
        else
            check(memchr(dev.text, 0, sizeof dev.text) && strlen(dev.serial) <= 20,
                  "an accepted device record with an unterminated string");
        /* A share a restore would make: a tag of 1 to 36 bytes, then an
         * absolute path, terminated inside the record. */
        if (dwhy[0] == '\0' && dev.kind == SNAP_DEV_FS) {
            size_t tag = strlen(dev.text);
            const char *path = dev.text + tag + 1;
            check(tag >= 1 && tag <= 36 && path[0] == '/' &&
                      memchr(path, 0, sizeof dev.text - tag - 1),
                  "an accepted share record without its tag and absolute path");
        }
    }
    /* What the serial port would take from it (its check, not KVM's). */
    struct serial_state ss;
    memcpy(&ss, s.serial.data, sizeof ss);
    (void)serial_state_check(&ss);
    snap_free(&s);
    free(copy);
    return 0;
}

#ifdef VMLET_FUZZ_STANDALONE
#include "replay_main.h"
#endif
