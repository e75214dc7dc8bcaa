# shellcheck shell=sh
# The L2 VMMs the lab can drive, behind one interface (POSIX sh, sourced by
# tests/lab/scenarios.sh, bench/boot.sh and the L1 demo). "vmlet" is the
# VMM under test; "qemu" (-M pc) and "qemu-microvm" are references, so the
# lab itself can be checked, and compared against, without vmlet.
#
#   vmm_exec VMM CPUS MEMORY CMDLINE STATEDIR   exec the VMM (foreground)
#   vmm_start VMM LOG CPUS MEMORY CMDLINE       start it in the background;
#                                               sets VMM_DIR, VMM_PID
#   vmm_exited                                  true once it has exited
#   vmm_status                                  its exit status, in vmlet's
#                                               terms (see below)
#   vmm_request_stop                            what SIGTERM is for vmlet:
#                                               press the ACPI power button
#   vmm_kill                                    stop it hard (SIGKILL)
#   vmm_send TEXT                               write TEXT to the guest's
#                                               console (ttyS0, or hvc0)
#
# Devices besides the serial console, in vmlet's terms (both VMMs get the
# same guest-visible devices; QEMU's virtio devices are virtio-pci too):
#   VMM_DISKS="PATH[,ro][,serial=ID] ..."  disks vda, vdb, ... (vmlet --disk;
#                        QEMU -drive if=none + -device virtio-blk-pci)
#   VMM_CONSOLE=virtio   stdin/stdout on the virtio console hvc0 (vmlet
#                        --console virtio; QEMU virtconsole on stdio, its
#                        serial port's output dropped: vmlet's also goes to
#                        stdout, but with console=hvc0 little goes there)
#   VMM_RNG=1            a virtio-rng device (vmlet --rng; virtio-rng-pci)
#   VMM_NET="SPEC ..."   NICs in vmlet's --net syntax, "user[,hostfwd=tcp:
#                        ADDR:PORT-:PORT]" or "tap=NAME" (QEMU -netdev user
#                        or tap, script=no, no vhost: both datapaths are in
#                        the VMM process, + -device virtio-net-pci)
#   VMM_VSOCK="cid=N,uds=PATH"  a virtio-vsock device, guest CID N (vmlet
#                        --vsock, its host side the Unix socket PATH; QEMU
#                        -device vhost-vsock-pci,guest-cid=N: the host side
#                        is AF_VSOCK in the kernel, /dev/vhost-vsock, and
#                        PATH is not used)
#   VMM_BALLOON="OPTS"  a virtio-balloon device, OPTS as vmlet's --balloon
#                        (QEMU -device virtio-balloon-pci with
#                        free-page-reporting=on, deflate-on-oom=on as
#                        asked; stats= is vmlet's only)
#   VMM_SHARES="PATH,tag=TAG[,ro] ..."  shared directories (vmlet --share,
#                        virtio-fs; vmlet only: QEMU needs a virtiofsd,
#                        which Debian 12 does not ship)
#   VMM_API_SOCK=PATH    vmlet's control socket (--api-sock; vmlet only),
#                        for a bench that reads GET /metrics as it runs
#   QEMU_DRIVE_OPTS      more -drive options for QEMU (bench/disk: cache=,
#                        aio=); QEMU's defaults otherwise (cache=writeback,
#                        like vmlet's page-cache-backed disks)
#
# Exit status, as vmlet defines it: 0 guest powered off, 3 guest rebooted,
# 4 stopped hard after --shutdown-timeout, 1 error, 2 bad command line.
# QEMU exits 0 for both poweroff and (with -no-reboot) reboot, so its
# status is mapped from the SHUTDOWN event on its QMP channel.

VMLET=${VMLET:-/usr/bin/vmlet}
KERNEL=${KERNEL:-/lab/vmlinuz}
INITRD=${INITRD:-/lab/l2.img}
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-30}
QEMU=${QEMU:-qemu-system-x86_64}

