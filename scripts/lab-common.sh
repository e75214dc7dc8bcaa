# shellcheck shell=bash
# Shared paths and helpers for the lab scripts (sourced by bash scripts).
# The lab's artifacts (kernel package, images, logs) live in lab/, which is
# gitignored, so reruns reuse them.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=${LAB:-$ROOT/lab}
BUILD=${BUILD:-$ROOT/build}

# The unpacked Debian kernel package: both L1 and L2 run this kernel.
lab_kernel_dir() { echo "$LAB/kernel"; }
# first_match GLOB...: the first existing path of an expanded glob.
first_match() { if [ -e "$1" ]; then echo "$1"; fi; }
lab_vmlinuz() { first_match "$LAB"/kernel/boot/vmlinuz-*; }
lab_modules() { first_match "$LAB"/kernel/lib/modules/*/; }

# Hardware KVM: /dev/kvm exists and is not PVM (PVM can't run unmodified
# kernels; see shared/PLATFORM.md). Without it everything goes through L1.
have_hw_kvm() { [ -e /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; }

# Seconds since boot with centiseconds, for step timings.
now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The L1 QEMU command from PLATFORM.md (TCG emulating AMD SVM with nested
# paging). Extra arguments are appended. -no-reboot makes a crash or a
# "reboot" of L1 end QEMU instead of looping.
# L1_SERIAL replaces "-serial stdio" (the demo uses a console where Ctrl-C
# goes to the guest instead of ending QEMU). For investigating the lab
# itself: L1_TCG_THREAD=single (one host thread for all of L1's vCPUs;
# guests hung under network load more often so, not less) and L1_APPEND
# (more L1 kernel arguments, e.g. transparent_hugepage=never). L1_CPUS:
# L1's vCPUs (default 2; tests/lab/run and bench/net use 1, see tests/lab/README.md).
l1_qemu() {
    local append=$1; shift
    # The EPYC model less what TCG cannot emulate: QEMU would drop those
    # features anyway, with a warning line each (L1 sees the same CPUID).
    local cpu=EPYC,+svm,+npt,-rdseed,-sha-ni,-xsavec,-3dnowprefetch,-misalignsse,-osvw
    cpu=$cpu,-topoext,-fxsr-opt,-nrip-save
    # L1_SERIAL is options, split into words on purpose.
    # shellcheck disable=SC2086
    qemu-system-x86_64 -accel "tcg,thread=${L1_TCG_THREAD:-multi}" -cpu "$cpu" \
        -smp "${L1_CPUS:-2}" -m 3072 -nodefaults -no-user-config -nographic \
        ${L1_SERIAL:--serial stdio} \
        -kernel "$(lab_vmlinuz)" -initrd "$LAB/l1.img" \
        -append "console=ttyS0 panic=-1 quiet ${L1_APPEND:-} $append" \
        -no-reboot "$@"
}

# l1_nudge SOCKET: a key press for L1 (its PS/2 keyboard, which nothing in
# L1 reads). QEMU 7.2's TCG was seen to leave L1's vCPU with an interrupt
# pending in its LAPIC that it never takes (tests/lab/README.md, "Known
# faults of the lab itself"); the keyboard interrupt makes QEMU look at
# the LAPIC again. Harmless to an L1 that was only quiet.
l1_nudge() {
    l1_monitor "$1" "sendkey shift" >/dev/null 2>&1
}

# l1_watchdog LOG MONITOR NAME STALL TAG, in the background of a bench that
# boots L1 (QEMU -name NAME, its console in LOG): every 30 s of quiet a key
# press (l1_nudge), noted in lab/logs/l1-TAG-nudges; after STALL s of quiet
# L1's state from its monitor goes to lab/logs/l1-TAG-state.txt and L1 is
# stopped.
l1_watchdog() {
    local log=$1 monitor=$2 name=$3 stall=$4 tag=$5 size=-1 s last now
    rm -f "$LAB/logs/l1-$tag-nudges"
    last=$(date +%s)
    while sleep 5; do
        now=$(date +%s)
        s=$(stat -c %s "$log" 2>/dev/null || echo 0)
        [ "$s" != "$size" ] && { size=$s; last=$now; }
        [ $((now - last)) -ge "$stall" ] && break
        if [ $((now - last)) -ge 30 ] && [ $(((now - last) % 30)) -lt 5 ]; then
            echo "$(date +%T) quiet for $((now - last)) s: key press" >>"$LAB/logs/l1-$tag-nudges"
            l1_nudge "$monitor"
        fi
    done
    { echo "L1 printed nothing for $stall s; its QEMU monitor says:"
      l1_monitor "$monitor" "info cpus" "info registers" "info lapic"; } >"$LAB/logs/l1-$tag-state.txt" 2>&1
    say "bench: L1 printed nothing for $stall s: stopping it (its state: lab/logs/l1-$tag-state.txt)"
    # shellcheck disable=SC2046 # one word per pid
    kill $(pgrep -f -- "-name $name") 2>/dev/null
}

# l1_monitor SOCKET COMMAND...: runs HMP commands on a QEMU monitor socket
# (-monitor unix:SOCKET,server=on,wait=off) and prints the answers.
l1_monitor() {
    python3 - "$@" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("monitor: cannot connect: %s" % e)
    sys.exit(0)
def drain(t):
    out, end = b"", time.time() + t
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        out += d
        if out.endswith(b"(qemu) "):
            break
    return out.decode(errors="replace")
drain(2)
for cmd in sys.argv[2:]:
    s.sendall(cmd.encode() + b"\n")
    print("== " + cmd)
    answer = drain(10).replace("\r", "").replace("(qemu) ", "")
    print("\n".join(l for l in answer.split("\n") if "\x1b" not in l))
PY
}
