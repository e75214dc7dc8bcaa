#!/bin/sh
# Lab scenarios: boot the L2 test guest (tests/lab/guest) with each VMM in
# $VMMS and check what the guest reports and how the VMM exits. POSIX sh:
# runs under busybox inside L1 (tests/lab/run), or on a host with hardware
# KVM directly. Prints TAP: a plan, then one line per check, named
# NAME for vmlet and VMM/NAME for the reference VMMs (e.g. qemu/boot-1cpu).
#
# Few boots, several checks each (an L2 boot is slow):
#   A  1 vCPU, 512M, info, then poweroff  boot-1cpu memtotal cmdline poweroff-exit0
#   B  2 vCPUs, info, then reboot         boot-2cpu reboot-exit3
#   C  interactive shell                  stdin-command sigterm-clean-shutdown
#   D  no acpid, --shutdown-timeout 5     shutdown-timeout-exit4
#
# Environment: VMMS (default "vmlet"), VMLET, KERNEL, INITRD (see vmm.sh),
# LOGDIR (guest consoles, one file a boot), READY_TIMEOUT (s to reach
# VMLET-INIT-READY), STOP_TIMEOUT (s to exit once asked), L2_CMDLINE.

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/vmm.sh"

VMMS=${VMMS:-vmlet}
LOGDIR=${LOGDIR:-/tmp/lab-logs}
READY_TIMEOUT=${READY_TIMEOUT:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}
BASE=${L2_CMDLINE:-console=ttyS0 quiet panic=-1}
CHECKS=9
# memtotal: MemTotal is RAM minus what the kernel keeps for itself (its
# image, struct pages: ~1.6%, early reservations) and minus firmware holes;
# for 512 MiB QEMU's guest reports ~490 MiB. Accept 448..512 MiB: a VMM
# that loses 64 MiB, or hands out more than it was asked for, fails.
MEM=512M
MEM_MIN_KB=$((448 * 1024))
MEM_MAX_KB=$((512 * 1024))

mkdir -p "$LOGDIR"
failures=0

up() { cut -d' ' -f1 /proc/uptime; }
secs() { cut -d. -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }'; }

ok() { echo "ok - $PFX$1"; }
not_ok() {
    echo "not ok - $PFX$1: $2"
    failures=$((failures + 1))
    boot_failed=1
}

# Value of a VMLET-NAME=value line the guest printed.
value() {
    tr -d '\r' <"$VMM_LOG" | grep -a "^$1=" | tail -n 1 | cut -d= -f2-
}
seen() { tr -d '\r' <"$VMM_LOG" | grep -aqF -- "$1"; }

# wait_for TEXT SECONDS: 0 when the console shows TEXT, 1 when the VMM
# exited without it, 2 on timeout.
wait_for() {
    deadline=$(($(secs) + $2))
    while :; do
        seen "$1" && return 0
        if vmm_exited; then
            seen "$1" && return 0
            return 1
        fi
        [ "$(secs)" -ge "$deadline" ] && return 2
        sleep 0.25
    done
}

# wait_exit SECONDS: sets rc to the VMM's status, or to "timeout" after
# killing a VMM that did not exit in time.
wait_exit() {
    deadline=$(($(secs) + $1))
    while ! vmm_exited; do
        if [ "$(secs)" -ge "$deadline" ]; then
            vmm_kill
            while ! vmm_exited; do sleep 0.1; done
            rc=timeout
            return
        fi
        sleep 0.25
    done
    rc=$(vmm_status)
}

# boot NAME CPUS MEMORY CMDLINE: start the VMM; then "ready" waits for init.
boot() {
    boot_name=$1
    boot_failed=
    t0=$(up)
    vmm_start "$VMM" "$LOGDIR/$VMM-$1.log" "$2" "$3" "$4"
}

