#!/bin/sh
# Network benchmark, run where /dev/kvm is real: inside the L1 lab VM
# (bench/net starts it) or on a host with hardware KVM. POSIX sh.
#
#   bench/net.sh [SECONDS] [REPS]
#
# Each VMM boots the same guest (1 vCPU, 512 MiB, one virtio-net NIC; its
# initramfs has iperf3 from Debian, run as a server) once per backend:
#   user  user-mode NAT (vmlet: libslirp; QEMU: -netdev user, also
#         libslirp), reached from here through a port forward
#         127.0.0.1:5201 -> guest:5201
#   tap   the TAP device tap0 (192.168.100.1 here, .2 in the guest);
#         QEMU without vhost, so both datapaths run in the VMM process
# and iperf3 here measures TCP for SECONDS (default 10) each way:
#   host->guest  iperf3 -c GUEST        (the guest receives)
#   guest->host  iperf3 -c GUEST -R     (the guest sends)
# taking the receiver's Mbit/s. VMMs take turns, REPS (default 3) boots
# each; per test it also counts VM exits (kvm:kvm_exit) and the VMM's CPU
# time. BACKENDS="user tap" picks the backends. Never fails on a number.
#
# A test in which the guest stops moving data (a second with 0 bytes, or
# no end) is reported as stalled and left out of the medians, with a count
# per VMM: in the nested lab, guests under sustained network load
# sometimes hang with interrupts off, under QEMU as under vmlet - a fault
# of TCG's emulated SVM, not of either VMM (tests/lab/README.md).
HERE=$(cd "$(dirname "$0")" && pwd)
LABLIB=${LABLIB:-$HERE/../tests/lab}
# tap0, its address and the port forward live in a network namespace of
# this script's own.
# shellcheck source=../tests/lab/netns.sh
. "$LABLIB/netns.sh"
own_netns "$0" "$@"
# shellcheck source=../tests/lab/vmm.sh
. "$LABLIB/vmm.sh"

SECONDS_EACH=${1:-10}
REPS=${2:-3}
VMMS=${VMMS:-vmlet qemu}
BACKENDS=${BACKENDS:-user tap}
LOGDIR=${LOGDIR:-/tmp/lab-logs}
INITRD=${IPERF_INITRD:-/lab/l2-iperf.img}
READY_TIMEOUT=${READY_TIMEOUT:-180}
export INITRD
mkdir -p "$LOGDIR"
RESULTS=$LOGDIR/net.results
STALLS=$LOGDIR/net.stalls
: >"$RESULTS"
: >"$STALLS"
# Beside the exits, per direction: MSR accesses (0x80b: x2APIC EOI, 0x6e0:
# TSC deadline) and interrupts the guest's LAPIC took, by vector.
XTRACE="kvm_msr:ecx.hex,write kvm_apic_accept_irq:vec"
. "$HERE/common.sh"

for vmm in $VMMS; do
    if [ "$vmm" = vmlet ] && [ ! -x "$VMLET" ]; then
        echo "# no vmlet binary at $VMLET: leaving it out"
        VMMS=$(echo "$VMMS" | sed 's/vmlet//')
    fi
done

ip link set lo up
case " $BACKENDS " in
*" tap "*)
    ip link delete tap0 2>/dev/null
    if ! { tunctl -t tap0 >/dev/null && ip addr add 192.168.100.1/24 dev tap0 &&
           ip link set tap0 up; }; then
        echo "# could not make tap0: leaving the tap backend out"
        BACKENDS=$(echo "$BACKENDS" | sed 's/tap//')
    fi ;;
esac
echo "# net bench: iperf3 TCP, ${SECONDS_EACH} s each way, 1 vCPU guest; backends: $BACKENDS"

