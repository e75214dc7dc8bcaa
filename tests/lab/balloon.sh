#!/bin/sh
# Balloon scenarios (issue 13): three L2 boots of vmlet with --balloon, the
# guest tests/lab/balloonguest/init (512 MiB), driven through its console
# and the control socket. POSIX sh, busybox; needs curl here.
#   balloon.sh VMLET KERNEL BALLOONIMG LOGDIR
#   balloon.sh --plan            the check names, one a line
# Boot 1, free-page-reporting: the guest touches 300 MiB and frees it;
#   vmlet's RSS must fall by 250 MiB within 10 s.
# Boot 2, no reporting, stats=2: the same free leaves the RSS up for 10 s;
#   then a target of 200 MiB (PATCH /balloon) must lower the guest's
#   MemTotal by 190 MiB, report actual 200 and lower vmlet's RSS by
#   100 MiB (the balloon takes the freed pages, which were touched); the
#   statistics must be plausible; a target of 0 must give MemTotal back.
# Boot 3, deflate-on-oom (guest vmlet.balloon=oom): the VM paused, a
#   target of 300 MiB must leave actual at 0 while paused and reach 300
#   after resume; then the guest allocates 300 MiB, more than the balloon
#   left it: it must get all of it without the OOM killer running, the
#   balloon giving pages back (actual below 300, deflated_pages up).
CHECKS="balloon-device balloon-reporting-returns balloon-no-reporting-keeps balloon-inflate
        balloon-stats balloon-deflate balloon-pause-resume balloon-deflate-on-oom balloon-metrics
        balloon-poweroff"
if [ "${1:-}" = --plan ]; then
    for c in $CHECKS; do echo "$c"; done
    exit 0
fi
vmlet=$1 kernel=$2 img=$3 logdir=$4
tmp=${TMPDIR:-/tmp}/balloon.$$
mkdir -p "$tmp" "$logdir"
api=$tmp/api.sock
. "$(dirname "$0")/checks.sh"
rss() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$pid/status" 2>/dev/null; }
get() { curl -s -m 10 --unix-socket "$api" "http://localhost$1"; }
patch() { curl -s -m 10 --unix-socket "$api" -X PATCH -d "$2" "http://localhost$1" -o /dev/null -w '%{http_code}'; }
say() { printf '%s\n' "$1" >&3; }

# boot NAME BALLOON-SPEC [CMDLINE]: vmlet with its console input on fd 3
# (a FIFO).
boot() {
    log=$logdir/vmlet-balloon-$1.log
    rm -f "$tmp/in" "$api"
    mkfifo "$tmp/in"
    exec 3<>"$tmp/in"
    "$vmlet" run --kernel "$kernel" --initrd "$img" --cmdline "console=ttyS0 quiet panic=-1${3:+ $3}" \
        --memory 512M --balloon "$2" --api-sock "$api" <&3 >"$log" 2>&1 &
    pid=$!
}
# finish: "quit" to the guest, its exit status in $status.
finish() {
    say quit
    _i=0
    while kill -0 "$pid" 2>/dev/null && [ $_i -lt 120 ]; do sleep 1; _i=$((_i + 1)); done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"
    status=$?
    exec 3>&-
}
# allocate_and_free: the guest's 300 MiB, held then freed; sets
# rss_held and t_freed (when the host saw the guest's FREED line).
allocate_and_free() {
    wait_for VMLET-BALLOON-HELD 600 || return 1
    sleep 2
    rss_held=$(rss)
    say free
    wait_for VMLET-BALLOON-FREED 120 || return 1
    t_freed=$(secs)
}
# drop_within SECONDS: the largest RSS drop below rss_held seen in that
# time after t_freed; sets drop and drop_at (seconds after the free).
drop_within() {
    drop=0 drop_at=-
    while [ $(($(secs) - t_freed)) -le "$1" ]; do
        _d=$((rss_held - $(rss)))
        [ "$_d" -gt "$drop" ] && drop=$_d && drop_at=$(($(secs) - t_freed))
        [ "$drop" -ge 250 ] && break
        sleep 1
    done
}

# ---- boot 1: free page reporting ------------------------------------------
boot report free-page-reporting,stats=2
if ! allocate_and_free; then
    for c in $CHECKS; do not_ok "$c" "boot 1: the guest never held and freed 300 MiB (see $log)"; done
    kill -KILL "$pid" 2>/dev/null
    tail -n 20 "$log" | sed 's/^/#   /'
    rm -rf "$tmp"
    exit 1
