#!/bin/sh
# Snapshots (issue 15): a VM with the serial console alone is paused,
# saved through the control socket (PUT /snapshot/create), stopped, and
# restored by a new vmlet (`vmlet run --restore DIR`); the guest must go
# on where it stopped. POSIX sh, busybox; needs curl. Guest: vmlet.test=count
# (tests/lab/guest/main: "VMLET-COUNT=N up=UPTIME loc=TIMER-IRQS-PER-CPU"
# every 0.2 s).
#   snapshot.sh VMLET KERNEL INITRD LOGDIR
#   snapshot.sh --plan            the check names, one a line
#
#   snapshot-save-running-refused   PUT /snapshot/create while running: 409,
#                                   no directory made
#   snapshot-save-Ncpu              paused and saved: 204, DIR has state and
#                                   memory, no DIR.tmp left
#   snapshot-sparse-Ncpu            the memory file's blocks on disk are fewer
#                                   than the guest's RAM (pages never touched
#                                   take none)
#   snapshot-restore-Ncpu           the new vmlet's guest counts on from the
#                                   saved one's last number (not from 1), its
#                                   uptime goes on, every CPU's timer ticks
#   snapshot-poweroff-Ncpu          RequestShutdown on the restored VM: the
#                                   guest powers off, vmlet exits 0
#   snapshot-restore-1g             the same save and restore of a 1 GiB guest
#                                   (restore times of 256 MiB and 1 GiB printed)
#   snapshot-devices-save           a VM with root on a virtio disk, virtio-rng,
#                                   the virtio console and a user-mode NIC
#                                   (guest: vmlet.test=snapdev), each used once,
#                                   paused and saved: 204
#   snapshot-devices-console        restored by a new vmlet: a command typed on
#                                   its stdin reaches the guest's hvc0 shell
#                                   loop and its answer comes back; "quit"
#                                   powers the guest off, exit 0
#   snapshot-devices-disk           the file written before the save reads back
#                                   from the disk (page cache dropped) with the
#                                   same sha256; a new file is written and
#                                   read back
#   snapshot-devices-hwrng          /dev/hwrng (virtio_rng) gives 32 bytes, not
#                                   zeros, not the ones read before the save
#   snapshot-devices-net            the guest fetches a page from the host's
#                                   loopback through 10.0.2.2 (new NAT, same
#                                   guest address)
#   snapshot-devices-disk-size      the disk image grown by 1 MiB: the restore
#                                   is refused with one line naming both sizes
#   snapshot-clone-save             a guest with a user-mode NIC (guest:
#                                   vmlet.test=snapclone) paused and saved
#   snapshot-clone-paused           a clone restored with --paused: GET / says
#                                   paused and the guest answers nothing typed
#                                   until PATCH /vm Resumed
#   snapshot-clone-macs             two clones from that snapshot run side by
#                                   side, each restored with --net user,mac=...
#                                   of its own: after the driver probes the NIC
#                                   again, each guest has its clone's MAC and
#                                   fetches a page from the host through it
#   snapshot-vsock-save             a guest with a vsock device (the vsock
#                                   guest: an echo server on port 6003) answers
#                                   a host CONNECT, is paused and saved
#   snapshot-vsock-restore          restored with --vsock of another CID and
#                                   socket: a host CONNECT through the new
#                                   socket is echoed (the guest took the new CID
#                                   from the transport reset event: vmlet drops
#                                   packets from any other)
#   snapshot-fsb-save               a VM with a share (--share) and a balloon
#                                   (--balloon stats=1) (guest: vmlet.test=snapfsb):
#                                   the share mounted, a file of it opened,
#                                   read and written by path once; paused and
#                                   saved: 204
#   snapshot-fsb-share              restored by a new vmlet: the host's file
#                                   reads again by path, a file the guest
#                                   writes appears on the host
#   snapshot-fsb-open-file          the file opened before the save: reading
#                                   it fails with an error (ESTALE/EBADF),
#                                   no hang, no data
#   snapshot-fsb-stats              the guest's balloon statistics come again
#                                   (GET /balloon/statistics: 2 updates or more)
#   snapshot-fsb-inflate            PATCH /balloon 64 MiB: actual 64, the
#                                   guest's MemTotal 60 MiB lower; 0 gives
#                                   it back
#   snapshot-vmgenid-boot           Debian's generic kernel (it has the vmgenid
#                                   driver; the cloud kernel has not): the driver
#                                   is bound to \_SB.VGEN, the ID at its address
#                                   is not zero (guest: vmlet.test=vmgenid)
#   snapshot-vmgenid-restore        saved, restored by a new vmlet: the guest
#                                   reads another ID, its Generic Event Device
#                                   took the interrupt and the kernel reseeded
#                                   its RNG ("crng reseeded due to virtual
#                                   machine fork")
#   snapshot-vmgenid-clones         a second restore of the same snapshot: an ID
#                                   unlike both before, reseeded again
#   snapshot-refuse-damaged         restoring a cut-short state file, a memory
#                                   file of the wrong size, or with --kernel:
#                                   vmlet exits 1 (2) with one clear line
CHECKS="snapshot-save-running-refused snapshot-save-1cpu snapshot-sparse-1cpu
        snapshot-restore-1cpu snapshot-poweroff-1cpu snapshot-save-2cpu snapshot-sparse-2cpu
        snapshot-restore-2cpu snapshot-poweroff-2cpu snapshot-restore-1g snapshot-devices-save
        snapshot-devices-console snapshot-devices-disk snapshot-devices-hwrng snapshot-devices-net
        snapshot-devices-disk-size snapshot-clone-save snapshot-clone-paused snapshot-clone-macs
        snapshot-vsock-save snapshot-vsock-restore snapshot-fsb-save snapshot-fsb-share
        snapshot-fsb-open-file snapshot-fsb-stats snapshot-fsb-inflate snapshot-vmgenid-boot
        snapshot-vmgenid-restore snapshot-vmgenid-clones snapshot-refuse-damaged"
