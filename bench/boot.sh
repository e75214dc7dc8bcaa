#!/bin/sh
# Boot-to-init benchmark, run where /dev/kvm is real: inside the L1 lab VM
# (bench/boot starts it) or on a host with hardware KVM. POSIX sh.
#
#   bench/boot.sh [REPS] [microvm]
#
# Boots the same kernel and initramfs (1 vCPU, 256 MiB) with each VMM,
# interleaved, REPS times each: vmlet (the bzImage's own decompressor, the
# default), vmlet decompressing the kernel itself ("vmlet host-dec",
# VMLET_KERNEL_DECOMPRESS=host) and QEMU -M pc. The guest's init prints VMLET-INIT-READY
# and powers off at once (vmlet.test=bench). Per boot it measures:
#   init   seconds from starting the VMM to the marker on its console
#   total  seconds until the VMM has exited
#   exits  VM exits, from the kvm:kvm_exit tracepoint (a hist trigger
#          counts them in the kernel: no trace buffer to overflow)
# and, to tell where the time went:
#   set-up    starting the VMM to the guest's first instruction (vmlet's
#             VMLET_TIMING line; QEMU's first instruction is its firmware's,
#             which this cannot see: "-")
#   pre-kernel  init minus the guest's uptime at the marker: everything
#             before the guest kernel's clock starts (VMM set-up, firmware,
#             the bzImage's decompressor), the same way for every VMM
#   Run /init the guest's printk time of "Run /init" (its own clock)
#   exit      marker to VMM exit (the guest's poweroff -f and the VMM's
#             teardown)
#   teardown  the guest's stop (vmlet's own stamp) to the VMM's exit
# Each row gives median (min-max) over the runs that reached init, and the
# ratios of medians against QEMU -M pc. Never fails on a time.
# APPEND: more guest kernel arguments for every VMM (e.g. initcall_debug);
# with vmlet.dmesg=1 in it the guest prints its dmesg after the marker.
HERE=$(cd "$(dirname "$0")" && pwd)
LABLIB=${LABLIB:-$HERE/../tests/lab}
# shellcheck source=../tests/lab/vmm.sh
. "$LABLIB/vmm.sh"

REPS=${1:-5}
# vmlet-hostdec: vmlet with VMLET_KERNEL_DECOMPRESS=host, decompressing
# and relocating the kernel on the host (issue 14; opt-in).
VMMS=${VMMS:-vmlet vmlet-hostdec qemu}
[ "${2:-}" = microvm ] && VMMS="$VMMS qemu-microvm"
LOGDIR=${LOGDIR:-/tmp/lab-logs}
CMDLINE="console=ttyS0 quiet panic=-1 vmlet.test=bench${APPEND:+ $APPEND}"
BOOT_LIMIT=${BOOT_LIMIT:-300}
mkdir -p "$LOGDIR"
# vmlet prints its set-up and teardown stamps on stderr at exit.
export VMLET_TIMING=1
# The analysis runs (vmlet.dmesg=1, bench/boot --dmesg) also count port
# I/O by port and MSR accesses by MSR (common.sh's XTRACE histograms).
case " $APPEND " in
*" vmlet.dmesg=1 "*) XTRACE=${XTRACE:-kvm_pio:port,rw kvm_msr:ecx,write} ;;
esac

. "$HERE/common.sh"
# exits_stop HISTOGRAM: keeps the per-reason histogram of this boot there,
# disarms the trigger and prints the boot's exit count (or "-").
exits_stop() {
    exits_snap "$1"
    exits_disarm
    if [ -s "$1" ]; then awk '/^ *Hits:/ { print $2 }' "$1"; else echo -; fi
}

# stamp LOG: copies the console to LOG, noting (from /proc/uptime, read
# without forking) when the marker arrived; writes "READY END STATUS" to
# LOG.times. A shell loop, not awk: mawk reads a pipe in blocks, so it
# would see the marker late.
stamp() {
    ready=-
    status=-
    : >"$1"
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
        *VMLET-INIT-READY*) [ "$ready" = - ] && read -r ready _ </proc/uptime ;;
        VMM-EXIT-STATUS=*) status=${line#*=}; line=; continue ;;
        esac
        printf '%s\n' "$line" >>"$1"
        line=
    done
    read -r end _ </proc/uptime
    echo "$ready $end $status" >"$1.times"
}

