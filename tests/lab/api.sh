#!/bin/sh
# The embeddable API with the stock Debian kernel (issue 5), checked from
# L1. POSIX sh, busybox; needs curl. Prints one TAP line per check.
#   api.sh VMLET KERNEL INITRD LOGDIR
#   api.sh --plan            the check names, one a line
#
#   example-simplevm    examples/simplevm boots the guest with a disk and
#                       powers off (exit 0; the guest saw the disk)
#   lifecycle-linux-*   tests/mini/lifecycle.c --linux: pause/resume, event
#                       fd, stop, two VMs in one process, request_stop
#   api-*               vmlet run --api-sock driven by curl: the socket's
#                       mode, info, pause (the guest's ticks stop), resume,
#                       metrics, a malformed request, RequestShutdown (a
#                       clean power-off), then in a second boot Stop;
#                       api-stalled-console: a guest flooding ttyS0 while
#                       nobody reads vmlet's stdout can still be paused,
#                       resumed and stopped through the socket
#   sigterm-stalled-console  the same stalled console (the socket only
#                       shows that it stalled): SIGTERM still ends vmlet,
#                       exit 4 once the shutdown timeout has run out
#   fc-*                vmlet firecracker (docs/firecracker.md) driven by curl
#                       as the walk-through there does: --version as Kata
#                       reads it, boot-source + machine-config + a drive +
#                       InstanceStart, GET / "Running", the vCPU threads'
#                       names; Kata's block hotplug: an empty placeholder
#                       drive the guest sees with 0 sectors, PATCH /drives
#                       to a file outside the drives' directory refused by
#                       the sandbox (Landlock), PATCH /drives to a 32 MiB
#                       ext4 image whose size the guest then sees, and
#                       which it mounts to read a file of it;
#                       PATCH /vm pause and resume, SendCtrlAltDel
#                       ending the process (exit 0); then Kata's way: the
#                       binary under the name firecracker with --config-file
#                       (logger and metrics files, placeholder drives as
#                       Kata's pool, a vsock device), GET / polled until
#                       Running, FlushMetrics, the guest's agent port
#                       (vsock 1024, an echo server) answering a host
#                       CONNECT, pause and resume, SendCtrlAltDel; and
#                       snapshots: PUT /snapshot/create of a paused
#                       microVM, PUT /snapshot/load (resume_vm,
#                       vsock_override) in a new process, its guest ticking
#                       on and its agent answering through the new socket
LIFECYCLE_LINUX_CHECKS="runs pause-state event-fd paused-guest-is-still resume stop two-vms
                        request-stop"
API_CHECKS="socket-mode info pause resume metrics malformed request-shutdown stop stalled-console"
FC_CHECKS="version placeholder-drive patch-drive-outside patch-drive hotplug-mount boot running
           vcpu-names pause resume ctrl-alt-del config-file metrics agent-vsock config-file-exit
           snapshot-create snapshot-load"
if [ "${1:-}" = --plan ]; then
    echo example-simplevm
    for c in $LIFECYCLE_LINUX_CHECKS; do echo "lifecycle-linux-$c"; done
    for c in $API_CHECKS; do echo "api-$c"; done
    echo sigterm-stalled-console
    for c in $FC_CHECKS; do echo "fc-$c"; done
    exit 0
fi
vmlet=$1 kernel=$2 initrd=$3 logdir=$4
bindir=$(dirname "$vmlet")
tmp=${TMPDIR:-/tmp}/api.$$
mkdir -p "$tmp" "$logdir"
. "$(dirname "$0")/checks.sh"
BASE="console=ttyS0 quiet panic=-1"

# ---- the example program ------------------------------------------------
truncate -s 8M "$tmp/disk.img"
log=$logdir/simplevm.log
timeout 300 "$bindir/simplevm" "$kernel" "$initrd" "$tmp/disk.img" \
    "$BASE vmlet.test=info vmlet.then=poweroff" </dev/null >"$log" 2>&1
rc=$?
sectors=$(tr -d '\r' <"$log" | grep -a '^VMLET-VDA-SECTORS=' | cut -d= -f2)
if [ "$rc" = 0 ] && [ "$sectors" = 16384 ] && grep -q "powered off" "$log"; then
    ok example-simplevm
else
    not_ok example-simplevm "exit $rc, guest saw vda with '${sectors:-no}' sectors (want 16384)"
    tail -n 10 "$log" | sed 's/^/#   /'