if [ "${1:-}" = --plan ]; then
    for c in $CHECKS; do echo "$c"; done
    exit 0
fi
vmlet=$1 kernel=$2 initrd=$3 logdir=$4
tmp=${TMPDIR:-/tmp}/snapshot.$$
mkdir -p "$tmp" "$logdir"
. "$(dirname "$0")/checks.sh"
BASE="console=ttyS0 quiet panic=-1"
sock=$tmp/api.sock

call() {
    if [ -n "${3:-}" ]; then
        curl -s -m 600 --unix-socket "$sock" -X "$1" -H 'Content-Type: application/json' \
            -d "$3" -w ' %{http_code}' "http://localhost$2"
    else
        curl -s -m 30 --unix-socket "$sock" -X "$1" -w ' %{http_code}' "http://localhost$2"
    fi
}
status() { echo "$1" | awk '{ print $NF }'; }
# count_line N: the console's Nth-from-last complete VMLET-COUNT line (1: last).
count_line() { tr -d '\r' <"$log" | grep -a '^VMLET-COUNT=[0-9]* up=[0-9.]* loc=[0-9,]*$' | tail -n "$1" | head -n 1; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
first_count() { tr -d '\r' <"$log" | grep -a '^VMLET-COUNT=[0-9]* up=[0-9.]* loc=[0-9,]*$' | head -n 1; }
ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

# wait_exit SECONDS: rc = vmlet's exit status, or "timeout" (then killed).
wait_exit() {
    _d=$(($(secs) + $1))
    while kill -0 "$pid" 2>/dev/null && [ "$(secs)" -lt "$_d" ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid"
        rc=timeout
    else
        wait "$pid"
        rc=$?
    fi
}

# boot NAME CPUS MEMORY [ARGS...]: the counting guest with the socket; waits
# for its third count.
boot() {
    log=$logdir/vmlet-snapshot-$1.log
    cpus=$2 mem=$3
    shift 3
    rm -f "$sock"
    "$vmlet" run --kernel "$kernel" --initrd "$initrd" --cpus "$cpus" --memory "$mem" \
        --cmdline "$BASE vmlet.test=count" --api-sock "$sock" "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    wait_for VMLET-COUNT=3 300
}

# pause_save_stop DIR: pauses, saves into DIR, stops vmlet and waits for
# it; sets r (the pause's answer) and saved (the save's).
pause_save_stop() {
    r=$(call PATCH /vm '{"state":"Paused"}')
    saved=$(call PUT /snapshot/create "{\"snapshot_path\":\"$1\"}")
    call PUT /actions '{"action_type":"Stop"}' >/dev/null
    wait_exit 60
}

# save_and_stop DIR: pauses, saves into DIR, stops vmlet; sets saved (the
# PUT's answer), last (the last count line before the stop), save_ms.
save_and_stop() {
    r=$(call PATCH /vm '{"state":"Paused"}')
    sleep 1
    last=$(count_line 1)
    t0=$(ms)
    saved=$(call PUT /snapshot/create "{\"snapshot_path\":\"$1\"}")
    save_ms=$(($(ms) - t0))
    after=$(count_line 1)
    call PUT /actions '{"action_type":"Stop"}' >/dev/null
    wait_exit 60
    [ "$(status "$r")" = 204 ] && [ "$after" = "$last" ]
}

# restore NAME DIR: a new vmlet from DIR; waits for two new counts. Sets
# restore_ms (launch to the first new count, from outside), said (vmlet's
# own "restored ... in N ms" line).
restore() {
    log=$logdir/vmlet-snapshot-$1.log
    rm -f "$sock"
    t0=$(ms)
    "$vmlet" run --restore "$2" --api-sock "$sock" </dev/null >"$log" 2>"$log.err" &
    pid=$!
    first=
    _d=$(($(secs) + 120))
    while [ -z "$first" ] && kill -0 "$pid" 2>/dev/null && [ "$(secs)" -lt "$_d" ]; do
        first=$(first_count)
        [ -n "$first" ] || sleep 0.05
    done
    restore_ms=$(($(ms) - t0))
    said=$(grep -a 'restored' "$log.err" | tr -d '\r' | sed -n 's/.* in \([0-9.]*\) ms.*/\1/p')
    # Long enough for an idle CPU's timer to tick too (NOHZ).
    [ -n "$first" ] && sleep 5
}

# one_round CPUS: boot, save, stop, restore, power off; the checks.
one_round() {
    n=$1
    dir=$tmp/snap-${n}cpu
    if ! boot "${n}cpu" "$n" 256M; then
        [ "$n" = 1 ] && not_ok snapshot-save-running-refused "the guest never counted (see $log)"
        for c in save sparse restore poweroff; do not_ok "snapshot-$c-${n}cpu" "the guest never counted (see $log)"; done
        kill -KILL "$pid" 2>/dev/null
        return
    fi
    if [ "$n" = 1 ]; then
        r=$(call PUT /snapshot/create "{\"snapshot_path\":\"$tmp/running\"}")
        if [ "$(status "$r")" = 409 ] && [ ! -e "$tmp/running" ] && [ ! -e "$tmp/running.tmp" ]; then
            ok snapshot-save-running-refused
        else
            not_ok snapshot-save-running-refused "answered '$r'; $(ls -d "$tmp"/running* 2>/dev/null)"
        fi
    fi
    boot_log=$log
    if save_and_stop "$dir" && [ "$(status "$saved")" = 204 ] && [ -f "$dir/state" ] &&
       [ -f "$dir/memory" ] && [ ! -e "$dir.tmp" ]; then
        ok "snapshot-save-${n}cpu" "in $save_ms ms"
    else
        not_ok "snapshot-save-${n}cpu" "answered '$saved'; the count moved while paused: '$last' -> '$after'; files: $(find "$dir" "$dir.tmp" 2>&1 | tr '\n' ' ')"
        for c in sparse restore poweroff; do not_ok "snapshot-$c-${n}cpu" "no snapshot"; done
        return
    fi
    size=$(stat -c %s "$dir/memory")
    used_kb=$(du -k "$dir/memory" | cut -f1)
    echo "# snapshot ${n}cpu: memory file $((size >> 20)) MiB, $((used_kb / 1024)) MiB on disk; state $(stat -c %s "$dir/state") bytes"
    if [ "$size" = $((256 << 20)) ] && [ "$used_kb" -lt $((256 * 1024)) ]; then
        ok "snapshot-sparse-${n}cpu" "$((used_kb / 1024)) MiB of 256 on disk"
    else
        not_ok "snapshot-sparse-${n}cpu" "memory file $size bytes, $used_kb KiB on disk"
    fi
    restore "restored-${n}cpu" "$dir"
    eval "restore_ms_256_${n}=\$restore_ms said_256_${n}=\$said"
    last_n=$(field "$last" VMLET-COUNT) last_up=$(field "$last" up) last_loc=$(field "$last" loc)
    first_n=$(field "$first" VMLET-COUNT)
    now=$(count_line 1)
    now_n=$(field "$now" VMLET-COUNT) now_up=$(field "$now" up) now_loc=$(field "$now" loc)
    # Every CPU's timer interrupts went up after the restore.
    cpus_ticking=$(awk -v a="$last_loc" -v b="$now_loc" -v n="$n" 'BEGIN {
        k = split(a, x, ","); split(b, y, ","); t = 0
        for (i = 1; i <= k; i++) if (y[i] + 0 > x[i] + 0) t++
        print (k == n ? t : -1) }')
    up_ok=$(awk -v a="$last_up" -v b="$now_up" 'BEGIN { print (b + 0 > a + 0) ? 1 : 0 }')
    echo "# restored ${n}cpu: saved at '$last', first after '$first', then '$now'; restore ${restore_ms} ms from launch to the first count (vmlet: ${said:-?} ms)"
    if [ -n "$first_n" ] && [ -n "$last_n" ] && [ "$first_n" -gt "$last_n" ] &&
       [ "$first_n" -le $((last_n + 2)) ] && [ "${now_n:-0}" -gt "$first_n" ] &&
       [ "$up_ok" = 1 ] && [ "$cpus_ticking" = "$n" ]; then
        ok "snapshot-restore-${n}cpu" "count $last_n -> $first_n, uptime $last_up -> $now_up, timers of $cpus_ticking CPUs ticking"
    else
        not_ok "snapshot-restore-${n}cpu" "saved at '$last', first count after restore '$first', then '$now' (CPUs ticking: $cpus_ticking of $n); stderr: $(head -c 300 "$log.err")"
    fi
    r=$(call PUT /actions '{"action_type":"RequestShutdown"}')
    wait_exit 120
    if [ "$(status "$r")" = 204 ] && [ "$rc" = 0 ] && grep -q VMLET-SHUTDOWN "$log"; then
        ok "snapshot-poweroff-${n}cpu"
    else
        not_ok "snapshot-poweroff-${n}cpu" "PUT answered '$r', vmlet exit $rc; console: $(tail -c 300 "$log" | tr '\r\n' '  ')"
    fi
    rm -rf "$dir"
    : "$boot_log"
}

one_round 1
one_round 2

# ---- 1 GiB: restore time must not grow with the guest's memory ----------
dir=$tmp/snap-1g
if boot 1g 1 1G && save_and_stop "$dir" && [ "$(status "$saved")" = 204 ]; then
    echo "# snapshot 1g: memory file $(($(stat -c %s "$dir/memory") >> 20)) MiB, $(($(du -k "$dir/memory" | cut -f1) / 1024)) MiB on disk; saved in $save_ms ms"
    restore restored-1g "$dir"
    last_n=$(field "$last" VMLET-COUNT) first_n=$(field "$first" VMLET-COUNT)
    echo "# restore times (launch to the first count / vmlet's own): 256 MiB ${restore_ms_256_1:-?} / ${said_256_1:-?} ms, 1 GiB ${restore_ms} / ${said:-?} ms"
    if [ -n "$first_n" ] && [ "$first_n" -gt "${last_n:-0}" ] && [ "$first_n" -le $((last_n + 2)) ]; then
        ok snapshot-restore-1g "count $last_n -> $first_n; restore ${said:-?} ms (256 MiB: ${said_256_1:-?} ms)"
    else
        not_ok snapshot-restore-1g "saved at '$last', first after restore '$first'; stderr: $(head -c 300 "$log.err")"
    fi
    call PUT /actions '{"action_type":"Stop"}' >/dev/null
    wait_exit 60
else
    not_ok snapshot-restore-1g "boot or save failed ('${saved:-}'; see $log)"
    kill -KILL "$pid" 2>/dev/null
fi

# ---- virtio devices ----------------------------------------------------------
DEV_CHECKS="snapshot-devices-save snapshot-devices-console snapshot-devices-disk
            snapshot-devices-hwrng snapshot-devices-net snapshot-devices-disk-size"
ROOT_IMAGE=${ROOT_IMAGE:-$(dirname "$initrd")/root.ext4.gz}
dev=$tmp/dev
mkdir -p "$dev/www"
token=tok-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
echo "$token" >"$dev/www/token"
port=8010
# The guest reaches 10.0.2.2, which user-mode NAT connects to the host's
# 127.0.0.1: L1's loopback must be up (nothing else in L1 brings it up;
# with it down that connect fails, and the guest's wget says "Network is
# unreachable": libslirp answers the failed connect with an ICMP error).
ip link set lo up
httpd -f -p 127.0.0.1:$port -h "$dev/www" &
httpd_pid=$!
# The guest's stdin: a FIFO held open here (vmlet never sees EOF), shared
# by the saved vmlet and the restored one.
mkfifo "$dev/in"
exec 7<>"$dev/in"
# sv KEY: the value of the console's last KEY= line.
sv() { tr -d '\r' <"$log" | grep -a "^$1=" | tail -n 1 | cut -d= -f2-; }
dev_fail() { for c in $DEV_CHECKS; do not_ok "$c" "$1"; done; }
case $ROOT_IMAGE in
*.gz) gzip -dc "$ROOT_IMAGE" >"$dev/root.img" ;;
*) cp "$ROOT_IMAGE" "$dev/root.img" ;;
esac
log=$logdir/vmlet-snapshot-devices.log
rm -f "$sock"
"$vmlet" run --kernel "$kernel" --initrd "$initrd" --cpus 1 --memory 256M \
    --cmdline "console=hvc0 quiet panic=-1 rdinit=/etc/init.d/diskroot root=/dev/vda rw vmlet.test=snapdev" \
    --disk "$dev/root.img" --rng --console virtio --net user --api-sock "$sock" \
    <"$dev/in" >"$log" 2>&1 &
