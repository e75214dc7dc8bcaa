#!/bin/sh
# Snapshot benchmark (issue 15), run where /dev/kvm is real: inside the L1
# lab VM (bench/snapshot starts it) or on a host with hardware KVM. POSIX
# sh, busybox; needs curl and bench/linestamp.c (built as linestamp).
#
#   bench/snapshot.sh [REPS]
#
# The guest: lab/l2.img with rdinit=/etc/init.d/tick (tests/lab/guest/
# tick), 1 vCPU, a numbered console line every 10 ms. Per memory size
# (SIZES, MiB; default 256 512 1024 2048) and rep, for each VMM:
#   vmlet  cold boot (--api-sock) to the first tick; paused (PATCH /vm),
#          saved (PUT /snapshot/create), stopped; `vmlet run --restore` to
#          the first tick of the restored guest, and vmlet's own "restored
#          in N ms" (its start to the vCPUs running)
#   qemu   -M pc -enable-kvm, the same kernel, initramfs and command line:
#          cold boot to the first tick; QMP stop, migrate to a file
#          ("exec:cat > FILE", max-bandwidth raised from its 32 MiB/s
#          default), quit; a new QEMU with -incoming defer, migrate-incoming
#          "exec:cat FILE", and cont once the MIGRATION event says
#          completed (the saved guest was stopped, so it comes back paused)
# Times are from starting the VMM to the line, stamped by linestamp
# (CLOCK_MONOTONIC, to the millisecond). Save: vmlet's PUT (curl's run)
# and QEMU's own total-time of the migration. Size: the snapshot directory
# (vmlet: state + memory) or QEMU's file, on disk (du) and apparent.
# Also per restore (vmlet): VM exits from the launch to the first tick
# (kvm:kvm_exit; npf = nested page faults, first touches of guest pages)
# and vmlet's page faults by then (/proc/PID/stat). With STRACE=1 and
# strace in PATH: one more restore of the smallest and the largest size
# under strace -f -T, its slowest system calls (where restore time goes).
# Prints min/median/max per row, ratios against vmlet's cold boot and
# QEMU's restore, and restore at the largest size over the smallest.
# Never fails on a time. VMMS="vmlet qemu" picks the VMMs.
HERE=$(cd "$(dirname "$0")" && pwd)
LABLIB=${LABLIB:-$HERE/../tests/lab}
# shellcheck source=../tests/lab/vmm.sh
. "$LABLIB/vmm.sh"

REPS=${1:-3}
SIZES=${SIZES:-256 512 1024 2048}
VMMS=${VMMS:-vmlet qemu}
LOGDIR=${LOGDIR:-/tmp/lab-logs}
READY_TIMEOUT=${READY_TIMEOUT:-300}
LINESTAMP=${LINESTAMP:-linestamp}
STRACE=${STRACE:-}
CMDLINE="console=ttyS0 quiet panic=-1 rdinit=/etc/init.d/tick"
mkdir -p "$LOGDIR"
RESULTS=$LOGDIR/snapshot.results
: >"$RESULTS"
. "$HERE/common.sh"
work=${TMPDIR:-/tmp}/snapshot-bench.$$
mkdir -p "$work"
sock=$work/api.sock

for vmm in $VMMS; do
    if [ "$vmm" = vmlet ] && [ ! -x "$VMLET" ]; then
        echo "# no vmlet binary at $VMLET: leaving it out"
        VMMS=$(echo "$VMMS" | sed 's/vmlet//')
    fi
done
if ! command -v "$LINESTAMP" >/dev/null; then
    echo "# no $LINESTAMP (bench/linestamp.c): cannot time anything"
    exit 0
fi
# shellcheck disable=SC2086 # the lists, their spaces squeezed
echo "# snapshot bench: 1 vCPU, guest memory (MiB):" $SIZES "; $REPS rep(s); VMMs:" $VMMS
echo "# the snapshots go to $work ($(df -k "$work" | awk 'NR == 2 { print $1 }')); memory $(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo) MiB"

