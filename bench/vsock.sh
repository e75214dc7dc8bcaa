#!/bin/sh
# vsock benchmark, run where /dev/kvm is real: inside the L1 lab VM
# (bench/vsock starts it) or on a host with hardware KVM. POSIX sh.
#
#   bench/vsock.sh [SECONDS] [REPS]
#
# Each VMM boots the same guest (1 vCPU, 512 MiB, a virtio-vsock device,
# guest CID 3; its initramfs, lab/l2-vsock.img, runs `vsockperf server
# 5201`):
#   vmlet  --vsock cid=3,uds=PATH: this side connects to the Unix socket
#          PATH and does the hybrid-vsock handshake (CONNECT 5201)
#   qemu   -M pc, -device vhost-vsock-pci,guest-cid=3: this side connects
#          with AF_VSOCK to 3:5201; the datapath is the host kernel's
#          vhost worker (a kernel thread "vhost-PID"), not QEMU
# and vsockperf here runs, for SECONDS (default 10) each:
#   to-guest-1, to-guest-8      1 and 8 streams writing to the guest
#   from-guest-1, from-guest-8  1 and 8 streams the guest writes
#   connrate                    connect + 1-byte echo + close, one at a time
# VMMs take turns, REPS (default 3) boots each; per test it also counts VM
# exits (kvm:kvm_exit), MSR accesses and interrupts by vector, and the
# VMM's CPU time, for QEMU with its vhost worker's. VMMS="vmlet qemu" picks the VMMs. Never fails on a number: a
# test that fails (an error, a stall: vsockperf's 30 s timeout) is reported
# and left out of the medians, and that boot's remaining tests are skipped.
HERE=$(cd "$(dirname "$0")" && pwd)
LABLIB=${LABLIB:-$HERE/../tests/lab}
# shellcheck source=../tests/lab/vmm.sh
. "$LABLIB/vmm.sh"

SECONDS_EACH=${1:-10}
REPS=${2:-3}
VMMS=${VMMS:-vmlet qemu}
LOGDIR=${LOGDIR:-/tmp/lab-logs}
INITRD=${VSOCK_INITRD:-/lab/l2-vsock.img}
VSOCKPERF=${VSOCKPERF:-vsockperf}
READY_TIMEOUT=${READY_TIMEOUT:-180}
PORT=5201
CID=3
TESTS="to-guest-1 to-guest-8 from-guest-1 from-guest-8 connrate"
# Beside the exits, per test: MSR accesses (0x80b: x2APIC EOI, 0x6e0:
# TSC deadline) and interrupts the guest's LAPIC took, by vector.
XTRACE="kvm_msr:ecx.hex,write kvm_apic_accept_irq:vec"
export INITRD
mkdir -p "$LOGDIR"
RESULTS=$LOGDIR/vsock.results
FAILS=$LOGDIR/vsock.fails
: >"$RESULTS"
: >"$FAILS"
. "$HERE/common.sh"
sockdir=${TMPDIR:-/tmp}/vsock-bench.$$
mkdir -p "$sockdir"

if ! command -v "$VSOCKPERF" >/dev/null; then
    echo "# no vsockperf ($VSOCKPERF): nothing to measure with (build/vsockperf, scripts/lab-images)"
    exit 0
fi
for vmm in $VMMS; do
    if [ "$vmm" = vmlet ] && [ ! -x "$VMLET" ]; then
        echo "# no vmlet binary at $VMLET: leaving it out"
        VMMS=$(echo "$VMMS" | sed 's/vmlet//')
    fi
    if [ "$vmm" = qemu ] && [ ! -c /dev/vhost-vsock ]; then
        echo "# no /dev/vhost-vsock (is vhost_vsock loaded? $(grep -c vhost_vsock /proc/modules) in /proc/modules): leaving QEMU out"
        VMMS=$(echo "$VMMS" | sed 's/qemu//')
    fi
done
# shellcheck disable=SC2086 # the list, its spaces squeezed
echo "# vsock bench: vsockperf, ${SECONDS_EACH} s per test, 1 vCPU guest; VMMs:" $VMMS