pid=$!
if ! wait_for VMLET-SNAP-READY 300; then
    dev_fail "the guest never got ready (see $log)"
    kill -KILL "$pid" 2>/dev/null
else
    before=$(sv VMLET-SNAP-BEFORE)
    echo "check 1 $port" >&7
    wait_for VMLET-SNAP-1-DONE 120
    rng1=$(sv VMLET-SNAP-1-RNG)
    echo "# devices before the save: ip $(sv VMLET-SNAP-IP); disk $(sv VMLET-SNAP-1-DISK); rng $rng1; net '$(sv VMLET-SNAP-1-NET)'"
    if [ "$(sv VMLET-SNAP-1-NET)" != "$token" ] || [ -z "$before" ]; then
        dev_fail "the devices did not work before the save: $(tr -d '\r' <"$log" | grep -a '^VMLET-SNAP' | tr '\n' ' ')"
        call PUT /actions '{"action_type":"Stop"}' >/dev/null
        wait_exit 60
    else
        pause_save_stop "$dev/snap"
        if [ "$(status "$saved")" = 204 ] && [ -f "$dev/snap/state" ]; then
            ok snapshot-devices-save "state $(stat -c %s "$dev/snap/state") bytes"
            log=$logdir/vmlet-snapshot-devices-restored.log
            rm -f "$sock"
            "$vmlet" run --restore "$dev/snap" --api-sock "$sock" <"$dev/in" >"$log" 2>"$log.err" &
            pid=$!
            echo "check 2 $port" >&7
            if ! wait_for VMLET-SNAP-2-DONE 120; then
                for c in console disk hwrng net; do
                    not_ok "snapshot-devices-$c" "no answer to 'check 2' after the restore; stderr: $(head -c 300 "$log.err"); console: $(tail -c 300 "$log" | tr '\r\n' '  ')"
                done
                kill -KILL "$pid" 2>/dev/null
            else
                echo quit >&7
                wait_exit 120
                if [ "$rc" = 0 ] && grep -q VMLET-SHUTDOWN "$log"; then
                    ok snapshot-devices-console "answered after the restore; 'quit' powered it off"
                else
                    not_ok snapshot-devices-console "answered, but after 'quit' vmlet exit $rc; console: $(tail -c 300 "$log" | tr '\r\n' '  ')"
                fi
                b2=$(sv VMLET-SNAP-2-BEFORE) d2=$(sv VMLET-SNAP-2-DISK)
                if [ "$b2" = "$before" ] && [ -n "${d2%% *}" ] && [ "${d2%% *}" = "${d2#* }" ]; then
                    ok snapshot-devices-disk "file of before the save: same sha256; new file read back"
                else
                    not_ok snapshot-devices-disk "before the save $before, after '$b2'; written/read '$d2'"
                fi
                rng2=$(sv VMLET-SNAP-2-RNG)
                hex=${rng2#* }
                case $rng2 in
                virtio_rng*)
                    if [ ${#hex} = 64 ] && [ -n "$(echo "$hex" | tr -d 0)" ] && [ "$rng2" != "$rng1" ]; then
                        ok snapshot-devices-hwrng
                    else
                        not_ok snapshot-devices-hwrng "after the restore '$rng2' (before: '$rng1')"
                    fi ;;
                *) not_ok snapshot-devices-hwrng "after the restore '$rng2'" ;;
                esac
                net2=$(sv VMLET-SNAP-2-NET)
                if [ "$net2" = "$token" ]; then
                    ok snapshot-devices-net "fetched the token through 10.0.2.2 again"
                else
                    not_ok snapshot-devices-net "fetched '$net2', expected '$token'"
                fi
            fi
            # The disk grew since the save: refused, one line.
            was=$(stat -c %s "$dev/root.img")
            truncate -s $((was + 1048576)) "$dev/root.img"
            "$vmlet" run --restore "$dev/snap" </dev/null >/dev/null 2>"$dev/size.err"
            rc=$?
            if [ "$rc" = 1 ] && [ "$(wc -l <"$dev/size.err")" = 1 ] &&
                grep -q "has $((was + 1048576)) bytes, but had $was when the snapshot was taken" "$dev/size.err"; then
                ok snapshot-devices-disk-size
                echo "# refused: $(cat "$dev/size.err")"
            else
                not_ok snapshot-devices-disk-size "exit $rc: $(head -c 300 "$dev/size.err")"
            fi
        else
            for c in $DEV_CHECKS; do
                not_ok "$c" "pause answered '$r', save answered '$saved'"
            done
        fi
    fi
fi
exec 7>&-
kill "$httpd_pid" 2>/dev/null

# ---- clones: one snapshot, two VMs side by side with MACs of their own ------
cl=$tmp/clone
mkdir -p "$cl/www"
echo "$token" >"$cl/www/token"
cport=8011
httpd -f -p 127.0.0.1:$cport -h "$cl/www" &
chttpd_pid=$!
mkfifo "$cl/in0" "$cl/in1" "$cl/in2"
exec 7<>"$cl/in0" 8<>"$cl/in1" 9<>"$cl/in2"
clone_fail() { for c in "$@"; do not_ok "snapshot-clone-$c" "$why"; done; }
# clone_wait NAME SECONDS: the console of clone NAME shows VMLET-CLONE-1-DONE.
clone_wait() {
    log=$cl/$1.log
    eval "pid=\$pid_$1"
    wait_for VMLET-CLONE-1-DONE "$2"
}
log=$logdir/vmlet-snapshot-clone.log
rm -f "$sock"
"$vmlet" run --kernel "$kernel" --initrd "$initrd" --cpus 1 --memory 256M \
    --cmdline "$BASE vmlet.test=snapclone" --net user,mac=52:54:00:00:0c:01 --api-sock "$sock" \
    <"$cl/in0" >"$log" 2>&1 &
pid=$!
if ! wait_for VMLET-CLONE-READY 300; then
    why="the guest never got ready (see $log)"
    clone_fail save paused macs
    kill -KILL "$pid" 2>/dev/null
else
    mac0=$(val VMLET-CLONE-MAC)
    pause_save_stop "$cl/snap"
    if [ "$(status "$saved")" != 204 ]; then
        why="save answered '$saved'"
        clone_fail save paused macs
    else
        ok snapshot-clone-save "the guest's MAC $mac0"
        # Clone a starts paused; clone b runs at once.
        "$vmlet" run --restore "$cl/snap" --net user,mac=52:54:00:00:0c:0a --paused \
            --api-sock "$cl/a.sock" <"$cl/in1" >"$cl/a.log" 2>"$cl/a.err" &
        pid_a=$!
        "$vmlet" run --restore "$cl/snap" --net user,mac=52:54:00:00:0c:0b \
            --api-sock "$cl/b.sock" <"$cl/in2" >"$cl/b.log" 2>"$cl/b.err" &
        pid_b=$!
        echo "mac 1 $cport" >&8
        echo "mac 1 $cport" >&9
        clone_wait b 120
        _d=$(($(secs) + 30))
        while [ ! -S "$cl/a.sock" ] && [ "$(secs)" -lt "$_d" ]; do sleep 0.2; done
        st_a=$(curl -s -m 10 --unix-socket "$cl/a.sock" http://localhost/)
        if echo "$st_a" | grep -q '"state": *"paused"' && ! grep -aq VMLET-CLONE-1 "$cl/a.log"; then
            ok snapshot-clone-paused "GET /: paused; nothing from the guest while clone b answered"
        else
            not_ok snapshot-clone-paused "GET / answered '$st_a'; console: $(tail -c 200 "$cl/a.log" | tr '\r\n' '  ')"
        fi
        curl -s -m 10 --unix-socket "$cl/a.sock" -X PATCH -d '{"state":"Resumed"}' \
            http://localhost/vm >/dev/null
        clone_wait a 120
        both=no
        kill -0 "$pid_a" 2>/dev/null && kill -0 "$pid_b" 2>/dev/null && both=yes
        ma=$(log=$cl/a.log val VMLET-CLONE-1-MAC) mb=$(log=$cl/b.log val VMLET-CLONE-1-MAC)
        na=$(log=$cl/a.log val VMLET-CLONE-1-NET) nb=$(log=$cl/b.log val VMLET-CLONE-1-NET)
        echo "# clones: saved with $mac0; a: $ma '$na', b: $mb '$nb'; both running: $both"
        if [ "$ma" = 52:54:00:00:0c:0a ] && [ "$mb" = 52:54:00:00:0c:0b ] && [ "$na" = "$token" ] &&
           [ "$nb" = "$token" ] && [ "$both" = yes ]; then
            ok snapshot-clone-macs "side by side: a $ma, b $mb, each fetched the page"
        else
            not_ok snapshot-clone-macs "a: '$ma' '$na', b: '$mb' '$nb', both running: $both; stderr: $(head -c 200 "$cl/a.err") $(head -c 200 "$cl/b.err")"
        fi
        echo quit >&8
        echo quit >&9
        for p in $pid_a $pid_b; do
            pid=$p
            wait_exit 60
        done
    fi
fi
exec 7>&- 8>&- 9>&-
kill "$chttpd_pid" 2>/dev/null

# ---- vsock: the guest's listeners answer again, with another CID and socket -
vs=$tmp/vsock
mkdir -p "$vs"
VSOCK_INITRD=${VSOCK_INITRD:-$(dirname "$initrd")/l2-vsock.img}
# echo_through SOCKET: the guest's echo server (port 6003) answers "hello".
echo_through() {
    printf 'CONNECT 6003\nhello-%s\n' "$1" | timeout 60 socat -t 10 - "UNIX-CONNECT:$1" 2>&1 | tr -d '\r' | tail -n 1
}
log=$logdir/vmlet-snapshot-vsock.log
rm -f "$sock"
"$vmlet" run --kernel "$kernel" --initrd "$VSOCK_INITRD" --cpus 1 --memory 256M \
    --cmdline "$BASE" --vsock cid=3,uds="$vs/a.sock" --api-sock "$sock" </dev/null >"$log" 2>&1 &
pid=$!
if ! wait_for VMLET-VSOCK-READY 300; then
    for c in save restore; do not_ok "snapshot-vsock-$c" "the guest never got ready (see $log)"; done
    kill -KILL "$pid" 2>/dev/null
else
    e1=$(echo_through "$vs/a.sock")
    pause_save_stop "$vs/snap"
    if [ "$e1" = "hello-$vs/a.sock" ] && [ "$(status "$saved")" = 204 ]; then
        ok snapshot-vsock-save "echoed before the save"
        log=$logdir/vmlet-snapshot-vsock-restored.log
        rm -f "$sock"
        "$vmlet" run --restore "$vs/snap" --vsock cid=7,uds="$vs/b.sock" --api-sock "$sock" \
            </dev/null >"$log" 2>"$log.err" &
        pid=$!
        _d=$(($(secs) + 60))
        while [ ! -S "$vs/b.sock" ] && [ "$(secs)" -lt "$_d" ]; do sleep 0.2; done
        e2=$(echo_through "$vs/b.sock")
        if [ "$e2" = "hello-$vs/b.sock" ] && [ ! -e "$vs/a.sock" ]; then
            ok snapshot-vsock-restore "CID 3 -> 7, echoed through the new socket"
        else
            not_ok snapshot-vsock-restore "answered '$e2'; old socket left: $([ -e "$vs/a.sock" ] && echo yes || echo no); stderr: $(head -c 300 "$log.err")"
        fi
        call PUT /actions '{"action_type":"Stop"}' >/dev/null
        wait_exit 60
    else
        not_ok snapshot-vsock-save "echo before the save '$e1'; save answered '$saved'"
        not_ok snapshot-vsock-restore "no snapshot"
    fi
fi
# ---- a share and a balloon (snapshot_share_balloon) --------------------------
FSB_CHECKS="snapshot-fsb-save snapshot-fsb-share snapshot-fsb-open-file snapshot-fsb-stats
            snapshot-fsb-inflate"
# fsb_mem: the guest's "MemTotal MemAvailable" (kB), asked on the console.
fsb_mem() {
    echo mem >&8
    sleep 2
    sv VMLET-SFB-MEM
}
snapshot_share_balloon() {
    fsb=$tmp/fsb
    mkdir -p "$fsb/share"
    token=fsb-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
    echo "$token" >"$fsb/share/hello"
    echo "opened before the save" >"$fsb/share/held"
    mkfifo "$fsb/in"
    exec 8<>"$fsb/in"
    log=$logdir/vmlet-snapshot-fsb.log
    rm -f "$sock"
    "$vmlet" run --kernel "$kernel" --initrd "$initrd" --cpus 1 --memory 256M \
        --cmdline "console=hvc0 quiet panic=-1 vmlet.test=snapfsb" --console virtio \
        --share "$fsb/share,tag=snapfs" --balloon stats=1 --api-sock "$sock" \
        <"$fsb/in" >"$log" 2>&1 &
    pid=$!
    if ! wait_for VMLET-SFB-READY 300 || [ "$(sv VMLET-SFB-MOUNTED)" != 1 ]; then
        for c in $FSB_CHECKS; do not_ok "$c" "the guest never mounted the share (see $log)"; done
        kill -KILL "$pid" 2>/dev/null
        exec 8>&-
        return
    fi
    echo "check 1" >&8
    wait_for VMLET-SFB-1-DONE 120
    read1=$(sv VMLET-SFB-1-READ)
    pause_save_stop "$fsb/snap"
    if [ "$read1" = "$token" ] && [ "$(cat "$fsb/share/from-guest-1" 2>/dev/null)" = guest-1 ] &&
        [ "$(status "$saved")" = 204 ] && [ -f "$fsb/snap/state" ]; then
        ok snapshot-fsb-save "state $(stat -c %s "$fsb/snap/state") bytes"
    else
        for c in $FSB_CHECKS; do
            not_ok "$c" "before the save: read '$read1', wrote '$(cat "$fsb/share/from-guest-1" 2>&1)'; pause '$r', save '$saved'"
        done
        exec 8>&-
        return
    fi
    log=$logdir/vmlet-snapshot-fsb-restored.log
    rm -f "$sock"
    "$vmlet" run --restore "$fsb/snap" --api-sock "$sock" <"$fsb/in" >"$log" 2>"$log.err" &
    pid=$!
    echo "check 2" >&8
    if ! wait_for VMLET-SFB-2-DONE 120; then
        for c in share open-file stats inflate; do
            not_ok "snapshot-fsb-$c" "no answer to 'check 2' after the restore; stderr: $(head -c 300 "$log.err"); console: $(tail -c 300 "$log" | tr '\r\n' '  ')"
        done
        kill -KILL "$pid" 2>/dev/null
        exec 8>&-
        return
    fi
    read2=$(sv VMLET-SFB-2-READ)
    if [ "$read2" = "$token" ] && [ "$(sv VMLET-SFB-2-WROTE)" = 0 ] &&
        [ "$(cat "$fsb/share/from-guest-2" 2>/dev/null)" = guest-2 ]; then
        ok snapshot-fsb-share "read by path again; the guest's new file is on the host"
    else
        not_ok snapshot-fsb-share "read '$read2' (want '$token'), write status '$(sv VMLET-SFB-2-WROTE)', host file '$(cat "$fsb/share/from-guest-2" 2>&1)'"
    fi
    echo "held 2" >&8
    wait_for VMLET-SFB-2-HELD 60
    held=$(sv VMLET-SFB-2-HELD)
    case $held in
    rc=0* | rc=124* | rc=143* | '' | *'opened before'*)
        not_ok snapshot-fsb-open-file "reading the file opened before the save: '$held'" ;;
    *) ok snapshot-fsb-open-file "'$held'" ;;
    esac
    # Statistics every second: the buffer given back at the stop is taken
    # again, then refilled by the guest.
    i=0 updates=0
    while [ $i -lt 30 ]; do
        st=$(call GET /balloon/statistics)
        updates=$(echo "$st" | jnum updates)
        [ "${updates:-0}" -ge 2 ] && break
        sleep 1
        i=$((i + 1))
    done
    tot=$(echo "$st" | jnum total_memory)
    if [ "${updates:-0}" -ge 2 ] && [ "${tot:-0}" -gt 0 ]; then
        ok snapshot-fsb-stats "$updates updates in ${i} s, total_memory $((tot >> 20)) MiB"
    else
        not_ok snapshot-fsb-stats "after $i s: $st"
    fi
    mem0=$(fsb_mem)
    t0=${mem0%% *}
    t0=${t0:-0}
    code=$(status "$(call PATCH /balloon '{"amount_mib": 64}')")
    i=0 actual='' mem1=$mem0 t1=$t0
    while [ $i -lt 120 ]; do
        actual=$(call GET /balloon | jnum actual_mib)
        mem1=$(fsb_mem)
        t1=${mem1%% *}
        t1=${t1:-0}
        [ "$actual" = 64 ] && [ $((t0 - t1)) -ge 61440 ] && break
        i=$((i + 2))
    done
    code0=$(status "$(call PATCH /balloon '{"amount_mib": 0}')")
    i0=0 mem2=$mem1 t2=$t1
    while [ $i0 -lt 120 ]; do
        mem2=$(fsb_mem)
        t2=${mem2%% *}
        t2=${t2:-0}
        [ $((t0 - t2)) -le 1024 ] && break
        i0=$((i0 + 2))
    done
    echo "# balloon after the restore: MemTotal MemAvailable (kB) '$mem0' -> '$mem1' (64 MiB) -> '$mem2' (0)"
    if [ "$code/$code0" = 204/204 ] && [ "$actual" = 64 ] && [ "$t0" -gt 0 ] &&
        [ $((t0 - t1)) -ge 61440 ] && [ $((t0 - t2)) -le 1024 ]; then
        ok snapshot-fsb-inflate "MemTotal $((t0 / 1024)) -> $((t1 / 1024)) -> $((t2 / 1024)) MiB"
    else
        not_ok snapshot-fsb-inflate "PATCH answered $code/$code0, actual_mib '$actual'; MemTotal MemAvailable '$mem0' -> '$mem1' -> '$mem2'"
    fi
    echo quit >&8
    wait_exit 120
    exec 8>&-
}
snapshot_share_balloon

