#!/usr/bin/env python3
"""Writes the seeds of fuzz_legacy_io (tests/fuzz/corpus/legacy_io/): what
Linux does with the UART, the i8042 and the ACPI PM registers, plus floods
and odd widths. The input format is in the comment at the top of
fuzz_legacy_io.c. Run from anywhere: python3 tests/fuzz/seeds_legacy_io.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "legacy_io")
WIDTH = {1: 0, 2: 1, 4: 2, 8: 3}
UART, KBC, EVT, CNT, RESET = 0, 1, 2, 3, 4
# The first byte: where the UART's output goes.
DISCARD, DEVNULL, FULL_PIPE = b"\0", b"\1", b"\2"
RBR, IER, IIR, LCR, MCR, LSR, MSR, SCR = range(8)


def acc(dev, off, width=1, value=None):
    b = bytes([dev | (8 if value is not None else 0) | WIDTH[width] << 4, (off + 4) & 15])
    return b + (value.to_bytes(width, "little") if value is not None else b"")


def rd(dev, off, width=1):
    return acc(dev, off, width)


def wr(dev, off, value, width=1):
    return acc(dev, off, width, value)


def port(p, width=1, value=None):
    b = bytes([7 | (8 if value is not None else 0) | WIDTH[width] << 4]) + struct.pack("<H", p)
    return b + (value.to_bytes(width, "little") if value is not None else b"")


def host_rx(data):
    assert len(data) < 32
    return bytes([5, len(data) << 1]) + data


def power_button():
    return bytes([5, 1])


def burst(n):
    return bytes([6]) + struct.pack("<H", n - 1)


seeds = {}

# Linux's 8250 autoconfig (IER scratch test, loopback MSR check, FIFO
# detection), size_fifo (256 bytes looped back at 9600 baud, counted out)
# and serial8250_do_startup.
s = rd(UART, IER) + wr(UART, IER, 0) + rd(UART, IER) + wr(UART, IER, 0x0F) + rd(UART, IER)
s += wr(UART, IER, 0) + rd(UART, MCR) + wr(UART, MCR, 0x1A) + rd(UART, MSR) + wr(UART, MCR, 0)
s += wr(UART, LCR, 0xBF) + rd(UART, IIR) + wr(UART, LCR, 0) + wr(UART, IIR, 0x01) + rd(UART, IIR)
s += wr(UART, IIR, 0x07) + rd(UART, IIR) + wr(UART, SCR, 0xA5) + rd(UART, SCR)
s += wr(UART, LCR, 0x80) + wr(UART, RBR, 1) + wr(UART, IER, 0) + rd(UART, RBR) + rd(UART, IER)
s += wr(UART, LCR, 0x03) + wr(UART, MCR, 0x10) + wr(UART, IIR, 0x07)
s += b"".join(wr(UART, RBR, i) for i in range(20)) + b"".join(rd(UART, LSR) + rd(UART, RBR) for i in range(18))
s += wr(UART, MCR, 0) + wr(UART, IIR, 0x06) + wr(UART, IIR, 0) + rd(UART, LSR) + rd(UART, RBR)
s += rd(UART, IIR) + rd(UART, MSR) + wr(UART, LCR, 0x03) + wr(UART, MCR, 0x0B)
s += wr(UART, IER, 0x02) + rd(UART, IIR) + wr(UART, IER, 0) + rd(UART, IIR) + wr(UART, IER, 0x05)
seeds["uart_linux_probe"] = DEVNULL + s

# A console: FIFO on, THRE interrupt on, "Hello\r\n" with LSR polls and
# IIR acknowledging THRE.
s = wr(UART, LCR, 0x03) + wr(UART, IIR, 0xC7) + wr(UART, MCR, 0x0B) + wr(UART, IER, 0x07)
for c in b"Hello\r\n":
    s += rd(UART, LSR) + wr(UART, RBR, c) + rd(UART, IIR)
s += rd(UART, IIR) + rd(UART, LSR)
seeds["uart_console"] = DEVNULL + s

# Loopback without FIFO (the holding register is overwritten: OE), then
# with a FIFO run over, line status and modem status interrupts on.
s = wr(UART, MCR, 0x1F) + wr(UART, IER, 0x0F) + rd(UART, IIR) + rd(UART, MSR) + rd(UART, IIR)
s += wr(UART, RBR, 0x41) + wr(UART, RBR, 0x42) + rd(UART, IIR) + rd(UART, LSR) + rd(UART, RBR)
s += wr(UART, IIR, 0x41) + b"".join(wr(UART, RBR, 0x30 + i) for i in range(20)) + rd(UART, IIR)
s += b"".join(rd(UART, RBR) for i in range(17)) + rd(UART, LSR) + rd(UART, IIR)
s += wr(UART, MCR, 0x00) + rd(UART, MSR) + rd(UART, IIR) + rd(UART, MSR)
seeds["uart_loopback_overrun"] = DISCARD + s

# Host input: trigger level 8, 10 bytes (character timeout), 20 more (6
# taken), loopback refusing input, everything read back.
s = wr(UART, IIR, 0x81) + wr(UART, IER, 0x01) + host_rx(b"0123456789") + rd(UART, IIR)
s += host_rx(b"abcdefghijklmnopqrst") + rd(UART, IIR) + rd(UART, LSR)
s += wr(UART, MCR, 0x10) + host_rx(b"xyz") + wr(UART, MCR, 0)
s += b"".join(rd(UART, RBR) for i in range(17)) + rd(UART, IIR) + rd(UART, LSR)
s += wr(UART, IIR, 0x00) + host_rx(b"AB") + rd(UART, RBR) + rd(UART, RBR)
seeds["uart_host_input"] = DISCARD + s

# A flood into the full pipe nobody reads: the 64 KiB buffer fills (with
# 16 bytes of room THRE is still set, with 15 it is gone, and its
# interrupt with it), the rest is dropped.
s = FULL_PIPE + wr(UART, IER, 0x02) + rd(UART, IIR) + burst(65536 - 16) + rd(UART, LSR)
s += rd(UART, IIR) + wr(UART, IER, 0) + wr(UART, IER, 2) + burst(1) + rd(UART, LSR) + rd(UART, IIR)
s += burst(900) + wr(UART, IER, 0) + wr(UART, IER, 2) + rd(UART, IIR) + rd(UART, LSR)
seeds["uart_flood"] = s

# Linux's i8042 probe (flush, CTR read and write, self test, AUX
# loopback and test), output port, then reboot through 0xd1 and 0xfe.
s = rd(KBC, 4) + rd(KBC, 0) + wr(KBC, 4, 0x20) + rd(KBC, 4) + rd(KBC, 0) + wr(KBC, 4, 0x60)
s += wr(KBC, 0, 0x47) + wr(KBC, 4, 0x20) + rd(KBC, 0) + wr(KBC, 4, 0xAA) + rd(KBC, 0)
s += wr(KBC, 4, 0xD3) + wr(KBC, 0, 0x5A) + rd(KBC, 4) + rd(KBC, 0) + wr(KBC, 4, 0xA9) + rd(KBC, 0)
s += wr(KBC, 4, 0xA8) + wr(KBC, 4, 0xA7) + wr(KBC, 4, 0xAD) + wr(KBC, 4, 0xAE) + wr(KBC, 4, 0xAB)
s += rd(KBC, 0) + wr(KBC, 4, 0xD2) + wr(KBC, 0, 0x99) + rd(KBC, 0) + wr(KBC, 0, 0xF4) + rd(KBC, 4)
s += wr(KBC, 4, 0xD0) + rd(KBC, 0) + wr(KBC, 4, 0xF1) + wr(KBC, 4, 0xD1) + wr(KBC, 0, 0x02)
s += wr(KBC, 4, 0xFE) + wr(KBC, 4, 0xFE) + rd(KBC, 4) + wr(KBC, 4, 0xD4) + wr(KBC, 0, 0xFF)
seeds["i8042"] = DISCARD + s

# ACPI: the power button with its enable bit, status cleared by writing
# 1, sleep types other than S5 ignored, then S5 and the reset register.
s = rd(EVT, 0, 2) + rd(EVT, 2, 2) + wr(EVT, 2, 0x0100, 2) + power_button() + rd(EVT, 0, 4)
s += wr(EVT, 0, 0x0000, 2) + rd(EVT, 0, 2) + wr(EVT, 0, 0x0100, 2) + rd(EVT, 0, 2)
s += power_button() + wr(EVT, 2, 0, 2) + wr(EVT, 2, 0xFFFF, 2) + wr(EVT, 0, 0xFFFFFFFF, 4)
s += rd(CNT, 0, 2) + wr(CNT, 0, 3 << 10 | 1 << 13, 2) + rd(CNT, 0, 2) + wr(CNT, 1, 0x34, 1)
s += wr(CNT, 0, 5 << 10, 2) + wr(CNT, 1, 0x20, 1) + rd(RESET, 0) + wr(RESET, 0, 0x05)
s += wr(RESET, 0, 0x06)
seeds["acpi_pm"] = DISCARD + s

# Widths and places no driver uses: words and dwords on the byte-wide
# devices, accesses straddling and following each range, unclaimed ports.
s = b""
for dev in (UART, KBC, EVT, CNT, RESET):
    for w in (2, 4, 8):
        s += rd(dev, 0, w) + wr(dev, 0, (1 << 8 * w) - 1, w) + rd(dev, -1, w) + rd(dev, 3, w)
s += port(0x3F7, 4) + port(0x3FF, 2) + port(0x5F, 2) + port(0x603, 4, 0xFFFFFFFF)
s += port(0x605, 4) + port(0x607, 2) + port(0xFFFF, 8) + port(0x80, 1, 0x12) + rd(EVT, 0, 4)
seeds["odd_widths"] = DISCARD + s

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
