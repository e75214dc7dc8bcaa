#!/bin/sh
# Disk benchmark, run where /dev/kvm is real: inside the L1 lab VM
# (bench/disk starts it) or on a host with hardware KVM. POSIX sh.
#
#   bench/disk.sh [RUNTIME] [REPS]
#
# Each VMM boots the same guest (1 vCPU, 512 MiB; its initramfs has fio
# from Debian) with the same raw image file as its only disk (vda), and
# the guest runs fio jobs on /dev/vda one after another, each RUNTIME
# seconds (default 10), O_DIRECT with libaio:
#   seqread, seqwrite    1 MiB, queue depth 16          -> MB/s
#   randread, randwrite  4 KiB, queue depth 32          -> IOPS
#   randread1            4 KiB, queue depth 1 (latency) -> IOPS
# (JOBS="..." picks others of these; VMMS="vmlet-b vmlet-c vmlet qemu"
# adds other vmlet binaries, VMLET_B and VMLET_C, default
# /usr/bin/vmlet-b, -c: baseline builds in the same run.) VMMs take turns,
# REPS (default 3)
# boots each. Per job it also counts VM exits (kvm:kvm_exit, from a hist
# trigger: its counts before and after the job), MSR writes and LAPIC
# interrupts by vector (XTRACE, bench/common.sh; XTRACE= turns them off)
# and the VMM's CPU time, and prints them per I/O.
#
# The image is a file in L1's tmpfs, filled before the first boot. Both
# VMMs go through the host page cache: vmlet opens the file normally and
# uses io_uring; QEMU gets -drive cache=writeback,aio=io_uring (override
# with QEMU_DRIVE_OPTS), its defaults otherwise (1 queue with 1 vCPU, the
# block layer in its main loop, no iothread). Never fails on a number.
HERE=$(cd "$(dirname "$0")" && pwd)
LABLIB=${LABLIB:-$HERE/../tests/lab}
# shellcheck source=../tests/lab/vmm.sh
. "$LABLIB/vmm.sh"

RUNTIME=${1:-10}
REPS=${2:-3}
VMMS=${VMMS:-vmlet qemu}
JOBS=${JOBS:-seqread seqwrite randread randwrite randread1}
LOGDIR=${LOGDIR:-/tmp/lab-logs}
DISKDIR=${DISKDIR:-/tmp}
IMG_MB=${IMG_MB:-512}
INITRD=${FIO_INITRD:-/lab/l2-fio.img}
QEMU_DRIVE_OPTS=${QEMU_DRIVE_OPTS:-cache=writeback,aio=io_uring}
READY_TIMEOUT=${READY_TIMEOUT:-180}
CMDLINE="console=ttyS0 quiet panic=-1 vmlet.test=fio vmlet.fio_runtime=$RUNTIME"
export INITRD QEMU_DRIVE_OPTS
mkdir -p "$LOGDIR" "$DISKDIR"
# Beside the exits, per job: MSR accesses (0x80b: x2APIC EOI, 0x6e0: TSC
# deadline, 0x830: ICR) and interrupts the guest's LAPIC took, by vector.
XTRACE=${XTRACE-"kvm_msr:ecx.hex,write kvm_apic_accept_irq:vec"}
. "$HERE/common.sh"

# The numbers of one job from fio's terse (v3) line: read jobs use the
# read fields (7 bandwidth KiB/s, 8 IOPS, 16 completion latency mean us),
# write jobs the write ones (48, 49, 57).
job_fields() {
    case $1 in
    *write*) awk -F';' '$1 == 3 { print $48, $49, $57 }' ;;
    *) awk -F';' '$1 == 3 { print $7, $8, $16 }' ;;
    esac
}

VMLET_A=$VMLET
VMLET_B=${VMLET_B:-/usr/bin/vmlet-b}
VMLET_C=${VMLET_C:-/usr/bin/vmlet-c}
for vmm in $VMMS; do
    if [ "$vmm" = vmlet ] && [ ! -x "$VMLET" ]; then
        echo "# no vmlet binary at $VMLET: leaving it out"
        VMMS=$(echo "$VMMS" | tr ' ' '\n' | grep -vx vmlet | tr '\n' ' ')
    fi
    if { [ "$vmm" = vmlet-b ] && [ ! -x "$VMLET_B" ]; } || { [ "$vmm" = vmlet-c ] && [ ! -x "$VMLET_C" ]; }; then
        echo "# no baseline binary for $vmm: leaving it out"
        VMMS=$(echo "$VMMS" | tr ' ' '\n' | grep -vx "$vmm" | tr '\n' ' ')
    fi