# The device options for VMM $1, on stdout (paths have no spaces or commas).
vmm_device_args() {
    case $1 in
    vmlet)
        for d in ${VMM_DISKS:-}; do printf ' --disk %s' "$d"; done
        [ "${VMM_CONSOLE:-serial}" = virtio ] && printf ' --console virtio'
        [ -n "${VMM_RNG:-}" ] && printf ' --rng'
        for n in ${VMM_NET:-}; do printf ' --net %s' "$n"; done
        [ -n "${VMM_VSOCK:-}" ] && printf ' --vsock %s' "$VMM_VSOCK"
        [ -n "${VMM_BALLOON:-}" ] && printf ' --balloon %s' "$VMM_BALLOON"
        for s in ${VMM_SHARES:-}; do printf ' --share %s' "$s"; done
        [ -n "${VMM_API_SOCK:-}" ] && printf ' --api-sock %s' "$VMM_API_SOCK"
        ;;
    qemu*)
        i=0
        for d in ${VMM_DISKS:-}; do
            path=${d%%,*}
            drive=
            dev=
            for o in $(echo "${d#"$path"}" | tr , ' '); do
                case $o in
                ro) drive=$drive,readonly=on ;;
                serial=*) dev=$dev,$o ;;
                esac
            done
            printf ' -drive file=%s,if=none,format=raw,id=disk%s%s%s -device virtio-blk-pci,drive=disk%s%s' \
                "$path" "$i" "$drive" "${QEMU_DRIVE_OPTS:+,$QEMU_DRIVE_OPTS}" "$i" "$dev"
            i=$((i + 1))
        done
        if [ "${VMM_CONSOLE:-serial}" = virtio ]; then
            # The UART stays (busybox init opens ttyS0), its output dropped.
            printf ' -serial null -chardev stdio,id=hvc0 -device virtio-serial-pci -device virtconsole,chardev=hvc0'
        else
            printf ' -serial stdio'
        fi
        [ -n "${VMM_RNG:-}" ] && printf ' -device virtio-rng-pci'
        i=0
        for n in ${VMM_NET:-}; do
            case $n in
            user*) printf ' -netdev user,id=net%s%s' "$i" "${n#user}" ;;
            tap=*) printf ' -netdev tap,id=net%s,ifname=%s,script=no,downscript=no' "$i" "${n#tap=}" ;;
            esac
            # No option ROM: the kernel is booted directly, PXE is never used.
            printf ' -device virtio-net-pci,netdev=net%s,romfile=' "$i"
            i=$((i + 1))
        done
        if [ -n "${VMM_VSOCK:-}" ]; then
            for o in $(echo "$VMM_VSOCK" | tr , ' '); do
                case $o in cid=*) printf ' -device vhost-vsock-pci,guest-cid=%s' "${o#cid=}" ;; esac
            done
        fi
        if [ -n "${VMM_BALLOON:-}" ]; then
            printf ' -device virtio-balloon-pci'
            for o in $(echo "$VMM_BALLOON" | tr , ' '); do
                case $o in
                free-page-reporting) printf ',free-page-reporting=on' ;;
                deflate-on-oom) printf ',deflate-on-oom=on' ;;
                esac
            done
        fi
        ;;
    esac
    return 0
}

vmm_exec() {
    devs=$(vmm_device_args "$1")
    case $1 in
    vmlet)
        # shellcheck disable=SC2086
        exec "$VMLET" run --kernel "$KERNEL" --initrd "$INITRD" \
            --cmdline "$4" --cpus "$2" --memory "$3" \
            --shutdown-timeout "$SHUTDOWN_TIMEOUT" $devs
        ;;
    qemu|qemu-microvm)
        # -M pc boots through SeaBIOS (linuxboot_dma option ROM); microvm
        # through qboot.
        machine=pc
        [ "$1" = qemu-microvm ] && machine=microvm
        qmp=
        [ -n "$5" ] && qmp="-qmp pipe:$5/qmp"
        # shellcheck disable=SC2086
        exec "$QEMU" -M "$machine" -enable-kvm -cpu host -m "$3" -smp "$2" \
            -kernel "$KERNEL" -initrd "$INITRD" -append "$4" \
            -nodefaults -no-user-config -display none $devs \
            -no-reboot $qmp
        ;;
    *)
        echo "vmm.sh: unknown VMM '$1'" >&2
        exit 1
        ;;
    esac
}