# mbits FILE: the receiver's Mbit/s from an iperf3 client's output.
mbits() { awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") v = $i } END { print v }' "$1"; }

rep=1
while [ "$rep" -le "$REPS" ]; do
    for be in $BACKENDS; do
        for vmm in $VMMS; do
            log=$LOGDIR/net-$vmm-$be-$rep.log
            case $be in
            user) VMM_NET=user,hostfwd=tcp:127.0.0.1:5201-:5201; target=127.0.0.1; extra= ;;
            tap) VMM_NET=tap=tap0; target=192.168.100.2; extra=vmlet.ip=192.168.100.2/24 ;;
            esac
            exits_arm
            vmm_start "$vmm" "$log" 1 512M "console=ttyS0 quiet panic=-1 vmlet.bench=iperf $extra"
            VMM_NET=
            if ! wait_line VMLET-IPERF-READY "$READY_TIMEOUT"; then
                echo "# run $rep $vmm $be: the guest's iperf3 server never came up (see $log)"
                console | tail -n 20 | sed 's/^/#   /'
                stop_vmm 0
                exits_disarm
                continue
            fi
            for dir in h2g g2h; do
                flag=
                [ "$dir" = g2h ] && flag=-R
                out=$log.$dir
                exits_snap "$log.$dir.before"
                c0=$(cpu_ticks)
                # -c retries: the port forward (user) needs the guest's
                # server listening, which READY says it is.
                timeout $((SECONDS_EACH + 30)) iperf3 -c "$target" -t "$SECONDS_EACH" -f m $flag \
                    >"$out" 2>&1
                c1=$(cpu_ticks)
                exits_snap "$log.$dir.after"
                exits=$(exits_diff "$log.$dir.before" "$log.$dir.after" "$log.$dir.exits")
                xtrace_diff "$log.$dir.before" "$log.$dir.after" >"$log.$dir.xtrace"
                rm -f "$log.$dir.before" "$log.$dir.after"
                m=$(mbits "$out")
                # A second with nothing moved, or no end: the guest hung.
                # In the nested lab this happens to both VMMs under load
                # (the guest spins with interrupts off; TCG's emulated SVM),
                # so such a test is counted apart, not averaged in, and
                # the boot is over.
                if [ -z "$m" ] || grep -q ' 0.00 Bytes ' "$out"; then
                    echo "# run $rep $vmm $be $dir: STALLED (${m:-no result} Mbit/s; the guest stopped moving data)"
                    echo "$vmm $be-$dir stalled" >>"$STALLS"
                    break
                fi
                cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (b - a) / 100 }')
                echo "# run $rep $vmm $be $dir: $m Mbit/s, $exits exits, VMM CPU $cpu s"
                sed "s/^/#   $vmm $be $dir /" "$log.$dir.xtrace"
                echo "$vmm $be-$dir $m - - ${exits:--} $cpu" >>"$RESULTS"
            done
            vmm_send quit
            stop_vmm 30
            exits_disarm
        done
    done
    rep=$((rep + 1))
done
ip link delete tap0 2>/dev/null

# per_mb VMM TEST: VM exits per megabyte moved.
per_mb() {
    awk -v e="$(median "$1" "$2" 6)" -v m="$(median "$1" "$2" 3)" -v t="$SECONDS_EACH" \
        'BEGIN { if (e == "-" || m == "-" || m == 0) print "-"; else printf "%.1f\n", e / (m * t / 8) }'
}
echo
echo "# iperf3 TCP, ${SECONDS_EACH} s each way, median of $REPS run(s); Mbit/s, higher is better"
echo "# (medians; min-max over the runs after them)"
printf '%-20s %10s %10s %8s   %11s %11s   %9s %9s   %s\n' test vmlet qemu vmlet/qemu "exits/MB vm" "exits/MB qe" \
    "CPU s vm" "CPU s qe" "vmlet min-max, qemu min-max"
for be in $BACKENDS; do
    for dir in h2g g2h; do
        t=$be-$dir
        case $dir in h2g) label="$be host->guest" ;; g2h) label="$be guest->host" ;; esac
        a=$(median vmlet "$t" 3)
        b=$(median qemu "$t" 3)
        printf '%-20s %10s %10s %8s   %11s %11s   %9s %9s   %s, %s\n' "$label" "$a" "$b" "$(ratio "$a" "$b")" \
            "$(per_mb vmlet "$t")" "$(per_mb qemu "$t")" "$(median vmlet "$t" 7)" "$(median qemu "$t" 7)" \
            "$(spread vmlet "$t" 3)" "$(spread qemu "$t" 3)"
    done
done
if [ -s "$STALLS" ]; then
    echo "# stalled tests, left out of the medians above (a hung guest; the nested"
    echo "# lab does this to both VMMs under network load):"
    sort "$STALLS" | uniq -c | awk '{ printf "#   %-6s %-10s %d\n", $2, $3, $1 }'
else
    echo "# no test stalled"
fi
echo
echo "# VM exits by reason (last run):"
for be in $BACKENDS; do
    for dir in h2g g2h; do
        for vmm in $VMMS; do
            exits_line "$be-$dir" "$vmm" "$LOGDIR/net-$vmm-$be-$REPS.log.$dir.exits" 9
        done
    done
done
echo
echo "# exits/MB = VM exits while the test ran / megabytes moved. CPU s = the VMM"
echo "# process's CPU time during the test (its vCPU thread's includes guest time)."
echo "# Nested lab: absolute numbers are TCG numbers; compare the columns."