# vmm_cpu: sets VMM_TICKS to the VMM's CPU time in clock ticks (cpu_ticks) plus
# that of its vhost workers, kernel threads named vhost-PID whose time is
# not the process's (QEMU's vhost-vsock datapath runs there), and
# VHOST_TICKS to the workers' part (empty: no worker), GUEST_TICKS to the
# guest's part (the process's guest time, field 43 of its stat: what KVM
# accounts while a vCPU thread runs the guest).
vmm_cpu() {
    VMM_TICKS=$(cpu_ticks)
    GUEST_TICKS=$(awk '{ print $43 }' "/proc/$VMM_PID/stat" 2>/dev/null || echo 0)
    VHOST_TICKS=
    for d in /proc/[0-9]*; do
        [ "$(cat "$d/comm" 2>/dev/null)" = "vhost-$VMM_PID" ] || continue
        v=$(awk '{ print $14 + $15 }' "$d/stat" 2>/dev/null || echo 0)
        VHOST_TICKS=$((${VHOST_TICKS:-0} + v))
        VMM_TICKS=$((VMM_TICKS + v))
    done
}

# result KEY FILE: KEY's value on vsockperf's RESULT line in FILE.
result() { sed -n "s/^RESULT .*[ ]$1=\([^ ]*\).*/\1/p" "$2" | tail -n 1; }

# The guest's server starts in the background as READY is printed: try a
# short connrate until one works (at most 30 s).
wait_server() {
    i=0
    while [ $i -lt 30 ]; do
        # shellcheck disable=SC2086 # $target is options
        timeout 20 "$VSOCKPERF" client $target --port $PORT --test connrate --seconds 0.01 \
            --timeout 10 >"$1" 2>&1 && return 0
        vmm_exited && return 1
        sleep 1
        i=$((i + 1))
    done
    return 1
}

rep=1
while [ "$rep" -le "$REPS" ]; do
    for vmm in $VMMS; do
        log=$LOGDIR/vsock-$vmm-$rep.log
        uds=$sockdir/v.sock
        rm -f "$uds"
        case $vmm in
        vmlet) target="--uds $uds" ;;
        *) target="--vsock $CID" ;;
        esac
        VMM_VSOCK=cid=$CID,uds=$uds
        exits_arm
        vmm_start "$vmm" "$log" 1 512M "console=ttyS0 quiet panic=-1 vmlet.bench=vsock"
        VMM_VSOCK=
        if ! wait_line VMLET-VSOCK-BENCH-READY "$READY_TIMEOUT" || ! wait_server "$log.probe"; then
            echo "# run $rep $vmm: the guest's vsockperf server never answered (see $log)"
            console | tail -n 20 | sed 's/^/#   /'
            sed 's/^/#   probe: /' "$log.probe" 2>/dev/null | tail -n 3
            echo "$vmm boot failed" >>"$FAILS"
            vmm_send quit
            stop_vmm 20
            exits_disarm
            continue
        fi
        for t in $TESTS; do
            case $t in
            connrate) args="--test connrate" ;;
            *) args="--test ${t%-*} --streams ${t##*-}" ;;
            esac
            out=$log.$t
            exits_snap "$log.$t.before"
            vmm_cpu
            c0=$VMM_TICKS v0=${VHOST_TICKS:-0} g0=$GUEST_TICKS
            # shellcheck disable=SC2086 # $target and $args are options
            timeout $((SECONDS_EACH + 90)) "$VSOCKPERF" client $target --port $PORT $args \
                --seconds "$SECONDS_EACH" --timeout 30 >"$out" 2>&1
            rc=$?
            vmm_cpu
            c1=$VMM_TICKS v1=${VHOST_TICKS:-0} g1=$GUEST_TICKS
            exits_snap "$log.$t.after"
            exits=$(exits_diff "$log.$t.before" "$log.$t.after" "$log.$t.exits")
            xtrace_diff "$log.$t.before" "$log.$t.after" >"$log.$t.xtrace"
            rm -f "$log.$t.before" "$log.$t.after"
            cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (b - a) / 100 }')
            gcpu=$(awk -v a="$g0" -v b="$g1" 'BEGIN { printf "%.1f", (b - a) / 100 }')
            vhost=
            [ "$vmm" = vmlet ] || vhost=" (vhost worker $(awk -v a="$v0" -v b="$v1" 'BEGIN { printf "%.1f", (b - a) / 100 }') s)"
            ccpu=$(result client_cpu_s "$out")
            if [ "$rc" != 0 ] || ! grep -q '^RESULT ' "$out"; then
                # A failed or stalled test: reported apart, and the boot is
                # over (a hung guest would fail every test after it too).
                echo "# run $rep $vmm $t: FAILED (exit $rc): $(tail -n 1 "$out")"
                echo "$vmm $t failed" >>"$FAILS"
                break
            fi
            if [ "$t" = connrate ]; then
                value=$(result per_s "$out")
                amount=$(result conns "$out")
                unit=conn/s
            else
                value=$(result mb_per_s "$out")
                amount=$(awk -v b="$(result bytes "$out")" 'BEGIN { printf "%.1f", b / 1e6 }')
                unit=MB/s
            fi
            # exits per MB moved, or per connection for connrate
            per=$(awk -v e="${exits:--}" -v a="$amount" \
                'BEGIN { if (e == "-" || a == 0) print "-"; else printf "%.1f", e / a }')
            echo "# run $rep $vmm $t: $value $unit, $exits exits ($per per $([ "$t" = connrate ] && echo conn || echo MB)), VMM CPU $cpu s$vhost of which guest $gcpu s, client CPU ${ccpu:--} s"
            sed "s/^/#   $vmm $t /" "$log.$t.xtrace"
            echo "$vmm $t $value $amount $per ${exits:--} $cpu ${ccpu:--} $gcpu" >>"$RESULTS"
        done
        vmm_send quit
        stop_vmm 30
        exits_disarm
    done
    rep=$((rep + 1))
