#!/bin/sh
# Shared-directory benchmark, run where /dev/kvm is real: inside the L1 lab
# VM (bench/fs starts it) or on a host with hardware KVM. POSIX sh.
#
#   bench/fs.sh [SIZE_MB] [RUNTIME] [FILES] [REPS]
#
# The same workloads (bench/fsjobs.sh: fio sequential 1 MiB write and read
# of a SIZE_MB file, default 512; fio 4 KiB random reads for RUNTIME s,
# default 10; create, stat and unlink FILES small files, default 10000;
# unpack a tarball of a source tree) three ways:
#   host   natively here, in a directory of the file system that holds the
#          share and the disk image (WORKDIR, default /tmp: in L1 a tmpfs)
#   share  in one vmlet guest (1 vCPU, 768 MiB, lab/l2-fsbench.img) on
#          /mnt/share: --share WORKDIR/share,tag=bench (virtio-fs)
#   blk    in the same guest on /mnt/blk: ext4 (made here with mke2fs) on
#          --disk WORKDIR/blk.ext4 (virtio-blk), what a user without shares
#          does
#   cached with FSB_CACHED=1: in the same guest on /mnt/cached, a second
#          share with cache=always (WORKDIR/cached,tag=benchc)
# host first, then the guest: REPS rounds (default 1; medians) of all
# share jobs, then the cached ones, then all blk jobs. Per guest job it counts VM exits
# (kvm:kvm_exit) and vmlet's CPU time. Prints a table with the ratios
# share/blk and share/host and the issue's targets. Never fails on a number.
# FSB_JOBS="a,b": only these jobs (default all). FSB_TRACE=S (default 0,
# off): every S seconds of a share job, a line in LOGDIR/fs.trace with the
# share's requests by opcode (GET /metrics on vmlet's control socket) and
# the CPU ticks of each vmlet thread (virtio-fs, vcpu0, ...), so that a
# job's phases and how their cost changes as it goes can be told apart.
# QEMU is not measured: Debian's cloud kernel has no 9p and Debian 12 no
# virtiofsd, so QEMU has no comparable shared directory here.
HERE=$(cd "$(dirname "$0")" && pwd)
LABLIB=${LABLIB:-$HERE/../tests/lab}
# shellcheck source=../tests/lab/vmm.sh
. "$LABLIB/vmm.sh"

FSB_SIZE_MB=${1:-512}
FSB_RUNTIME=${2:-10}
FSB_FILES=${3:-10000}
REPS=${4:-1}
FSB_FILE_BYTES=${FSB_FILE_BYTES:-1024}
FSB_TAR=${FSB_TAR:-/lab/fsbench-tree.tar}
LOGDIR=${LOGDIR:-/tmp/lab-logs}
WORKDIR=${WORKDIR:-/tmp}/fsbench.$$
INITRD=${FSBENCH_INITRD:-/lab/l2-fsbench.img}
READY_TIMEOUT=${READY_TIMEOUT:-300}
GUEST_MEM=${GUEST_MEM:-768M}
JOBS="seqwrite seqread randread meta untar"
[ -n "${FSB_JOBS:-}" ] && JOBS=$(echo "$FSB_JOBS" | tr , ' ')
FSB_TRACE=${FSB_TRACE:-0}
FSB_CACHED=${FSB_CACHED:-0}
GUEST_TARGETS="share blk"
[ "$FSB_CACHED" = 1 ] && GUEST_TARGETS="share cached blk"
# clean (not timed) frees the fio file before the metadata jobs, and the
# tree after them: L1's memory holds all of it.
RUN=
for job in seqwrite seqread randread clean meta untar; do
    case " $JOBS clean " in *" $job "*) RUN="$RUN $job" ;; esac
done
RUN="$RUN clean"
export INITRD FSB_SIZE_MB FSB_RUNTIME FSB_FILES FSB_FILE_BYTES FSB_TAR
mkdir -p "$LOGDIR"
RESULTS=$LOGDIR/fs.results
: >"$RESULTS"
. "$HERE/common.sh"
. "$HERE/fsjobs.sh"