# run_one VMM LOG: prints "READY TOTAL EXITS STATUS RUN_INIT UPTIME SETUP
# TEARDOWN KERNEL_LOAD" ("-" for what did not come: READY if the marker
# never did).
# A watchdog ends a boot that hangs.
run_one() {
    fifo=$2.in
    rm -f "$fifo"; mkfifo "$fifo"
    exec 7<>"$fifo"
    exits_arm
    read -r t0 _ </proc/uptime
    { ( if [ "$1" = vmlet-hostdec ]; then export VMLET_KERNEL_DECOMPRESS=host; fi
        vmm_exec "${1%-hostdec}" 1 256M "$CMDLINE" "" ) <"$fifo" 2>&1 & vpid=$!
      # The watchdog must not hold the pipe to stamp open.
      ( trap 'kill $s 2>/dev/null; exit 0' TERM
        sleep "$BOOT_LIMIT" & s=$!
        wait $s && kill -KILL $vpid ) >/dev/null 2>&1 & wpid=$!
      wait $vpid; rc=$?
      # On a line of its own even if the console's last line had no end.
      echo; echo "VMM-EXIT-STATUS=$rc"
      kill $wpid 2>/dev/null; } |
    stamp "$2"
    exec 7>&-
    rm -f "$fifo"
    exits=$(exits_stop "$2.exits")
    read -r ready end status <"$2.times"
    [ "$ready" != - ] && ready=$(awk -v a="$t0" -v b="$ready" 'BEGIN { printf "%.2f", b - a }')
    total=$(awk -v a="$t0" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    # The guest's clock (rcS's VMLET-BOOT-CLOCK line) and vmlet's stamps
    # (CLOCK_BOOTTIME, as /proc/uptime): set-up from t0, teardown to end.
    clock=$(tr -d '\r' <"$2" | sed -n 's/.*VMLET-BOOT-CLOCK run_init=\([^ ]*\) uptime=\([^ ]*\).*/\1 \2/p' | head -n 1)
    vt=$(sed -n 's/.*vmlet: timing: main=[0-9.]* first-run=\([0-9.]*\) stop=\([0-9.]*\) .*/\1 \2/p' "$2" | head -n 1)
    times=$(echo "$vt" | awk -v a="$t0" -v e="$end" '
        NF == 2 && $1 > 0 { s = sprintf("%.3f", $1 - a) }
        NF == 2 && $2 > 0 { d = sprintf("%.3f", e - $2) }
        END { print (s == "" ? "-" : s), (d == "" ? "-" : d) }')
    # vmlet's time loading the kernel (part of set-up): decompressing it
    # when it does.
    kload=$(sed -n 's/.*vmlet: timing: .* kernel loaded in \([0-9.]*\) ms.*/\1/p' "$2" | head -n 1 |
        awk 'NF { printf "%.3f", $1 / 1000 }')
    echo "$ready $total ${exits:--} $status ${clock:-- -} $times ${kload:--}"
}

# median FORMAT: of the numbers on stdin, one a line; "-" if none.
median() {
    sort -n | awk -v f="$1" '{ v[NR] = $1 }
        END { if (NR == 0) { print "-"; exit }
              m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf f "\n", m }'
}

for vmm in $VMMS; do
    if [ "${vmm%-hostdec}" = vmlet ] && [ ! -x "$VMLET" ]; then
        echo "# no vmlet binary at $VMLET: leaving $vmm out"
        VMMS=$(echo " $VMMS " | sed "s/ $vmm / /")
    fi
    : >"$LOGDIR/bench-$vmm.results"
done

echo "# boot to init: kernel $(basename "$KERNEL"), 1 vCPU, 256 MiB, $REPS runs each, interleaved"
rep=1
while [ "$rep" -le "$REPS" ]; do
    for vmm in $VMMS; do
        r=$(run_one "$vmm" "$LOGDIR/bench-$vmm-$rep.log")
        echo "# run $rep $vmm: init/total/exits/status/run-init/uptime/set-up/teardown/kernel-load = $r"
        echo "$r" >>"$LOGDIR/bench-$vmm.results"
    done
    rep=$((rep + 1))
done

label() {
    case $1 in
    qemu) echo "qemu -M pc" ;;
    qemu-microvm) echo "qemu -M microvm" ;;
    vmlet-hostdec) echo "vmlet host-dec" ;;
    *) echo "$1" ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# col VMM EXPR: one derived number a run, of the runs that reached init
# (awk expression over the results' fields: $1 init, $2 total, $3 exits,
# $5 Run /init, $6 guest uptime at the marker, $7 set-up, $8 teardown,
# $9 kernel load).
col() {
    awk '$1 != "-" { print }' "$LOGDIR/bench-$1.results" |
        awk "{ v = $2; if (v != \"-\" && v != \"\") print v }"
}
# stats FORMAT: "median (min-max)" of the numbers on stdin, "-" if none.
stats() {
    sort -n | awk -v f="$1" '{ v[NR] = $1 }
        END { if (NR == 0) { print "-"; exit }
              m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf f " (" f "-" f ")\n", m, v[1], v[NR] }'
}
# The fields with "-" in them drop out of a difference.
# shellcheck disable=SC2016 # awk's fields, not the shell's
DIFF_PREK='($6 == "-" ? "-" : $1 - $6)'
# shellcheck disable=SC2016 # awk's fields, not the shell's
DIFF_EXIT='$2 - $1'

base=qemu
q_ready=-; q_exits=-; q_total=-
# shellcheck disable=SC2016 # col's expressions are awk's, here and below
if [ -s "$LOGDIR/bench-$base.results" ]; then
    q_ready=$(col $base '$1' | median %.2f)
    q_total=$(col $base '$2' | median %.2f)
    q_exits=$(col $base '$3' | median %.0f)