done
rm -rf "$sockdir"

# Fields of RESULTS: 1 VMM, 2 test, 3 MB/s or conn/s, 4 MB or connections,
# 5 exits per MB or per connection, 6 exits, 7 VMM CPU s, 8 client CPU s,
# 9 the guest's part of 7.
echo
echo "# vsockperf, ${SECONDS_EACH} s per test, median of $REPS run(s); higher is better"
echo "# (MB/s, 1 MB = 10^6 bytes; connrate: connections/s, exits per connection)"
printf '%-22s %9s %9s %8s   %11s %9s   %8s %8s   %8s %8s   %9s %8s\n' test vmlet qemu vmlet/qemu \
    "exits/MB vm" "qe" "CPU s vm" "qe" "guest vm" "qe" "client vm" "qe"
for t in $TESTS; do
    case $t in
    to-guest-1) label="host->guest 1 stream" ;;
    to-guest-8) label="host->guest 8 streams" ;;
    from-guest-1) label="guest->host 1 stream" ;;
    from-guest-8) label="guest->host 8 streams" ;;
    connrate) label="connect+echo+close" ;;
    esac
    a=$(median vmlet "$t" 3)
    b=$(median qemu "$t" 3)
    printf '%-22s %9s %9s %8s   %11s %9s   %8s %8s   %8s %8s   %9s %8s\n' "$label" "$a" "$b" "$(ratio "$a" "$b")" \
        "$(median vmlet "$t" 5)" "$(median qemu "$t" 5)" "$(median vmlet "$t" 7)" \
        "$(median qemu "$t" 7)" "$(median vmlet "$t" 9)" "$(median qemu "$t" 9)" \
        "$(median vmlet "$t" 8)" "$(median qemu "$t" 8)"
done
if [ -s "$FAILS" ]; then
    echo "# failed tests, left out of the medians above (errors, or a guest that"
    echo "# stopped moving data for 30 s; the boot's later tests were skipped):"
    sort "$FAILS" | uniq -c | awk '{ printf "#   %-6s %-13s %d\n", $2, $3, $1 }'
else
    echo "# no test failed"
fi
echo
echo "# VM exits by reason (last run):"
for t in $TESTS; do
    for vmm in $VMMS; do
        exits_line "$t" "$vmm" "$LOGDIR/vsock-$vmm-$REPS.log.$t.exits" 13
    done
done
echo
echo "# exits/MB = VM exits while the test ran / megabytes moved (connrate: per"
echo "# connection). CPU s vm = the VMM process's CPU time during the test (its"
echo "# vCPU thread's includes guest time), for QEMU plus its vhost-vsock kernel"
echo "# worker's; guest = the part of that the guest ran (KVM's guest time); client"
echo "# = vsockperf's own (a Unix socket for vmlet, AF_VSOCK for QEMU). Nested lab:"
echo "# absolute numbers are TCG numbers; compare the columns."
