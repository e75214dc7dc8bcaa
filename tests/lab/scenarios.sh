#!/bin/sh
# Lab scenarios: boot the L2 test guest (tests/lab/guest) with each VMM in
# $VMMS and check what the guest reports and how the VMM exits. POSIX sh:
# runs under busybox inside L1 (tests/lab/run), or on a host with hardware
# KVM directly. Prints TAP: a plan, then one line per check, named
# NAME for vmlet and VMM/NAME for the reference VMMs (e.g. qemu/boot-1cpu).
#
# `scenarios.sh --plan` prints the planned check names, one a line, and
# exits; a run prints them too, on one "# plan: ..." line after "1..N", so
# that tests/lab/run can name every planned check that never reported.
#
# Few boots, several checks each (an L2 boot is slow):
#   A  1 vCPU, 512M, info, then poweroff  boot-1cpu memtotal cmdline poweroff-exit0
#   B  2 vCPUs, info, then reboot         boot-2cpu reboot-exit3
#   C  interactive shell                  stdin-command sigterm-clean-shutdown
#   D  no acpid, --shutdown-timeout 5     shutdown-timeout-exit4 (vmlet only)
#   E  root on a virtio disk (ext4), a ro  root-disk-write ro-disk
#      disk, a 256 MiB scratch disk        disk-serials disk-256m
#   F  root on that disk again, console    hwrng hvc0-shell
#      on hvc0 (virtio), virtio-rng, a     sandbox-every-thread (vmlet only)
#      user-mode NIC
#   G  3 boots writing numbered records     sigkill-no-data-loss
#      to a disk, each ended by SIGKILL
#
# Environment: VMMS (default "vmlet"), VMLET, KERNEL, INITRD (see vmm.sh),
# LOGDIR (guest consoles, one file a boot), READY_TIMEOUT (s to reach
# VMLET-INIT-READY), STOP_TIMEOUT (s to exit once asked), L2_CMDLINE,
# ROOT_IMAGE (the guest's root disk, ext4, may be gzipped; made by
# scripts/lab-images), DISKDIR (where the disk images are made: L1's
# tmpfs), SCRATCH_MB (256), DISKS_TIMEOUT (s for the disk checks, 600),
# RECORDS_ROUNDS (boots of scenario G, 3), ONLY (for working on one part:
# "mini net api kernel vsock fs balloon snapshot disks" or some of them, planned and run
# alone, vmlet only; disks = scenarios E, F, G).

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/vmm.sh"
# shellcheck source=guest/records.sh
. "$HERE/guest/records.sh"

VMMS=${VMMS:-vmlet}
LOGDIR=${LOGDIR:-/tmp/lab-logs}
READY_TIMEOUT=${READY_TIMEOUT:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}
BASE=${L2_CMDLINE:-console=ttyS0 quiet panic=-1}
# The checks of scenarios A-G, in the order they report.
CHECK_NAMES="boot-1cpu memtotal cmdline poweroff-exit0 boot-2cpu reboot-exit3
             stdin-command sigterm-clean-shutdown shutdown-timeout-exit4
             root-disk-write ro-disk disk-serials disk-256m hwrng hvc0-shell
             sandbox-every-thread sigkill-no-data-loss"
# Scenarios E, F and G (ONLY=disks: these, vmlet only).
DISK_CHECKS="root-disk-write ro-disk disk-serials disk-256m hwrng hvc0-shell sandbox-every-thread sigkill-no-data-loss"
ROOT_IMAGE=${ROOT_IMAGE:-/lab/root.ext4.gz}
DISKDIR=${DISKDIR:-/tmp/lab-disks}
SCRATCH_MB=${SCRATCH_MB:-256}
DISKS_TIMEOUT=${DISKS_TIMEOUT:-600}
RECORDS_ROUNDS=${RECORDS_ROUNDS:-3}
RECORDS_BATCH=256   # records (of 4 KiB) a batch, one flush each
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

# wait_for_prompt: 0 once the guest's shell printed its prompt (PS1 in
# tests/lab/guest/profile); otherwise sets why.
wait_for_prompt() {
    wait_for 'vmlet-guest:' 60
    case $? in
    0) return 0 ;;
    1) why="$VMM exited with status $(vmm_status) before the shell prompted" ;;
    2) why="no shell prompt (vmlet-guest:...) within 60 s" ;;
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

