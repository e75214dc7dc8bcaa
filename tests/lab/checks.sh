# shellcheck shell=sh
# What the lab's scripts (api, balloon, fs, net, vsock) check with, sourced
# by each (POSIX sh, busybox): TAP lines and a count of failures, and the
# guest's "KEY=value" console lines. The script sets log (the console log
# file) and pid (vmlet's) before it uses val or wait_for, and VAL_PREFIX if
# its guest's keys share one (the fs guest's "VMLET-FS-").
fail=0
# ok CHECK [DETAIL] / not_ok CHECK WHY: one TAP line each.
ok() { echo "ok - $1${2:+ $2}"; }
not_ok() { echo "not ok - $1: $2"; fail=$((fail + 1)); }
secs() { cut -d. -f1 /proc/uptime; }
# val KEY: the value of the console's last "KEY=value" line.
val() { tr -d '\r' <"${log:?}" | grep -a "^${VAL_PREFIX:-}$1=" | tail -n1 | cut -d= -f2-; }
# wait_for MARKER SECONDS: until the console has a line starting with it;
# fails early when vmlet is gone.
wait_for() {
    _d=$(($(secs) + $2))
    while ! tr -d '\r' <"${log:?}" | grep -aq "^$1"; do
        kill -0 "${pid:?}" 2>/dev/null && [ "$(secs)" -lt "$_d" ] || return 1
        sleep 1
    done
}
sha() { sha256sum | cut -c1-64; }
# jnum NAME < JSON: the first number member NAME.
jnum() { tr ',{}' '\n' | sed -n "s/^ *\"$1\": *\([0-9]*\).*/\1/p" | head -n1; }