done
RESULTS=$LOGDIR/disk.results
: >"$RESULTS"

IMG=$DISKDIR/bench-disk.img
echo "# disk bench: ${IMG_MB} MiB raw image in $(df -P "$DISKDIR" | awk 'NR == 2 { print $1 }') ($DISKDIR)," \
     "fio ${RUNTIME} s a job, O_DIRECT + libaio in the guest; qemu -drive $QEMU_DRIVE_OPTS"
# Filled once (tmpfs pages allocated), so no VMM pays for first writes.
dd if=/dev/zero of="$IMG" bs=1M count="$IMG_MB" 2>/dev/null

rep=1
while [ "$rep" -le "$REPS" ]; do
    for vmm in $VMMS; do
        log=$LOGDIR/disk-$vmm-$rep.log
        read -r t0 _ </proc/uptime
        VMM_DISKS=$IMG
        exits_arm
        # vmlet-b and -c are vmlet, other binaries.
        kind=$vmm VMLET=$VMLET_A
        [ "$vmm" = vmlet-b ] && kind=vmlet VMLET=$VMLET_B
        [ "$vmm" = vmlet-c ] && kind=vmlet VMLET=$VMLET_C
        vmm_start "$kind" "$log" 1 512M "$CMDLINE"
        VMM_DISKS=
        if ! wait_line VMLET-FIO-READY "$READY_TIMEOUT"; then
            echo "# run $rep $vmm: the guest never got to fio (see $log)"
            console | tail -n 20 | sed 's/^/#   /'
            stop_vmm 0
            exits_disarm
            continue
        fi
        read -r t1 _ </proc/uptime
        echo "# run $rep $vmm: fio ready $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after start"
        for job in $JOBS; do
            exits_snap "$log.$job.before"
            c0=$(cpu_ticks)
            vmm_send "run $job"
            wait_line "VMLET-FIO-FINISHED $job" $((RUNTIME + 120))
            st=$?
            c1=$(cpu_ticks)
            exits_snap "$log.$job.after"
            exits=$(exits_diff "$log.$job.before" "$log.$job.after" "$log.$job.exits")
            xtrace_diff "$log.$job.before" "$log.$job.after" >"$log.$job.xtrace"
            rm -f "$log.$job.before" "$log.$job.after"
            vmm_send "result $job"
            [ "$st" = 0 ] && wait_line "VMLET-FIO-DONE $job" 60
            line=$(console | grep -a "^VMLET-FIO-RESULT $job " | tail -n 1 | sed "s/^VMLET-FIO-RESULT $job //")
            # shellcheck disable=SC2046 # one word per field, on purpose
            set -- $(echo "$line" | job_fields "$job")
            if [ "$st" != 0 ] || [ $# != 3 ]; then
                echo "# run $rep $vmm $job: no result (status $st): $(echo "$line" | cut -c1-200)"
                continue
            fi
            cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (b - a) / 100 }')
            echo "# run $rep $vmm $job: $1 KiB/s, $2 IOPS, clat $3 us, $exits exits, VMM CPU $cpu s"
            sed "s/^/#   $vmm $job /" "$log.$job.xtrace"
            echo "$vmm $job $1 $2 $3 ${exits:--} $cpu" >>"$RESULTS"
        done
        vmm_send quit
        stop_vmm 60
        exits_disarm
    done
    rep=$((rep + 1))
done
rm -f "$IMG"

# value VMM JOB UNIT: the job's median in MB/s (10^6 bytes) or IOPS.
value() {
    if [ "$3" = MB/s ]; then
        awk -v k="$(median "$1" "$2" 3)" 'BEGIN { if (k == "-") print "-"; else printf "%.1f\n", k * 1024 / 1e6 }'
    else
        awk -v k="$(median "$1" "$2" 4)" 'BEGIN { if (k == "-") print "-"; else printf "%.0f\n", k }'
    fi
}
# per_io VMM JOB: VM exits per I/O (exits / (IOPS * runtime)).
per_io() {
    awk -v e="$(median "$1" "$2" 6)" -v i="$(median "$1" "$2" 4)" -v t="$RUNTIME" \
        'BEGIN { if (e == "-" || i == "-" || i == 0) print "-"; else printf "%.2f\n", e / (i * t) }'
}