# rand N: N random lowercase hex digits.
rand() { tr -d '-' </proc/sys/kernel/random/uuid | cut -c1-"$1"; }
# urand N: a random number from 0 to N-1 (N up to 65536).
urand() { echo $(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % $1)); }
sha() { sha256sum | cut -d' ' -f1; }

scenario_a() {
    token=tok$(rand 12)
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
        # Typed input is sent once, when the shell is reading: bytes that
        # reach the UART before the guest opens ttyS0 for the shell are
        # dropped (the 8250 driver clears the FIFO when the port opens), so
        # wait for the prompt first (PS1 in guest/profile).
        if ! wait_for_prompt; then
            not_ok stdin-command "$why"
        else
            # shellcheck disable=SC2016 # for the guest's shell to expand
            vmm_send 'echo $((6*7))-marker'
            if wait_for 42-marker 30; then ok stdin-command
            else not_ok stdin-command "wrote 'echo \$((6*7))-marker' to stdin once the shell prompted, '42-marker' never appeared"; fi
        fi

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

# vmlet only. QEMU has no shutdown timeout: vmm.sh emulates it by quitting
# QEMU after the grace time and marking the run "hard", which maps to exit
# status 4, so for QEMU this check would only test the harness itself.
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

# A fresh copy of the root disk image (ext4 made by mkfs.ext4 -d).
root_image() {
    case $ROOT_IMAGE in
    *.gz) gzip -dc "$ROOT_IMAGE" >"$1" ;;
    *) cp "$ROOT_IMAGE" "$1" ;;
    esac
}

# debugfs_cat IMAGE PATH: a file's bytes, read from the image by debugfs.
debugfs_cat() { debugfs -R "cat $2" "$1" 2>/dev/null; }

