#!/bin/sh
# vsock scenarios (issue 11): one L2 boot of vmlet with a virtio-vsock
# device, its host side a Unix socket (docs/vsock.md), socat on both ends
# and the guest's vsockecho (the guest: tests/lab/vsockguest/). POSIX sh,
# busybox.
#   vsock.sh VMLET KERNEL VSOCKIMG LOGDIR
#   vsock.sh --plan            the check names, one a line
# Needs socat and curl here.
CHECKS="vsock-device vsock-h2g-64m vsock-g2h-64m vsock-100-conns vsock-guest-closes
        vsock-host-closes vsock-refused-host-to-guest vsock-refused-guest-to-host
        vsock-backpressure vsock-fds-back vsock-metrics vsock-poweroff"
if [ "${1:-}" = --plan ]; then
    for c in $CHECKS; do echo "$c"; done
    exit 0
fi
vmlet=$1 kernel=$2 img=$3 logdir=$4
log=$logdir/vmlet-vsock.log
tmp=${TMPDIR:-/tmp}/vsock.$$
mkdir -p "$tmp" "$logdir"
uds=$tmp/v.sock
api=$tmp/api.sock
. "$(dirname "$0")/checks.sh"
fds() { set -- "/proc/$pid/fd/"*; echo $#; }
fd_names() { for f in "/proc/$pid/fd/"*; do printf '%s ' "$(readlink "$f")"; done; }
# host_connect PORT: stdin after a CONNECT line to the guest's PORT, the
# guest's answer (after vmlet's "OK <port>" line) on stdout. Every socat
# here has a timeout: a hang fails its check instead of the whole lab.
host_connect() {
    { printf 'CONNECT %s\n' "$1"; cat; } | timeout 300 socat -t 60 - "UNIX-CONNECT:$uds"
}
# strip_ok FILE: FILE without its first line (vmlet's "OK <port>").
strip_ok() { tail -n +2 "$1"; }
# metric NAME: a counter of the vsock group, from GET /metrics now.
metric() { curl -s -m 10 --unix-socket "$api" http://localhost/metrics | jnum "$1"; }

# What this side sends: 64 MiB to the guest, 128 KiB for each echo.
dd if=/dev/urandom of="$tmp/h2g" bs=1M count=64 2>/dev/null
h2g_sha=$(sha <"$tmp/h2g")
dd if=/dev/urandom of="$tmp/chunk" bs=128k count=1 2>/dev/null

# Host listeners, up before the guest connects: 64 MiB from the guest
# (PATH_6002), and one that closes after 1 MiB (PATH_6005).
timeout 600 socat -u "UNIX-LISTEN:${uds}_6002" "CREATE:$tmp/g2h" 2>"$tmp/l6002.err" &
l6002=$!
( timeout 600 socat -u "UNIX-LISTEN:${uds}_6005" STDOUT 2>/dev/null | head -c 1048576 | wc -c >"$tmp/hclose.n" ) &
l6005=$!

"$vmlet" run --kernel "$kernel" --initrd "$img" --cmdline "console=ttyS0 quiet panic=-1" \
    --memory 512M --vsock cid=3,uds="$uds" --api-sock "$api" </dev/null >"$log" 2>&1 &
pid=$!
if ! wait_for VMLET-VSOCK-READY 300; then
    for c in $CHECKS; do not_ok "$c" "the guest never got ready (see $log)"; done
    kill -KILL $pid $l6002 $l6005 2>/dev/null
    tail -n 20 "$log" | sed 's/^/#   /'
    rm -rf "$tmp"
    exit 1
fi
if [ "$(val VMLET-VSOCK-DEV)" = yes ] && [ -n "$(val VMLET-VSOCK-SOCAT)" ]; then ok vsock-device; else
    not_ok vsock-device "/dev/vsock in the guest: '$(val VMLET-VSOCK-DEV)', its socat: '$(val VMLET-VSOCK-SOCAT)'"; fi
# vmlet's descriptors with the guest idle and no connection open.
fds0=$(fds)
printf 'go\n' | host_connect 6009 >"$tmp/go.out"

# All at once, as the guest does its own part: 64 MiB to the guest
# (port 6001), 100 echo connections of 128 KiB each (6003), one the guest
# closes after 1 MiB while this side sends without end (6004), and one to
# port 6999, where nothing listens.
host_connect 6001 <"$tmp/h2g" >"$tmp/h2g.out" 2>"$tmp/h2g.err" &
h2g=$!
( { printf 'CONNECT 6004\n'; cat /dev/zero; } | timeout 120 socat -t 60 - "UNIX-CONNECT:$uds" \
    >"$tmp/gclose.out" 2>"$tmp/gclose.err"; echo $? >"$tmp/gclose.rc" ) &
gclose=$!
printf 'CONNECT 6999\n' | timeout 60 socat -t 30 - "UNIX-CONNECT:$uds" >"$tmp/refused.out" 2>&1
refused_rc=$?
echoes=
i=0
while [ $i -lt 100 ]; do
    # Each its own bytes: the chunk and the connection's number.
    { cat "$tmp/chunk"; echo "conn-$i"; } >"$tmp/echo-in.$i"
    host_connect 6003 <"$tmp/echo-in.$i" >"$tmp/echo-out.$i" 2>"$tmp/echo-err.$i" &
    echoes="$echoes $!"
    i=$((i + 1))
done

# 64 MiB to the guest.
wait $h2g
wait_for VMLET-VSOCK-H2G-SHA 300
got=$(val VMLET-VSOCK-H2G-SHA)
if [ "$got" = "$h2g_sha" ] && head -n1 "$tmp/h2g.out" | grep -q '^OK [0-9]*$'; then ok vsock-h2g-64m; else
    not_ok vsock-h2g-64m "sha256 in the guest '$got', sent '$h2g_sha'; vmlet said '$(head -n1 "$tmp/h2g.out")' ($(tail -n1 "$tmp/h2g.err"))"; fi

# 100 concurrent echo connections: each socat ends once its echo is
# complete and the guest closed (or after its -t 60 s).
for p in $echoes; do wait "$p"; done
good=0 bad=
i=0
while [ $i -lt 100 ]; do
    if [ "$(strip_ok "$tmp/echo-out.$i" | sha)" = "$(sha <"$tmp/echo-in.$i")" ]; then
        good=$((good + 1))
    else
        [ -n "$bad" ] || bad="connection $i: $(wc -c <"$tmp/echo-out.$i") bytes back for $(wc -c <"$tmp/echo-in.$i") sent, first line '$(head -n1 "$tmp/echo-out.$i" | head -c 40)', $(tail -n1 "$tmp/echo-err.$i")"
    fi
    i=$((i + 1))
done
if [ "$good" = 100 ]; then ok vsock-100-conns; else
    not_ok vsock-100-conns "$good of 100 came back intact; $bad"; fi

wait_for VMLET-VSOCK-GUEST-DONE 600
# The guest closed after 1 MiB: this side's socat must have ended (EOF or
# reset), not hung, and vmlet must still be there.
wait $gclose
rc=$(cat "$tmp/gclose.rc" 2>/dev/null)
case "$(val VMLET-VSOCK-GCLOSE):$rc" in
"read 1048576 bytes, closed:"[0-9]*)
    if [ "$rc" = 124 ] || ! kill -0 $pid 2>/dev/null; then
        not_ok vsock-guest-closes "host side still sending after 120 s (rc $rc) or vmlet gone"
    else
        ok vsock-guest-closes
        echo "# vsock: the host's writer ended with rc $rc: $(tail -n1 "$tmp/gclose.err")"
    fi ;;
*) not_ok vsock-guest-closes "guest: '$(val VMLET-VSOCK-GCLOSE)', host socat rc '$rc' ($(tail -n1 "$tmp/gclose.err"))" ;;
esac

