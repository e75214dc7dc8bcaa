#!/usr/bin/env python3
"""Writes the seed inputs of the threaded virtio device fuzz targets
(fuzz_virtio_rng, fuzz_virtio_console, fuzz_virtio_net, fuzz_blk_async,
fuzz_virtio_vsock, fuzz_virtio_balloon)
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


def console_params(flags, chunk, host_input):
    return bytes([flags, chunk]) + struct.pack("<H", len(host_input))


def console():
    rx, tx = 0, 1
    text = b"echo hello\n"
    g = Guest(console_params(0, 0, text))
    g.queue(rx, 3)
    g.queue(tx, 3)
    g.put(DATA, b"Linux version 6.1 (vmlet@fuzz)\n")
    g.chain(tx, [(DATA, 16, False), (DATA + 16, 15, False)])
    g.chain(rx, [(DATA + 0x1000, 64, True)])
    g.write("echo", "virtio_console", text)

    g = Guest(console_params(0, 0, b""))  # 4 x 16 KiB into a 4 KiB pipe
    g.queue(tx, 2)
    g.put(DATA, bytes(range(256)) * 64)
    g.chain(tx, [(DATA, 16384, False)] * 4)
    g.write("tx_backpressure", "virtio_console")

    data = bytes((i * 7) & 0xFF for i in range(300))
    g = Guest(console_params(16, 0, data))  # 64-byte writes, then EOF
    g.queue(rx, 3)
    g.chain(rx, [(DATA, 16, False)])  # no writable byte
    g.chain(rx, [(DATA, 8, False), (DATA + 64, 100, True)])
    g.chain(rx, [(DATA + 256, 0, True), (DATA + 512, 128, True)])
    g.chain(rx, [(DATA + 1024, 256, True)])
    g.write("rx_shapes_eof", "virtio_console", data)

    g = Guest(console_params(8, 0, b""))  # the reader is gone
    g.queue(tx, 2)
    g.chain(tx, [(DATA, 100, False)])
    g.chain(tx, [(DATA, 200, False)])
    g.write("epipe", "virtio_console")

    g = Guest(console_params(1, 3, b"abc"))  # SIZE, EVENT_IDX, held chains
    g.queue(rx, 2, event_idx=True, hold=1)
    g.queue(tx, 2, event_idx=True, indirect=True, hold=1)
    g.chain(rx, [(DATA, 2, True)])
    g.chain(rx, [(DATA + 2, 2, True)])
    g.indirect_chain(tx, DATA + 0x800, [(DATA + 0x100, 5, False), (DATA + 0x200, 4, True)])
    g.chain(tx, [(DATA + 0x300, 9, False)])
    g.write("held_size_indirect", "virtio_console", b"abc")

    g = Guest(console_params(6, 0, b""))  # no input, output discarded
    g.queue(rx, 1)
    g.queue(tx, 1, start=65535)
    g.chain(rx, [(DATA, 32, True)])
    g.chain(tx, [(DATA, 32, False)])
    g.write("no_fds_wrap", "virtio_console")


def net_host(features, frames):
    """The host side of a fuzz_virtio_net input: features, then frames."""
    out = struct.pack("<Q", features)
    for f in frames:
        out += struct.pack("<H", len(f)) + f
    return out


def net_params(flags0, flags1, host):
    return bytes([flags0, flags1]) + struct.pack("<H", len(host))


def vhdr(flags=0, gso=0, hdr_len=0, gso_size=0, cstart=0, coff=0):
    return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, cstart, coff, 0)


def eth(dst, n):
    return dst + b"\x52\x54\x00\xaa\xbb\xcc" + b"\x08\x00" + bytes(i & 0xFF for i in range(n - 14))


MAC = b"\x52\x54\x00\x12\x34\x56"
BCAST = b"\xff" * 6
CSUM, GUEST_CSUM, GUEST_TSO4, HOST_TSO4, MRG = 1 << 0, 1 << 1, 1 << 7, 1 << 11, 1 << 15
CTRL_VQ, CTRL_RX, CTRL_MAC_ADDR = 1 << 17, 1 << 18, 1 << 23


def net():
    rx, tx, ctrl = 0, 1, 2
    host = net_host(0, [])
    g = Guest(net_params(0, 0, host))
    g.queue(tx, 3)
    g.put(DATA, vhdr() + eth(BCAST, 60))
    g.chain(tx, [(DATA, 12, False), (DATA + 12, 60, False)])
    g.chain(tx, [(DATA, 72, False), (DATA + 0x100, 16, True)])  # writable: malformed
    g.chain(tx, [(DATA, 20, False)])  # runt
    g.write("tx_plain", "virtio_net", host)

    host = net_host(CSUM | HOST_TSO4, [])
    g = Guest(net_params(1, 1, host))
    g.queue(tx, 3, indirect=True)
    g.put(DATA, vhdr(1, 1, 54, 1448, 34, 16) + eth(MAC, 1514))
    g.chain(tx, [(DATA, 12, False), (DATA + 12, 1514, False)])
    g.put(DATA + 0x800, vhdr(0, 1, 54, 1448, 0, 0))  # GSO without NEEDS_CSUM
    g.chain(tx, [(DATA + 0x800, 12, False), (DATA + 12, 1514, False)])
    g.put(DATA + 0x900, vhdr(1, 0, 0, 0, 1600, 0))  # checksum past the end
    g.indirect_chain(tx, DATA + 0xA00, [(DATA + 0x900, 12, False), (DATA + 12, 100, False)])
    g.write("tx_csum_gso", "virtio_net", host)

    host = net_host(0, [vhdr() + eth(MAC, 60), vhdr() + eth(BCAST, 1500),
                        vhdr(1, 0, 0, 0, 14, 6) + eth(MAC, 60), vhdr() + eth(MAC, 100)])
    g = Guest(net_params(0, 0, host))  # no GUEST_CSUM: the third frame is dropped
    g.queue(rx, 2)
    g.chain(rx, [(DATA, 12, True), (DATA + 12, 1514, True)])
    g.chain(rx, [(DATA + 0x2000, 8, True)])  # smaller than a header
    g.chain(rx, [(DATA + 0x1000, 200, True)])  # too small for the second frame
    g.chain(rx, [(DATA + 0x3000, 1600, True)])
    g.write("rx_plain", "virtio_net", host)

    host = net_host(MRG | GUEST_CSUM | GUEST_TSO4, [
        vhdr(1, 1, 54, 1448, 34, 16) + eth(MAC, 1500), struct.pack("<H", 0xFFFE)[:0]])
    host = host[:-2] + struct.pack("<H", 0xFFFE)  # then a frame too big for the queue
    g = Guest(net_params(3, 0, host))
    g.queue(rx, 3, event_idx=True, hold=4)
    for k in range(8):
        g.chain(rx, [(DATA + 0x200 * k, 512, True)])
    g.write("rx_mrg", "virtio_net", host)

    def cmd(cls, code, payload):
        return bytes([cls, code]) + payload

    host = net_host(CTRL_VQ | CTRL_RX | CTRL_MAC_ADDR, [])
    g = Guest(net_params(0, 0, host))
    g.queue(ctrl, 4)
    cmds = [
        cmd(0, 0, b"\x00"),  # PROMISC off
        cmd(0, 1, b"\x01"),  # ALLMULTI on
        cmd(1, 0, struct.pack("<I", 1) + MAC + struct.pack("<I", 2) + b"\x01\x00\x5e\x00\x00\x01" * 2),
        cmd(1, 1, b"\x02\x00\x00\x00\x00\x07"),  # MAC_ADDR_SET
        cmd(1, 1, b"\x01\x00\x00\x00\x00\x07"),  # multicast: ERR
        cmd(4, 0, struct.pack("<H", 2)),  # MQ: ERR
        cmd(2, 0, struct.pack("<H", 5)),  # VLAN: ERR
        cmd(0, 0, b"\x01\x01"),  # wrong length: ERR
    ]
    off = DATA
    for c in cmds:
        g.put(off, c)
        g.chain(ctrl, [(off, 2, False), (off + 2, len(c) - 2, False), (off + 0x80, 1, True)])
        off += 0x100
    g.chain(ctrl, [(DATA, 2, False)])  # nowhere to put the ack
    g.write("ctrl_all", "virtio_net", host)

    host = net_host(CTRL_VQ, [])
    g = Guest(net_params(0, 0, host))
    g.queue(ctrl, 1)
    g.put(DATA, cmd(1, 1, b"\x02\x00\x00\x00\x00\x07"))
    g.chain(ctrl, [(DATA, 8, False), (DATA + 0x80, 1, True)])
    g.write("ctrl_mac_not_negotiated", "virtio_net", host)

    host = net_host(0, [vhdr() + eth(MAC, 64)] * 3)
    g = Guest(net_params(0x32, 0, host))  # 3 BUSY answers, frames after idle
    g.queue(rx, 2, hold=2)
    g.queue(tx, 2, hold=1)
    g.put(DATA, vhdr() + eth(BCAST, 60))
    g.chain(tx, [(DATA, 72, False)])
    g.chain(tx, [(DATA, 72, False)])
    for k in range(3):
        g.chain(rx, [(DATA + 0x1000 + 0x100 * k, 128, True)])
    g.write("busy_held", "virtio_net", host)


def blkreq(t, sector=0):
    return struct.pack("<IIQ", t, 0, sector)


def blk():
    T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ = 0, 1, 4, 8, 11, 13
    HDR, STATUS = DATA, DATA + 0x100  # headers every 16 bytes, statuses every byte

    def req(g, k, t, sector, data_bufs, writable_data):
        g.put(HDR + 16 * k, blkreq(t, sector))
        bufs = [(HDR + 16 * k, 16, False)]
        bufs += [(a, n, writable_data) for a, n in data_bufs]
        bufs.append((STATUS + k, 1, True))
        return g.chain(0, bufs)

    g = Guest(bytes([0, 0]))
    g.queue(0, 3)
    g.put(DATA + 0x1000, b"vmlet" * 205)
    req(g, 0, T_OUT, 0, [(DATA + 0x1000, 512), (DATA + 0x1200, 512)], False)
    req(g, 1, T_IN, 0, [(DATA + 0x2000, 512)], True)
    req(g, 2, T_FLUSH, 0, [], False)
    req(g, 3, T_GET_ID, 0, [(DATA + 0x3000, 20)], True)
    req(g, 4, 99, 0, [], False)  # unknown type: UNSUPP
    g.write("write_read_flush", "blk_async")

    g = Guest(bytes([0, 0]))  # capacity 128 sectors; the image has 300 bytes more
    g.queue(0, 2)
    req(g, 0, T_IN, 126, [(DATA + 0x1000, 1024)], True)
    req(g, 1, T_IN, 127, [(DATA + 0x1000, 1024)], True)  # past the capacity
    req(g, 2, T_IN, 128, [(DATA + 0x1000, 512)], True)
    g.write("edge_of_capacity", "blk_async")

    # Cut to 32 KiB once idle, then reads across and past the new end.
    g = Guest(bytes([0, 3 | 4, 0x80]))
    g.queue(0, 2, hold=3)
    req(g, 0, T_OUT, 60, [(DATA + 0x1000, 4096)], False)
    req(g, 1, T_IN, 60, [(DATA + 0x1000, 4096)], True)
    req(g, 2, T_IN, 100, [(DATA + 0x1000, 512)], True)
    g.write("truncated_then_read", "blk_async")

    g = Guest(bytes([16, 0 | 8, 0x40]))  # cut to 16 KiB under reads in flight
    g.queue(0, 5)
    for k in range(24):
        req(g, k, T_IN, 8 * (k % 16), [(DATA + 0x1000, 16384)] * 4, True)
    g.write("truncated_in_flight", "blk_async")

    g = Guest(bytes([16, 1]))  # reset right after activation
    g.queue(0, 6)
    for k in range(40):
        req(g, k, T_IN if k % 2 else T_OUT, 0, [(DATA + 0x1000, 16384)] * 3, k % 2 == 1)
    g.write("reset_in_flight", "blk_async")

    g = Guest(bytes([0, 2]))  # reset right after the held chains are kicked
    g.queue(0, 4, event_idx=True, hold=8)
    for k in range(12):
        req(g, k, T_IN, k, [(DATA + 0x1000, 4096)], True)
    g.write("reset_after_kick", "blk_async")

    g = Guest(bytes([0, 0]))
    g.queue(0, 2, indirect=True)
    segs = struct.pack("<QII", 0, 8, 0) + struct.pack("<QII", 16, 8, 0)
    g.put(DATA + 0x1000, segs)
    req(g, 0, T_DISCARD, 0, [(DATA + 0x1000, 32)], False)
    g.put(DATA + 0x1100, struct.pack("<QII", 32, 8, 1))
    req(g, 1, T_WZ, 0, [(DATA + 0x1100, 16)], False)
    g.write("discard_write_zeroes", "blk_async")

    g = Guest(bytes([1, 0]))  # the read-only device
    g.queue(0, 1)
    req(g, 0, T_OUT, 0, [(DATA + 0x1000, 512)], False)
    req(g, 1, T_IN, 0, [(DATA + 0x1000, 512)], True)
    g.write("read_only", "blk_async")


VS_REQUEST, VS_RESPONSE, VS_RST, VS_SHUTDOWN, VS_RW, VS_CREDIT_UPDATE, VS_CREDIT_REQUEST = range(1, 8)


def vs_hdr(op, src_port, dst_port, length=0, flags=0, buf_alloc=4096, fwd_cnt=0, src_cid=3,
           dst_cid=2, typ=1):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, src_port, dst_port, length, typ, op,
                       flags, buf_alloc, fwd_cnt)


class VsGuest(Guest):
    """rx (queue 0) buffers and tx (queue 1) packets, laid out from DATA on."""

    def __init__(self, params=b"", rx=8, rx_len=44 + 256):
        super().__init__(params)
        self.queue(0, 4)
        self.queue(1, 4)
        self.queue(2, 2)
        for k in range(rx):
            self.chain(0, [(DATA + k * 0x200, rx_len, True)])
        self.at = DATA + 0x1000 + rx * 0x200

    def pkt(self, header, payload=b"", split=True):
        gpa = self.at
        self.put(gpa, header + payload)
        self.at += (len(header) + len(payload) + 15) & ~15
        if payload and split:
            return self.chain(1, [(gpa, len(header), False), (gpa + len(header), len(payload), False)])
        return self.chain(1, [(gpa, len(header) + len(payload), False)])


def vsock():
    g = VsGuest()  # to the host's port 1: open, data, half-close, close
    g.pkt(vs_hdr(VS_REQUEST, 1000, 1))
    g.pkt(vs_hdr(VS_RW, 1000, 1, 10), b"0123456789")
    g.pkt(vs_hdr(VS_RW, 1000, 1, 5), b"abcde", split=False)
    g.pkt(vs_hdr(VS_CREDIT_REQUEST, 1000, 1))
    g.pkt(vs_hdr(VS_CREDIT_UPDATE, 1000, 1, buf_alloc=0, fwd_cnt=0xFFFFFFFF))
    g.pkt(vs_hdr(VS_SHUTDOWN, 1000, 1, flags=2))
    g.pkt(vs_hdr(VS_SHUTDOWN, 1000, 1, flags=3))
    g.pkt(vs_hdr(VS_RST, 1000, 1))
    g.write("open_data_close", "virtio_vsock")

    g = VsGuest()  # nobody listens on port 7
    g.pkt(vs_hdr(VS_REQUEST, 1000, 7))
    g.pkt(vs_hdr(VS_REQUEST, 1001, 7))
    g.write("refused", "virtio_vsock")

    g = VsGuest()  # every kind of bad header
    g.pkt(vs_hdr(VS_REQUEST, 1, 1, src_cid=4))
    g.pkt(vs_hdr(VS_REQUEST, 1, 1, dst_cid=3))
    g.pkt(vs_hdr(VS_REQUEST, 1, 1, typ=2))
    g.pkt(vs_hdr(0, 1, 1))
    g.pkt(vs_hdr(99, 1, 1))
    g.pkt(vs_hdr(VS_RW, 1, 1, 1000), b"xy")
    g.pkt(vs_hdr(VS_RW, 1, 1, 0x10001))
    g.pkt(vs_hdr(VS_RW, 5, 5, 3), b"abc")
    g.pkt(vs_hdr(VS_RESPONSE, 5, 5))
    g.pkt(vs_hdr(VS_REQUEST, 1, 1)[:20])
    g.pkt(vs_hdr(VS_REQUEST, 2, 1))
    g.pkt(vs_hdr(VS_REQUEST, 2, 1))  # again: the existing one is reset
    g.write("hostile", "virtio_vsock")

    g = VsGuest(bytes([1, 52]))  # a host program connects to guest port 52
    g.queue(1, 4, hold=2)
    g.pkt(vs_hdr(VS_RESPONSE, 52, 0x40000000))
    g.pkt(vs_hdr(VS_RW, 52, 0x40000000, 4), b"pong")
    g.write("host_connect", "virtio_vsock")

    g = VsGuest(bytes([1, 52]), rx=4, rx_len=44)  # header-only rx buffers
    g.queue(1, 4, hold=1)
    g.pkt(vs_hdr(VS_RESPONSE, 52, 0x40000000, buf_alloc=16))
    g.write("host_small_credit", "virtio_vsock")

    g = VsGuest(bytes([2]))  # a transport reset event, into a short buffer and a good one
    g.chain(2, [(DATA + 0x3000, 2, True)])
    g.chain(2, [(DATA + 0x3010, 8, True)])
    g.pkt(vs_hdr(VS_REQUEST, 1000, 1))
    g.write("reset_event", "virtio_vsock")

    g = VsGuest(rx=2, rx_len=10)  # rx buffers too small for a header
    g.pkt(vs_hdr(VS_REQUEST, 1000, 7))
    g.write("rx_too_small", "virtio_vsock")


def pfns(*numbers):
    return b"".join(struct.pack("<I", n) for n in numbers)


def stat(tag, value):
    return struct.pack("<HQ", tag, value)


def balloon():
    # Pages from 24 KiB (0x6000) up are above the fuzz build's floor.
    g = Guest(b"\x00")  # inflate, deflate, reporting
    g.queue(0, 3)
    g.queue(1, 3)
    g.queue(2, 3)
    g.put(DATA, pfns(7, 8, 7, 9, 0xC0000, 0xFFFFFFFF, 3))
    g.chain(0, [(DATA, 28, False)])
    g.chain(0, [(DATA, 6, False)])  # one and a half page numbers
    g.chain(0, [(DATA, 8, True)])  # writable: ignored
    g.chain(1, [(DATA, 28, False)])
    g.chain(2, [(0xA000, 0x2000, True), (0x6800, 0x1900, True), (0, 0x8000, True)])
    g.write("basic", "virtio_balloon")

    g = Guest(b"\x03\x40\x04\x04")  # statistics, a target, a write of actual
    g.queue(0, 2)
    g.queue(1, 2)
    g.queue(2, 2, hold=1)
    g.put(DATA, stat(4, 1 << 20) + stat(5, 1 << 30) + stat(99, 1) + stat(6, 5)[:7])
    g.chain(2, [(DATA, 37, False)])
    g.chain(2, [(DATA, 10, False)])  # a second buffer, published later
    g.write("stats", "virtio_balloon")

    g = Guest(b"\x00")  # a flood of inflates, the rings' own pages among them
    g.queue(0, 5, event_idx=True, start=65530)
    g.put(DATA, pfns(*range(0, 16)))
    for k in range(32):
        g.chain(0, [(DATA + 4 * (k % 16), 4, False)])
    g.write("flood", "virtio_balloon")

    g = Guest(b"\x00")
    g.queue(2, 2)
    g.chain(2, [(0xF000, 0x2000, True)])  # past the end of RAM: broken
    g.write("report_out_of_ram", "virtio_balloon")


if __name__ == "__main__":
    rng()
    balloon()
    console()
    net()
    blk()
    vsock()