scenario_e() {
    dir=$DISKDIR/$VMM
    rm -rf "$dir"
    mkdir -p "$dir"
    disk_checks="root-disk-write ro-disk disk-serials disk-256m"
    if ! root_image "$dir/root.img" || ! command -v debugfs >/dev/null; then
        for c in $disk_checks; do not_ok "$c" "cannot unpack $ROOT_IMAGE or no debugfs"; done
        return
    fi
    dd if=/dev/urandom of="$dir/ro.img" bs=1M count=4 2>/dev/null
    ro_sha=$(sha <"$dir/ro.img")
    dd if=/dev/zero of="$dir/scratch.img" bs=1M count=0 seek="$SCRATCH_MB" 2>/dev/null
    token=tok$(rand 12)
    s_root=root-$(rand 8) s_ro=ro-$(rand 8) s_scr=scratch-$(rand 8)
    VMM_DISKS="$dir/root.img,serial=$s_root $dir/ro.img,ro,serial=$s_ro $dir/scratch.img,serial=$s_scr"
    boot disks 1 1G "$BASE rdinit=/etc/init.d/diskroot root=/dev/vda rw vmlet.test=disks vmlet.token=$token vmlet.rodisk=vdb vmlet.scratch=vdc vmlet.scratch_mb=$SCRATCH_MB"
    VMM_DISKS=
    if ! ready; then
        for c in $disk_checks; do not_ok "$c" "$why"; done
        end_boot
        return
    fi
    wait_for VMLET-DISKS-DONE "$DISKS_TIMEOUT"
    case $? in
    1) late="$VMM exited with status $(vmm_status) before VMLET-DISKS-DONE" ;;
    2) late="no VMLET-DISKS-DONE within ${DISKS_TIMEOUT} s" ;;
    *) late= ;;
    esac
    echo "# $VMM $boot_name: disk checks done after $(since "$t0") s ($(value VMLET-SCRATCH-TIMES))"
    wait_exit "$STOP_TIMEOUT"

    # root-disk-write: / was /dev/vda (ext4, rw); after the guest's
    # poweroff the token and the random file are in the image.
    root=$(value VMLET-ROOT)
    if [ -n "$late" ] && ! seen VMLET-ROOT-WRITTEN; then
        not_ok root-disk-write "$late"
    else
        case $root in
        "/dev/vda ext4 rw"*)
            got_token=$(debugfs_cat "$dir/root.img" /vmlet-token)
            got_sha=$(debugfs_cat "$dir/root.img" /vmlet-random | sha)
            want_sha=$(value VMLET-ROOT-RANDOM-SHA)
            if [ "$rc" != 0 ]; then
                not_ok root-disk-write "guest ran poweroff; VMM exit status $rc, expected 0"
            elif [ "$got_token" != "$token" ]; then
                not_ok root-disk-write "debugfs reads '$got_token' from /vmlet-token in the image, the guest wrote '$token'$(seen VMLET-ROOT-RO || echo ' (guest did not remount / read-only)')"
            elif [ -z "$want_sha" ] || [ "$got_sha" != "$want_sha" ]; then
                not_ok root-disk-write "/vmlet-random in the image has sha256 $got_sha, the guest wrote ${want_sha:-nothing}"
            else
                ok root-disk-write
            fi ;;
        *) not_ok root-disk-write "the guest's / is '$root', expected /dev/vda ext4 rw" ;;
        esac
    fi

    # ro-disk: refused inside the guest, readable, image unchanged.
    d=$(value VMLET-DISK-vdb)
    w=$(value VMLET-RO-WRITE)
    r=$(value VMLET-RO-SHA)
    after=$(sha <"$dir/ro.img")
    if [ -n "$late" ] && [ -z "$r" ]; then
        not_ok ro-disk "$late"
    else
        case "$d|$w" in
        *" ro:1 "*"|refused"*)
            if [ "$after" != "$ro_sha" ]; then
                not_ok ro-disk "the read-only image changed: sha256 $ro_sha before, $after after"
            elif [ "$r" != "$ro_sha" ]; then
                not_ok ro-disk "the guest read sha256 '$r' from vdb, the image has $ro_sha"
            else
                ok ro-disk
            fi ;;
        *) not_ok ro-disk "vdb is '$d' (want ro:1), a direct write to it '$w' (want refused)" ;;
        esac
    fi

    # disk-serials: sysfs shows each disk's serial, in --disk order.
    bad=
    for pair in "vda:$s_root" "vdb:$s_ro" "vdc:$s_scr"; do
        n=${pair%%:*}
        case " $(value "VMLET-DISK-$n") " in
        *" serial:${pair#*:} "*) ;;
        *) bad="$bad $n='$(value "VMLET-DISK-$n")' (want serial:${pair#*:})" ;;
        esac
    done
    if [ -z "$bad" ]; then ok disk-serials; else not_ok disk-serials "${bad# }"; fi

    # disk-256m: the random bytes the guest wrote (their sha256 before the
    # write), what it read back with O_DIRECT, and the image file agree.
    ws=$(value VMLET-SCRATCH-SRC-SHA)
    wr=$(value VMLET-SCRATCH-WRITE)
    rs=$(value VMLET-SCRATCH-READ-SHA)
    if [ -z "$rs" ]; then
        not_ok disk-256m "${late:-the guest printed no read-back checksum}"
    elif [ "$wr" != ok ]; then
        not_ok disk-256m "the guest's ${SCRATCH_MB} MiB O_DIRECT write to vdc: $wr"
    else
        is=$(sha <"$dir/scratch.img")
        if [ "$ws" != "$rs" ]; then
            not_ok disk-256m "guest wrote sha256 $ws, read back $rs"
        elif [ "$is" != "$ws" ]; then
            not_ok disk-256m "guest wrote and read sha256 $ws, the image file has $is"
        else
            ok disk-256m
        fi
    fi
    end_boot
    rm -f "$dir/ro.img" "$dir/scratch.img"
}

# hwrng + hvc0-shell, booting the root disk that scenario E wrote (the
# issue's command line: console=hvc0 root=/dev/vda rw, --console virtio
# --rng).
# status_field FILE NAME: a "Name:<tab>value" line's value.
status_field() { sed -n "s/^$2:[[:space:]]*//p" "$1"; }