# per_io_breakdown EXITS XTRACE IOS: one line, each count divided by IOS:
# the top exit reasons, then the MSRs written (x2APIC: 0x80b EOI, 0x830
# ICR, 0x6e0 TSC deadline) and the interrupt vectors taken.
per_io_breakdown() {
    exits_top "$1" | awk -v n="$3" '{ for (i = 1; i < NF; i += 2) printf " %s %.2f", $i, $(i + 1) / n }'
    awk -v n="$3" '
        /^kvm_msr:/ { sub(/^kvm_msr: */, ""); k = split($0, e, ";"); printf " | msr"
                      for (i = 1; i <= k; i++) if (e[i] ~ /write: 1/) {
                          split(e[i], w, " "); r = e[i]; sub(/.*ecx: */, "", r); sub(/,.*/, "", r)
                          printf " %s %.2f", r, w[1] / n } }
        /^kvm_apic_accept_irq:/ { sub(/^kvm_apic_accept_irq: */, ""); k = split($0, e, ";"); printf " | irq"
                      for (i = 1; i <= k; i++) if (e[i] ~ /vec/) {
                          split(e[i], w, " "); r = e[i]; sub(/.*vec: */, "", r); sub(/\].*/, "", r)
                          printf " v%s %.2f", r, w[1] / n } }' "$2" 2>/dev/null
    echo
}

echo
# table A B: per job, A's and B's medians, A/B, exits per I/O and CPU s.
table() {
    printf '%-24s %10s %10s %13s   %16s %16s   %13s %13s\n' test "$1" "$2" "$1/$2" "exits/IO $1" "exits/IO $2" "CPU s $1" "CPU s $2"
    for job in $JOBS; do
        case $job in
        seqread) label="seq read 1M QD16"; unit=MB/s ;;
        seqwrite) label="seq write 1M QD16"; unit=MB/s ;;
        randread) label="rand read 4K QD32"; unit=IOPS ;;
        randwrite) label="rand write 4K QD32"; unit=IOPS ;;
        randread1) label="rand read 4K QD1"; unit=IOPS ;;
        *) label=$job; unit=IOPS ;;
        esac
        a=$(value "$1" "$job" "$unit")
        b=$(value "$2" "$job" "$unit")
        printf '%-24s %10s %10s %13s   %16s %16s   %13s %13s\n' "$label ($unit)" "$a" "$b" "$(ratio "$a" "$b")" \
            "$(per_io "$1" "$job")" "$(per_io "$2" "$job")" "$(median "$1" "$job" 7)" "$(median "$2" "$job" 7)"
    done
}
echo "# fio in the guest, ${RUNTIME} s a job, median of $REPS run(s); higher is better except exits/IO"
table vmlet qemu
for old in vmlet-b vmlet-c; do   # not b: table() sets a and b
    case " $VMMS " in
    *" $old "*)
        echo "# a baseline build ($old) in the same run:"
        table "$old" qemu
        table vmlet "$old" ;;
    esac
done
# Where the exits go: the top reasons per job in each VMM's last run (SVM
# exit codes, named for the common ones; npf = nested page fault: MMIO,
# such as a virtqueue notify, or a first touch of guest memory).
echo
echo "# VM exits by reason (last run):"
for job in $JOBS; do
    for vmm in $VMMS; do
        exits_line "$job" "$vmm" "$LOGDIR/disk-$vmm-$REPS.log.$job.exits" 10
    done
done
# The same per I/O, with the MSR accesses and interrupts (XTRACE): what
# each exit is for.
if [ -n "$XTRACE" ]; then
    echo
    echo "# Per I/O (last run): exits by reason; MSR writes by register; interrupts by vector:"
    for job in $JOBS; do
        for vmm in $VMMS; do
            f=$LOGDIR/disk-$vmm-$REPS.log.$job
            ios=$(awk -v v="$vmm" -v j="$job" -v t="$RUNTIME" '$1 == v && $2 == j { n = $4 * t } END { print n + 0 }' "$RESULTS")
            if [ ! -s "$f.exits" ] || [ "$ios" = 0 ]; then continue; fi
            printf '#   %-10s %-6s' "$job" "$vmm"
            per_io_breakdown "$f.exits" "$f.xtrace" "$ios"
        done
    done
fi
echo
echo "# MB/s = 10^6 bytes/s. exits/IO = VM exits while the job ran / I/Os it did."
echo "# CPU s = the VMM process's CPU time during the job (its vCPU thread's includes guest time)."
echo "# Nested lab: absolute numbers are TCG numbers; compare the columns."