# tick_stamp LOG [N]: linestamp's milliseconds of the console's Nth tick
# (default the first); empty if none yet.
tick_stamp() { awk -v n="${2:-1}" '$2 ~ /^VMLET-TICK=/ && ++c == n { print $1; exit }' "$1"; }
# first_out LOG: the stamp of the guest's first output, a tick or the rest
# of one (a guest paused in the middle of a line goes on with its rest):
# the first line that is not linestamp's, the VMM's or empty.
first_out() {
    tr -d '\r' <"$1" | awk '{ t = $0; sub(/^[0-9.]+ /, "", t) }
        t == "" || t ~ /^(linestamp:|vmlet:|qemu-system)/ { next } { print $1; exit }'
}
# tick_n LOG first|last: the number of the first or last tick line.
tick_n() {
    tr -d '\r' <"$1" | awk -v w="$2" '$2 ~ /^VMLET-TICK=[0-9]+$/ { n = substr($2, 12); if (w == "first") { print n; exit } }
        END { if (w == "last") print n }'
}
# wait_tick LOG PID SECONDS: 0 once LOG has a tick, 1 if PID ended first,
# 2 on timeout. Polled every 20 ms: the stamp is linestamp's, not ours.
wait_tick() {
    _d=$(($(secs) + $3))
    while ! grep -aq ' VMLET-TICK=' "$1"; do
        kill -0 "$2" 2>/dev/null || { grep -aq ' VMLET-TICK=' "$1"; return $?; }
        [ "$(secs)" -ge "$_d" ] && return 2
        sleep 0.02
    done
}
# child_pid LOG: the VMM's pid (linestamp's first line).
child_pid() { sed -n 's/^[0-9.]* linestamp: pid \([0-9]*\)$/\1/p' "$1" | head -n 1; }
# wait_gone PID SECONDS: waits for our child PID, killing it after SECONDS.
wait_gone() {
    _d=$(($(secs) + $2))
    while kill -0 "$1" 2>/dev/null && [ "$(secs)" -lt "$_d" ]; do sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
call() {
    curl -s -m 600 --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' \
        -d "$2" -w ' %{http_code}' "http://localhost$3"
}
code() { echo "$1" | awk '{ print $NF }'; }
# size_kb DIR|FILE: "ON_DISK APPARENT" in KiB (a directory's files).
size_kb() {
    d=$(du -sk "$1" | cut -f1)
    if [ -d "$1" ]; then stat -c %s "$1"/*; else stat -c %s "$1"; fi |
        awk -v d="$d" '{ s += $1 } END { printf "%d %d\n", d, s / 1024 }'
}
# xcount BEFORE AFTER: "EXITS NPF" between two snapshots of the exit
# histogram ("- -" without the tracepoint); npf = nested page faults
# (SVM exit code 1024).
xcount() {
    _x=$(exits_diff "$1" "$2" "$2.d")
    _n=0
    [ -s "$2.d" ] && _n=$(awk '$3 == 1024 { n = $6 } END { print n + 0 }' "$2.d")
    if [ "$_x" = - ]; then echo "- -"; else echo "$_x $_n"; fi
    rm -f "$1" "$2" "$2.d"
}
faults() { awk '{ print $10, $12 }' "/proc/$1/stat" 2>/dev/null || echo "- -"; }

# ---- vmlet -------------------------------------------------------------
# vmlet_round SIZE REP: boot, save, stop, restore; one results line.
vmlet_round() {
    m=$1 rep=$2
    dir=$work/snap-$m
    rm -rf "$dir" "$dir.tmp"
    blog=$LOGDIR/snapshot-vmlet-$m-$rep-boot.log
    rlog=$LOGDIR/snapshot-vmlet-$m-$rep-restore.log
    rm -f "$sock"
    : >"$blog" # before wait_tick reads it
    exits_snap "$work/b0"
    "$LINESTAMP" "$VMLET" run --kernel "$KERNEL" --initrd "$INITRD" --cpus 1 --memory "${m}M" \
        --cmdline "$CMDLINE" --api-sock "$sock" </dev/null >"$blog" 2>&1 &
    lpid=$!
    if ! wait_tick "$blog" "$lpid" "$READY_TIMEOUT"; then
        echo "# $m MiB rep $rep vmlet: no tick after the boot (see $blog)"
        kill -KILL "$(child_pid "$blog")" 2>/dev/null
        wait_gone "$lpid" 10
        return
    fi
    boot=$(tick_stamp "$blog")
    exits_snap "$work/b1"
    bx=$(xcount "$work/b0" "$work/b1")
    sleep 2 # the guest settles into its loop
    r=$(call PATCH '{"state":"Paused"}' /vm)
    sleep 0.5
    last=$(tick_n "$blog" last)
    save=$("$LINESTAMP" curl -s -m 600 --unix-socket "$sock" -X PUT -H 'Content-Type: application/json' \
        -d "{\"snapshot_path\":\"$dir\"}" -w ' %{http_code}' http://localhost/snapshot/create)
    call PUT '{"action_type":"Stop"}' /actions >/dev/null
    wait_gone "$lpid" 60
    save_code=$(echo "$save" | awk '$2 != "linestamp:" { c = $NF } END { print c }')
    save_ms=$(echo "$save" | awk '$2 == "linestamp:" && $3 == "exit" { print $1 }')
    if [ "$(code "$r")" != 204 ] || [ "$save_code" != 204 ] || [ ! -f "$dir/memory" ]; then
        echo "# $m MiB rep $rep vmlet: pause answered '$r', save '$(echo "$save" | tr '\n' ' ')'"
        echo "vmlet $m $boot - - - - - - - - - $bx" >>"$RESULTS"
        return
    fi
    # shellcheck disable=SC2046 # two numbers
    set -- $(size_kb "$dir")
    disk_kb=$1 app_kb=$2
    rm -f "$sock"
    exits_snap "$work/x0"
    : >"$rlog"
    VMLET_TIMING=1 "$LINESTAMP" "$VMLET" run --restore "$dir" --api-sock "$sock" </dev/null >"$rlog" 2>&1 &
    lpid=$!
    wait_tick "$rlog" "$lpid" 120
    got=$?
    exits_snap "$work/x1"
    # shellcheck disable=SC2046 # two numbers
    set -- $(faults "$(child_pid "$rlog")") $(xcount "$work/x0" "$work/x1")
    minflt=$1 majflt=$2 exits=$3 npf=$4
    call PUT '{"action_type":"Stop"}' /actions >/dev/null
    wait_gone "$lpid" 60
    said=$(tr -d '\r' <"$rlog" | sed -n 's/.*vmlet: restored .* in \([0-9.]*\) ms.*/\1/p' | head -n 1)
    if [ $got != 0 ]; then
        echo "# $m MiB rep $rep vmlet: no tick after the restore (see $rlog)"
        echo "vmlet $m $boot $save_ms - ${said:--} $disk_kb $app_kb - - - - $bx" >>"$RESULTS"
        return
    fi
    restore=$(first_out "$rlog")
    first=$(tick_n "$rlog" first)
    echo "vmlet $m $boot $save_ms $restore ${said:--} $disk_kb $app_kb $exits $npf $minflt $majflt $bx" >>"$RESULTS"
    echo "# $m MiB rep $rep vmlet: boot $boot ms ($bx exits, npf), save $save_ms ms, $((disk_kb / 1024)) of $((app_kb / 1024)) MiB on disk, restore $restore ms (vmlet: ${said:-?} ms); ticks $last -> $first; $exits exits (npf $npf), faults $minflt minor $majflt major"
    [ "$first" -gt "${last:-0}" ] 2>/dev/null ||
        echo "#   the restored guest did not go on counting (saved at ${last:-?}, first ${first:-?})"
    if [ -n "$STRACE" ] && [ "$rep" = "$REPS" ] && command -v strace >/dev/null &&
       { [ "$m" = "$SMALLEST" ] || [ "$m" = "$LARGEST" ]; }; then
        strace_restore "$m" "$dir"
    fi
    rm -rf "$dir"
}

# strace_restore SIZE DIR: the restore once more under strace; of its
# system calls until the first tick, leaving out those that wait (poll,
# futex, read, sleeps) and KVM_RUN (the guest running): the slowest, the
# time per call name (ioctl per request) and their sum.
strace_restore() {
    slog=$LOGDIR/snapshot-vmlet-$1-strace.log
    rm -f "$sock"
    rm -f "$slog".strace.*
    : >"$slog"
    "$LINESTAMP" strace -ff -T -o "$slog.strace" "$VMLET" run --restore "$2" --api-sock "$sock" \
        </dev/null >"$slog" 2>&1 &
    lpid=$!
    wait_tick "$slog" "$lpid" 120
    call PUT '{"action_type":"Stop"}' /actions >/dev/null
    wait_gone "$lpid" 60
    echo "#   strace, $1 MiB: restore $(first_out "$slog") ms to the first output under strace (vmlet: $(tr -d '\r' <"$slog" | sed -n 's/.*restored .* in \([0-9.]*\) ms.*/\1/p') ms)"
    # -ff: a file per thread, each call whole on one line.
    cat "$slog".strace.* | grep -vE '^(poll|ppoll|epoll_wait|epoll_pwait|futex|read|nanosleep|clock_nanosleep|wait4|rt_sigtimedwait|accept4|select|pselect6)\(|KVM_RUN' |
        awk -F'<' 'NF > 1 { t = $NF; sub(/>.*/, "", t); printf "%.3f\t%s\n", t * 1000, $0 }' >"$slog.calls"
    echo "#     the slowest calls, ms:"
    sort -rn "$slog.calls" | head -n 6 | cut -c1-150 | sed 's/^/#       /'
    echo "#     per call name, ms (calls):"
    awk -F'\t' '{ c = $2; sub(/\(.*/, "", c)
                  if (c == "ioctl") { k = $2; sub(/^[^,]*, */, "", k); sub(/[,)].*/, "", k); c = c " " k }
                  s[c] += $1; n[c]++; all += $1 }
         END { for (c in s) printf "%.3f %s (%d)\n", s[c], c, n[c]; printf "%.3f ALL\n", all }' "$slog.calls" |
        sort -rn | head -n 14 | sed 's/^/#       /'
}

