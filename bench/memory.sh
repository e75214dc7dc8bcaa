#!/bin/sh
# Memory benchmark (issue 13), run where /dev/kvm is real: inside the L1
# lab VM (bench/memory starts it) or on a host with hardware KVM. POSIX sh.
#
#   bench/memory.sh [REPS]
#
# (a) What the VMM itself costs: its RSS outside the guest's RAM, from
#     /proc/PID/smaps, with the guest (512 MiB, lab/l2.img) booted to its
#     init and idle, its drivers loaded:
#       bare     1 vCPU, no device but the serial console
#       devices  2 vCPUs, a virtio disk (a 64 MiB image), two NICs (user-
#                mode NAT and a TAP device, both up in the guest), the
#                virtio console (console=hvc0) and virtio-rng
#     Guest RAM is every mapping at least as large as the guest's memory
#     (vmlet's one mapping, QEMU's pc.ram); everything else counts, split
#     into files (the binary, shared libraries), the heap and other
#     anonymous memory (thread stacks, rings, buffers).
# (b) How fast freed guest memory returns with free page reporting: the
#     balloon guest (lab/l2-balloon.img, 1 vCPU, 512 MiB) touches and
#     holds 300 MiB, then frees it; the time from "free" on its console
#     until the VMM's RSS is down by 90 % of what the guest freed (vmlet
#     --balloon free-page-reporting, QEMU -device
#     virtio-balloon-pci,free-page-reporting=on), polled every 0.1 s, for
#     at most 60 s.
# vmlet against QEMU -M pc with the same guest-visible devices, taking
# turns, REPS (default 3) rounds; medians and vmlet/QEMU ratios. Never
# fails on a number. VMMS="vmlet qemu" picks the VMMs. FAULT_AROUND=BYTES
# sets the kernel's fault_around_bytes (debugfs) first.
HERE=$(cd "$(dirname "$0")" && pwd)
LABLIB=${LABLIB:-$HERE/../tests/lab}
# shellcheck source=../tests/lab/vmm.sh
. "$LABLIB/vmm.sh"

REPS=${1:-3}
VMMS=${VMMS:-vmlet qemu}
LOGDIR=${LOGDIR:-/tmp/lab-logs}
BALLOON_INITRD=${BALLOON_INITRD:-$(dirname "$INITRD")/l2-balloon.img}
READY_TIMEOUT=${READY_TIMEOUT:-300}
MEM_MIB=512
MEM_TAP=vmlmem0 # the devices case's TAP NIC (made by the VMM, gone with it)
BASE="console=ttyS0 quiet panic=-1"
mkdir -p "$LOGDIR"
RESULTS=$LOGDIR/memory.results
: >"$RESULTS"
. "$HERE/common.sh"
work=${TMPDIR:-/tmp}/memory-bench.$$
mkdir -p "$work"

for vmm in $VMMS; do
    if [ "$vmm" = vmlet ] && [ ! -x "$VMLET" ]; then
        echo "# no vmlet binary at $VMLET: leaving it out"
        VMMS=$(echo "$VMMS" | sed 's/vmlet//')
    fi
done
# shellcheck disable=SC2086 # the list, its spaces squeezed
echo "# memory bench: $MEM_MIB MiB guests, $REPS round(s); VMMs:" $VMMS
fa=/sys/kernel/debug/fault_around_bytes
if [ -n "${FAULT_AROUND:-}" ]; then
    echo "$FAULT_AROUND" >$fa 2>/dev/null || echo "# cannot set $fa"
fi
[ -r $fa ] && echo "# fault_around_bytes: $(cat $fa)"