# vmlet only (part of F, which has every kind of device thread): every
# thread of the running vmlet (L1 runs it as root) is under its seccomp
# filter (Seccomp 2), has no_new_privs and no capabilities left.
sandbox_check() {
    bad='' names='' n=0
    none=0000000000000000
    for st in /proc/"$VMM_PID"/task/*/status; do
        name=$(status_field "$st" Name)
        names="$names $name"
        n=$((n + 1))
        sc=$(status_field "$st" Seccomp) nnp=$(status_field "$st" NoNewPrivs)
        eff=$(status_field "$st" CapEff) prm=$(status_field "$st" CapPrm)
        if [ "$sc" != 2 ] || [ "$nnp" != 1 ] || [ "$eff" != $none ] || [ "$prm" != $none ]; then
            bad="$bad $name(Seccomp $sc, NoNewPrivs $nnp, CapEff $eff, CapPrm $prm)"
        fi
    done
    missing=''
    for want in vmlet vcpu0 virtio-blk virtio-rng virtio-con virtio-net console-out; do
        case " $names " in *" $want "*) ;; *) missing="$missing $want" ;; esac
    done
    if [ -n "$bad" ]; then
        not_ok sandbox-every-thread "threads outside the sandbox:$bad"
    elif [ -n "$missing" ]; then
        not_ok sandbox-every-thread "no thread named$missing among:$names"
    else
        ok sandbox-every-thread
        echo "# sandbox: $n threads, each with Seccomp 2, NoNewPrivs 1, no capabilities:$names"
    fi
}

scenario_f() {
    dir=$DISKDIR/$VMM
    mkdir -p "$dir"
    [ -f "$dir/root.img" ] || root_image "$dir/root.img"
    VMM_DISKS=$dir/root.img VMM_CONSOLE=virtio VMM_RNG=1 VMM_NET=user
    boot hvc0-rng 1 256M "$(echo "$BASE" | sed 's/console=[^ ]*//g') console=hvc0 rdinit=/etc/init.d/diskroot root=/dev/vda rw vmlet.test=hwrng vmlet.then=shell"
    VMM_DISKS='' VMM_CONSOLE='' VMM_RNG='' VMM_NET=''
    if ! ready; then
        for c in hwrng hvc0-shell; do not_ok $c "$why"; done
        [ "$VMM" = vmlet ] && not_ok sandbox-every-thread "$why"
        end_boot
        return
    fi
    [ "$VMM" = vmlet ] && sandbox_check
    if ! wait_for VMLET-HWRNG-DONE 60; then
        not_ok hwrng "no VMLET-HWRNG-DONE within 60 s"
    else
        cur=$(value VMLET-HWRNG-CURRENT)
        a=$(value VMLET-HWRNG-1)
        b=$(value VMLET-HWRNG-2)
        case $cur in
        virtio_rng*)
            if [ ${#a} != 128 ] || [ ${#b} != 128 ]; then
                not_ok hwrng "64-byte reads of /dev/hwrng gave '$a' and '$b'"
            elif [ "$a" = "$b" ]; then
                not_ok hwrng "two 64-byte reads of /dev/hwrng are the same: $a"
            elif [ -z "$(echo "$a$b" | tr -d 0)" ]; then
                not_ok hwrng "/dev/hwrng gives zeros"
            else
                ok hwrng
            fi ;;
        *) not_ok hwrng "the guest's hw_random/rng_current is '$cur', expected virtio_rng.N" ;;
        esac
    fi

    # The shell runs on hvc0, and vmlet's stdin goes to hvc0 only. Sent
    # once, when the shell prompts (see scenario C).
    got=
    if ! wait_for_prompt; then
        not_ok hvc0-shell "$why"
    else
        # shellcheck disable=SC2016 # for the guest's shell to expand
        vmm_send 'echo $((6*7))-on-$(tty)'
        wait_for 42-on-/dev/hvc0 30 && got=1
        [ -n "$got" ] || not_ok hvc0-shell "wrote 'echo \$((6*7))-on-\$(tty)' to stdin once the shell prompted, '42-on-/dev/hvc0' never appeared"
    fi
    if [ -n "$got" ]; then
        vmm_send poweroff
        wait_exit "$STOP_TIMEOUT"
        if [ "$rc" != 0 ]; then
            not_ok hvc0-shell "'poweroff' typed in the hvc0 shell; VMM exit status $rc, expected 0"
        elif ! seen VMLET-SHUTDOWN; then
            not_ok hvc0-shell "exit 0 but the guest never got to its shutdown"
        else
            ok hvc0-shell
        fi
    fi
    end_boot
    rm -rf "$dir"
}