# kv KEY LINE: KEY's value in a "key=value ..." line ("-" if none).
kv() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | tail -n 1 | grep . || echo -; }
mb() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f\n", k * 1024 / 1e6 }'; }
# The guest's part of vmlet's CPU time (field 43 of its stat: what KVM
# accounts while a vCPU thread runs the guest), in clock ticks.
guest_ticks() { awk '{ print $43 }' "/proc/$VMM_PID/stat" 2>/dev/null || echo 0; }
per_s() { awk -v n="$1" -v s="$2" 'BEGIN { if (s == "-" || s <= 0) print "-"; else printf "%.0f\n", n / s }'; }

# record WHERE JOB LINE EXITS CPU: one RESULTS line per job, fields
#   1 where  2 job  3 the job's number (MB/s, IOPS, files/s)  4 seconds
#   5 exits  6 vmlet CPU s  7 create/s  8 stat/s  9 unlink/s
#   10 the guest's part of 6 (s)
record() {
    where=$1 job=$2 line=$3
    c=- s=- u=-
    case $job in
    seqwrite|seqread) v=$(mb "$(kv kib_s "$line")") t=$(kv ms "$line") ;;
    randread) v=$(kv iops "$line") t=$(kv ms "$line") ;;
    meta)
        t=$(kv total_s "$line")
        v=$(per_s "$FSB_FILES" "$t")
        c=$(per_s "$FSB_FILES" "$(kv create_s "$line")")
        s=$(per_s "$FSB_FILES" "$(kv stat_s "$line")")
        u=$(per_s "$FSB_FILES" "$(kv unlink_s "$line")")
        ;;
    untar) t=$(kv seconds "$line") v=$(per_s "$(kv files "$line")" "$t") ;;
    esac
    case $job in seqwrite|seqread|randread) [ "$t" = - ] || t=$(awk -v m="$t" 'BEGIN { printf "%.2f", m / 1000 }') ;; esac
    if [ "$v" = - ] || [ "$(kv error "$line")" != - ]; then
        echo "# $where $job: no result: $(echo "$line" | cut -c1-200)"
        return
    fi
    echo "$where $job $v $t $4 $5 $c $s $u $6" >>"$RESULTS"
}

