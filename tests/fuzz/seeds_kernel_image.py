#!/usr/bin/env python3
"""Writes the seeds of fuzz_kernel_image (tests/fuzz/corpus/kernel_image/):
a small fake vmlinux (two PT_LOAD segments, section headers) with and
without the relocation table the kernel's build appends, and that file
compressed the way the kernel's build compresses it (lz4 -l, gzip, xz,
zstd, then the 4-byte size). The input format is in the comment at the top
of fuzz_kernel_image.c. lz4 and zstd seeds need those commands. Run from
anywhere: python3 tests/fuzz/seeds_kernel_image.py"""
import gzip
import lzma
import os
import shutil
import struct
import subprocess

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "kernel_image")
KMAP = 0xFFFFFFFF80000000
BASE = 0x1000000


def vmlinux(relocs=True):
    seg0_off, seg0_size = 0x1000, 0x800
    seg1_off, seg1_file, seg1_mem, seg1_paddr = 0x1800, 0x400, 0x800, BASE + 0x200000
    shoff = seg1_off + seg1_file
    e = bytearray(shoff + 2 * 64)
    e[0:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HHIQQQIHHHHHH", e, 16, 2, 62, 1, BASE + 0x200, 64, shoff, 0, 64, 56, 2,
                     64, 2, 0)
    for i, (off, paddr, filesz, memsz) in enumerate(
            [(seg0_off, BASE, seg0_size, seg0_size), (seg1_off, seg1_paddr, seg1_file, seg1_mem)]):
        struct.pack_into("<IIQQQQQQ", e, 64 + 56 * i, 1, 7, off, KMAP + paddr, paddr, filesz,
                         memsz, 0x200000)
    struct.pack_into("<Q", e, seg0_off + 0x10, KMAP + BASE + 0x1234)
    struct.pack_into("<I", e, seg0_off + 0x20, 0x5000)
    struct.pack_into("<I", e, seg0_off + 0x30, (KMAP + BASE + 0x40) & 0xFFFFFFFF)
    if relocs:
        site = lambda a: (KMAP + a) & 0xFFFFFFFF
        e += struct.pack("<7I", 0, site(BASE + 0x10), site(seg1_paddr + 0x100), 0,
                         site(BASE + 0x20), 0, site(BASE + 0x30))
    return bytes(e)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def params(what, fmt=0, out_len=0, slots=0):
    return bytes([what, fmt]) + struct.pack("<I", out_len)[:3] + struct.pack("<I", slots)[:3]


def main():
    os.makedirs(OUT, exist_ok=True)
    v = vmlinux()
    write("vmlinux_relocs", params(1, slots=21) + v)
    write("vmlinux_no_relocs", params(1, slots=3) + vmlinux(False))
    write("vmlinux_truncated_table", params(1, slots=1) + v[:-6])
    size = struct.pack("<I", len(v))
    write("gzip", params(0, 1, len(v)) + gzip.compress(v) + size)
    write("xz", params(0, 2, len(v)) + lzma.compress(v, check=lzma.CHECK_CRC32) + size)
    write("lzma", params(0, 4, len(v)) + lzma.compress(v, format=lzma.FORMAT_ALONE) + size)
    for fmt, cmd in ((0, ["lz4", "-l", "-c", "-9"]), (3, ["zstd", "-19", "-c", "-q"])):
        if shutil.which(cmd[0]):
            out = subprocess.run(cmd, input=v, stdout=subprocess.PIPE, check=True).stdout
            write(cmd[0], params(0, fmt, len(v)) + out + size)


if __name__ == "__main__":
    main()