# G: no data loss on SIGKILL. RECORDS_ROUNDS boots, each with a fresh
# sparse 64 MiB image as vda: the guest (vmlet.test=records, guest/main)
# writes numbered 4 KiB records (guest/records.sh) in batches of
# RECORDS_BATCH, flushes (fsync of /dev/vda: a virtio-blk FLUSH) after each
# and then prints VMLET-FLUSHED=N. (the batch's last record). Once a random
# 2..6 batches are flushed, and after a further random 0..1.5 s (so the kill
# lands anywhere in the write/flush cycle), the VMM gets SIGKILL. Every
# record 0..N of the last complete VMLET-FLUSHED line must then be in the
# image file, byte for byte (records.sh makes the expected bytes); later
# records may be there or not.
#
# What this can catch: a SIGKILL, unlike a power cut, leaves the host's
# page cache alone (and the image is on tmpfs), so the check is about the
# VMM itself, not fdatasync. Linux issues the FLUSH only after every write
# of the batch has completed, and up to 16 of them are in flight together
# (plus the next batch's, during the flush). So the check fails when the
# VMM tells the guest that a write (or the flush after it) is done while
# the data is still only in its own memory: a write-back cache or a queue
# of writes not yet handed to the kernel that a flush does not drain, a
# completion posted for the wrong one of several requests in flight, a
# request finished before all of its parts (a split or short write) were
# written. Such data dies with the process; the guest had already printed
# VMLET-FLUSHED. (A vmlet changed to complete writes at once from a copy
# and write them out 64 at a time fails it, with a batch of 256 flushed
# records missing.) It cannot see what only a power cut loses (data still
# in the host's page cache: a FLUSH must become fdatasync,
# src/backend/disk.c), which no test here can cause.
flushed() {
    tr -d '\r' <"$VMM_LOG" | grep -a '^VMLET-FLUSHED=[0-9]*\.$' | tail -n 1 | sed 's/^VMLET-FLUSHED=//; s/\.$//'
}

# records_round R: one boot, kill and check; appends to round_bad or
# round_ok.
records_round() {
    img=$dir/records.img
    rm -f "$img"
    dd if=/dev/zero of="$img" bs=1M count=0 seek=64 2>/dev/null
    k=$((2 + $(urand 5)))
    ms=$(urand 1500)
    want=$((k * RECORDS_BATCH - 1))
    VMM_DISKS=$img
    boot "records-$1" 1 256M "$BASE vmlet.test=records vmlet.then=idle vmlet.records_batch=$RECORDS_BATCH"
    VMM_DISKS=
    if ! ready; then
        round_bad="$round_bad round $1: $why;"
        boot_failed=1
        end_boot
        return
    fi
    problem=
    deadline=$(($(secs) + 120))
    while :; do
        n=$(flushed)
        [ -n "$n" ] && [ "$n" -ge "$want" ] && break
        if seen VMLET-RECORDS-ERROR; then problem="the guest says: $(value VMLET-RECORDS-ERROR)"
        elif seen VMLET-RECORDS-FULL; then problem="the guest filled the disk before the kill"
        elif vmm_exited; then problem="$VMM exited with status $(vmm_status) before the kill"
        elif [ "$(secs)" -ge "$deadline" ]; then problem="no VMLET-FLUSHED=$want. within 120 s (last: '$n')"
        fi
        [ -n "$problem" ] && break
        sleep 0.2
    done
    if [ -z "$problem" ]; then
        sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
        if vmm_exited; then problem="$VMM exited with status $(vmm_status) before the kill"; fi
    fi
    vmm_kill
    while ! vmm_exited; do sleep 0.1; done
    n=$(flushed)
    cache=$(value VMLET-RECORDS-CACHE)
    if [ -z "$problem" ] && [ "$cache" != "write back" ]; then
        problem="the guest sees vda's cache as '$cache', not 'write back': it sends no FLUSH"
    fi
    if [ -z "$problem" ]; then
        t1=$(up)
        expect=$dir/records.expect
        records 0 $((n + 1)) >"$expect"
        if diff=$(head -c $(((n + 1) * RECORD_SIZE)) "$img" | cmp - "$expect" 2>&1); then
            round_ok="$round_ok 0..$n"
            echo "# $VMM records-$1: SIGKILL ${ms} ms after VMLET-FLUSHED=$want., the last flushed was $n: records 0..$n intact (checked in $(since "$t1") s)"
        else
            c=$(echo "$diff" | sed -nE 's/.*differ: (char|byte) ([0-9]+).*/\2/p')   # busybox: char, GNU: byte
            nbad=$(head -c $(((n + 1) * RECORD_SIZE)) "$img" | cmp -l - "$expect" 2>/dev/null |
                awk -v size="$RECORD_SIZE" '{ r = int(($1 - 1) / size); if (r != last) { c++; last = r } } END { print c + 0 }')
            if [ -n "$c" ]; then
                first_bad=$(((c - 1) / RECORD_SIZE))
                there=$(dd if="$img" bs="$RECORD_SIZE" skip="$first_bad" count=1 2>/dev/null | head -c 15 | tr -c '0-9a-f:' .)
                problem="records 0..$n were flushed before the SIGKILL; $nbad of them differ in the image, the first record $first_bad (byte $((c - 1))), which begins '$there', not '$(records "$first_bad" 1 | head -c 15)'"
            else
                problem="records 0..$n were flushed; comparing them with the image: $diff"
            fi
        fi
        rm -f "$expect"
    fi
    if [ -n "$problem" ]; then
        round_bad="$round_bad round $1: $problem;"
        boot_failed=1
    fi
    end_boot
    rm -f "$img"
}