vmm_start() {
    VMM=$1
    VMM_LOG=$2
    VMM_DIR=$2.d
    rm -rf "$VMM_DIR"
    mkdir -p "$VMM_DIR"
    # stdin is a FIFO that this shell holds open read-write on fd 7: the
    # VMM never sees EOF, and vmm_send can write at any time.
    mkfifo "$VMM_DIR/in"
    exec 7<>"$VMM_DIR/in"
    case $VMM in
    qemu*)
        mkfifo "$VMM_DIR/qmp.in" "$VMM_DIR/qmp.out"
        exec 8<>"$VMM_DIR/qmp.in"
        cat 0<>"$VMM_DIR/qmp.out" >"$VMM_DIR/qmp.log" &
        echo $! >"$VMM_DIR/qmp.reader"
        # Events are only sent after the capabilities handshake.
        echo '{"execute":"qmp_capabilities"}' >&8
        ;;
    esac
    # The inner subshell execs the VMM, so the pid it writes is the VMM's
    # (for signals); the outer one waits for it and records the status.
    (
        ( sh -c 'echo $PPID' >"$VMM_DIR/pid"
          vmm_exec "$VMM" "$3" "$4" "$5" "$VMM_DIR" ) <"$VMM_DIR/in" >"$VMM_LOG" 2>&1 &
        wait $!
        echo $? >"$VMM_DIR/rc"
    ) 2>/dev/null &  # no "Killed" job notices from the shell
    while [ ! -s "$VMM_DIR/pid" ]; do sleep 0.05; done
    VMM_PID=$(cat "$VMM_DIR/pid")
}

vmm_exited() { [ -s "$VMM_DIR/rc" ]; }

vmm_status() {
    rc=$(cat "$VMM_DIR/rc")
    case $VMM in
    qemu*)
        if [ "$rc" = 0 ]; then
            # Let the QMP reader catch up with QEMU's last event.
            sleep 0.2
            if [ -e "$VMM_DIR/hard" ]; then rc=4
            elif grep -q '"guest-reset"' "$VMM_DIR/qmp.log"; then rc=3
            fi
        fi
        ;;
    esac
    echo "$rc"
}

vmm_request_stop() {
    case $VMM in
    vmlet) kill -TERM "$VMM_PID" ;;
    qemu*)
        echo '{"execute":"system_powerdown"}' >&8
        # vmlet's --shutdown-timeout, emulated: quit after the grace time.
        ( sleep "$SHUTDOWN_TIMEOUT"
          if ! vmm_exited; then
              touch "$VMM_DIR/hard"
              echo '{"execute":"quit"}' >&8
          fi ) &
        ;;
    esac
}

vmm_kill() { kill -KILL "$VMM_PID" 2>/dev/null; }

vmm_send() { printf '%s\n' "$1" >&7; }

# Closes what vmm_start opened; call once the VMM has exited.
vmm_cleanup() {
    exec 7>&-
    case $VMM in
    qemu*)
        exec 8>&-
        kill "$(cat "$VMM_DIR/qmp.reader")" 2>/dev/null
        ;;
    esac
    return 0
}

# hex_add HEX HEX: (bench/boot.sh, tests/lab/kernel.sh) their sum, 16 hex digits, in four 16-bit pieces (busybox
# awk's numbers are doubles, and its %x takes no more than 31 bits).
hex_add() {
    awk -v a="$1" -v b="$2" 'function h(s,  i, v) {
            v = 0
            for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return v }
        BEGIN { a = sprintf("%16s", a); b = sprintf("%16s", b); gsub(/ /, "0", a); gsub(/ /, "0", b)
                c = 0; out = ""
                for (i = 13; i >= 1; i -= 4) {
                    v = h(substr(a, i, 4)) + h(substr(b, i, 4)) + c
                    c = v >= 65536 ? 1 : 0
                    out = sprintf("%04x", v % 65536) out
                }
                print out }'
}
