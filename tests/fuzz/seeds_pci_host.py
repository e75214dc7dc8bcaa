#!/usr/bin/env python3
"""Writes the seeds of fuzz_pci_host (tests/fuzz/corpus/pci_host/): one
small access sequence per thing a guest does with PCI configuration space.
The input format is in the comment at the top of fuzz_pci_host.c. Run from
anywhere: python3 tests/fuzz/seeds_pci_host.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pci_host")
WIDTH = {1: 0, 2: 1, 4: 2, 8: 3}
WIN = 0xC0000000


def op(kind, write, width):
    return bytes([kind | (4 if write else 0) | WIDTH[width] << 3])


def port(p, width, value=None):
    b = op(0, value is not None, width) + bytes([p - 0xCF4])
    return b + (value.to_bytes(width, "little") if value is not None else b"")


def ecam(devfn, reg, width, value=None):
    b = op(1, value is not None, width) + bytes([devfn]) + struct.pack("<H", reg)
    return b + (value.to_bytes(width, "little") if value is not None else b"")


def window(addr, width, value=None):
    b = op(2, value is not None, width) + struct.pack("<I", addr - WIN)
    return b + (value.to_bytes(width, "little") if value is not None else b"")


def size_bar(fn, bar):
    return bytes([3, fn | bar << 2])


def cf8(devfn, reg, bus=0, enable=True):
    v = (0x80000000 if enable else 0) | bus << 16 | devfn << 8 | (reg & 0xFC) | (reg & 0xF00) << 16
    return port(0xCF8, 4, v)


def conf_read(devfn, reg, width):
    return cf8(devfn, reg) + port(0xCFC + (reg & 3), width)


def conf_write(devfn, reg, width, value):
    return cf8(devfn, reg) + port(0xCFC + (reg & 3), width, value)


F1, F3_0, F3_5 = 1 << 3, 3 << 3, 3 << 3 | 5

seeds = {}

# Linux's pci_check_type1 and pci_sanity_check, then a scan of bus 0: the
# vendor ID of every slot, the header type of the multi-function one and
# its functions.
s = port(0xCFB, 1, 0x01) + port(0xCF8, 4, 0x80000000) + port(0xCF8, 4)
for slot in range(32):
    s += conf_read(slot << 3, 0, 4)
s += conf_read(F3_0, 0x0E, 1)
for fn in range(8):
    s += conf_read(3 << 3 | fn, 0, 2)
s += conf_read(0, 0x0A, 2) + conf_read(F1, 0x34, 1) + conf_read(F1, 0x40, 4)
seeds["linux_probe"] = s

# __pci_read_base for every BAR of every function, then the same by hand
# for the 64-bit BAR at 01.0 (low and high dword) with the command
# register cleared first, as Linux does.
s = b"".join(size_bar(fn, bar) for fn in range(4) for bar in range(6))
s += conf_write(F1, 0x04, 2, 0)
for reg in (0x18, 0x1C):
    s += conf_read(F1, reg, 4) + conf_write(F1, reg, 4, 0xFFFFFFFF) + conf_read(F1, reg, 4)
s += conf_write(F1, 0x18, 4, WIN + 0x20000) + conf_write(F1, 0x1C, 4, 0)
seeds["bar_sizing"] = s

# Memory space on: accesses inside each BAR at every width, across a BAR's
# end, then BARs moved (one on top of another, one out of the window, one
# above 4 GiB) and decoding turned off again.
s = conf_write(F1, 0x04, 2, 0x0006) + conf_write(F3_0, 0x04, 2, 0x0002)
s += conf_write(F3_5, 0x04, 2, 0x0002)
for w in (1, 2, 4, 8):
    s += window(WIN + 0x10, w) + window(WIN + 0x20, w, 0x1122334455667788 & ((1 << 8 * w) - 1))
s += window(WIN + 0xFFC, 8) + window(WIN + 0x8000 + 0x7FF8, 8) + window(WIN + 0x8000 + 0x7FFC, 8)
s += conf_write(F3_0, 0x14, 4, WIN + 0x10) + window(WIN + 0x14, 4)  # 03.0 over 01.0
s += conf_write(F1, 0x10, 4, 0xFFFFF000) + window(WIN + 0x14, 4)  # 01.0 BAR 0 leaves
s += conf_write(F1, 0x1C, 4, 1) + conf_write(F1, 0x04, 2, 0) + window(WIN + 0x8000, 4)
s += window(WIN + 0x100000 + 0x40, 4)  # 03.5 has no hooks
seeds["decode_and_move"] = s

# ECAM at every width and lane, misaligned and qword accesses, the
# extended space, absent functions and the last dword of the window.
s = b""
for w in (1, 2, 4, 8):
    for reg in range(0, 8):
        s += ecam(F1, reg, w)
s += ecam(F1, 0x04, 8, 0x0000FFFF) + ecam(F1, 0x100, 4, 0xDEADBEEF) + ecam(F1, 0x100, 4)
s += ecam(2 << 3, 0, 4) + ecam(2 << 3, 0x04, 2, 2) + ecam(255, 0xFFC, 4) + ecam(255, 0xFF8, 8)
s += ecam(F3_5, 0x3C, 1, 0x0B) + ecam(F3_5, 0x3C, 2)
seeds["ecam_widths"] = s

# A hostile guest: all-ones over whole headers (IDs, header type, pin,
# capability pointer must not move; status W1C bits clear), the vendor
# capability's writable dword and W1C byte, CONFIG_ADDRESS with reserved
# bits, bus 1, the enable bit clear, and odd-width port accesses.
s = b""
for fn in (0, F1, F3_0):
    for reg in range(0, 0x40, 8):
        s += ecam(fn, reg, 8, 0xFFFFFFFFFFFFFFFF)
    for reg in range(0, 0x40, 4):
        s += ecam(fn, reg, 4)
s += ecam(F1, 0x44, 4, 0x12345678) + ecam(F1, 0x48, 1, 0x05) + ecam(F1, 0x40, 4, 0) + ecam(F1, 0x48, 4)
s += port(0xCF8, 4, 0xFFFFFFFF) + port(0xCF8, 4) + port(0xCFC, 4)
s += cf8(F1, 0, bus=1) + port(0xCFC, 4) + port(0xCFC, 4, 0)
s += cf8(F1, 0x04, enable=False) + port(0xCFC, 2, 2) + cf8(F1, 0x04) + port(0xCFC, 2)
s += cf8(F1, 0x3C) + port(0xCFD, 2, 0xEEEE) + port(0xCFE, 4) + port(0xCFC, 8) + port(0xCF6, 4)
s += port(0xCFA, 2, 0x3456) + port(0xCF9, 1) + port(0xD00, 4) + port(0xCFF, 1, 0x77)
s += cf8(F1, 0x104) + port(0xCFC, 4, 0xFFFFFFFF) + port(0xCFC, 4)
seeds["hostile"] = s

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