# The host closed after 1 MiB: the guest's writer must have failed, not hung.
got=$(val VMLET-VSOCK-HCLOSE)
case "$got:$(cat "$tmp/hclose.n" 2>/dev/null)" in
"rc 1 "*:1048576) ok vsock-host-closes; echo "# vsock: the guest's writer saw: $got" ;;
*) not_ok vsock-host-closes "guest writer: '$got' (want rc 1 and an error), host read $(cat "$tmp/hclose.n" 2>/dev/null) bytes" ;;
esac

# No listener in the guest: vmlet closes the Unix connection without OK.
if [ "$refused_rc" != 124 ] && ! grep -q '^OK' "$tmp/refused.out"; then ok vsock-refused-host-to-guest; else
    not_ok vsock-refused-host-to-guest "socat rc $refused_rc, vmlet answered '$(head -n1 "$tmp/refused.out")'"; fi
# No listener on the host: the guest's connect() fails.
got=$(val VMLET-VSOCK-REFUSED)
case $got in
"rc 1 "*"Connection reset by peer"* | "rc 1 "*"Connection refused"*) ok vsock-refused-guest-to-host ;;
*) not_ok vsock-refused-guest-to-host "guest's socat: '$got'" ;;
esac

# 64 MiB from the guest.
# (the listener ends when the guest closes; it may never have been reached)
kill -0 $l6002 2>/dev/null && sleep 5
kill $l6002 2>/dev/null
wait $l6002
want=$(val VMLET-VSOCK-G2H-SRC-SHA)
got=$(sha <"$tmp/g2h" 2>/dev/null)
if [ -n "$want" ] && [ "$got" = "$want" ] && val VMLET-VSOCK-G2H | grep -q '^rc 0'; then
    ok vsock-g2h-64m