# ready: 0 once init printed VMLET-INIT-READY; otherwise sets why.
ready() {
    wait_for VMLET-INIT-READY "$READY_TIMEOUT"
    case $? in
    0) echo "# $VMM $boot_name: init ready after $(since "$t0") s"; return 0 ;;
    1) why="$VMM exited with status $(vmm_status) before VMLET-INIT-READY" ;;
    2) why="no VMLET-INIT-READY within ${READY_TIMEOUT} s" ;;
    esac
    return 1
}

# end_boot: stop the VMM if it still runs; show the console on failure.
end_boot() {
    if ! vmm_exited; then
        vmm_kill
        while ! vmm_exited; do sleep 0.1; done
    fi
    echo "# $VMM $boot_name: VMM gone after $(since "$t0") s"
    vmm_cleanup
    if [ -n "$boot_failed" ]; then
        echo "# --- last 40 lines of $VMM_LOG:"
        tr -d '\r' <"$VMM_LOG" | tail -n 40 | sed 's/^/#   /'
    fi
}

scenario_a() {
    token=tok$(tr -d '-' </proc/sys/kernel/random/uuid | cut -c1-12)
    boot info-poweroff 1 "$MEM" "$BASE vmlet.test=info vmlet.then=poweroff vmlet.token=$token"
    if ready; then
        wait_for VMLET-INFO-DONE 60
        n=$(value VMLET-NPROC)
        if [ "$n" = 1 ]; then ok boot-1cpu; else not_ok boot-1cpu "guest nproc is '$n', expected 1"; fi
        kb=$(value VMLET-MEMTOTAL-KB)
        case $kb in
        ''|*[!0-9]*) not_ok memtotal "guest printed no MemTotal ('$kb')" ;;
        *)
            if [ "$kb" -ge "$MEM_MIN_KB" ] && [ "$kb" -le "$MEM_MAX_KB" ]; then
                ok memtotal
                echo "# MemTotal with --memory $MEM: $kb kB"
            else
                not_ok memtotal "MemTotal $kb kB with --memory $MEM, expected $MEM_MIN_KB..$MEM_MAX_KB kB"
            fi ;;
        esac
        c=$(value VMLET-CMDLINE)
        case " $c " in
        *" vmlet.token=$token "*) ok cmdline ;;
        *) not_ok cmdline "token $token not in the guest's /proc/cmdline: '$c'" ;;
        esac
        wait_exit "$STOP_TIMEOUT"
        if [ "$rc" != 0 ]; then
            not_ok poweroff-exit0 "guest ran poweroff; VMM exit status $rc, expected 0"
        elif ! seen VMLET-SHUTDOWN; then
            not_ok poweroff-exit0 "exit status 0 but the guest never got to its shutdown"
        else
            ok poweroff-exit0
        fi
    else
        for c in boot-1cpu memtotal cmdline poweroff-exit0; do not_ok $c "$why"; done
    fi
    end_boot
}

scenario_b() {
    boot info-reboot 2 256M "$BASE vmlet.test=info vmlet.then=reboot"
    if ready; then
        wait_for VMLET-INFO-DONE 60
        n=$(value VMLET-NPROC)
        if [ "$n" = 2 ]; then ok boot-2cpu; else not_ok boot-2cpu "guest nproc is '$n', expected 2"; fi
        wait_exit "$STOP_TIMEOUT"
        if [ "$rc" != 3 ]; then
            not_ok reboot-exit3 "guest ran reboot; VMM exit status $rc, expected 3"
        elif ! seen VMLET-SHUTDOWN; then
            not_ok reboot-exit3 "exit status 3 but the guest never got to its shutdown"
        else
            ok reboot-exit3
        fi
    else
        for c in boot-2cpu reboot-exit3; do not_ok $c "$why"; done
    fi
    end_boot
}