# ---- QEMU --------------------------------------------------------------
# qemu_start SIZE LOG [FILE]: QEMU in the background (linestamp's pid in
# qpid), QMP on FIFOs read by a shell loop (qmp.log); with FILE it restores
# from FILE and the loop sends cont when the migration completes.
qemu_start() {
    qd=$work/qmp
    rm -rf "$qd"
    mkdir -p "$qd"
    mkfifo "$qd/qmp.in" "$qd/qmp.out"
    exec 8<>"$qd/qmp.in"
    : >"$qd/qmp.log"
    [ -n "${3:-}" ] && : >"$qd/cont"
    ( while IFS= read -r l; do
          printf '%s\n' "$l" >>"$qd/qmp.log"
          case $l in
          *'"MIGRATION"'*'"completed"'*) [ -e "$qd/cont" ] && echo '{"execute":"cont"}' >&8 ;;
          esac
      done ) 0<>"$qd/qmp.out" &
    qreader=$!
    echo '{"execute":"qmp_capabilities"}' >&8
    echo '{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"events","state":true}]}}' >&8
    incoming=
    if [ -n "${3:-}" ]; then
        incoming="-incoming defer"
        echo "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"exec:cat $3\"}}" >&8
    fi
    : >"$2"
    # shellcheck disable=SC2086 # $incoming is two words or none
    "$LINESTAMP" "$QEMU" -M pc -enable-kvm -cpu host -m "${1}M" -smp 1 \
        -kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE" \
        -nodefaults -no-user-config -display none -serial stdio -no-reboot \
        -qmp "pipe:$qd/qmp" $incoming </dev/null >"$2" 2>&1 &
    qpid=$!
}
qemu_stop() {
    echo '{"execute":"quit"}' >&8
    wait_gone "$qpid" 60
    exec 8>&-
    kill "$qreader" 2>/dev/null
    wait "$qreader" 2>/dev/null
}
# qmp_wait PATTERN SECONDS: 0 once qmp.log has PATTERN (grep -E).
qmp_wait() {
    _d=$(($(secs) + $2))
    until grep -qE "$1" "$qd/qmp.log"; do
        [ "$(secs)" -ge "$_d" ] && return 1
        sleep 0.05
    done
}

