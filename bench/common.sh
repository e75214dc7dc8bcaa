# shellcheck shell=sh
# Helpers the lab benchmarks share (bench/disk.sh, bench/net.sh): VM exit
# counts from the kvm:kvm_exit tracepoint, the VMM's CPU time, waiting for
# console lines, stopping a VMM, medians and ratios. POSIX sh, sourced
# after tests/lab/vmm.sh; RESULTS names the results file for median().

TRACING=/sys/kernel/tracing
[ -d $TRACING/events ] || TRACING=/sys/kernel/debug/tracing
EV=$TRACING/events/kvm/kvm_exit
TRIGGER='hist:keys=exit_reason:vals=hitcount:sort=hitcount.descending'
[ -w "$EV/trigger" ] || echo "# no kvm:kvm_exit tracepoint at $EV: VM exits not counted"
# The trigger is armed before a VMM starts and removed after it exited:
# enabling or disabling a tracepoint patches kernel text, which waits for
# every CPU, and in the nested lab that was seen to hang L1 (soft lockup)
# while the other vCPU ran the guest. Between, a job's exits are the
# difference of two snapshots of the histogram.
exits_arm() { xtrace_each xtrace_arm_one; [ -w "$EV/trigger" ] && echo "$TRIGGER" >"$EV/trigger"; }
exits_disarm() { xtrace_each xtrace_disarm_one; [ -w "$EV/trigger" ] && echo "!$TRIGGER" >"$EV/trigger"; }
exits_snap() {
    XSNAP=$1 xtrace_each xtrace_snap_one
    if [ -r "$EV/hist" ]; then cat "$EV/hist" >"$1"; else : >"$1"; fi
}
# exits_diff BEFORE AFTER OUT: per-reason counts of AFTER minus BEFORE into
# OUT (in the histogram's format, largest first); prints the total.
exits_diff() {
    if [ ! -s "$2" ]; then echo -; return; fi
    awk '/^\{ exit_reason:/ { gsub(/[{}]/, ""); n = $4 + 0
                              if (FILENAME == ARGV[1]) before[$2] = n; else after[$2] = n }
         END { for (r in after) { d = after[r] - before[r]; if (d > 0) print d, r } }' "$1" "$2" |
        sort -rn | awk -v out="$3" '{ total += $1
            printf "{ exit_reason: %10s } hitcount: %10d\n", $2, $1 >out }
            END { print total + 0 }'
}

# Optional histograms beside the exits (XTRACE="EVENT:KEYS ...", kvm
# events, e.g. "kvm_msr:ecx,write kvm_apic_accept_irq:vec"): armed, read
# and removed with the exits', a snapshot FILE's go to FILE.EVENT.
XTRACE=${XTRACE:-}
xtrace_each() {
    for x in $XTRACE; do
        xe=$TRACING/events/kvm/${x%%:*}
        [ -w "$xe/trigger" ] && "$@" "${x%%:*}" "$xe" "hist:keys=${x#*:}:vals=hitcount:sort=hitcount.descending"
    done
}
xtrace_arm_one() { echo "$3" >"$2/trigger"; }
xtrace_disarm_one() { echo "!$3" >"$2/trigger"; }
xtrace_snap_one() { cat "$2/hist" >"$XSNAP.$1"; }
# xtrace_diff BEFORE AFTER: per key, AFTER's count minus BEFORE's, for each
# event, largest first, as "EVENT: count key; count key; ..." lines.
xtrace_diff() {
    for x in $XTRACE; do
        e=${x%%:*}
        [ -s "$2.$e" ] || continue
        printf '%s:' "$e"
        awk '/^\{/ { k = $0; sub(/^\{ */, "", k); sub(/ *\}.*/, "", k); gsub(/  +/, " ", k)
                     n = $0; sub(/.*hitcount: */, "", n); n += 0
                     if (FILENAME == ARGV[1]) b[k] = n; else a[k] = n }
             END { for (k in a) if (a[k] - b[k] > 0) print a[k] - b[k] "\t" k }' "$1.$e" "$2.$e" |
            sort -rn | head -n 8 | awk -F'\t' '{ printf " %s [%s];", $1, $2 } END { print "" }'
        rm -f "$1.$e" "$2.$e"
    done
}

secs() { cut -d. -f1 /proc/uptime; }
# The VMM's user + system CPU time in clock ticks (all its threads; a
# vCPU thread's includes the time the guest ran).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$VMM_PID/stat" 2>/dev/null || echo 0; }
console() { tr -d '\r' <"$VMM_LOG"; }
# wait_line LINE SECONDS: 0 once the console has LINE (whole line), 1 if
# the VMM exited first, 2 on timeout.
wait_line() {
    deadline=$(($(secs) + $2))
    while :; do
        console | grep -aqxF -- "$1" && return 0
        if vmm_exited; then
            console | grep -aqxF -- "$1" && return 0
            return 1
        fi
        [ "$(secs)" -ge "$deadline" ] && return 2
        sleep 0.2
    done
}
stop_vmm() {
    deadline=$(($(secs) + $1))
    while ! vmm_exited && [ "$(secs)" -lt "$deadline" ]; do sleep 0.2; done
    if ! vmm_exited; then
        vmm_kill
        while ! vmm_exited; do sleep 0.1; done
    fi
    vmm_cleanup
}

# median VMM JOB FIELD: over the reps (fields: 3 KiB/s, 4 IOPS, 5 clat,
# 6 exits, 7 CPU s); "-" if none.
median() {
    awk -v v="$1" -v j="$2" -v f="$3" '$1 == v && $2 == j && $f != "-" { print $f }' "$RESULTS" | sort -n |
        awk '{ x[NR] = $1 } END { if (NR == 0) { print "-"; exit }
                                  print (NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2) }'
}
# spread VMM JOB FIELD: "min-max" over the reps (how far the medians can
# be trusted); "-" if none.
spread() {
    awk -v v="$1" -v j="$2" -v f="$3" '$1 == v && $2 == j && $f != "-" { print $f }' "$RESULTS" | sort -n |
        awk 'NR == 1 { lo = $1 } { hi = $1 } END { print (NR ? lo "-" hi : "-") }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# exits_line LABEL WHO HISTOGRAM WIDTH: "#   LABEL WHO" (LABEL padded to
# WIDTH) and exits_top's reasons, for a histogram that was recorded.
exits_line() {
    [ -s "$3" ] || return 0
    printf "#   %-${4}s %-6s" "$1" "$2"
    exits_top "$3"
}

# exits_top HISTOGRAM: the six most frequent exit reasons with counts, on
# one line (SVM exit codes, named for the common ones; npf = nested page
# fault: MMIO, such as a virtqueue notify, or a first touch of memory).
exits_top() {
    awk '
        BEGIN { n = split("96 intr 97 nmi 100 vintr 110 rdtsc 114 cpuid 119 pause " \
                          "120 hlt 121 invlpg 123 io 124 msr 127 shutdown 129 vmmcall " \
                          "141 xsetbv 78 #PF 1024 npf 1025 avic-ipi 1026 avic-access", t, " ")
                for (i = 1; i < n; i += 2) name[t[i]] = t[i + 1] }
        /^\{ exit_reason:/ { gsub(/[{}]/, ""); r = $2; c = $4
                             if (shown++ < 6) printf " %s %s", (r in name ? name[r] : "code" r), c }
        END { print "" }' "$1"
}