fi

# ---- the library's lifecycle calls ----------------------------------------
if [ -x "$bindir/vmlet-lifecycle" ]; then
    "$bindir/vmlet-lifecycle" --linux "$kernel" "$initrd" 2>"$logdir/lifecycle-linux.err" ||
        sed 's/^/#   /' "$logdir/lifecycle-linux.err" | tail -n 5
else
    for c in $LIFECYCLE_LINUX_CHECKS; do not_ok "lifecycle-linux-$c" "no $bindir/vmlet-lifecycle"; done
fi

# ---- the control socket ---------------------------------------------------
sock=$tmp/api.sock
# call METHOD PATH [JSON]: prints "STATUS BODY"
call() {
    if [ -n "${3:-}" ]; then
        curl -s -m 10 --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' \
            -d "$3" -w ' %{http_code}' "http://localhost$2"
    else
        curl -s -m 10 --unix-socket "$sock" -X "$1" -w ' %{http_code}' "http://localhost$2"
    fi
}
status() { echo "$1" | awk '{ print $NF }'; }
ticks() { tr -cd '~' <"$log" | wc -c; }

# boot_api NAME: starts vmlet with the counter guest and the socket; waits
# for the first tick.
boot_api() {
    log=$logdir/vmlet-$1.log
    rm -f "$sock"
    "$vmlet" run --kernel "$kernel" --initrd "$initrd" --memory 256M \
        --cmdline "$BASE vmlet.test=counter" --api-sock "$sock" --shutdown-timeout 60 \
        </dev/null >"$log" 2>&1 &
    pid=$!
    deadline=$(($(secs) + 120))
    while [ "$(ticks)" = 0 ] && kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do
        sleep 0.5
    done
    [ "$(ticks)" != 0 ]
}

# wait_gone SECONDS: sets rc to vmlet's exit status, or "timeout".
wait_gone() {
    deadline=$(($(secs) + $1))
    while kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do sleep 0.5; done
    if kill -0 $pid 2>/dev/null; then
        kill -KILL $pid
        wait $pid
        rc=timeout
    else
        wait $pid
        rc=$?
    fi
}