# trace_loop TARGET JOB: until killed, every FSB_TRACE seconds one line
# "TARGET JOB t=SECONDS fs0's counters (non-zero) vmlet's threads' ticks".
trace_loop() {
    while :; do
        read -r up _ </proc/uptime
        m=$(curl -s -m 5 --unix-socket "$VMM_API_SOCK" http://localhost/metrics | tr -d ' \n' |
            sed -n 's/.*"fs0":{\([^}]*\)}.*/\1/p' | tr , '\n' | tr -d '"' | sed 's/:/=/' |
            grep -v '=0$' | tr '\n' ' ')
        # One awk for all threads: every process started here takes L1
        # CPU from the guest being measured.
        ticks=$(awk '{ gsub(/[()]/, "", $2); n[$2] += $14 + $15 }
                     END { for (k in n) printf "%s_ticks=%d ", k, n[k] }' /proc/"$VMM_PID"/task/*/stat 2>/dev/null)
        echo "$1 $2 t=$up $m$ticks guest_ticks=$(guest_ticks)" >>"$LOGDIR/fs.trace"
        sleep "$FSB_TRACE"
    done
}

# wait_count LINE N SECONDS: as wait_line, for a LINE the guest prints once
# a round: waits until the console holds it more than N times (N counted
# before the command, as the earlier rounds' are there already).
wait_count() {
    n0=$2
    deadline=$(($(secs) + $3))
    while :; do
        [ "$(console | grep -acxF -- "$1")" -gt "$n0" ] && return 0
        if vmm_exited; then
            [ "$(console | grep -acxF -- "$1")" -gt "$n0" ] && return 0
            return 1
        fi
        [ "$(secs)" -ge "$deadline" ] && return 2
        sleep 0.2
    done
}

fs_of() { echo "$(stat -f -c %T "$1") ($(df -P "$1" | awk 'NR == 2 { print $1 " on " $6 }'))"; }
mkdir -p "$WORKDIR/host" "$WORKDIR/share" "$WORKDIR/cached"
avail=$(df -Pm "$WORKDIR" | awk 'NR == 2 { print $4 }')
echo "# fs bench: WORKDIR $WORKDIR, file system $(fs_of "$WORKDIR"), ${avail} MiB free;" \
     "$(awk '/^MemTotal:/ { printf "%d MiB RAM", $2 / 1024 } /^MemAvailable:/ { printf ", %d MiB available", $2 / 1024 }' /proc/meminfo)"
echo "# fio file ${FSB_SIZE_MB} MiB (1 MiB psync, direct=0), random 4 KiB reads ${FSB_RUNTIME} s, ${FSB_FILES} files of ${FSB_FILE_BYTES} bytes," \
     "tarball $(basename "$FSB_TAR") ($(tar -tvf "$FSB_TAR" | grep -c '^-') files, $(($(wc -c <"$FSB_TAR") / 1048576)) MiB); $REPS round(s)"
echo "# QEMU is not compared: Debian's cloud kernel has no 9p and Debian 12 ships no virtiofsd,"
echo "# so QEMU has no comparable shared-directory path here."

# ---- host: the same jobs natively, in WORKDIR/host ----------------------
for job in $RUN; do
    line=$(fsjob "$job" "$WORKDIR/host")
    [ "$job" = clean ] && continue
    echo "# host $job: $line"
    record host "$job" "$line" - -
done
rm -rf "$WORKDIR/host"

# ---- the guest: the share and ext4 on a virtio disk -------------------
if [ ! -x "$VMLET" ]; then
    echo "# no vmlet binary at $VMLET: nothing more to measure"
else
    # The disk: room for the fio file and the tree at once, 256 MiB more.
    img=$WORKDIR/blk.ext4
    img_mb=$((FSB_SIZE_MB + 256))
    truncate -s "${img_mb}M" "$img"
    # Inode tables and journal written now, so the guest's ext4lazyinit
    # thread does not write them during the jobs.
    # e2fsprogs' mke2fs (in L1, busybox's is first in PATH and has no -t).
    mke2fs=mke2fs
    [ -x /usr/sbin/mke2fs ] && mke2fs=/usr/sbin/mke2fs
    if ! $mke2fs -q -F -t ext4 -E lazy_itable_init=0,lazy_journal_init=0 "$img" >"$LOGDIR/mke2fs.log" 2>&1; then
        echo "# mke2fs failed ($(tail -n 1 "$LOGDIR/mke2fs.log")): no blk numbers"
    fi
    echo "# blk: ext4 (mke2fs $($mke2fs -V 2>&1 | head -n 1 | awk '{ print $2 }')) in a ${img_mb} MiB image file, $(du -m "$img" | cut -f1) MiB allocated after mke2fs"
    log=$LOGDIR/fs-vmlet.log
    VMM_DISKS=$img
    VMM_SHARES=$WORKDIR/share,tag=bench
    [ "$FSB_CACHED" = 1 ] && VMM_SHARES="$VMM_SHARES $WORKDIR/cached,tag=benchc,cache=always"
    VMM_API_SOCK=
    if [ "$FSB_TRACE" -gt 0 ]; then
        VMM_API_SOCK=$WORKDIR/api.sock
        : >"$LOGDIR/fs.trace"
    fi
    exits_arm
    read -r t0 _ </proc/uptime
    vmm_start vmlet "$log" 1 "$GUEST_MEM" \
        "console=ttyS0 quiet panic=-1 vmlet.fsb=$FSB_SIZE_MB,$FSB_RUNTIME,$FSB_FILES,$FSB_FILE_BYTES"
    VMM_DISKS=
    VMM_SHARES=
    if ! wait_line VMLET-FSB-READY "$READY_TIMEOUT"; then
        echo "# the guest never got ready (see $log)"
        console | tail -n 20 | sed 's/^/#   /'
        vmm_kill
        stop_vmm 10
    else
        read -r t1 _ </proc/uptime
        echo "# guest ready $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after start (1 vCPU, $GUEST_MEM)"
        targets=
        for target in $GUEST_TARGETS; do
            if console | grep -aqxF "VMLET-FSB-MOUNTED $target"; then
                targets="$targets $target"
            else
                echo "# $target: the guest could not mount it: $(console | grep -a "^VMLET-FSB-ERROR $target" | cut -c1-200)"
            fi
        done
        rep=1
        while [ "$rep" -le "$REPS" ]; do
            for target in $targets; do
                for job in $RUN; do
                    exits_snap "$log.$target.$job.before"
                    c0=$(cpu_ticks) g0=$(guest_ticks)
                    tracer=
                    if [ "$FSB_TRACE" -gt 0 ] && [ "$target" = share ] && [ "$job" != clean ]; then
                        trace_loop "$target" "$job" &
                        tracer=$!
                    fi
                    # Counted before the command: a short job may finish
                    # before wait_count looks.
                    n_fin=$(console | grep -acxF -- "VMLET-FSB-FINISHED $target $job")
                    vmm_send "run $target $job"
                    wait_count "VMLET-FSB-FINISHED $target $job" "$n_fin" $((FSB_RUNTIME + 1800))
                    st=$?
                    [ -n "$tracer" ] && kill "$tracer" 2>/dev/null
                    c1=$(cpu_ticks) g1=$(guest_ticks)
                    exits_snap "$log.$target.$job.after"
                    exits=$(exits_diff "$log.$target.$job.before" "$log.$target.$job.after" "$log.$target.$job.exits")
                    rm -f "$log.$target.$job.before" "$log.$target.$job.after"
                    if [ "$st" != 0 ]; then
                        echo "# run $rep $target $job: no end (status $st): the guest is gone or stuck"
                        break 3
                    fi
                    n_done=$(console | grep -acxF -- "VMLET-FSB-DONE $target $job")
                    vmm_send "result $target $job"
                    wait_count "VMLET-FSB-DONE $target $job" "$n_done" 60
                    line=$(console | grep -a "^VMLET-FSB-RESULT $target $job " | tail -n 1 |
                           sed -e "s/^VMLET-FSB-RESULT $target $job //" -e "s/ *$//")
                    cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (b - a) / 100 }')
                    gcpu=$(awk -v a="$g0" -v b="$g1" 'BEGIN { printf "%.1f", (b - a) / 100 }')
                    [ "$job" = clean ] && continue
                    echo "# run $rep $target $job: $line; $exits exits, vmlet CPU $cpu s of which guest $gcpu s"
                    record "$target" "$job" "$line" "${exits:--}" "$cpu" "$gcpu"
                done
            done
            rep=$((rep + 1))
        done
        vmm_send quit
        stop_vmm 60
    fi
    exits_disarm