scenario_g() {
    dir=$DISKDIR/$VMM
    mkdir -p "$dir"
    round_ok='' round_bad=''
    # (records_round's variables are global: none of them is "round".)
    round=1
    while [ $round -le "$RECORDS_ROUNDS" ]; do
        records_round $round
        round=$((round + 1))
    done
    if [ -z "$round_bad" ]; then
        ok "sigkill-no-data-loss: $RECORDS_ROUNDS rounds, each SIGKILLed while writing; the records flushed before (${round_ok# }) all intact in the image"
    else
        round_bad=${round_bad%;}
        not_ok sigkill-no-data-loss "${round_bad# }${round_ok:+ (in the other rounds records$round_ok were flushed and are intact)}"
    fi
}

# The mini guests (tests/mini): a few instructions each, testing vmlet's
# run loop, exits and stop paths on the same /dev/kvm. Networking
# (tests/lab/net.sh): a user-mode and a TAP NIC in one boot. The library
# and its control socket (tests/lab/api.sh). The kernel decompressed and
# relocated by vmlet (tests/lab/kernel.sh). vsock, both directions
# (tests/lab/vsock.sh). Shared directories (tests/lab/fs.sh). The balloon
# (tests/lab/balloon.sh). Snapshots (tests/lab/snapshot.sh). Each script
# names its checks with --plan.
NET_INITRD=${NET_INITRD:-$(dirname "${INITRD:-/lab/l2.img}")/l2-net.img}
VSOCK_INITRD=${VSOCK_INITRD:-$(dirname "${INITRD:-/lab/l2.img}")/l2-vsock.img}
FS_INITRD=${FS_INITRD:-$(dirname "${INITRD:-/lab/l2.img}")/l2-fs.img}
BALLOON_INITRD=${BALLOON_INITRD:-$(dirname "${INITRD:-/lab/l2.img}")/l2-balloon.img}
MINI=${MINI:-$HERE/../mini}
MINI_IMAGES=${MINI_IMAGES:-$LOGDIR/mini}   # lab-images builds them for L1

# The checks of scenarios A-G for VMM $1, with its prefix.
vmm_checks() {
    for c in $CHECK_NAMES; do
        if [ "$1" = vmlet ]; then echo "$c"
        elif [ "$c" != shutdown-timeout-exit4 ] && [ "$c" != sandbox-every-thread ]; then
            echo "$1/$c"   # see scenario_d and sandbox_check
        fi
    done
}