# smaps_split: "outside guest files heap anon" in kB for VMM_PID, from its
# smaps (Size comes before Rss in each mapping's block).
smaps_split() {
    awk -v mem=$((MEM_MIB * 1024)) '
        /^[0-9a-f]+-[0-9a-f]+ / { name = $6 }
        /^Size:/ { size = $2 }
        /^Rss:/ { if (size >= mem) { guest += $2; next }
                  out += $2
                  if (name == "[heap]") heap += $2
                  else if (name ~ /^\//) files += $2
                  else anon += $2 }
        END { printf "%d %d %d %d %d\n", out, guest, files, heap, anon }' "/proc/$VMM_PID/smaps" 2>/dev/null
}
# smaps_pss: PSS outside guest RAM in kB (file pages shared with other
# processes counted in part: in L1 nothing else maps vmlet's libraries,
# so there it equals the RSS; on a host it would not).
smaps_pss() {
    awk -v mem=$((MEM_MIB * 1024)) '
        /^Size:/ { size = $2 }
        /^Pss:/ { if (size < mem) pss += $2 }
        END { printf "%d\n", pss }' "/proc/$VMM_PID/smaps" 2>/dev/null
}
# smaps_where: where the RSS outside guest RAM is, in kB, largest first:
# per file (its basename), [heap], [stack], anonymous mappings of at
# least 2 MiB ("anon>=2M", thread stacks at glibc's default size) and
# smaller ("anon<2M", malloc arenas, mmapped blocks, small stacks), huge
# pages among them ("thp").
smaps_where() {
    awk -v mem=$((MEM_MIB * 1024)) '
        /^[0-9a-f]+-[0-9a-f]+ / { name = $6; if (name ~ /^\//) sub(/.*\//, "", name) }
        /^Size:/ { size = $2 }
        /^Rss:/ { rss = $2 }
        /^AnonHugePages:/ { if (size >= mem || rss == 0) next
                            if (name == "") name = size >= 2048 ? "anon>=2M" : "anon<2M"
                            at[name] += rss; if ($2 > 0) thp += $2 }
        END { for (n in at) print at[n], n; if (thp) print thp, "(thp)" }' "/proc/$VMM_PID/smaps" 2>/dev/null |
        sort -rn | awk '{ printf "%s %s; ", $2, $1 }'
}
# mib KB: in MiB, one decimal ("-" stays).
mib() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$VMM_PID/status" 2>/dev/null; }
# Hundredths of a second since L1 booted.
centis() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }
# marker NAME: the value of the console's last NAME=value line.
marker() { console | grep -a "^$1=" | tail -n1 | cut -d= -f2-; }
wait_marker() {
    deadline=$(($(secs) + $2))
    until console | grep -aq "^$1="; do
        vmm_exited && return 1
        [ "$(secs)" -ge "$deadline" ] && return 2
        sleep 0.2
    done
}

# overhead ROUND VMM CONFIG
overhead() {
    log=$LOGDIR/memory-$2-$3-$1.log
    case $3 in
    bare)
        vmm_start "$2" "$log" 1 ${MEM_MIB}M "$BASE vmlet.test=info vmlet.then=idle"
        ;;
    devices)
        rm -f "$work/disk.img"
        truncate -s 64M "$work/disk.img"
        VMM_DISKS=$work/disk.img VMM_NET="user tap=$MEM_TAP" VMM_CONSOLE=virtio VMM_RNG=1
        vmm_start "$2" "$log" 2 ${MEM_MIB}M "console=hvc0 quiet panic=-1 vmlet.test=info vmlet.then=idle"
        VMM_DISKS='' VMM_NET='' VMM_CONSOLE='' VMM_RNG=''
        ;;
    esac
    if wait_line VMLET-INFO-DONE "$READY_TIMEOUT"; then
        nics=$(marker VMLET-NICS-UP)
        [ "$3" = devices ] && [ "$nics" != 2 ] &&
            echo "# round $1 $2 $3: ${nics:-no} NICs up in the guest, not 2 (see $log)"
        sleep 5 # idle: the last driver probes and console output done
        # Kept for finding out where it goes (lab/logs/bench-memory/).
        cp "/proc/$VMM_PID/smaps" "$log.smaps" 2>/dev/null
        # shellcheck disable=SC2046 # its five numbers, split
        set -- "$@" $(smaps_split) $(smaps_pss)
        if [ -n "${4:-}" ]; then
            echo "$2 $3 $4 $5 $6 $7 $8 $9" >>"$RESULTS"
            echo "# round $1 $2 $3: $(mib "$4") MiB outside guest RAM (files $6 kB, heap $7 kB, other anonymous $8 kB; PSS $9 kB; guest RAM $(($5 / 1024)) MiB resident)"
            echo "#   where, kB: $(smaps_where)"
        else
            echo "# round $1 $2 $3: no smaps for pid $VMM_PID"
        fi
    else
        echo "# round $1 $2 $3: the guest never finished booting (see $log)"
    fi
    vmm_kill
    stop_vmm 10
}