scenario_c() {
    boot shell 1 256M "$BASE"
    if ready; then
        # The shell starts just after the marker; typed input sent before
        # it opens the tty may be lost, so retry a few times.
        got=
        for try in 1 2 3 4; do
            vmm_send 'echo $((6*7))-marker'
            if wait_for 42-marker 10; then got=1; break; fi
            vmm_exited && break
        done
        if [ -n "$got" ]; then ok stdin-command
        else not_ok stdin-command "wrote 'echo \$((6*7))-marker' to stdin, '42-marker' never appeared"; fi

        if vmm_exited; then
            not_ok sigterm-clean-shutdown "VMM already exited (status $(vmm_status))"
        else
            vmm_request_stop
            wait_exit "$STOP_TIMEOUT"
            if [ "$rc" != 0 ]; then
                not_ok sigterm-clean-shutdown "VMM exit status $rc after SIGTERM, expected 0"
            elif ! seen VMLET-POWER-BUTTON; then
                not_ok sigterm-clean-shutdown "exit 0 but the guest's acpid never saw the power button"
            elif ! seen VMLET-SHUTDOWN; then
                not_ok sigterm-clean-shutdown "exit 0 but the guest never got to its shutdown"
            else
                ok sigterm-clean-shutdown
            fi
        fi
    else
        for c in stdin-command sigterm-clean-shutdown; do not_ok $c "$why"; done
    fi
    end_boot
}

scenario_d() {
    saved=$SHUTDOWN_TIMEOUT
    SHUTDOWN_TIMEOUT=5
    boot no-acpid 1 256M "$BASE vmlet.acpid=0 vmlet.test=info vmlet.then=idle"
    if ready; then
        wait_for VMLET-INFO-DONE 60
        t1=$(secs)
        vmm_request_stop
        wait_exit "$STOP_TIMEOUT"
        took=$(($(secs) - t1))
        if [ "$rc" != 4 ]; then
            not_ok shutdown-timeout-exit4 "guest ignores the power button; exit status $rc, expected 4"
        elif [ "$took" -lt $((SHUTDOWN_TIMEOUT - 1)) ]; then
            not_ok shutdown-timeout-exit4 "exit 4 after ${took} s, before the ${SHUTDOWN_TIMEOUT} s timeout"
        else
            ok shutdown-timeout-exit4
        fi
    else
        not_ok shutdown-timeout-exit4 "$why"
    fi
    end_boot
    SHUTDOWN_TIMEOUT=$saved
}

# The mini guests (tests/mini): a few instructions each, testing vmlet's
# run loop, exits and stop paths on the same /dev/kvm.
MINI_CHECKS=7
MINI=${MINI:-$HERE/../mini}
MINI_IMAGES=${MINI_IMAGES:-$LOGDIR/mini}   # lab-images builds them for L1

n=0
for VMM in $VMMS; do n=$((n + CHECKS)); done
case " $VMMS " in *" vmlet "*) n=$((n + MINI_CHECKS)) ;; esac
echo "1..$n"
for VMM in $VMMS; do
    PFX=
    [ "$VMM" = vmlet ] || PFX=$VMM/
    if [ "$VMM" = vmlet ] && [ ! -x "$VMLET" ]; then
        for c in boot-1cpu memtotal cmdline poweroff-exit0 boot-2cpu reboot-exit3 \
                 stdin-command sigterm-clean-shutdown shutdown-timeout-exit4; do
            not_ok $c "no vmlet binary at $VMLET (did it build?)"
        done
        continue
    fi
    if [ "$VMM" = vmlet ]; then
        [ -f "$MINI_IMAGES/poweroff.bzImage" ] || sh "$MINI/build.sh" "$MINI_IMAGES" >/dev/null
        sh "$MINI/run.sh" "$VMLET" "$MINI_IMAGES" | tee "$LOGDIR/mini.tap"
        failures=$((failures + $(grep -c '^not ok' "$LOGDIR/mini.tap")))
    fi
    scenario_a
    scenario_b
    scenario_c
    scenario_d
done
[ "$failures" = 0 ]