fi
rm -rf "$WORKDIR"

# ---- the table ---------------------------------------------------------
m() { median "$1" "$2" "$3"; }
ops() {
    case $2 in
    seqwrite|seqread) awk -v v="$(m "$1" "$2" 3)" -v s="$(m "$1" "$2" 4)" \
        'BEGIN { if (v == "-" || s == "-") print "-"; else print v * s }' ;;  # MB
    randread) awk -v v="$(m "$1" "$2" 3)" -v s="$(m "$1" "$2" 4)" \
        'BEGIN { if (v == "-" || s == "-") print "-"; else print v * s }' ;;  # reads
    meta) echo $((FSB_FILES * 3)) ;;                                          # calls
    untar) awk -v v="$(m "$1" "$2" 3)" -v s="$(m "$1" "$2" 4)" \
        'BEGIN { if (v == "-" || s == "-") print "-"; else printf "%.0f", v * s }' ;;  # files
    esac
}
per() { awk -v e="$(m "$1" "$2" 5)" -v n="$(ops "$1" "$2")" \
    'BEGIN { if (e == "-" || n == "-" || n == 0) print "-"; else printf "%.1f", e / n }'; }
echo
echo "# bench/fs: median of $REPS round(s); higher is better (seconds: the job's time)"
printf '%-28s %9s %9s %10s %9s %10s %12s   %8s %6s   %8s %6s   %8s %6s\n' test share blk host share/blk share/host target \
    "exits sh" "blk" "CPU s sh" "blk" "guest sh" "blk"