fi
if [ "$(val VMLET-BALLOON-DEV)" = 1 ]; then ok balloon-device; else
    not_ok balloon-device "the guest's virtio_balloon driver has '$(val VMLET-BALLOON-DEV)' devices"; fi
drop_within 10
if [ "$drop" -ge 250 ]; then
    ok balloon-reporting-returns "# RSS ${rss_held} MiB with 300 MiB held, down ${drop} MiB ${drop_at} s after the free"
else
    not_ok balloon-reporting-returns "RSS ${rss_held} MiB with 300 MiB held (guest: $(val VMLET-BALLOON-HELD) MiB), only ${drop} MiB lower within 10 s of the free (need 250)"
fi
m1=$(get /metrics)
reported=$(echo "$m1" | sed 's/.*"balloon":{\([^}]*\)}.*/\1/' | jnum reported_pages)
finish
status1=$status

# ---- boot 2: a target, no reporting ----------------------------------------
boot target stats=2
if ! allocate_and_free; then
    for c in balloon-no-reporting-keeps balloon-inflate balloon-stats balloon-deflate; do
        not_ok "$c" "boot 2: the guest never held and freed 300 MiB (see $log)"; done
else
    drop_within 10
    if [ "$drop" -lt 250 ]; then
        ok balloon-no-reporting-keeps "# RSS ${rss_held} MiB, at most ${drop} MiB lower 10 s after the free"
    else
        not_ok balloon-no-reporting-keeps "without reporting the RSS still fell ${drop} MiB (from ${rss_held})"
    fi
    total0=$(val VMLET-BALLOON-MEMTOTAL0)
    rss_freed=$(rss)
    code=$(patch /balloon '{"amount_mib": 200}')
    i=0 actual='' total=$total0
    while [ $i -lt 300 ]; do
        actual=$(get /balloon | jnum actual_mib)
        total=$(val VMLET-BALLOON-MEMTOTAL)
        [ "$actual" = 200 ] && [ -n "$total" ] && [ $((total0 - total)) -ge 194560 ] && break
        sleep 2
        i=$((i + 2))
    done
    rss_in=$(rss)
    if [ "$code" = 204 ] && [ "$actual" = 200 ] && [ $((total0 - total)) -ge 194560 ] &&
        [ $((rss_freed - rss_in)) -ge 100 ]; then
        ok balloon-inflate "# MemTotal $((total0 / 1024)) -> $((total / 1024)) MiB, RSS $rss_freed -> $rss_in MiB, ${i} s"
    else
        not_ok balloon-inflate "PATCH answered $code; after ${i} s actual_mib '$actual', guest MemTotal $total0 -> '$total' kB, RSS $rss_freed -> $rss_in MiB (need MemTotal -190 MiB, RSS -100 MiB)"
    fi
    st=$(get /balloon/statistics)
    free=$(echo "$st" | jnum free_memory)
    tot=$(echo "$st" | jnum total_memory)
    avail=$(echo "$st" | jnum available_memory)
    if [ -n "$free" ] && [ -n "$tot" ] && [ -n "$avail" ] && [ "$free" -gt 0 ] &&
        [ "$free" -le "$tot" ] && [ "$avail" -le "$tot" ] && [ "$tot" -le 536870912 ] &&
        [ "$tot" -ge 104857600 ]; then
        ok balloon-stats "# free $((free >> 20)) MiB, available $((avail >> 20)) MiB, total $((tot >> 20)) MiB"
    else
        not_ok balloon-stats "GET /balloon/statistics: $st"
    fi
    code=$(patch /balloon '{"amount_mib": 0}')
    i=0
    while [ $i -lt 300 ]; do
        actual=$(get /balloon | jnum actual_mib)
        total=$(val VMLET-BALLOON-MEMTOTAL)
        [ "$actual" = 0 ] && [ $((total0 - total)) -le 1024 ] && break
        sleep 2
        i=$((i + 2))
    done
    if [ "$code" = 204 ] && [ "$actual" = 0 ] && [ $((total0 - total)) -le 1024 ]; then
        ok balloon-deflate "# MemTotal back to $((total / 1024)) MiB in ${i} s"
    else
        not_ok balloon-deflate "PATCH answered $code; after ${i} s actual_mib '$actual', MemTotal $total kB (was $total0)"
    fi