# reporting ROUND VMM
reporting() {
    log=$LOGDIR/memory-$2-reporting-$1.log
    INITRD0=$INITRD
    INITRD=$BALLOON_INITRD VMM_BALLOON=free-page-reporting
    vmm_start "$2" "$log" 1 ${MEM_MIB}M "$BASE"
    INITRD=$INITRD0 VMM_BALLOON=''
    if ! wait_marker VMLET-BALLOON-HELD 600; then
        echo "# round $1 $2 reporting: the guest never held its 300 MiB (see $log)"
    else
        sleep 2
        held_kb=$(rss_kb)
        t0=$(centis)
        vmm_send free
        if ! wait_marker VMLET-BALLOON-FREED 120; then
            echo "# round $1 $2 reporting: the guest never freed its memory (see $log)"
        else
            freed=$(($(marker VMLET-BALLOON-HELD) - $(marker VMLET-BALLOON-FREED)))
            want=$((freed * 1024 * 9 / 10))
            took=- drop=0
            while [ $(($(centis) - t0)) -le 6000 ]; do
                drop=$((held_kb - $(rss_kb)))
                if [ "$drop" -ge "$want" ]; then
                    took=$(($(centis) - t0))
                    break
                fi
                sleep 0.1
            done
            if [ "$took" = - ]; then
                echo "# round $1 $2 reporting: the guest freed $freed MiB; RSS only $((drop / 1024)) MiB lower after 60 s"
            else
                took=$(awk -v c="$took" 'BEGIN { printf "%.2f", c / 100 }')
                echo "# round $1 $2 reporting: the guest freed $freed MiB; RSS $((held_kb / 1024)) MiB, 90 % of that back in $took s"
            fi
            echo "$2 reporting $took $freed" >>"$RESULTS"
        fi
    fi
    vmm_kill
    stop_vmm 10
}

round=1
while [ $round -le "$REPS" ]; do
    for vmm in $VMMS; do
        overhead $round "$vmm" bare
        overhead $round "$vmm" devices
        reporting $round "$vmm"
    done
    round=$((round + 1))
done

echo "# medians of $REPS round(s); lower is better; ratio = vmlet / QEMU"
echo "#   VMM outside guest RAM, MiB: RSS (files / heap / other anonymous), PSS"
for c in bare devices; do
    for vmm in $VMMS; do
        echo "#   $c $vmm: $(mib "$(median "$vmm" $c 3)") ($(mib "$(median "$vmm" $c 5)") / $(mib "$(median "$vmm" $c 6)") / $(mib "$(median "$vmm" $c 7)")), PSS $(mib "$(median "$vmm" $c 8)")"
    done
    echo "#   $c ratio: $(ratio "$(median vmlet $c 3)" "$(median qemu $c 3)")"
done
echo "#   free page reporting, s until 90 % of the freed memory is back"
for vmm in $VMMS; do
    echo "#   reporting $vmm: $(median "$vmm" reporting 3) s"
done
echo "#   reporting ratio: $(ratio "$(median vmlet reporting 3)" "$(median qemu reporting 3)")"
rm -rf "$work"