# ---- the VM generation ID: every restore a new one, and the guest told -----
# Debian's generic kernel (the cloud kernel has no vmgenid driver);
# scripts/setup and lab-images put it beside the cloud one.
generic=${GENERIC_KERNEL:-$(dirname "$kernel")/vmlinuz-generic}
vgen_re='^VMLET-VMGENID=[0-9a-f]\{32\} driver=[a-z]* ged=[0-9]* fork=[0-9]*$'
vgen_line() { tr -d '\r' <"$log" | grep -a "$vgen_re" | tail -n 1; }
# vgen_restore NAME: a new vmlet from $vg/snap; waits (2 min at most) for a
# line whose GED interrupt count is not 0, stops it. Sets line.
vgen_restore() {
    log=$logdir/vmlet-snapshot-vmgenid-$1.log
    rm -f "$sock"
    "$vmlet" run --restore "$vg/snap" --api-sock "$sock" </dev/null >"$log" 2>"$log.err" &
    pid=$!
    _d=$(($(secs) + 120))
    line=
    while kill -0 "$pid" 2>/dev/null && [ "$(secs)" -lt "$_d" ]; do
        line=$(vgen_line)
        case $(field "$line" ged) in '' | 0) sleep 0.5 ;; *) break ;; esac
    done
    sleep 1 # the driver's reseed is logged after the interrupt
    line=$(vgen_line)
    call PUT /actions '{"action_type":"Stop"}' >/dev/null
    wait_exit 60
}
vg=$tmp/vmgenid
mkdir -p "$vg"
log=$logdir/vmlet-snapshot-vmgenid.log
rm -f "$sock"
id0=
if [ ! -f "$generic" ]; then
    for c in snapshot-vmgenid-boot snapshot-vmgenid-restore snapshot-vmgenid-clones; do
        not_ok "$c" "no $generic: scripts/setup downloads Debian's generic kernel, lab-images copies it"
    done