qemu_round() {
    m=$1 rep=$2
    file=$work/qemu-$m.mig
    rm -f "$file"
    blog=$LOGDIR/snapshot-qemu-$m-$rep-boot.log
    rlog=$LOGDIR/snapshot-qemu-$m-$rep-restore.log
    exits_snap "$work/b0"
    qemu_start "$m" "$blog"
    if ! wait_tick "$blog" "$qpid" "$READY_TIMEOUT"; then
        echo "# $m MiB rep $rep qemu: no tick after the boot (see $blog)"
        qemu_stop
        return
    fi
    boot=$(tick_stamp "$blog")
    exits_snap "$work/b1"
    bx=$(xcount "$work/b0" "$work/b1")
    sleep 2
    echo '{"execute":"migrate-set-parameters","arguments":{"max-bandwidth":107374182400}}' >&8
    echo '{"execute":"stop"}' >&8
    sleep 0.5
    last=$(tick_n "$blog" last)
    echo "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > $file\"}}" >&8
    if ! qmp_wait '"MIGRATION".*"(completed|failed)"' 600 || grep -q '"MIGRATION".*"failed"' "$qd/qmp.log"; then
        echo "# $m MiB rep $rep qemu: the migration to $file did not complete: $(grep -E 'error|MIGRATION' "$qd/qmp.log" | tail -n 3 | tr '\n' ' ')"
        qemu_stop
        echo "qemu $m $boot - - - - - - - - - $bx" >>"$RESULTS"
        return
    fi
    echo '{"execute":"query-migrate"}' >&8
    qmp_wait '"total-time"' 30
    save_ms=$(sed -n 's/.*"total-time": *\([0-9]*\).*/\1/p' "$qd/qmp.log" | tail -n 1)
    qemu_stop
    # shellcheck disable=SC2046 # two numbers
    set -- $(size_kb "$file")
    disk_kb=$1 app_kb=$2
    exits_snap "$work/x0"
    qemu_start "$m" "$rlog" "$file"
    wait_tick "$rlog" "$qpid" 300
    got=$?
    exits_snap "$work/x1"
    # shellcheck disable=SC2046 # two numbers
    set -- $(faults "$(child_pid "$rlog")") $(xcount "$work/x0" "$work/x1")
    minflt=$1 majflt=$2 exits=$3 npf=$4
    qemu_stop
    if [ $got != 0 ]; then
        echo "# $m MiB rep $rep qemu: no tick after the restore (see $rlog; QMP: $(tail -n 3 "$qd/qmp.log" | tr '\n' ' '))"
        echo "qemu $m $boot ${save_ms:--} - - $disk_kb $app_kb - - - - $bx" >>"$RESULTS"
        rm -f "$file"
        return
    fi
    restore=$(first_out "$rlog")
    first=$(tick_n "$rlog" first)
    echo "qemu $m $boot ${save_ms:--} $restore - $disk_kb $app_kb $exits $npf $minflt $majflt $bx" >>"$RESULTS"
    echo "# $m MiB rep $rep qemu: boot $boot ms ($bx exits, npf), save ${save_ms:-?} ms, $((disk_kb / 1024)) of $((app_kb / 1024)) MiB on disk, restore $restore ms; ticks $last -> $first; $exits exits (npf $npf), faults $minflt minor $majflt major"
    [ "$first" -gt "${last:-0}" ] 2>/dev/null ||
        echo "#   the restored guest did not go on counting (saved at ${last:-?}, first ${first:-?})"
    rm -f "$file"
}