else
    not_ok vsock-g2h-64m "sha256 here '$got' ($(wc -c <"$tmp/g2h" 2>/dev/null) bytes), guest '$want'; guest sender '$(val VMLET-VSOCK-G2H)'"
fi

# A guest program that reads nothing for 20 s while the host writes 64 MiB:
# vmlet passes on no more than the guest's credit (256 KiB, Linux's
# default buf_alloc) and holds none of it, so the host writer waits; once
# the program reads, all of it arrives.
b0=$(metric bytes_to_guest)
( { printf 'CONNECT 6007\n'; head -c 67108864 /dev/zero; } | timeout 300 socat -u - "UNIX-CONNECT:$uds" \
    2>"$tmp/slow.err"; echo $? >"$tmp/slow.rc" ) &
slow=$!
sleep 12
b1=$(metric bytes_to_guest)
sleep 4
b2=$(metric bytes_to_guest)
writer_waits=$([ -e "$tmp/slow.rc" ] && echo no || echo yes)
wait_for VMLET-VSOCK-SLOW 300
wait $slow
got=$(val VMLET-VSOCK-SLOW)
echo "# vsock: a guest not reading took $((b2 - b0)) bytes in 16 s (then $((b2 - b1)) in 4 s); the host writer waited: $writer_waits"
if [ "$b1" = "$b2" ] && [ $((b2 - b0)) -le 1048576 ] && [ "$writer_waits" = yes ] &&
   [ "$got" = "read 67108864 bytes" ] && [ "$(cat "$tmp/slow.rc")" = 0 ]; then
    ok vsock-backpressure
else
    not_ok vsock-backpressure "to the guest while it did not read: $((b2 - b0)) bytes (want <= 1 MiB, and none in the last 4 s: $((b2 - b1))); host writer waited: $writer_waits, ended rc $(cat "$tmp/slow.rc"); guest: '$got'"
fi

# Every connection gone: vmlet's descriptors as before (closing takes the
# guest's RSTs; give it a few seconds).
wait $l6005
deadline=$(($(secs) + 30))
while [ "$(fds)" != "$fds0" ] && [ "$(secs)" -lt "$deadline" ]; do sleep 1; done
fds1=$(fds)
if [ "$fds1" = "$fds0" ]; then ok vsock-fds-back; echo "# vsock: vmlet has $fds0 descriptors open before and after"; else
    not_ok vsock-fds-back "vmlet had $fds0 descriptors open before the connections, $fds1 after: $(fd_names | tail -c 300)"; fi

# The counters: 104 connections from this side (go, 64 MiB, 100 echoes,
# the guest closing, the slow reader) and 2 from the guest (64 MiB, the
# host closing) opened, 2 refused (one each way), the bytes each way, and
# nothing malformed from a well-behaved guest.
m=$(curl -s -m 10 --unix-socket "$api" http://localhost/metrics)
opened=$(metric conns_opened) refused=$(metric conns_refused) to_guest=$(metric bytes_to_guest)
to_host=$(metric bytes_to_host) malformed=$(metric pkts_malformed) timeouts="line $(metric line_timeouts), answer $(metric answer_timeouts); slowest answer $(metric answer_ms_max) ms"
echo "# vsock metrics: opened $opened refused $refused (handshake timeouts $timeouts) to_guest $to_guest to_host $to_host malformed $malformed"
echoed=$((100 * 131072))
if [ "${opened:-0}" -ge 106 ] && [ "${refused:-0}" -ge 2 ] && [ "${to_guest:-0}" -ge $((128 * 1048576 + echoed)) ] &&
   [ "${to_host:-0}" -ge $((65 * 1048576 + echoed)) ] && [ "$malformed" = 0 ]; then
    ok vsock-metrics
else
    not_ok vsock-metrics "want >= 106 opened, >= 2 refused, >= 140.5 MiB to the guest and 77.5 MiB to the host, 0 malformed: $(echo "$m" | head -c 300)"
fi

printf 'quit\n' | host_connect 6010 >/dev/null 2>&1
deadline=$(($(secs) + 60))
while kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do sleep 1; done
if kill -0 $pid 2>/dev/null; then
    kill -KILL $pid
    not_ok vsock-poweroff "vmlet still running 60 s after the guest was told to power off"
else
    wait $pid
    rc=$?
    if [ "$rc" = 0 ] && [ ! -e "$uds" ]; then ok vsock-poweroff; else
        not_ok vsock-poweroff "exit $rc; socket left behind: $([ -e "$uds" ] && echo yes || echo no)"; fi
fi
[ "$fail" = 0 ] || { echo "# vsock: guest console:"; tail -n 20 "$log" | sed 's/^/#   /'; }
kill $l6002 $l6005 2>/dev/null
rm -rf "$tmp"
[ "$fail" = 0 ]