else
    "$vmlet" run --kernel "$generic" --initrd "$initrd" --memory 256M \
        --cmdline "$BASE vmlet.test=vmgenid" --api-sock "$sock" </dev/null >"$log" 2>&1 &
    pid=$!
    _d=$(($(secs) + 300))
    while [ -z "$(vgen_line)" ] && kill -0 "$pid" 2>/dev/null && [ "$(secs)" -lt "$_d" ]; do sleep 1; done
    b=$(vgen_line)
    id0=$(field "$b" VMLET-VMGENID)
    if [ -n "$id0" ] && [ "$id0" != 00000000000000000000000000000000 ] &&
       [ "$(field "$b" driver)" = vmgenid ] && [ "$(field "$b" ged)" = 0 ]; then
        ok snapshot-vmgenid-boot "ID $id0, driver vmgenid"
    else
        not_ok snapshot-vmgenid-boot "the guest's line: '$b' (want a non-zero ID, driver=vmgenid, ged=0)"
        id0=
    fi
    pause_save_stop "$vg/snap"
    if [ -z "$id0" ] || [ "$(status "$saved")" != 204 ]; then
        for c in snapshot-vmgenid-restore snapshot-vmgenid-clones; do
            not_ok "$c" "no snapshot: boot '$b', save '$saved'"
        done
    else
        vgen_restore a
        la=$line ida=$(field "$line" VMLET-VMGENID)
        vgen_restore b
        lb=$line idb=$(field "$line" VMLET-VMGENID)
        if [ -n "$ida" ] && [ "$ida" != "$id0" ] && [ "$(field "$la" driver)" = vmgenid ] &&
           [ "$(field "$la" ged)" -ge 1 ] && [ "$(field "$la" fork)" -ge 1 ]; then
            ok snapshot-vmgenid-restore "ID $id0 -> $ida; GED interrupts $(field "$la" ged), RNG reseeded"
        else
            not_ok snapshot-vmgenid-restore "before: $id0; after: '$la' (want another ID, ged and fork >= 1)"
        fi
        if [ -n "$idb" ] && [ "$idb" != "$id0" ] && [ "$idb" != "$ida" ] &&
           [ "$(field "$lb" ged)" -ge 1 ] && [ "$(field "$lb" fork)" -ge 1 ]; then
            ok snapshot-vmgenid-clones "second restore: ID $idb, reseeded"
        else
            not_ok snapshot-vmgenid-clones "IDs $id0, $ida, then '$lb' (want a third ID, ged and fork >= 1)"
        fi
    fi
