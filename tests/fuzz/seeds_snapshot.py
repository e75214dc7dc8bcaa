#!/usr/bin/env python3
"""Writes the seeds with_devices and with_share_balloon of fuzz_snapshot
(tests/fuzz/corpus/snapshot/): the lab's one_cpu state file (format version
1, saved by a real vmlet) made a version 2 file with three virtio devices
(a disk, a NIC, virtio-rng), or with a balloon and a shared directory, each
with its description, transport state and own state, the CRC made again. The layouts are snapshot_format.h's and virtio/pci.h's.
Run from anywhere: python3 tests/fuzz/seeds_snapshot.py"""
import os
import struct
import zlib

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "snapshot")
DEVICE, VIRTIO_PCI, VIRTIO_STATE, END = 80, 81, 82, 0xFFFF
DISK, NET, RNG, BALLOON, FS = 1, 4, 3, 6, 7
PCI_STATE_SIZE = 504


def record(tag, inst, payload):
    pad = (-len(payload)) % 8
    return struct.pack("<IIII", tag, inst, len(payload), 0) + payload + b"\0" * pad


def device(kind, devfn, text=b"", serial=b"", ro=0):
    return struct.pack("<IIII", kind, devfn, ro, 0) + text.ljust(4096, b"\0") + serial.ljust(24, b"\0")


def transport(dev_id, nq, nvec):
    # status ACK|DRIVER|FEATURES_OK|DRIVER_OK, VERSION_1 + EVENT_IDX, every
    # queue 128 entries in low RAM, vector i + 1, the device running.
    head = struct.pack("<HBBBBBBIIQHHIQ", dev_id, nq, nvec, 0x0F, 0, 1, 1, 0, 0,
                       (1 << 32) | (1 << 29), 0, 0, 0, 0)
    table = b"".join(struct.pack("<IIII", 0xFEE00000, 0, 0x4030 + v, 0) for v in range(nvec))
    table = table.ljust(9 * 16, b"\0")
    queues = b""
    for i in range(8):
        if i < nq:
            base = 0x100000 + 0x10000 * i
            queues += struct.pack("<HHBBBBHHHHQQQ", 128, i + 1, 1, 0, 0, 0, 5, 5, 0, 0,
                                  base, base + 0x800, base + 0x1000)
        else:
            queues += b"\0" * 40
    st = head + table + queues
    assert len(st) == PCI_STATE_SIZE, len(st)
    return st


with open(os.path.join(DIR, "one_cpu"), "rb") as f:
    v1 = bytearray(f.read())
devs = [
    (device(DISK, 8, b"/var/lib/vmlet/root.img", b"root"), transport(2, 1, 2), struct.pack("<Q", 32 << 20)),
    (device(NET, 16, b"user,mac=52:54:00:12:34:56"), transport(1, 3, 2), b"\x52\x54\x00\x12\x34\x56" + b"\1\0\0\0" + b"\0" * 8 + b"\0" * 768),
    (device(RNG, 24), transport(4, 1, 2), b""),
]
# A balloon (its --balloon options; state: le32 target, le32 actual) and a
# share (tag NUL path; options in serial; state: initialized, major, minor,
# flags, max_write, generation).
devs_fsb = [
    (device(BALLOON, 8, b"deflate-on-oom,stats=1"), transport(5, 3, 2), struct.pack("<II", 16384, 16000)),
    (device(FS, 16, b"snapfs\0/tmp/share", b"cache=always"), transport(26, 2, 2),
     struct.pack("<IIIIII", 1, 7, 37, 0x2000, 1 << 20, 9)),
]


def write(name, devices):
    body = bytearray(v1[: len(v1) - 24])  # everything before the END record
    struct.pack_into("<I", body, 8, 2)  # format version 2
    # CONFIG is the first record: ndevices at payload offset 20.
    struct.pack_into("<I", body, 16 + 16 + 20, len(devices))
    for i, (d, t, own) in enumerate(devices):
        body += record(DEVICE, i, d) + record(VIRTIO_PCI, i, t) + record(VIRTIO_STATE, i, own)
    end_head = struct.pack("<IIII", END, 0, 8, 0)
    crc = zlib.crc32(bytes(body) + end_head) & 0xFFFFFFFF
    with open(os.path.join(DIR, name), "wb") as f:
        f.write(bytes(body) + end_head + struct.pack("<II", crc, 0))


write("with_devices", devs)
write("with_share_balloon", devs_fsb)
