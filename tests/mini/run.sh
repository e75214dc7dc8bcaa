#!/bin/sh
# Runs the mini guests (see build.sh) with a real vmlet on a real /dev/kvm
# and prints one TAP-style line per check: "ok - mini-NAME" or
# "not ok - mini-NAME: reason". POSIX sh; runs under busybox in the lab.
#   run.sh VMLET IMAGEDIR
#   run.sh --plan            the check names, one a line
LIFECYCLE_CHECKS="runs pause-state event-fd paused-guest-is-still resume stop two-vms"
if [ "${1:-}" = --plan ]; then
    for c in poweroff reset-register i8042-reset triple-fault boot-params unclaimed-port \
             shutdown-timeout disk-lock; do
        echo "mini-$c"
    done
    for c in $LIFECYCLE_CHECKS; do echo "lifecycle-$c"; done
    exit 0
fi
vmlet=${1:?usage: run.sh VMLET IMAGEDIR}
dir=${2:?usage: run.sh VMLET IMAGEDIR}
tmp=${TMPDIR:-/tmp}/mini.$$
mkdir -p "$tmp"

# expect NAME STATUS OUTPUT_PATTERN [extra vmlet args...]
expect() {
    name=$1 want=$2 pattern=$3
    shift 3
    timeout 120 "$vmlet" run --kernel "$dir/$name.bzImage" --memory 64M "$@" \
        </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err"
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "not ok - mini-$name: exit $got, expected $want; stderr: $(head -c 300 "$tmp/$name.err")"
    elif ! grep -q "$pattern" "$tmp/$name.out"; then
        echo "not ok - mini-$name: console lacks '$pattern': $(head -c 200 "$tmp/$name.out")"
    else
        echo "ok - mini-$name"
    fi
}

expect poweroff 0 '^OK$'
expect reset-register 3 '^OK$'
expect i8042-reset 3 '^OK$'
expect triple-fault 3 '^OK$'
expect boot-params 0 '^HdrSmini$' --cmdline "mini-guest"
expect unclaimed-port 0 '^Y$'

# SIGTERM presses the power button; this guest ignores it, so vmlet must
# stop it after --shutdown-timeout and exit 4.
"$vmlet" run --kernel "$dir/spin.bzImage" --memory 64M --shutdown-timeout 1 \
    </dev/null >"$tmp/spin.out" 2>"$tmp/spin.err" &
pid=$!
i=0
while [ $i -lt 600 ] && ! grep -q OK "$tmp/spin.out" 2>/dev/null; do
    sleep 0.1; i=$((i + 1))
done
kill -TERM $pid
i=0
while [ $i -lt 300 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if kill -0 $pid 2>/dev/null; then
    kill -KILL $pid
    echo "not ok - mini-shutdown-timeout: vmlet still running 30 s after SIGTERM"
else
    wait $pid
    got=$?
    if [ "$got" -eq 4 ] && grep -q "did not power off within 1 s" "$tmp/spin.err"; then
        echo "ok - mini-shutdown-timeout"
    else
        echo "not ok - mini-shutdown-timeout: exit $got, stderr: $(head -c 300 "$tmp/spin.err")"
    fi
fi
# A disk in use by one vmlet is refused by a second one (advisory lock);
# two read-only users may share it.
truncate -s 1M "$tmp/shared.img"
"$vmlet" run --kernel "$dir/spin.bzImage" --memory 64M --disk "$tmp/shared.img" \
    </dev/null >"$tmp/holder.out" 2>"$tmp/holder.err" &
holder=$!
i=0
while [ $i -lt 600 ] && ! grep -q OK "$tmp/holder.out" 2>/dev/null; do
    sleep 0.1; i=$((i + 1))
done
timeout 120 "$vmlet" run --kernel "$dir/poweroff.bzImage" --memory 64M --disk "$tmp/shared.img" \
    </dev/null >"$tmp/second.out" 2>"$tmp/second.err"
got=$?
kill -KILL $holder 2>/dev/null
wait $holder 2>/dev/null
if [ "$got" -eq 1 ] && grep -q "is in use by another process" "$tmp/second.err"; then
    echo "ok - mini-disk-lock"
else
    echo "not ok - mini-disk-lock: second vmlet exit $got: $(head -c 300 "$tmp/second.err")"
fi
# The library's lifecycle (pause/resume, event fd, two VMs in one process)
# through the public API: a program built next to vmlet.
lifecycle=$(dirname "$vmlet")/vmlet-lifecycle
if [ -x "$lifecycle" ]; then
    timeout 300 "$lifecycle" "$dir"
else
    for c in $LIFECYCLE_CHECKS; do
        echo "not ok - lifecycle-$c: no $lifecycle"
    done
fi
rm -rf "$tmp"