fi

# ---- refusals --------------------------------------------------------------
# Damaged snapshots, made from the 1 GiB one: cut short, memory file shrunk.
why=
if [ -f "$dir/state" ]; then
    mkdir -p "$tmp/cut" "$tmp/small"
    head -c $(($(stat -c %s "$dir/state") / 2)) "$dir/state" >"$tmp/cut/state"
    truncate -s 1G "$tmp/cut/memory"   # sparse: the cut state is refused first
    cp "$dir/state" "$tmp/small/state"
    truncate -s 512M "$tmp/small/memory"
    "$vmlet" run --restore "$tmp/cut" </dev/null >/dev/null 2>"$tmp/cut.err"
    rc1=$?
    "$vmlet" run --restore "$tmp/small" </dev/null >/dev/null 2>"$tmp/small.err"
    rc2=$?
    "$vmlet" run --restore "$dir" --kernel "$kernel" </dev/null >/dev/null 2>"$tmp/kernel.err"
    rc3=$?
    grep -q 'cut short' "$tmp/cut.err" || why="$why cut: exit $rc1 '$(head -c 200 "$tmp/cut.err")';"
    grep -q 'has 536870912 bytes' "$tmp/small.err" || why="$why small: exit $rc2 '$(head -c 200 "$tmp/small.err")';"
    grep -q 'cannot be given' "$tmp/kernel.err" || why="$why --kernel: exit $rc3 '$(head -c 200 "$tmp/kernel.err")';"
    [ "$rc1" = 1 ] && [ "$rc2" = 1 ] && [ "$rc3" = 2 ] || why="$why exits $rc1 $rc2 $rc3 (want 1 1 2);"
    if [ -z "$why" ]; then
        ok snapshot-refuse-damaged
        echo "# refused: $(cat "$tmp/cut.err")"
    else
        not_ok snapshot-refuse-damaged "$why"
    fi
else
    not_ok snapshot-refuse-damaged "no snapshot to damage"
fi

rm -rf "$tmp"
[ "$fail" = 0 ]