if boot_api api; then
    mode=$(stat -c %a "$sock" 2>/dev/null)
    if [ "$mode" = 600 ]; then ok api-socket-mode; else not_ok api-socket-mode "mode '$mode'"; fi

    r=$(call GET /)
    case $r in
    *'"state":"running"'*' 200') ok api-info ;;
    *) not_ok api-info "GET / answered '$r'" ;;
    esac

    # The guest must be ticking before the pause, or "no ticks while
    # paused" proves nothing.
    t0=$(ticks)
    sleep 2
    tb=$(ticks)
    r=$(call PATCH /vm '{"state":"Paused"}')
    s=$(call GET /)
    sleep 1
    t1=$(ticks)
    sleep 3
    t2=$(ticks)
    if [ "$(status "$r")" = 204 ] && [ "$tb" -gt "$t0" ] && [ "$t1" = "$t2" ] &&
       echo "$s" | grep -q '"state":"paused"'; then
        ok api-pause
    else
        not_ok api-pause "PATCH answered '$r', GET / '$s', ticks $t0 -> $tb before the pause, $t1 -> $t2 while paused"
    fi

    r=$(call PATCH /vm '{"state":"Resumed"}')
    sleep 3
    t3=$(ticks)
    if [ "$(status "$r")" = 204 ] && [ "$t3" -gt "$t2" ]; then
        ok api-resume
    else
        not_ok api-resume "PATCH answered '$r', ticks $t2 -> $t3 after resume"
    fi

    r=$(call GET /metrics)
    echo "# metrics: $(echo "$r" | head -c 400)"
    kvm_exits=$(echo "$r" | sed -n 's/.*"vcpu0":{[^}]*"kvm_exits":\([0-9]*\).*/\1/p')
    io_exits=$(echo "$r" | sed -n 's/.*"vcpu0":{[^}]*"vmm_exits_io":\([0-9]*\).*/\1/p')
    if [ "$(status "$r")" = 200 ] && [ "${kvm_exits:-0}" -gt 0 ] && [ "${io_exits:-0}" -gt 0 ]; then
        ok api-metrics
    else
        not_ok api-metrics "answered '$(echo "$r" | head -c 200)'"
    fi

    # Malformed: a bad body, a bad request line (raw, through busybox nc
    # would need -U; curl's --request-target sends any target).
    r1=$(call PATCH /vm '{"state":')
    r2=$(curl -s -m 10 --unix-socket "$sock" --request-target 'nope' -w ' %{http_code}' http://localhost/)
    r3=$(call GET /no/such/thing)
    t4=$(ticks)
    sleep 2
    t5=$(ticks)
    if [ "$(status "$r1")" = 400 ] && [ "$(status "$r2")" = 400 ] && [ "$(status "$r3")" = 404 ] &&
       [ "$t5" -gt "$t4" ] && kill -0 $pid 2>/dev/null; then
        ok api-malformed
    else
        not_ok api-malformed "answers '$r1' '$r2' '$r3'; ticks $t4 -> $t5 afterwards"
    fi

    r=$(call PUT /actions '{"action_type":"RequestShutdown"}')
    wait_gone 60
    if [ "$(status "$r")" = 204 ] && [ "$rc" = 0 ] && grep -q VMLET-SHUTDOWN "$log"; then
        ok api-request-shutdown
    else
        not_ok api-request-shutdown "PUT answered '$r', vmlet exit $rc"
    fi
else
    for c in $API_CHECKS; do
        [ "$c" = stop ] && continue   # the second boot's
        not_ok "api-$c" "the guest never ticked (see $log)"
    done
    kill -KILL $pid 2>/dev/null
fi

if boot_api api-stop; then
    r=$(call PUT /actions '{"action_type":"Stop"}')
    wait_gone 30
    if [ "$(status "$r")" = 204 ] && [ "$rc" = 4 ] && [ ! -e "$sock" ]; then
        ok api-stop
    else
        not_ok api-stop "PUT answered '$r', vmlet exit $rc (want 4), socket $([ -e "$sock" ] && echo left behind || echo removed)"
    fi
else
    not_ok api-stop "the guest never ticked (see $log)"
    kill -KILL $pid 2>/dev/null
fi

# ---- console output nobody reads -----------------------------------------
# vmlet's stdout is a FIFO whose reader never reads; the guest floods
# ttyS0. Once the serial port's output stops growing (pipe and vmlet's
# buffer full, the guest held back by THRE), pause, resume and Stop must
# still answer at once: before vmlet wrote without blocking, the vCPU
# sat in write() and PATCH /vm never returned.
serial_tx() { call GET /metrics | sed -n 's/.*"serial":{[^}]*"tx_bytes":\([0-9]*\).*/\1/p'; }
fifo=$tmp/stalled-out

# boot_stalled NAME CMDLINE [VMLET ARGS...]: starts vmlet with the flooding
# guest, its stdout into the FIFO nobody reads, and waits until the output
# has stalled: tx_bytes (what vmlet wrote into the FIFO) at least 64 KiB,
# the pipe's capacity, and unchanged over 3 s. Sets pid, reader, tx, prev.
boot_stalled() {
    log=$logdir/vmlet-$1.log
    cmdline=$2
    shift 2
    rm -f "$sock" "$fifo"
    mkfifo "$fifo"
    # shellcheck disable=SC2217 # the reader holds the FIFO open and never reads
    sleep 900 <"$fifo" &
    reader=$!
    "$vmlet" run --kernel "$kernel" --initrd "$initrd" --memory 256M \
        --cmdline "$cmdline" --api-sock "$sock" "$@" </dev/null >"$fifo" 2>"$log" &
    pid=$!
    deadline=$(($(secs) + 180))
    prev=-1 tx=0
    while kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do
        sleep 3
        tx=$(serial_tx)
        [ "${tx:-0}" -ge 65536 ] && [ "$tx" = "$prev" ] && break
        prev=${tx:-0}
    done
    [ "${tx:-0}" -ge 65536 ] && [ "$tx" = "$prev" ]
}

end_stalled() {
    kill $reader 2>/dev/null
    wait $reader 2>/dev/null
}

if boot_stalled stalled "$BASE vmlet.test=flood"; then
    t0=$(secs)
    r1=$(call PATCH /vm '{"state":"Paused"}')
    s1=$(call GET /)
    r2=$(call PATCH /vm '{"state":"Resumed"}')
    r3=$(call PUT /actions '{"action_type":"Stop"}')
    wait_gone 30
    took=$(($(secs) - t0))
    if [ "$(status "$r1")" = 204 ] && echo "$s1" | grep -q '"state":"paused"' &&
       [ "$(status "$r2")" = 204 ] && [ "$(status "$r3")" = 204 ] && [ "$rc" = 4 ]; then
        ok api-stalled-console
        echo "# stalled console: $tx bytes out before the stall; pause, resume, stop and exit in ${took} s"
    else
        not_ok api-stalled-console "with $tx bytes out and the output stalled: pause '$r1', GET / '$(echo "$s1" | head -c 80)', resume '$r2', stop '$r3', vmlet exit $rc after ${took} s"
    fi
else
    not_ok api-stalled-console "the console output never stalled (serial tx_bytes '$tx', before '$prev'; see $log)"
    kill -KILL $pid 2>/dev/null
fi
end_stalled

# sigterm-stalled-console: SIGTERM, the way a service manager stops vmlet,
# with the console stalled as above. The guest ignores the power button
# (vmlet.acpid=0), so vmlet must wait out --shutdown-timeout (5 s) and stop
# it hard: exit status 4 (README), not before the timeout, and within
# SIGTERM_WATCHDOG (60 s; a watchdog for a hang, not a time to meet). It
# fails if anything on the way out blocks on the console: a write, or
# waiting for the buffered output to drain (it gets 500 ms, then is
# dropped: docs/hostile-guest.md).
SIGTERM_WATCHDOG=60
if boot_stalled sigterm-stalled "$BASE vmlet.test=flood vmlet.acpid=0" --shutdown-timeout 5; then
    t0=$(secs)
    kill -TERM $pid
    wait_gone "$SIGTERM_WATCHDOG"
    took=$(($(secs) - t0))
    if [ "$rc" = 4 ] && [ "$took" -ge 4 ]; then
        ok "sigterm-stalled-console: exit 4 ${took} s after SIGTERM (shutdown timeout 5 s), $tx bytes out before the stall"
    elif [ "$rc" = timeout ]; then
        not_ok sigterm-stalled-console "vmlet still running ${SIGTERM_WATCHDOG} s after SIGTERM with the console stalled ($tx bytes out); killed"
    else
        not_ok sigterm-stalled-console "vmlet exit $rc ${took} s after SIGTERM (want 4, after the 5 s shutdown timeout)"
    fi
else
    not_ok sigterm-stalled-console "the console output never stalled (serial tx_bytes '$tx', before '$prev'; see $log)"
    kill -KILL $pid 2>/dev/null
fi
end_stalled

# ---- vmlet firecracker ------------------------------------------------------
# The walk-through of docs/firecracker.md, with the lab's kernel, initrd
# and an 8 MiB drive.
fsock=$tmp/fc.sock
# fcall METHOD PATH [JSON]: call on the Firecracker-mode socket.
fcall() { sock=$fsock call "$@"; }
# fc_metric OBJECT FIELD: the sum over the metrics file's lines of
# OBJECT.FIELD (Firecracker's counters are each line's since the previous).
fc_metric() {
    sed -n "s/.*\"$1\":{\([^}]*\)}.*/\1/p" "$tmp/fc-metrics" 2>/dev/null | tr ',' '\n' |
        sed -n "s/^\"$2\":\([0-9]*\)\$/\1/p" | awk '{ s += $1 } END { print s + 0 }'
}
# wait_running SECONDS: polls GET / until "Running", as Kata does.
wait_running() {
    _d=$(($(secs) + $1))
    while [ "$(secs)" -lt "$_d" ] && kill -0 $pid 2>/dev/null; do
        fcall GET / | grep -q '"state":"Running"' && return 0
        sleep 0.5
    done
    return 1
}
# agent SOCKET WORD: the guest's agent port (vsock 1024, vmlet.test=agent)
# through the hybrid vsock socket: "ping-WORD" echoed, or what came.
agent() {
    printf 'CONNECT 1024\nping-%s\n' "$2" | timeout 60 socat -t 10 - "UNIX-CONNECT:$1" 2>&1 |
        tr -d '\r' | tail -n 1
}
wait_socket() {
    _d=$(($(secs) + 30))
    while [ ! -S "$fsock" ] && [ "$(secs)" -lt "$_d" ] && kill -0 $pid 2>/dev/null; do sleep 0.2; done
    [ -S "$fsock" ]
}

v=$("$vmlet" firecracker --version | head -n1 | cut -d' ' -f2)
ln -sf "$(readlink -f "$vmlet")" "$tmp/firecracker"
v2=$("$tmp/firecracker" --version | head -n1 | cut -d' ' -f2)
# Kata's check: the second word, less its "v", a semantic version >= 0.21.1.
case $v in
v[1-9]*.*.*)
    if [ "$v" = "$v2" ]; then ok fc-version "$v"; else not_ok fc-version "as firecracker: '$v2', as vmlet firecracker: '$v'"; fi ;;
