#!/bin/sh
# Boot-to-init benchmark, run where /dev/kvm is real: inside the L1 lab VM
# (bench/boot starts it) or on a host with hardware KVM. POSIX sh.
#
#   bench/boot.sh [REPS] [microvm]
#
# Boots the same kernel and initramfs (1 vCPU, 256 MiB) with each VMM,
# interleaved, REPS times each. The guest's init prints VMLET-INIT-READY
# and powers off at once (vmlet.test=bench). Per boot it measures:
#   ready  seconds from starting the VMM to the marker on its console
#   total  seconds until the VMM has exited
#   exits  VM exits, from the kvm:kvm_exit tracepoint (a hist trigger
#          counts them in the kernel: no trace buffer to overflow)
# and prints medians and ratios against QEMU -M pc. Never fails on a time.
HERE=$(cd "$(dirname "$0")" && pwd)
LABLIB=${LABLIB:-$HERE/../tests/lab}
# shellcheck source=../tests/lab/vmm.sh
. "$LABLIB/vmm.sh"

REPS=${1:-5}
VMMS=${VMMS:-vmlet qemu}
[ "${2:-}" = microvm ] && VMMS="$VMMS qemu-microvm"
LOGDIR=${LOGDIR:-/tmp/lab-logs}
CMDLINE="console=ttyS0 quiet panic=-1 vmlet.test=bench"
BOOT_LIMIT=${BOOT_LIMIT:-300}
mkdir -p "$LOGDIR"

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

# run_one VMM LOG: prints "READY TOTAL EXITS STATUS" (READY "-" if the
# marker never came). A watchdog ends a boot that hangs.
run_one() {
    fifo=$2.in
    rm -f "$fifo"; mkfifo "$fifo"
    exec 7<>"$fifo"
    exits_arm
    read -r t0 _ </proc/uptime
    { ( vmm_exec "$1" 1 256M "$CMDLINE" "" ) <"$fifo" 2>&1 & vpid=$!
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
    echo "$ready $total ${exits:--} $status"
}

# median FORMAT: of the numbers on stdin, one a line; "-" if none.
median() {
    sort -n | awk -v f="$1" '{ v[NR] = $1 }
        END { if (NR == 0) { print "-"; exit }
              m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf f "\n", m }'
}

for vmm in $VMMS; do
    if [ "$vmm" = vmlet ] && [ ! -x "$VMLET" ]; then
        echo "# no vmlet binary at $VMLET: leaving it out"
        VMMS=$(echo "$VMMS" | sed 's/vmlet//')
    fi
    : >"$LOGDIR/bench-$vmm.results"
done

echo "# boot to init: kernel $(basename "$KERNEL"), 1 vCPU, 256 MiB, $REPS runs each, interleaved"
rep=1
while [ "$rep" -le "$REPS" ]; do
    for vmm in $VMMS; do
        r=$(run_one "$vmm" "$LOGDIR/bench-$vmm-$rep.log")
        echo "# run $rep $vmm: ready/total/exits/status = $r"
        echo "$r" >>"$LOGDIR/bench-$vmm.results"
    done
    rep=$((rep + 1))
done

label() {
    case $1 in
    qemu) echo "qemu -M pc" ;;
    qemu-microvm) echo "qemu -M microvm" ;;
    *) echo "$1" ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

base=$LOGDIR/bench-qemu.results
q_ready=-; q_exits=-
if [ -s "$base" ]; then
    q_ready=$(awk '$1 != "-" { print $1 }' "$base" | median %.2f)
    q_exits=$(awk '$1 != "-" && $3 != "-" { print $3 }' "$base" | median %.0f)
fi
echo
printf '%-16s %5s %14s %10s %12s %14s %14s\n' VMM "ok" "init (median)" "total" "VM exits" "time/qemu-pc" "exits/qemu-pc"
for vmm in $VMMS; do
    f=$LOGDIR/bench-$vmm.results
    n=$(awk '$1 != "-" && $4 == 0' "$f" | wc -l)
    r=$(awk '$1 != "-" { print $1 }' "$f" | median %.2f)
    t=$(awk '$1 != "-" { print $2 }' "$f" | median %.2f)
    e=$(awk '$1 != "-" && $3 != "-" { print $3 }' "$f" | median %.0f)
    printf '%-16s %5s %12s s %8s s %12s %14s %14s\n' "$(label "$vmm")" "$n/$REPS" "$r" "$t" "$e" \
        "$(ratio "$r" "$q_ready")" "$(ratio "$e" "$q_exits")"
done
# Where the exits go: the top reasons in each VMM's last run (SVM exit
# codes, named for the common ones; npf = nested page fault: MMIO, or the
# first touch of a guest page that the host has not mapped yet).
for vmm in $VMMS; do
    h=$LOGDIR/bench-$vmm-$REPS.log.exits
    [ -s "$h" ] || continue
    printf '%-16s' "$(label "$vmm")"
    exits_top "$h"
done
echo
echo "# init = VMM start to VMLET-INIT-READY on the guest console; total = until the VMM exited"
echo "# ok = runs that reached init and exited 0; medians are over the runs that reached init"