row() {
    label=$1 job=$2 field=$3 target=$4 sh=${5:-share}
    a=$(m "$sh" "$job" "$field") b=$(m blk "$job" "$field") h=$(m host "$job" "$field")
    r=$(ratio "$a" "$b")
    verdict=
    if [ -n "$target" ]; then
        verdict=$(awk -v r="$r" -v t="$target" 'BEGIN { if (r == "-") print "-"; else print (r >= t ? ">=" t " met" : ">=" t " NOT met") }')
    fi
    e1=- e2=- c1=- c2=- g1=- g2=-
    if [ "$field" = 3 ]; then
        e1=$(per "$sh" "$job") e2=$(per blk "$job") c1=$(m "$sh" "$job" 6) c2=$(m blk "$job" 6)
        g1=$(m "$sh" "$job" 10) g2=$(m blk "$job" 10)
    fi
    printf '%-28s %9s %9s %10s %9s %10s %12s   %8s %6s   %8s %6s   %8s %6s\n' "$label" "$a" "$b" "$h" "$r" "$(ratio "$a" "$h")" \
        "${verdict:--}" "$e1" "$e2" "$c1" "$c2" "$g1" "$g2"
}
row "seq write 1M (MB/s)" seqwrite 3 0.5
row "seq read 1M (MB/s)" seqread 3 0.5
row "rand read 4K QD1 (IOPS)" randread 3 ""
row "metadata (files/s)" meta 3 0.25
row "  create+write (files/s)" meta 7 ""
row "  stat, cold (files/s)" meta 8 ""
row "  unlink (files/s)" meta 9 ""
row "untar (files/s)" untar 3 ""
row "untar (s)" untar 4 ""
if [ "$FSB_CACHED" = 1 ]; then
    echo "# the same on the cache=always share (share column = cached; blk and host as above):"
    row "c seq write 1M (MB/s)" seqwrite 3 0.5 cached
    row "c seq read 1M (MB/s)" seqread 3 0.5 cached
    row "c rand read 4K QD1 (IOPS)" randread 3 "" cached
    row "c metadata (files/s)" meta 3 0.25 cached
    row "c   create+write (files/s)" meta 7 "" cached
    row "c   stat, cold (files/s)" meta 8 "" cached
    row "c   unlink (files/s)" meta 9 "" cached
    row "c untar (files/s)" untar 3 "" cached
    row "c untar (s)" untar 4 "" cached
fi
echo
echo "# VM exits by reason (last round):"
for job in $JOBS; do
    for target in $GUEST_TARGETS; do
        exits_line "$job" "$target" "$LOGDIR/fs-vmlet.log.$target.$job.exits" 9
    done
done
echo
echo "# MB/s = 10^6 bytes/s. metadata = FILES / (create+write+syncfs + stat + unlink+syncfs time);"
echo "# target: the issue's, on share/blk (sequential >= 0.5, metadata >= 0.25)."
[ "$FSB_CACHED" = 1 ] && echo "# rows \"c ...\": the share with cache=always (names and attributes kept a day, not 1 s)."
echo "# exits = VM exits per MB (seq), per read (rand), per call (metadata: 3 a file), per file"
echo "# (untar); CPU s = vmlet's CPU time during the job (its vCPU thread's includes the guest's);"
echo "# guest = the part of it the guest ran (KVM's guest time): the rest is vmlet's own work."
echo "# host = the same jobs run natively in L1 on $(fs_of "${WORKDIR%/*}"), the file system that also"
echo "# holds the share and the disk image: memory, no device, the limit."
echo "# Nested lab: absolute numbers are TCG numbers; compare the columns."