SMALLEST=$(echo "$SIZES" | tr ' ' '\n' | sed '/^$/d' | sort -n | head -n 1)
LARGEST=$(echo "$SIZES" | tr ' ' '\n' | sed '/^$/d' | sort -n | tail -n 1)
rep=1
while [ $rep -le "$REPS" ]; do
    for m in $SIZES; do
        for vmm in $VMMS; do
            # Armed while no VMM runs (common.sh), snapshots between.
            exits_arm
            "${vmm}_round" "$m" $rep
            exits_disarm
        done
    done
    rep=$((rep + 1))
done

# ---- the table -----------------------------------------------------------
# stat3 VMM SIZE FIELD FORMAT: "med (min-max)" over the reps, "-" if none.
stat3() {
    awk -v v="$1" -v j="$2" -v f="$3" '$1 == v && $2 == j && $f != "-" { print $f }' "$RESULTS" | sort -n |
        awk -v f="$4" '{ x[NR] = $1 } END { if (NR == 0) { print "-"; exit }
            m = NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2
            printf f " (" f "-" f ")\n", m, x[1], x[NR] }'
}
okn() { awk -v v="$1" -v j="$2" '$1 == v && $2 == j && $5 != "-"' "$RESULTS" | wc -l; }
mibk() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
echo
echo "# times in ms, med (min-max) over the reps; sizes in MiB (medians); restore = the VMM's start to"
echo "# the restored guest's first console line; vmlet's own = its start to the vCPUs running"
printf '%-5s %-6s %4s %-22s %-22s %-22s %-22s %8s %8s %8s %8s\n' MiB VMM ok "cold boot" save restore "vmlet's own" \
    "on disk" apparent "rst/boot" "rst/qemu"
