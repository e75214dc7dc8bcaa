#!/usr/bin/env python3
"""Writes the seed inputs of the threaded virtio device fuzz targets
(fuzz_virtio_rng, fuzz_virtio_console, fuzz_virtio_net, fuzz_blk_async)
into tests/fuzz/corpus/NAME/. Each seed is a small guest laid out as
tests/fuzz/fuzz_device.h describes: 16 bytes of parameters, then guest
memory from gpa 0 with queue i's descriptors at i * 8 KiB, its available
ring at +4 KiB and its used ring at +5 KiB; data buffers live from 24 KiB
on. The files are committed; rerun this after changing the layout:

    tests/fuzz/gen_device_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
DATA = 0x6000


class Guest:
    def __init__(self, params=b""):
        self.params = bytearray(16)
        self.params[: len(params)] = params
        self.ram = bytearray()
        self.next_desc = [0, 0, 0]
        self.avail = [[], [], []]
        self.start = [0, 0, 0]
        self.size = [1, 1, 1]

    def put(self, gpa, data):
        if len(self.ram) < gpa + len(data):
            self.ram.extend(bytes(gpa + len(data) - len(self.ram)))
        self.ram[gpa : gpa + len(data)] = data

    def queue(self, i, log2size, event_idx=False, indirect=False, start=0, hold=0):
        self.size[i] = 1 << log2size
        self.start[i] = start
        self.params[4 + 4 * i] = log2size | (16 if event_idx else 0) | (32 if indirect else 0)
        self.params[5 + 4 * i : 7 + 4 * i] = struct.pack("<H", start)
        self.params[7 + 4 * i] = hold

    def desc(self, q, idx, addr, length, flags, nxt=0):
        self.put(q * 0x2000 + 16 * idx, struct.pack("<QIHH", addr, length, flags, nxt))

    def chain(self, q, bufs):
        """bufs: (addr, len, writable) in order; made available at once."""
        head = self.next_desc[q]
        n = len(bufs)
        for k, (addr, length, w) in enumerate(bufs):
            d = (head + k) % self.size[q]
            flags = (F_WRITE if w else 0) | (F_NEXT if k + 1 < n else 0)
            self.desc(q, d, addr, length, flags, (d + 1) % self.size[q])
        self.next_desc[q] = (head + n) % self.size[q]
        self.avail[q].append(head)
        return head

    def indirect_chain(self, q, table_gpa, bufs):
        """One descriptor pointing at an indirect table of bufs."""
        for k, (addr, length, w) in enumerate(bufs):
            flags = (F_WRITE if w else 0) | (F_NEXT if k + 1 < len(bufs) else 0)
            self.put(table_gpa + 16 * k, struct.pack("<QIHH", addr, length, flags, k + 1))
        head = self.next_desc[q]
        self.desc(q, head, table_gpa, 16 * len(bufs), F_INDIRECT)
        self.next_desc[q] = (head + 1) % self.size[q]
        self.avail[q].append(head)
        return head

    def raw_avail(self, q, head):
        self.avail[q].append(head)

    def write(self, name, target, tail=b""):
        for q in range(3):
            base = q * 0x2000 + 0x1000
            heads = self.avail[q]
            if not heads and not self.params[4 + 4 * q]:
                continue
            for k, h in enumerate(heads):
                slot = (self.start[q] + k) % self.size[q]
                self.put(base + 4 + 2 * slot, struct.pack("<H", h))
            self.put(base, struct.pack("<HH", 0, (self.start[q] + len(heads)) & 0xFFFF))
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(bytes(self.params) + bytes(self.ram) + tail)


def rng():
    g = Guest()
    g.queue(0, 4)
    g.chain(0, [(DATA, 64, True)])
    g.chain(0, [(DATA + 64, 16, True), (DATA + 128, 48, True)])
    g.chain(0, [(DATA + 256, 0, True)])
    g.write("basic", "virtio_rng")

    g = Guest()
    g.queue(0, 3)
    g.chain(0, [(DATA, 32, False)])
    g.chain(0, [(DATA, 32, False), (DATA + 32, 32, True)])
    g.write("readable", "virtio_rng")

    g = Guest()  # 16 aliased 40 KiB buffers: 640 KiB asked, 64 KiB given
    g.queue(0, 5)
    g.chain(0, [(DATA, 40960, True)] * 16)
    g.write("huge_aliased", "virtio_rng")

    g = Guest()
    g.queue(0, 2, indirect=True, event_idx=True)
    g.indirect_chain(0, DATA, [(DATA + 0x100, 100, True), (DATA + 0x200, 28, True)])
    g.write("indirect", "virtio_rng")

    g = Guest()  # two chains, the second published after a kick; ring wraps
    g.queue(0, 2, start=65535, hold=1, event_idx=True)
    g.chain(0, [(DATA, 8, True)])
    g.chain(0, [(DATA + 8, 8, True)])
    g.write("held_wrap", "virtio_rng")

    g = Guest(b"\x01\x00")  # rate cap, 1 KiB burst, 4 KiB requests
    g.queue(0, 3)
    for k in range(4):
        g.chain(0, [(DATA + 4096 * k, 4096, True)])
    g.write("rate_cap", "virtio_rng")

    g = Guest()
    g.queue(0, 2)
    g.chain(0, [(DATA, 16, True)])
    g.raw_avail(0, 9)  # head beyond the queue: broken
    g.write("broken_head", "virtio_rng")


if __name__ == "__main__":
    rng()
