#!/bin/sh
# Builds the mini guests: bzImage-shaped files whose 64-bit entry point is a
# few instructions instead of Linux. They test vmlet's run loop, boot state
# and devices in a second, on any KVM (they only poll, so PVM runs them too).
#   build.sh OUTDIR
set -eu
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
xxd() { busybox xxd "$@"; }

# mkguest NAME HEX: a 4-sector setup header (boot protocol 2.15, 64-bit
# entry, 1 MiB to decompress at 16 MiB), then HEX at payload offset 0x200.
mkguest() {
    f=$out/$1.bzImage
    head -c 8192 /dev/zero > "$f"
    put() { echo "$1" | xxd -r -p | dd of="$f" bs=1 seek=$(($2)) conv=notrunc status=none; }
    put 04 0x1f1                  # setup_sects
    put 55aa 0x1fe
    put 6a48647253 0x201          # header length, "HdrS"
    put 0f02 0x206                # protocol 2.15
    put ffffff7f 0x22c            # initrd_addr_max
    put 7f00ff07 0x236            # xloadflags (64-bit entry), cmdline_size 2047
    put 0000000100000000 0x258    # pref_address 16 MiB
    put 00001000 0x260            # init_size 1 MiB
    put "$2" $((5 * 512 + 0x200))
}

com1="66baf803"                   # mov dx, 0x3f8
say_ok="${com1}b04feeb04beeb00aee"  # out 'O', 'K', '\n'
poweroff="66ba0406 66b80034 66ef"   # outw 0x604, SLP_TYP=5 | SLP_EN
spin="ebfe"                       # jmp $

# Prints OK and powers off through ACPI S5: exit 0.
mkguest poweroff "$(echo "$say_ok $poweroff $spin" | tr -d ' ')"
# Writes the FADT reset value to the reset register: exit 3.
mkguest reset-register "$(echo "$say_ok 66ba0806 b006 ee $spin" | tr -d ' ')"
# Pulses the i8042 reset line: exit 3.
mkguest i8042-reset "$(echo "$say_ok b0fe e664 $spin" | tr -d ' ')"
# ud2 with an empty IDT: a triple fault, which a VMM treats as reset: exit 3.
mkguest triple-fault "$(echo "$say_ok 0f0b" | tr -d ' ')"
# Reads "HdrS" from boot_params (RSI) through the identity map and prints
# it, then the command line's first 4 bytes, then powers off.
#   mov eax, [rsi+0x202]; out al x4 (shr eax, 8 between)
#   mov eax, [rsi+0x228] (cmd_line_ptr); mov eax, [rax]; out al x4
#   newline, poweroff
out4="ee c1e808 ee c1e808 ee c1e808 ee"
mkguest boot-params "$(echo "$com1 8b8602020000 $out4 8b8628020000 8b00 $out4 b00aee \
    $poweroff $spin" | tr -d ' ')"
# Never stops by itself: for the shutdown-timeout test (exit 4).
mkguest spin "$(echo "$say_ok $spin" | tr -d ' ')"
# Reads an unclaimed port: it must read as 0xff; prints Y or N, powers off.
#   in al, 0x80 ... no: port 0x80 may be claimed later; use 0x2f0.
#   mov dx, 0x2f0; in al, dx; cmp al, 0xff; mov al,'N'; jne +2; mov al,'Y'; mov dx,0x3f8; out
mkguest unclaimed-port "$(echo "66baf002 ec 3cff b04e 7502 b059 $com1 ee b00aee \
    $poweroff $spin" | tr -d ' ')"
# Prints a dot, spins ~4M loop iterations, forever: for pause/resume (a
# paused guest prints nothing) and for several VMs in one process.
#   mov dx,0x3f8; top: mov al,'.'; out dx,al; mov ecx,0x400000; loop $; jmp top
mkguest counter "$(echo "$com1 b02e ee b900004000 e2fe ebf4" | tr -d ' ')"
echo "mini guests in $out"