fi
m2=$(get /metrics | sed 's/.*"balloon":{\([^}]*\)}.*/\1/')
inflated=$(echo "$m2" | jnum inflated_pages)
deflated=$(echo "$m2" | jnum deflated_pages)
returned=$(echo "$m2" | jnum returned_bytes)
finish
status2=$status

# ---- boot 3: a target set while paused; deflate on OOM ---------------------
boot oom deflate-on-oom vmlet.balloon=oom
if ! wait_for VMLET-BALLOON-READY 600; then
    for c in balloon-pause-resume balloon-deflate-on-oom; do
        not_ok "$c" "boot 3: the guest's driver never came up (see $log)"; done
    tail -n 20 "$log" | sed 's/^/#   /'
else
    p1=$(patch /vm '{"state":"Paused"}')
    p2=$(patch /balloon '{"amount_mib": 300}')
    sleep 5
    state=$(get / | tr ',{}' '\n' | sed -n 's/^ *"state": *"\([a-z]*\)".*/\1/p' | head -n1)
    paused_actual=$(get /balloon | jnum actual_mib)
    p3=$(patch /vm '{"state":"Resumed"}')
    i=0 actual=''
    while [ $i -lt 300 ]; do
        actual=$(get /balloon | jnum actual_mib)
        [ "$actual" = 300 ] && break
        sleep 2
        i=$((i + 2))
    done
    if [ "$p1/$p2/$p3" = 204/204/204 ] && [ "$state" = paused ] && [ "$paused_actual" = 0 ] &&
        [ "$actual" = 300 ]; then
        ok balloon-pause-resume "# actual 0 MiB after 5 s paused with a 300 MiB target, 300 MiB ${i} s after resume"
    else
        not_ok balloon-pause-resume "pause/target/resume answered $p1/$p2/$p3, state '$state' and actual_mib '$paused_actual' while paused (want paused, 0), actual_mib '$actual' ${i} s after resume (want 300)"
    fi
    d0=$(get /metrics | sed 's/.*"balloon":{\([^}]*\)}.*/\1/' | jnum deflated_pages)
    say "alloc 300"
    if wait_for VMLET-BALLOON-OOM-KILLS 600; then
        held=$(val VMLET-BALLOON-OOM-HELD)
        kills=$(val VMLET-BALLOON-OOM-KILLS)
        after=$(get /balloon | jnum actual_mib)
        d1=$(get /metrics | sed 's/.*"balloon":{\([^}]*\)}.*/\1/' | jnum deflated_pages)
        if [ "$actual" = 300 ] && [ "${held:-0}" -ge 300 ] && [ "$kills" = 0 ] &&
            [ -n "$after" ] && [ "$after" -lt 300 ] && [ "${d1:-0}" -gt "${d0:-0}" ]; then
            ok balloon-deflate-on-oom "# the guest holds ${held} MiB with the balloon at 300 MiB; no OOM kill; balloon now ${after} MiB, $((d1 - d0)) pages deflated"
        else
            not_ok balloon-deflate-on-oom "balloon at '$actual' MiB, the guest holds '$held' of 300 MiB, OOM killer lines '$kills' (want 0), balloon now '$after' MiB (want < 300), deflated_pages $d0 -> $d1"
            tail -n 20 "$log" | sed 's/^/#   /'
        fi
    else
        not_ok balloon-deflate-on-oom "the guest never said how its 300 MiB allocation went (see $log)"
        tail -n 20 "$log" | sed 's/^/#   /'
    fi
fi
finish
status3=$status
if [ "${reported:-0}" -ge 64000 ] && [ "${inflated:-0}" -ge 51200 ] &&
    [ "${deflated:-0}" -ge 51200 ] && [ "${returned:-0}" -ge $((51200 * 4096)) ]; then
    ok balloon-metrics "# reported_pages $reported (boot 1), inflated $inflated, deflated $deflated, returned_bytes $returned (boot 2)"
else
    not_ok balloon-metrics "boot 1 reported_pages '$reported' (need 64000), boot 2 inflated '$inflated', deflated '$deflated' (need 51200), returned_bytes '$returned'"
fi
if [ "$status1/$status2/$status3" = 0/0/0 ]; then ok balloon-poweroff; else
    not_ok balloon-poweroff "exit status $status1, $status2 and $status3, expected 0 each (159: the sandbox; see $logdir/vmlet-balloon-*.log)"; fi
rm -rf "$tmp"
[ "$fail" = 0 ]