*) not_ok fc-version "second word of the first line is '$v'" ;;
esac

log=$logdir/vmlet-fc.log
truncate -s 8M "$tmp/fc-drive.img"
# Kata's placeholder: an empty file (os.Create), later swapped by PATCH
# /drives for the image to hotplug: here a copy of the guests' root disk
# (32 MiB of ext4), which the guest mounts to hash one file of it.
: >"$tmp/drive_0"
root_image=${ROOT_IMAGE:-$(dirname "$initrd")/root.ext4.gz}
gzip -dc "$root_image" >"$tmp/fc-hot.img"
hot_file=/usr/bin/vsockecho
hot_sha=$(debugfs -R "cat $hot_file" "$tmp/fc-hot.img" 2>/dev/null | sha)
outside=${TMPDIR:-/tmp}/api.$$.outside.img
truncate -s 1M "$outside"
rm -f "$fsock"
"$vmlet" firecracker --api-sock "$fsock" --id lab-fc </dev/null >"$log" 2>"$logdir/vmlet-fc.err" &
pid=$!
if wait_socket; then
    r1=$(fcall PUT /boot-source "{\"kernel_image_path\": \"$kernel\", \"initrd_path\": \"$initrd\", \"boot_args\": \"$BASE vmlet.test=info,hotswap,counter vmlet.hotswap=vdb vmlet.hotfile=$hot_file\"}")
    r2=$(fcall PUT /machine-config '{"vcpu_count": 2, "mem_size_mib": 256}')
    r3=$(fcall PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$tmp/fc-drive.img\", \"is_root_device\": false, \"is_read_only\": false}")
    r5=$(fcall PUT /drives/drive_0 "{\"drive_id\": \"drive_0\", \"path_on_host\": \"$tmp/drive_0\", \"is_root_device\": false, \"is_read_only\": false}")
    r4=$(fcall PUT /actions '{"action_type": "InstanceStart"}')
    if wait_for VMLET-HOTSWAP-READY= 120 && [ "$(status "$r5")" = 204 ] && [ "$(val VMLET-HOTSWAP-READY)" = 0 ]; then
        ok fc-placeholder-drive
    else
        not_ok fc-placeholder-drive "PUT /drives/drive_0 answered '$r5', InstanceStart '$r4'; the guest's vdb: '$(val VMLET-HOTSWAP-READY)' sectors (want 0)"
    fi
    # The sandbox (on by default) lets the API thread open only files
    # beneath the drives' directories ($tmp): one beside it is refused.
    if dmesg | grep -q 'landlock: Up and running'; then
        r=$(fcall PATCH /drives/drive_0 "{\"drive_id\": \"drive_0\", \"path_on_host\": \"$outside\"}")
        case $r in
        *'Permission denied'*' 400') ok fc-patch-drive-outside ;;
        *) not_ok fc-patch-drive-outside "PATCH to $outside answered '$r' (want 400, permission denied)" ;;
        esac
    else
        ok fc-patch-drive-outside "# SKIP L1's kernel runs no Landlock: nothing limits which files"
    fi
    r=$(fcall PATCH /drives/drive_0 "{\"drive_id\": \"drive_0\", \"path_on_host\": \"$tmp/fc-hot.img\"}")
    if [ "$(status "$r")" = 204 ]; then ok fc-patch-drive; else not_ok fc-patch-drive "PATCH answered '$r'"; fi
    if wait_for VMLET-HOTSWAP-MOUNT= 180 && [ "$(val VMLET-HOTSWAP-SECTORS)" = 65536 ] &&
       [ "$(val VMLET-HOTSWAP-MOUNT)" = ok ] && wait_for VMLET-HOTSWAP-SHA= 60 &&
       [ "$(val VMLET-HOTSWAP-SHA)" = "$hot_sha" ]; then
        ok fc-hotplug-mount
    else
        not_ok fc-hotplug-mount "the guest's vdb: '$(val VMLET-HOTSWAP-SECTORS)' sectors (want 65536), mount: '$(val VMLET-HOTSWAP-MOUNT)', $hot_file's sha256 '$(val VMLET-HOTSWAP-SHA)' (in the image: $hot_sha)"
    fi
    deadline=$(($(secs) + 120))
    while [ "$(ticks)" = 0 ] && kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do sleep 0.5; done
    if [ "$(status "$r1")" = 204 ] && [ "$(status "$r2")" = 204 ] && [ "$(status "$r3")" = 204 ] &&
       [ "$(status "$r4")" = 204 ] && [ "$(val VMLET-VDA-SECTORS)" = 16384 ] &&
       [ "$(val VMLET-NPROC)" = 2 ] && [ "$(ticks)" != 0 ]; then
        ok fc-boot
    else
        not_ok fc-boot "answers '$r1' '$r2' '$r3' '$r4'; guest: vda '$(val VMLET-VDA-SECTORS)' sectors (want 16384), '$(val VMLET-NPROC)' CPUs (want 2), $(ticks) ticks"
    fi
    r=$(fcall GET /)
    case $r in
    *'"id":"lab-fc"'*'"state":"Running"'*' 200') ok fc-running ;;
    *) not_ok fc-running "GET / answered '$r'" ;;
    esac
    names=$(cat /proc/$pid/task/*/comm 2>/dev/null | grep '^fc_vcpu' | sort | tr '\n' ',')
    if [ "$names" = "fc_vcpu 0,fc_vcpu 1," ]; then ok fc-vcpu-names; else not_ok fc-vcpu-names "vCPU threads '$names'"; fi

    t0=$(ticks)
    sleep 2
    tb=$(ticks)
    r=$(fcall PATCH /vm '{"state": "Paused"}')
    s=$(fcall GET /)
    sleep 1
    t1=$(ticks)
    sleep 3
    t2=$(ticks)
    if [ "$(status "$r")" = 204 ] && [ "$tb" -gt "$t0" ] && [ "$t1" = "$t2" ] &&
       echo "$s" | grep -q '"state":"Paused"'; then
        ok fc-pause
    else
        not_ok fc-pause "PATCH answered '$r', GET / '$s', ticks $t0 -> $tb before, $t1 -> $t2 while paused"
    fi
    r=$(fcall PATCH /vm '{"state": "Resumed"}')
    sleep 3
    t3=$(ticks)
    if [ "$(status "$r")" = 204 ] && [ "$t3" -gt "$t2" ]; then ok fc-resume; else not_ok fc-resume "PATCH answered '$r', ticks $t2 -> $t3"; fi

    r=$(fcall PUT /actions '{"action_type": "SendCtrlAltDel"}')
    wait_gone 60
    if [ "$(status "$r")" = 204 ] && [ "$rc" = 0 ] && grep -q VMLET-SHUTDOWN "$log" && [ ! -e "$fsock" ]; then
        ok fc-ctrl-alt-del
    else
        not_ok fc-ctrl-alt-del "PUT answered '$r', exit $rc (want 0), socket $([ -e "$fsock" ] && echo left || echo removed)"
    fi
else
    for c in placeholder-drive patch-drive-outside patch-drive hotplug-mount boot running vcpu-names \
        pause resume ctrl-alt-del; do
        not_ok "fc-$c" "no API socket (see $logdir/vmlet-fc.err)"
    done
fi
kill -KILL $pid 2>/dev/null

# Kata's way: a config file, the binary named firecracker, GET / polled.
log=$logdir/vmlet-fc-config.log
rm -f "$fsock" "$tmp/fc-metrics" "$tmp/fc.log"
: >"$tmp/drive_0"
: >"$tmp/drive_1"
cat >"$tmp/fc-config.json" <<EOF
{"boot-source": {"kernel_image_path": "$kernel", "initrd_path": "$initrd",
                 "boot_args": "$BASE vmlet.test=agent,counter"},
 "machine-config": {"vcpu_count": 1, "mem_size_mib": 256, "smt": false},
 "vsock": {"guest_cid": 3, "uds_path": "$tmp/fc-v.sock"},
 "drives": [{"drive_id": "rootfs", "path_on_host": "$tmp/fc-drive.img", "is_root_device": false,
             "is_read_only": true, "rate_limiter": {}},
            {"drive_id": "drive_0", "path_on_host": "$tmp/drive_0", "is_root_device": false,
             "is_read_only": false},
            {"drive_id": "drive_1", "path_on_host": "$tmp/drive_1", "is_root_device": false,
             "is_read_only": false}],
 "logger": {"log_path": "$tmp/fc.log", "level": "Info"},
 "metrics": {"metrics_path": "$tmp/fc-metrics"}}
EOF
"$tmp/firecracker" --api-sock "$fsock" --config-file "$tmp/fc-config.json" </dev/null >"$log" 2>"$logdir/vmlet-fc-config.err" &
pid=$!
if wait_running 120; then
    ok fc-config-file
    # "Running" comes with the first vCPU instruction; the power button
    # reaches only a guest whose acpid runs, so wait for its init's ticks
    # (run 2 of this check pressed it at once and the press was lost).
    deadline=$(($(secs) + 120))
    while [ "$(ticks)" = 0 ] && kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do sleep 0.5; done
    # Firecracker's metrics lines: one at InstanceStart, one now. The
    # guest's init ticks, so virtio_blk has read the rootfs drive's
    # partition table: the sum of the lines' counters (each since the
    # previous line) has its bytes, under "block" and "block_rootfs".
    r=$(fcall PUT /actions '{"action_type": "FlushMetrics"}')
    m=$(tail -n1 "$tmp/fc-metrics" 2>/dev/null)
    n=$(wc -l <"$tmp/fc-metrics" 2>/dev/null || echo 0)
    rd=$(fc_metric block read_bytes)
    rdroot=$(fc_metric block_rootfs read_bytes)
    case "$(status "$r") $m" in
    '204 {"utc_timestamp_ms":'*'"block_drive_0":{'*'"block_drive_1":{'*'"block_rootfs":{'*'"block":{'*'"put_api_requests":{'*'"vsock":{'*)
        if [ "$n" -ge 2 ] && [ "$rd" -gt 0 ] && [ "$rd" = "$rdroot" ]; then
            ok fc-metrics "$n lines; block read_bytes $rd (block_rootfs $rdroot)"
        else
            not_ok fc-metrics "$n lines (want 2 or more); block read_bytes $rd, block_rootfs $rdroot (want the same, above 0)"
        fi ;;
    *) not_ok fc-metrics "FlushMetrics answered '$r'; the file's last line '$(echo "$m" | head -c 300)'" ;;
    esac
    # The agent's port over hybrid vsock, then a pause and a resume, as
    # a Kata pod's life has them.
    a=$(agent "$tmp/fc-v.sock" one)
    r1=$(fcall PATCH /vm '{"state": "Paused"}')
    s=$(fcall GET /)
    t1=$(ticks)
    sleep 2
    t2=$(ticks)
    r2=$(fcall PATCH /vm '{"state": "Resumed"}')
    sleep 2
    t3=$(ticks)
    if [ "$a" = ping-one ] && [ "$(status "$r1")" = 204 ] && [ "$(status "$r2")" = 204 ] &&
       echo "$s" | grep -q '"state":"Paused"' && [ "$t1" = "$t2" ] && [ "$t3" -gt "$t2" ]; then
        ok fc-agent-vsock "CONNECT 1024 echoed; paused (ticks $t1 -> $t2), resumed (-> $t3)"
    else
        not_ok fc-agent-vsock "agent answered '$a' (guest: $(val VMLET-AGENT-READY)); pause '$r1' '$s', ticks $t1 -> $t2, resume '$r2' -> $t3"
    fi
    fcall PUT /actions '{"action_type": "SendCtrlAltDel"}' >/dev/null
    wait_gone 60
    echo "# fc-metrics over the microVM's life ($(wc -l <"$tmp/fc-metrics") lines): block read_bytes $(fc_metric block read_bytes), write_bytes $(fc_metric block write_bytes), vsock conns_added $(fc_metric vsock conns_added), rx_bytes_count $(fc_metric vsock rx_bytes_count), uart write_count $(fc_metric uart write_count), put_api_requests actions_count $(fc_metric put_api_requests actions_count)"
    if [ "$rc" = 0 ] && grep -q "InstanceStart" "$tmp/fc.log"; then
        ok fc-config-file-exit
    else
        not_ok fc-config-file-exit "exit $rc (want 0) after $(ticks) ticks; log: '$(grep -a InstanceStart "$tmp/fc.log" | tail -n1)' ... '$(tail -n1 "$tmp/fc.log" 2>/dev/null)'"
    fi
else
    not_ok fc-config-file "GET / never said Running: '$(fcall GET /)' (see $logdir/vmlet-fc-config.err: $(head -c 200 "$logdir/vmlet-fc-config.err"))"
    not_ok fc-metrics "no running microVM"
    not_ok fc-agent-vsock "no running microVM"
    not_ok fc-config-file-exit "no running microVM"
fi
kill -KILL $pid 2>/dev/null

# Firecracker's snapshots: a microVM booted from a config file, paused,
# PUT /snapshot/create (two files), the process killed; a new one, PUT
# /snapshot/load with resume_vm before anything else: its guest ticks on,
# its vCPU threads have Firecracker's names, the power button ends it.
log=$logdir/vmlet-fc-snap.log
rm -f "$fsock" "$tmp/fc.state" "$tmp/fc.mem"
"$tmp/firecracker" --api-sock "$fsock" --config-file "$tmp/fc-config.json" </dev/null >"$log" 2>"$logdir/vmlet-fc-snap.err" &
pid=$!
deadline=$(($(secs) + 120))
while [ "$(ticks)" = 0 ] && kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do sleep 0.5; done
r1=$(fcall PATCH /vm '{"state": "Paused"}')
r2=$(fcall PUT /snapshot/create "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"$tmp/fc.state\", \"mem_file_path\": \"$tmp/fc.mem\"}")
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
if [ "$(status "$r1")" = 204 ] && [ "$(status "$r2")" = 204 ] && [ -f "$tmp/fc.state" ] &&
   [ "$(stat -c %s "$tmp/fc.mem" 2>/dev/null)" = $((256 << 20)) ]; then
    ok fc-snapshot-create "state $(stat -c %s "$tmp/fc.state") bytes, memory $(($(du -k "$tmp/fc.mem" | cut -f1) / 1024)) MiB on disk"
    log=$logdir/vmlet-fc-load.log
    rm -f "$fsock"
    "$tmp/firecracker" --api-sock "$fsock" --id lab-fc-load </dev/null >"$log" 2>"$logdir/vmlet-fc-load.err" &
    pid=$!
    r=
    wait_socket && r=$(fcall PUT /snapshot/load "{\"snapshot_path\": \"$tmp/fc.state\", \"mem_backend\": {\"backend_path\": \"$tmp/fc.mem\", \"backend_type\": \"File\"}, \"resume_vm\": true, \"vsock_override\": {\"uds_path\": \"$tmp/fc-v2.sock\"}}")
    deadline=$(($(secs) + 60))
    while [ "$(ticks)" -lt 2 ] && kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do sleep 0.5; done
    s=$(fcall GET /)
    names=$(cat /proc/$pid/task/*/comm 2>/dev/null | grep '^fc_vcpu' | sort | tr '\n' ',')
    n=$(ticks)
    a=$(agent "$tmp/fc-v2.sock" two)
    # Drive IDs are not in vmlet's snapshots: a PATCH says so.
    pd=$(fcall PATCH /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$tmp/fc-drive.img\"}")
    fcall PUT /actions '{"action_type": "SendCtrlAltDel"}' >/dev/null
    wait_gone 60
    if [ "$(status "$r")" = 204 ] && [ "$n" -ge 2 ] && [ "$names" = "fc_vcpu 0," ] &&
       echo "$s" | grep -q '"state":"Running"' && [ "$a" = ping-two ] && [ "$rc" = 0 ] &&
       [ "$(status "$pd")" = 400 ] && echo "$pd" | grep -q 'do not keep drive IDs'; then
        ok fc-snapshot-load "$n ticks after the load; the agent answered through the overridden vsock socket; PATCH /drives refused as documented; powered off"
    else
        not_ok fc-snapshot-load "load answered '$r', GET / '$s', $n ticks, vCPU threads '$names', agent '$a', PATCH /drives '$pd', exit $rc; stderr: $(head -c 300 "$logdir/vmlet-fc-load.err")"
    fi
else
    not_ok fc-snapshot-create "pause answered '$r1', create '$r2'; files: $(stat -c '%n %s' "$tmp/fc.state" "$tmp/fc.mem" 2>&1 | tr '\n' ' ')"
    not_ok fc-snapshot-load "no snapshot"
fi
kill -KILL $pid 2>/dev/null

[ "$fail" = 0 ] || { echo "# api: last console:"; tail -n 10 "$log" | sed 's/^/#   /'; }
rm -rf "$tmp" "$outside"
[ "$fail" = 0 ]
