#!/usr/bin/env python3
"""Writes the seeds of fuzz_bzimage (tests/fuzz/corpus/bzimage/): small
fake bzImages (a real setup header, no code) in the shapes the loader
must handle or refuse, with initrds and command lines. The input format is
in the comment at the top of fuzz_bzimage.c. Run from anywhere:
python3 tests/fuzz/seeds_bzimage.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "bzimage")
MEM_2M, MEM_5M, MEM_12M, MEM_3G = 0, 1, 2, 3


def bzimage(setup_sects=4, payload=1024, version=0x020F, xloadflags=0x7F, header_len=0x6A,
            initrd_addr_max=0x7FFFFFFF, cmdline_size=2047, pref_address=0x1000000,
            init_size=0x100000, setup_data=0):
    k = bytearray((setup_sects or 4) * 512 + 512 + payload)
    k[0x1F1] = setup_sects
    k[0x1FE:0x200] = b"\x55\xaa"
    k[0x201] = header_len
    k[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", k, 0x206, version)
    k[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", k, 0x22C, initrd_addr_max)
    struct.pack_into("<H", k, 0x236, xloadflags)
    struct.pack_into("<I", k, 0x238, cmdline_size)
    struct.pack_into("<Q", k, 0x250, setup_data)
    struct.pack_into("<Q", k, 0x258, pref_address)
    struct.pack_into("<I", k, 0x260, init_size)
    start = (setup_sects or 4) * 512 + 512
    for i in range(payload):
        k[start + i] = (i * 13 + 7) & 0xFF or 1
    return bytes(k)


def seed(mem, kernel, initrd=None, cmdline=None):
    flags = (1 if initrd is not None else 0) | (2 if cmdline is not None else 0)
    return bytes([mem, flags]) + struct.pack("<I", initrd or 0)[:3] + \
        struct.pack("<H", cmdline or 0) + b"\0" + kernel


seeds = {
    # A kernel like Debian's (relocatable, 16 MiB pref_address) that needs
    # more memory than the small guests have, and one that fits.
    "too_big_for_memory": seed(MEM_2M, bzimage(init_size=20 << 20), 4096, 32),
    "fits_2m": seed(MEM_2M, bzimage(pref_address=0x100000, init_size=0x80000), 8192, 64),
    "fits_5m_no_initrd": seed(MEM_5M, bzimage(pref_address=0x200000, init_size=0x100000), None, 15),
    # The initrd right under the top of RAM, under initrd_addr_max, and
    # one that does not fit above the kernel.
    "initrd_top_12m": seed(MEM_12M, bzimage(pref_address=0x400000, init_size=0x400000), 0x10001, 200),
    "initrd_addr_max_low": seed(MEM_12M, bzimage(pref_address=0x100000, init_size=0x100000,
                                                 initrd_addr_max=0x3FFFFF), 0x20000, None),
    "initrd_too_big": seed(MEM_5M, bzimage(pref_address=0x100000, init_size=0x300000), 0x1FFFFF, 1),
    # An empty initrd goes to the very end of RAM (loading it failed).
    "initrd_empty": seed(MEM_5M, bzimage(pref_address=0x100000, init_size=0x100000), 0, None),
    # An initrd smaller than the target's two 16-byte marks (they overlap).
    "initrd_8_bytes": seed(MEM_5M, bzimage(pref_address=0x100000, init_size=0x100000), 8, 16),
    # The big guest: initrd at initrd_addr_max below 2 GiB, a long command
    # line, then one longer than cmdline_size.
    "big_memory": seed(MEM_3G, bzimage(init_size=0x2000000, cmdline_size=4095), 0x3000, 4095),
    "cmdline_too_long": seed(MEM_12M, bzimage(pref_address=0x100000, cmdline_size=100), None, 101),
    # What is refused: too old, not 64-bit, setup filling the file, an ELF.
    "old_protocol": seed(MEM_12M, bzimage(version=0x0206), None, None),
    "not_64bit": seed(MEM_12M, bzimage(xloadflags=0), None, None),
    "setup_fills_file": seed(MEM_12M, bzimage(payload=0, setup_sects=8), None, None),
    "elf": seed(MEM_12M, b"\x7fELF" + bytes(0x400), None, None),
    # Odd headers: a short one (fields past it are zero in boot_params),
    # pref_address + init_size wrapping past 2^64 (was planned with a
    # small kernel end), and a setup_data pointer (boot_params must have
    # 0 there: the field is the loader's).
    "short_header": seed(MEM_5M, bzimage(header_len=0x20, pref_address=0x100000), 4096, 8),
    "pref_address_wraps": seed(MEM_5M, bzimage(pref_address=0xFFFFFFFFFFF00000,
                                               init_size=0x200000), 4096, None),
    "setup_data_in_file": seed(MEM_5M, bzimage(pref_address=0x100000, init_size=0x100000,
                                       setup_data=0x90000), None, 4),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