plan() {
    if [ -n "${ONLY:-}" ]; then
        for s in $ONLY; do
            case $s in
            mini) sh "$MINI/run.sh" --plan ;;
            disks) echo "$DISK_CHECKS" | tr ' ' '\n' | grep . ;;
            *) sh "$HERE/$s.sh" --plan ;;
            esac
        done
        return
    fi
    for v in $VMMS; do
        if [ "$v" = vmlet ]; then
            sh "$MINI/run.sh" --plan
            sh "$HERE/net.sh" --plan
            sh "$HERE/api.sh" --plan
            sh "$HERE/kernel.sh" --plan
            sh "$HERE/vsock.sh" --plan
            sh "$HERE/fs.sh" --plan
            sh "$HERE/balloon.sh" --plan
            sh "$HERE/snapshot.sh" --plan
        fi
        vmm_checks "$v"
    done
}

if [ "${1:-}" = --plan ]; then
    plan
    exit 0
fi

planned=$(plan)
echo "1..$(echo "$planned" | grep -c .)"
echo "# plan: $(echo "$planned" | tr '\n' ' ')"
if [ -n "${ONLY:-}" ]; then
    for s in $ONLY; do
        case $s in
        mini) sh "$MINI/run.sh" "$VMLET" "$MINI_IMAGES" ;;
        net) sh "$HERE/net.sh" "$VMLET" "$KERNEL" "$NET_INITRD" "$LOGDIR" ;;
        api) sh "$HERE/api.sh" "$VMLET" "$KERNEL" "$INITRD" "$LOGDIR" ;;
        kernel) sh "$HERE/kernel.sh" "$VMLET" "$KERNEL" "$INITRD" "$LOGDIR" ;;
        vsock) sh "$HERE/vsock.sh" "$VMLET" "$KERNEL" "$VSOCK_INITRD" "$LOGDIR" ;;
        fs) sh "$HERE/fs.sh" "$VMLET" "$KERNEL" "$FS_INITRD" "$LOGDIR" ;;
        balloon) sh "$HERE/balloon.sh" "$VMLET" "$KERNEL" "$BALLOON_INITRD" "$LOGDIR" ;;
        snapshot) sh "$HERE/snapshot.sh" "$VMLET" "$KERNEL" "$INITRD" "$LOGDIR" ;;
        disks) VMM=vmlet PFX=; scenario_e; scenario_f; scenario_g ;;
        esac || failures=$((failures + 1))
    done
    [ "$failures" = 0 ]
    exit
fi
for VMM in $VMMS; do
    PFX=
    [ "$VMM" = vmlet ] || PFX=$VMM/
    if [ "$VMM" = vmlet ] && [ ! -x "$VMLET" ]; then
        # Every vmlet check fails: the runner names those that never report.
        for c in $(vmm_checks vmlet); do
            not_ok "$c" "no vmlet binary at $VMLET (did it build?)"
        done
        continue
    fi
    if [ "$VMM" = vmlet ]; then
        [ -f "$MINI_IMAGES/poweroff.bzImage" ] || sh "$MINI/build.sh" "$MINI_IMAGES" >/dev/null
        sh "$MINI/run.sh" "$VMLET" "$MINI_IMAGES" | tee "$LOGDIR/mini.tap"
        failures=$((failures + $(grep -c '^not ok' "$LOGDIR/mini.tap")))
        sh "$HERE/net.sh" "$VMLET" "$KERNEL" "$NET_INITRD" "$LOGDIR" || failures=$((failures + 1))
        sh "$HERE/api.sh" "$VMLET" "$KERNEL" "$INITRD" "$LOGDIR" || failures=$((failures + 1))
        sh "$HERE/kernel.sh" "$VMLET" "$KERNEL" "$INITRD" "$LOGDIR" || failures=$((failures + 1))
        sh "$HERE/vsock.sh" "$VMLET" "$KERNEL" "$VSOCK_INITRD" "$LOGDIR" || failures=$((failures + 1))
        sh "$HERE/fs.sh" "$VMLET" "$KERNEL" "$FS_INITRD" "$LOGDIR" || failures=$((failures + 1))
        sh "$HERE/balloon.sh" "$VMLET" "$KERNEL" "$BALLOON_INITRD" "$LOGDIR" || failures=$((failures + 1))
        sh "$HERE/snapshot.sh" "$VMLET" "$KERNEL" "$INITRD" "$LOGDIR" || failures=$((failures + 1))
    fi
    scenario_a
    scenario_b
    scenario_c
    [ "$VMM" = vmlet ] && scenario_d
    scenario_e
    scenario_f
    scenario_g
done
[ "$failures" = 0 ]
