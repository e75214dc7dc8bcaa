#!/bin/sh
# The kernel decompressed and relocated by vmlet (issue 14), with Debian's
# LZ4 bzImage, checked from L1. POSIX sh, busybox. One TAP line per check.
#   kernel.sh VMLET KERNEL INITRD LOGDIR
#   kernel.sh --plan            the check names, one a line
#
#   kernel-host-decompress  vmlet decompresses the payload itself (its
#                       VMLET_TIMING lines say so) and the guest boots to
#                       init and powers off (exit 0)
#   kernel-kaslr-applied  in two boots the guest's own _text (from
#                       /proc/kallsyms) is the link-time address plus the
#                       offset vmlet says it chose, and at least one offset
#                       is not 0 (both 0 by chance: 1 in 478^2)
#   kernel-nokaslr      with nokaslr: no offset, _text at link time
#   kernel-guest-decompress  without VMLET_KERNEL_DECOMPRESS=host (the
#                       default): the bzImage's own decompressor runs (and does its own KASLR) and
#                       the guest boots
CHECKS="host-decompress kaslr-applied nokaslr guest-decompress"
if [ "${1:-}" = --plan ]; then
    for c in $CHECKS; do echo "kernel-$c"; done
    exit 0
fi
vmlet=$1 kernel=$2 initrd=$3 logdir=$4
mkdir -p "$logdir"
. "$(dirname "$0")/checks.sh"
. "$(dirname "$0")/vmm.sh"
BASE="console=ttyS0 quiet panic=-1"
# Debian's x86-64 kernel is linked at __START_KERNEL_map (0xffffffff80000000)
# plus CONFIG_PHYSICAL_START (0x1000000).
LINK_TEXT=ffffffff81000000

# boot NAME [ARGS]: one boot printing _text, then power-off; sets log, rc,
# text (the guest's _text), offset (vmlet's, hex, or "") and how ("vmlet"
# when vmlet decompressed the kernel).
boot() {
    log=$logdir/kernel-$1.log
    timeout 300 env VMLET_TIMING=1 VMLET_KERNEL_DECOMPRESS="${DECOMPRESS-host}" "$vmlet" run --kernel "$kernel" --initrd "$initrd" \
        --memory 256M --cmdline "$BASE vmlet.test=kaslr vmlet.then=poweroff${2:+ $2}" \
        </dev/null >"$log" 2>&1
    rc=$?
    text=$(val VMLET-KTEXT)
    offset=$(tr -d '\r' <"$log" | sed -n 's/^vmlet: kernel: .* decompressed by vmlet, KASLR .* 0x\([0-9a-f]*\)$/\1/p' | head -n1)
    how=-
    grep -aq "kernel loaded in .* (decompressed by vmlet" "$log" && how=vmlet
    grep -aq "kernel loaded in .* (bzImage decompresses itself" "$log" && how=bzimage
}
boot kaslr1
k1_text=$text k1_offset=$offset
if [ "$rc" = 0 ] && [ "$how" = vmlet ] && [ -n "$offset" ] && [ -n "$text" ]; then
    ok kernel-host-decompress "(offset 0x$offset)"
else
    not_ok kernel-host-decompress "exit $rc, loaded by ${how}, offset '${offset}', _text '${text}'"
    tail -n 8 "$log" | sed 's/^/#   /'
fi
boot kaslr2
k2_text=$text k2_offset=$offset
w1=$(hex_add "$LINK_TEXT" "${k1_offset:-0}") w2=$(hex_add "$LINK_TEXT" "${offset:-0}")
if [ -n "$k1_offset" ] && [ -n "$k2_offset" ] && [ "$k1_text" = "$w1" ] && [ "$k2_text" = "$w2" ] &&
    { [ "$k1_offset" != 0 ] || [ "$k2_offset" != 0 ]; }; then
    ok kernel-kaslr-applied "(_text $k1_text, then $k2_text)"
else
    not_ok kernel-kaslr-applied "boot 1: _text '$k1_text' want '$w1' (offset '$k1_offset'); boot 2: _text '$k2_text' want '$w2' (offset '$k2_offset')"
fi

boot nokaslr nokaslr
if [ "$rc" = 0 ] && [ "$how" = vmlet ] && [ "$offset" = 0 ] && [ "$text" = "$LINK_TEXT" ] &&
    grep -aq "KASLR off" "$log"; then
    ok kernel-nokaslr
else
    not_ok kernel-nokaslr "exit $rc, loaded by ${how}, offset '${offset}', _text '${text}' (want $LINK_TEXT)"
fi

DECOMPRESS='' boot guest
if [ "$rc" = 0 ] && [ "$how" = bzimage ] && [ -n "$text" ]; then
    ok kernel-guest-decompress "(_text $text)"
else
    not_ok kernel-guest-decompress "exit $rc, loaded by ${how}, _text '${text}'"
    tail -n 8 "$log" | sed 's/^/#   /'
fi
[ "$fail" = 0 ]