fi
echo
printf '%-16s %5s %-19s %-19s %-20s %6s %6s %6s\n' VMM ok "init s" "total s" "VM exits" \
    "init/" "total/" "exits/"
printf '%-16s %5s %-19s %-19s %-20s %6s %6s %6s\n' "" "" "med (min-max)" "med (min-max)" \
    "med (min-max)" "qemu" "qemu" "qemu"
# shellcheck disable=SC2016
for vmm in $VMMS; do
    f=$LOGDIR/bench-$vmm.results
    n=$(awk '$1 != "-" && $4 == 0' "$f" | wc -l)
    printf '%-16s %5s %-19s %-19s %-20s %6s %6s %6s\n' "$(label "$vmm")" "$n/$REPS" \
        "$(col "$vmm" '$1' | stats %.2f)" "$(col "$vmm" '$2' | stats %.2f)" \
        "$(col "$vmm" '$3' | stats %.0f)" \
        "$(ratio "$(col "$vmm" '$1' | median %.2f)" "$q_ready")" \
        "$(ratio "$(col "$vmm" '$2' | median %.2f)" "$q_total")" \
        "$(ratio "$(col "$vmm" '$3' | median %.0f)" "$q_exits")"
done
echo
echo "# where the time goes, seconds, median (min-max):"
printf '%-16s %-19s %-19s %-19s %-19s %-19s %-19s\n' VMM "VMM set-up" "of it kernel load" \
    "pre-kernel" "guest Run /init" "marker to exit" "VMM teardown"
# shellcheck disable=SC2016
for vmm in $VMMS; do
    printf '%-16s %-19s %-19s %-19s %-19s %-19s %-19s\n' "$(label "$vmm")" \
        "$(col "$vmm" '$7' | stats %.3f)" "$(col "$vmm" '$9' | stats %.3f)" \
        "$(col "$vmm" "$DIFF_PREK" | stats %.2f)" \
        "$(col "$vmm" '$5' | stats %.2f)" "$(col "$vmm" "$DIFF_EXIT" | stats %.2f)" \
        "$(col "$vmm" '$8' | stats %.3f)"
done
# Where the exits go: the top reasons in each VMM's last run (SVM exit
# codes, named for the common ones; npf = nested page fault: MMIO, or the
# first touch of a guest page that the host has not mapped yet).
for vmm in $VMMS; do
    h=$LOGDIR/bench-$vmm-$REPS.log.exits
    [ -s "$h" ] || continue
    printf '%-16s' "$(label "$vmm")"
    exits_top "$h"
    # With XTRACE: its histograms of that run, largest first.
    for x in $XTRACE; do
        [ -s "$h.${x%%:*}" ] || continue
        printf '%-16s %s:' "" "${x%%:*}"
        awk '/^\{/ { k = $0; sub(/^\{ */, "", k); sub(/ *\}.*/, "", k); gsub(/  +/, " ", k)
                     n = $0; sub(/.*hitcount: */, "", n); printf " %d [%s];", n, k; if (++c == 8) exit }
             END { print "" }' "$h.${x%%:*}"
    done
done
# KASLR: the guest's own _text in each run; for vmlet also the offset it
# says it chose, and whether _text is the link address plus that offset.
echo
echo "# the guest's _text (/proc/kallsyms) per run; vmlet: link address ffffffff81000000 + its offset"
for vmm in $VMMS; do
    line=
    r=1
    while [ "$r" -le "$REPS" ]; do
        f=$LOGDIR/bench-$vmm-$r.log
        t=$(tr -d '\r' <"$f" | sed -n 's/^VMLET-KTEXT=//p' | head -n 1)
        o=$(tr -d '\r' <"$f" | sed -n 's/^vmlet: kernel: .* decompressed by vmlet, KASLR .* 0x\([0-9a-f]*\)$/\1/p' | head -n 1)
        line="$line ${t:--}"
        if [ -n "$o" ]; then
            if [ "$t" = "$(hex_add ffffffff81000000 "$o")" ]; then
                line="$line (offset 0x$o: matches)"
            else
                line="$line (offset 0x$o: DIFFERS)"
            fi
        fi
        r=$((r + 1))
    done
    printf '%-16s%s\n' "$(label "$vmm")" "$line"
done
echo
echo "# init = VMM start to VMLET-INIT-READY on the guest console; total = until the VMM exited"
echo "# ok = runs that reached init and exited 0; medians, minima and maxima are over the runs that reached init"
# (No "SeaBIOS" in these lines: bench/boot's console filter drops such lines.)
echo "# VMM set-up = VMM start to the guest's first instruction (vmlet's own stamp; QEMU's first"
echo "#   instruction is its firmware's, not measured: the firmware is in pre-kernel); pre-kernel = init"
echo "#   minus the guest's uptime at the marker (set-up, firmware, decompressor); guest Run /init ="
echo "#   the kernel's printk time of 'Run /init'; VMM teardown = guest stop to VMM exit (vmlet's stamp)"
echo "# of it kernel load = vmlet reading the kernel into guest memory (decompressing and relocating"
echo "#   it for host-dec), part of VMM set-up"
