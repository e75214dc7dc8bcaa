#!/usr/bin/env python3
"""Writes the seeds of fuzz_virtio_pci (tests/fuzz/corpus/virtio_pci/): a
Linux-like driver bring-up of a two-queue device and what a hostile driver
does around it. The input format is in the comment at the top of
fuzz_virtio_pci.c. Run from anywhere: python3 tests/fuzz/seeds_virtio_pci.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "virtio_pci")
WIDTH = {1: 0, 2: 1, 4: 2, 8: 3}
COMMON, ISR, DEVICE, NOTIFY, TABLE, PBA, BEFORE, END = range(8)
# Common configuration offsets.
DFSELECT, DF, GFSELECT, GF, MSIX_CONFIG, STATUS = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
Q_SELECT, Q_SIZE, Q_MSIX, Q_ENABLE, Q_DESC, Q_AVAIL, Q_USED = 0x16, 0x18, 0x1A, 0x1C, 0x20, 0x28, 0x30
# Capabilities with a 10-byte device config: common 0x40, notify 0x50,
# ISR 0x64, device 0x74, PCI cfg window 0x84, MSI-X 0x98.
PCI_CFG_CAP, MSIX_CAP = 0x84, 0x98


def params(queues=2, qmax=256, cfg=10, any_length=True, fail_activate=False, dev_id=2,
           features=(1 << 1) | (1 << 9)):
    flags = (1 if any_length else 0) | (2 if fail_activate else 0) | (dev_id - 1) << 2
    return bytes([queues - 1, qmax.bit_length() - 1, cfg, flags]) + struct.pack("<I", features)


def op(kind, write, width):
    return bytes([kind | (8 if write else 0) | WIDTH[width] << 4])


def bar(reg, off, width, value=None):
    b = op(0, value is not None, width) + bytes([reg, off])
    return b + (value.to_bytes(width, "little") if value is not None else b"")


def cfg(reg, width, value=None):
    b = op(1, value is not None, width) + bytes([reg])
    return b + (value.to_bytes(width, "little") if value is not None else b"")


def ecam(reg, width, value=None):
    b = op(2, value is not None, width) + struct.pack("<H", reg)
    return b + (value.to_bytes(width, "little") if value is not None else b"")


def device(what, arg=0):
    return bytes([3, what | arg << 2])


def mem(gpa, data):
    assert 0 < len(data) <= 64
    return bytes([4]) + struct.pack("<H", gpa) + bytes([len(data) - 1]) + data


def status(v):
    return bar(COMMON, STATUS, 1, v)


def common(off, width, value=None):
    return bar(COMMON, off, width, value)


def queue(i, size, desc, avail, used, vector):
    s = common(Q_SELECT, 2, i) + common(Q_SIZE, 2) + common(Q_SIZE, 2, size)
    for off, gpa in ((Q_DESC, desc), (Q_AVAIL, avail), (Q_USED, used)):
        s += common(off, 4, gpa & 0xFFFFFFFF) + common(off + 4, 4, gpa >> 32)
    return s + common(Q_MSIX, 2, vector) + common(Q_MSIX, 2)


def msix(nvec, mask_all=False):
    s = cfg(MSIX_CAP + 2, 2, 0xC000)
    for v in range(nvec):
        s += bar(TABLE, 16 * v + 12, 4, 1) + bar(TABLE, 16 * v, 4, 0xFEE00000)
        s += bar(TABLE, 16 * v + 4, 4, 0) + bar(TABLE, 16 * v + 8, 4, 0x4030 + v)
        s += bar(TABLE, 16 * v + 12, 4, 0)
    return s + cfg(MSIX_CAP + 2, 2, 0xC000 if mask_all else 0x8000)


def negotiate(features_lo=(1 << 9), features_hi=1):
    s = status(0) + status(1) + status(3)
    s += common(DFSELECT, 4, 0) + common(DF, 4) + common(DFSELECT, 4, 1) + common(DF, 4)
    s += common(GFSELECT, 4, 0) + common(GF, 4, features_lo)
    s += common(GFSELECT, 4, 1) + common(GF, 4, features_hi)
    return s + status(0x0B) + common(STATUS, 1)


def ring(desc, avail, bufs, idx=1):
    """One chain of (gpa, len, writable) buffers at descriptor 0, made
    available idx times (entry 0 only)."""
    d = b""
    for i, (gpa, length, writable) in enumerate(bufs):
        flags = (2 if writable else 0) | (1 if i + 1 < len(bufs) else 0)
        d += struct.pack("<QIHH", gpa, length, flags, i + 1)
    return mem(desc, d) + mem(avail, struct.pack("<HHH", 0, idx, 0))


def bringup(queues=2, size=8, features_lo=1 << 9):
    s = cfg(0x04, 2, 0x0006) + negotiate(features_lo) + msix(queues + 1) + common(MSIX_CONFIG, 2, 0)
    for i in range(queues):
        s += queue(i, size, 0x1000 + 0x1000 * i, 0x1800 + 0x1000 * i, 0x1C00 + 0x1000 * i, 1 + i)
    for i in range(queues):
        s += common(Q_SELECT, 2, i) + common(Q_ENABLE, 2, 1)
    return s + status(0x0F) + common(STATUS, 1)


seeds = {}

# Linux's probe and bring-up, one request on queue 0 (a readable and a
# writable buffer) kicked and served, the interrupt, device config reads
# and writes at every width, then a reset.
s = params() + bringup()
s += ring(0x1000, 0x1800, [(0x8000, 16, False), (0x9000, 64, True)])
s += bar(NOTIFY, 0, 2, 0) + device(3) + bar(ISR, 0, 1) + bar(PBA, 0, 8)
for w in (1, 2, 4, 8):
    s += bar(DEVICE, 0, w) + bar(DEVICE, 8, w) + bar(DEVICE, 6, w, 0x0102030405060708 & ((1 << 8 * w) - 1))
s += device(1) + bar(ISR, 0, 1) + device(0, 1) + status(0)
seeds["linux_bringup"] = s

# The same through the VIRTIO_PCI_CAP_PCI_CFG window: status and feature
# registers reached with the BAR's memory space off.
s = params(queues=1, qmax=64, cfg=10)
for reg, width, value in ((STATUS, 1, 1), (STATUS, 1, 3), (DFSELECT, 4, 1), (DF, 4, None),
                          (STATUS, 1, None), (Q_SIZE, 2, None), (0x7FFC, 4, None)):
    s += cfg(PCI_CFG_CAP + 4, 1, 0) + cfg(PCI_CFG_CAP + 8, 4, reg) + cfg(PCI_CFG_CAP + 12, 4, width)
    s += cfg(PCI_CFG_CAP + 16, 4, value) if value is not None else cfg(PCI_CFG_CAP + 16, 4)
s += cfg(PCI_CFG_CAP + 12, 4, 3) + cfg(PCI_CFG_CAP + 16, 4) + cfg(PCI_CFG_CAP + 4, 1, 5)
s += cfg(PCI_CFG_CAP + 16, 4, 0)
seeds["pci_cfg_window"] = s

# BAR 0 sized, moved, switched off and on with queues live (the
# ioeventfds follow it), notifications through the moved BAR.
s = params(queues=3, qmax=16, any_length=False) + bringup(queues=3, size=4)
s += cfg(0x10, 4) + cfg(0x10, 4, 0xFFFFFFFF) + cfg(0x14, 4, 0xFFFFFFFF) + cfg(0x10, 4) + cfg(0x14, 4)
s += cfg(0x10, 4, 0xC0100000) + cfg(0x14, 4, 0) + bar(NOTIFY, 4, 2, 1) + bar(NOTIFY, 8, 4, 2)
s += cfg(0x04, 2, 0) + bar(NOTIFY, 0, 2, 0) + cfg(0x04, 2, 2) + ecam(0x10, 8, 0xC0200000)
s += bar(NOTIFY, 0, 2, 0) + device(3) + cfg(0x14, 4, 1) + cfg(0x14, 4, 0) + status(0)
seeds["bar_moves"] = s

# What set-up must refuse: sizes not a power of two or above the maximum,
# rings misaligned, outside RAM or wrapping, queues past the last, bad
# vectors, writes to live queues, queue_enable 0.
s = params(queues=2, qmax=8) + cfg(0x04, 2, 2) + negotiate()
s += common(Q_SELECT, 2, 0) + common(Q_SIZE, 2, 3) + common(Q_SIZE, 2, 16) + common(Q_SIZE, 2)
s += common(Q_DESC, 4, 0x1001) + common(Q_ENABLE, 2, 1) + common(STATUS, 1) + status(0) + negotiate()
s += common(Q_SELECT, 2, 1) + common(Q_DESC, 8, 0xFFFFFFFFFFFFFFF0) + common(Q_ENABLE, 2, 1)
s += status(0) + negotiate() + queue(0, 8, 0xFFF0, 0x1800, 0x1C00, 7) + common(Q_ENABLE, 2, 1)
s += status(0) + negotiate() + queue(0, 8, 0x1000, 0x1800, 0x1C00, 2) + common(Q_ENABLE, 2, 1)
s += common(Q_SIZE, 2, 4) + common(Q_DESC, 4, 0x2000) + common(Q_ENABLE, 2, 0) + common(Q_SIZE, 2)
s += common(Q_SELECT, 2, 9) + common(Q_SIZE, 2) + common(Q_MSIX, 2, 0) + common(Q_ENABLE, 2, 1)
s += common(Q_SELECT, 2, 0xFFFF) + common(Q_SIZE, 2) + common(MSIX_CONFIG, 2, 3) + common(MSIX_CONFIG, 2)
s += status(0x0F) + common(STATUS, 1) + status(0)
seeds["bad_queue_setup"] = s

# Features: without VERSION_1, or with a bit not offered, FEATURES_OK is
# refused; DRIVER_OK without FEATURES_OK is dropped; features frozen after
# FEATURES_OK; selectors beyond 1.
s = params(queues=1, qmax=4) + cfg(0x04, 2, 2) + status(1) + status(3)
s += common(GFSELECT, 4, 1) + common(GF, 4, 0) + status(0x0B) + common(STATUS, 1) + status(0x07)
s += common(STATUS, 1) + status(0) + status(3) + common(GFSELECT, 4, 0) + common(GF, 4, 1 << 5)
s += common(GFSELECT, 4, 1) + common(GF, 4, 1) + status(0x0B) + common(STATUS, 1)
s += status(0) + negotiate() + common(GFSELECT, 4, 0) + common(GF, 4, 0xFFFFFFFF) + common(GF, 4)
s += common(DFSELECT, 4, 7) + common(DF, 4) + common(GFSELECT, 4, 2) + common(GF, 4, 1) + common(GF, 4)
s += status(0x80) + common(STATUS, 1) + status(0)
seeds["features"] = s

# MSI-X: the function mask and per-vector masks hold interrupts in the
# PBA, unmasking sends them; NEEDS_RESET from the device; a failed
# activation.
s = params(fail_activate=False) + cfg(0x04, 2, 6) + negotiate() + msix(3, mask_all=True)
s += common(MSIX_CONFIG, 2, 0) + queue(0, 8, 0x1000, 0x1800, 0x1C00, 1) + common(Q_ENABLE, 2, 1)
s += status(0x0F) + device(1) + device(0, 0) + bar(PBA, 0, 8) + cfg(MSIX_CAP + 2, 2, 0x8000)
s += bar(PBA, 0, 8) + bar(TABLE, 12, 4, 1) + device(1) + bar(PBA, 0, 4) + bar(TABLE, 12, 4, 0)
s += bar(TABLE, 0, 8, 0x00000000FEE01000) + bar(TABLE, 2, 2, 0xFFFF) + bar(TABLE, 0, 16 // 2)
s += device(2) + common(STATUS, 1) + bar(ISR, 0, 1) + bar(ISR, 0, 1) + cfg(MSIX_CAP + 2, 2, 0)
s += device(1) + bar(PBA, 0, 8) + status(0)
seeds["msix_masking"] = s
seeds["activate_fails"] = params(fail_activate=True) + bringup() + common(STATUS, 1) + status(0)

# A broken ring: the available index jumps past the queue size; the
# device sets NEEDS_RESET. Then, with INDIRECT_DESC and EVENT_IDX, a
# chain through an indirect table to a buffer in high RAM.
s = params(queues=1, qmax=8) + bringup(queues=1, size=8)
s += mem(0x1800, struct.pack("<HH", 0, 100)) + bar(NOTIFY, 0, 2, 0) + device(3) + common(STATUS, 1)
s += status(0) + bringup(queues=1, size=8, features_lo=3 << 28)  # INDIRECT_DESC, EVENT_IDX
s += ring(0x1000, 0x1800, [(0x4000, 32, False)]) + mem(0x1000, struct.pack("<QIHH", 0x4000, 32, 4, 0))
s += mem(0x4000, struct.pack("<QIHH", 0x100000000, 512, 2, 0) + struct.pack("<QIHH", 0x5000, 8, 2, 0))
s += bar(NOTIFY, 0, 2, 0) + device(3) + bar(NOTIFY, 0, 4, 0) + device(3)
seeds["broken_ring"] = s

# Widths and places no driver uses: qwords and misaligned words in every
# region, accesses before the BAR and across its end, extended config.
s = params(queues=8, qmax=1024, cfg=64) + cfg(0x04, 2, 2)
for region in range(8):
    for w in (1, 2, 4, 8):
        s += bar(region, 0, w) + bar(region, 0x7F, w) + bar(region, 0xFF, w)
        s += bar(region, 3, w, (1 << 8 * w) - 1)
s += ecam(0x100, 4) + ecam(0xFFC, 4, 0xFFFFFFFF) + ecam(0x98, 8) + cfg(0x9A, 2, 0xFFFF) + cfg(0x9A, 2)
seeds["odd_widths"] = s

# Snapshots of the transport (op 5) of a running device: one unchanged
# (taken, the device resumes and serves a kick), then states a hostile
# file would hold: a queue size not a power of two, a vector past the
# table, DRIVER_OK without FEATURES_OK, an MSI-X control bit; then a
# kick served again. Offsets in struct virtio_pci_state: status 4,
# config_vector 34, the table 40, queue 0's size 184 and vector 186.
def snapshot(off, xor):
    assert 0 < len(xor) <= 16
    return bytes([5]) + struct.pack("<H", off) + bytes([len(xor) - 1]) + xor


s = params() + bringup()
s += ring(0x1000, 0x1800, [(0x8000, 16, False), (0x9000, 64, True)])
s += snapshot(0, b"\0") + bar(NOTIFY, 0, 2, 0) + device(3)
s += snapshot(184, b"\x03") + snapshot(186, b"\x07") + snapshot(4, b"\x08") + snapshot(52, b"\x02")
s += snapshot(34, b"\x01") + bar(NOTIFY, 0, 2, 0) + device(3) + bar(ISR, 0, 1)
seeds["snapshot"] = s

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