for m in $SIZES; do
    for vmm in $VMMS; do
        qr=$(median qemu "$m" 5)
        printf '%-5s %-6s %4s %-22s %-22s %-22s %-22s %8s %8s %8s %8s\n' "$m" "$vmm" "$(okn "$vmm" "$m")/$REPS" \
            "$(stat3 "$vmm" "$m" 3 %.0f)" "$(stat3 "$vmm" "$m" 4 %.0f)" "$(stat3 "$vmm" "$m" 5 %.0f)" \
            "$(stat3 "$vmm" "$m" 6 %.1f)" "$(mibk "$(median "$vmm" "$m" 7)")" "$(mibk "$(median "$vmm" "$m" 8)")" \
            "$(ratio "$(median "$vmm" "$m" 5)" "$(median "$vmm" "$m" 3)")" \
            "$(ratio "$(median "$vmm" "$m" 5)" "$qr")"
    done
done
echo
echo "# flatness, restore at $LARGEST MiB / at $SMALLEST MiB (target for vmlet: at most 1.20):"
for vmm in $VMMS; do
    line="#   $vmm: to the first line $(ratio "$(median "$vmm" "$LARGEST" 5)" "$(median "$vmm" "$SMALLEST" 5)")"
    [ "$vmm" = vmlet ] && line="$line, vmlet's own $(ratio "$(median vmlet "$LARGEST" 6)" "$(median vmlet "$SMALLEST" 6)")"
    echo "$line"
done
echo "# counts, load-independent (medians): VM exits from the start to the first line, of them nested"
echo "# page faults (npf: first touches of guest memory), for the cold boot and the restore; the VMM's"
echo "# minor / major page faults during the restore; for vmlet also the vCPUs running to the first line"
for m in $SIZES; do
    for vmm in $VMMS; do
        run=
        if [ "$vmm" = vmlet ]; then
            run=$(awk -v j="$m" '$1 == "vmlet" && $2 == j && $5 != "-" && $6 != "-" { print $5 - $6 }' "$RESULTS" | sort -n |
                awk '{ x[NR] = $1 } END { if (NR) printf "%.0f", NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2; else print "-" }')
            run="; vCPUs running to the first line $run ms"
        fi
        echo "#   $m MiB $vmm: boot $(median "$vmm" "$m" 13) exits ($(median "$vmm" "$m" 14) npf), restore $(median "$vmm" "$m" 9) ($(median "$vmm" "$m" 10) npf), exits restore/boot $(ratio "$(median "$vmm" "$m" 9)" "$(median "$vmm" "$m" 13)"); faults $(median "$vmm" "$m" 11) / $(median "$vmm" "$m" 12)$run"
    done
done
echo "# rst/boot: restore over the same VMM's cold boot; rst/qemu: over QEMU's restore at that size"
echo "# targets (issue 15): vmlet's restore <= 0.1 x its cold boot (rst/boot), faster than QEMU's restore"
echo "# (rst/qemu < 1), flat within 20 % from $SMALLEST to $LARGEST MiB. A benchmark: nothing here fails."
rm -rf "$work"
