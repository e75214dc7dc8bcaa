#!/bin/sh
# The CLI's answers to bad input: one clear line on stderr and the
# documented exit status (2 bad command line, 1 error). Prints TAP.
vmlet=${1:?usage: test_cli.sh path/to/vmlet}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

# A file with a valid 64-bit bzImage header (protocol 2.15, 16 MiB to
# decompress at 16 MiB) and nothing else.
fake_kernel() {
    head -c 8192 /dev/zero > "$1"
    # $2 holds octal escapes (\004) for printf to turn into bytes.
    # shellcheck disable=SC2059
    put() { printf "$2" | dd of="$1" bs=1 seek=$(($3)) conv=notrunc status=none; }
    put "$1" '\004' 0x1f1
    put "$1" '\125\252' 0x1fe
    put "$1" '\152HdrS\017\002' 0x201
    put "$1" '\377\377\377\177' 0x22c
    put "$1" '\177\000\377\007' 0x236
    put "$1" '\000\000\000\001' 0x258
    put "$1" '\000\000\000\001' 0x260
}
fake_kernel "$tmp/bzImage"
truncate -s 40M "$tmp/big-initrd"
truncate -s 1M "$tmp/disk.img"
truncate -s 1000 "$tmp/odd.img"
echo hello > "$tmp/not-a-kernel"

# check NAME EXPECTED_STATUS STDERR_PATTERN -- ARGS...
check() {
    name=$1 want=$2 pattern=$3
    shift 4
    n=$((n + 1))
    "$vmlet" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
    got=$?
    lines=$(wc -l < "$tmp/err")
    if [ "$got" -ne "$want" ]; then
        echo "not ok $n - $name: exit $got, expected $want: $(head -c 300 "$tmp/err")"
        failed=$((failed + 1))
    elif ! grep -q -- "$pattern" "$tmp/err" "$tmp/out"; then
        echo "not ok $n - $name: output lacks '$pattern': $(head -c 300 "$tmp/err")"
        failed=$((failed + 1))
    elif [ "$want" -ne 0 ] && [ "$lines" -ne 1 ]; then
        echo "not ok $n - $name: $lines lines on stderr, expected one"
        failed=$((failed + 1))
    else
        echo "ok $n - $name"
    fi
}

echo "1..91"
check help 0 "Usage: vmlet run" -- --help
check run-help 0 "--shutdown-timeout" -- run --help
check version 0 "^vmlet [0-9]" -- --version
check no-command 2 "no command" --
check unknown-command 2 "unknown command 'frobnicate'" -- frobnicate
check unknown-option 2 "unknown option '--colour'" -- run --kernel "$tmp/bzImage" --colour
check missing-value 2 "--memory needs a value" -- run --kernel "$tmp/bzImage" --memory
check kernel-required 2 "--kernel is required" -- run --cpus 2
check bad-memory 2 "--memory 'lots'" -- run --kernel "$tmp/bzImage" --memory lots
check bad-cpus 2 "--cpus 'two'" -- run --kernel "$tmp/bzImage" --cpus two
check cpus-zero 1 "cpus: 0 is out of range" -- run --kernel "$tmp/bzImage" --cpus 0
check cpus-too-many 1 "cpus: 300 is out of range" -- run --kernel "$tmp/bzImage" --cpus 300
check memory-too-small 1 "memory: 1 MiB is out of range" -- run --kernel "$tmp/bzImage" --memory 1M
check memory-beyond-host 1 "more than this host has" -- run --kernel "$tmp/bzImage" --memory 900G
check kernel-missing 1 "kernel '$tmp/nope': No such file" -- run --kernel "$tmp/nope"
check kernel-not-bzimage 1 "not a bzImage" -- run --kernel "$tmp/not-a-kernel"
check initrd-too-large 1 "initrd '$tmp/big-initrd' (40 MiB) does not fit" -- \
    run --kernel "$tmp/bzImage" --initrd "$tmp/big-initrd" --memory 48M
# What the host is decides the advice: PVM (these project machines) cannot
# run a stock kernel even with a device node; elsewhere, load the module.
if [ -e /sys/module/kvm_pvm ]; then
    check kvm-missing-says-pvm 1 \
        "/nonexistent/kvm does not exist: this host has no hardware virtualization, and its KVM is PVM" -- \
        run --kernel "$tmp/bzImage" --kvm-device /nonexistent/kvm
else
    check kvm-missing-says-module 1 "/nonexistent/kvm does not exist: this host has no KVM; load kvm_intel or kvm_amd" -- \
        run --kernel "$tmp/bzImage" --kvm-device /nonexistent/kvm
fi
check kvm-not-kvm 1 "/dev/null is not a KVM device" -- \
    run --kernel "$tmp/bzImage" --kvm-device /dev/null
check disk-missing 1 "disk '$tmp/nodisk.img': No such file" -- \
    run --kernel "$tmp/bzImage" --disk "$tmp/nodisk.img"
check disk-odd-size 1 "is not a multiple of 512" -- \
    run --kernel "$tmp/bzImage" --disk "$tmp/odd.img"
check disk-directory 1 "is not a regular file or a block device" -- \
    run --kernel "$tmp/bzImage" --disk "$tmp"
check disk-twice 1 "is given twice" -- \
    run --kernel "$tmp/bzImage" --disk "$tmp/disk.img" --disk "$tmp/./disk.img,ro"
check disk-bad-option 2 "--disk '$tmp/disk.img,rx': unknown disk option" -- \
    run --kernel "$tmp/bzImage" --disk "$tmp/disk.img,rx"
check disk-long-serial 1 "longer than 20 characters" -- \
    run --kernel "$tmp/bzImage" --disk "$tmp/disk.img,serial=abcdefghijklmnopqrstu"
# shellcheck disable=SC2046 # one argument a word, on purpose
check disk-too-many 1 "more than 16" -- run --kernel "$tmp/bzImage" \
    $(for i in $(seq 17); do ln -sf disk.img "$tmp/d$i.img"; printf -- '--disk %s ' "$tmp/d$i.img,ro"; done)
check console-bad 2 "--console 'tty': give serial or virtio" -- \
    run --kernel "$tmp/bzImage" --console tty
check net-bad-hostfwd 2 "net 'user,hostfwd=tcp:1.2.3:80-:80': hostfwd 'tcp:1.2.3:80-:80': host address '1.2.3'" -- \
    run --kernel "$tmp/bzImage" --net 'user,hostfwd=tcp:1.2.3:80-:80'
check net-bad-kind 2 "net 'tap': tap needs a device name" -- \
    run --kernel "$tmp/bzImage" --net tap
check net-bad-loopback 2 "net 'user,host-loopback=no': host-loopback 'no' is not on or off" -- \
    run --kernel "$tmp/bzImage" --net user,host-loopback=no
check net-bad-max-flows 2 "net 'user,max-flows=0': max-flows '0' is not a number from 1 to 65536" -- \
    run --kernel "$tmp/bzImage" --net user,max-flows=0
check net-dup-mac 1 "NICs 1 and 2 both have MAC 52:54:00:12:34:56" -- \
    run --kernel "$tmp/bzImage" --net user --net user,mac=52:54:00:12:34:56
# shellcheck disable=SC2046 # one argument a word, on purpose
check net-too-many 1 "more than 8 NICs" -- run --kernel "$tmp/bzImage" \
    $(for i in $(seq 9); do printf -- '--net user,mac=52:54:00:00:00:0%s ' "$i"; done)
# --config: errors name the file and the key; flags override the file.
printf '{"cpus": 2,\n "disks": [{"path": "a", "raed_only": true}]}' > "$tmp/typo.json"
check config-unknown-key 1 "typo.json: disks\[0\].raed_only: unknown key" -- \
    run --config "$tmp/typo.json"
printf '{"cpus": 2\n "memory": "1G"}' > "$tmp/syntax.json"
check config-syntax 1 "syntax.json: line 2, column 2: expected ',' or '}'" -- \
    run --config "$tmp/syntax.json"
check config-missing 1 "nope.json: No such file or directory" -- run --config "$tmp/nope.json"
printf '{"kernel": "%s", "cpus": 2, "kvm_device": "/nonexistent/kvm"}' "$tmp/bzImage" \
    > "$tmp/vm.json"
check config-kernel-from-file 1 "/nonexistent/kvm does not exist" -- run --config "$tmp/vm.json"
check config-flag-overrides 1 "cpus: 300 is out of range" -- \
    run --config "$tmp/vm.json" --cpus 300
# The file's NICs and the --net ones are checked together.
printf '{"kernel": "%s", "network": [{"type": "user", "hostfwd": ["tcp::8080-:80"]}]}' \
    "$tmp/bzImage" > "$tmp/net.json"
check config-net-clash 1 "8080" -- run --config "$tmp/net.json" --net user,hostfwd=tcp::8080-:22
# The file's values go through the library's own checks, named by key.
printf '{"kernel": "%s", "network": [{"type": "user", "mac": "01:00:5e:00:00:01"}]}' \
    "$tmp/bzImage" > "$tmp/mac.json"
check config-net-bad-mac 1 "mac.json: network\[0\].mac: 01:00:5e:00:00:01 is a multicast" -- \
    run --config "$tmp/mac.json"
printf '{"kernel": "%s", "shutdown_timeout": 86401}' "$tmp/bzImage" > "$tmp/timeout.json"
check config-shutdown-timeout 1 "timeout.json: shutdown_timeout: 86401 is out of range" -- \
    run --config "$tmp/timeout.json"
# --api-sock: checked before the VM is made, so no KVM is needed; a file
# that is not a socket is never replaced.
check api-sock-no-dir 1 "does the directory exist" -- \
    run --kernel "$tmp/bzImage" --api-sock "$tmp/no/such/dir/api.sock"
echo precious > "$tmp/afile"
check api-sock-not-a-socket 1 "not a socket; not replacing it" -- \
    run --kernel "$tmp/bzImage" --api-sock "$tmp/afile"
n=$((n + 1))
if [ "$(cat "$tmp/afile")" = precious ]; then echo "ok $n - api-sock-file-kept"; else
    echo "not ok $n - api-sock-file-kept: the file was changed"; failed=$((failed + 1)); fi
check api-sock-empty 2 "--api-sock needs a path" -- run --kernel "$tmp/bzImage" --api-sock ""
# --balloon: its value is optional, given as the next word or after '='.
check balloon-unknown 2 "--balloon 'bogus': unknown option 'bogus'" -- \
    run --kernel "$tmp/bzImage" --balloon bogus
check balloon-bad-stats 2 "stats=3601: give the seconds between statistics" -- \
    run --kernel "$tmp/bzImage" --balloon=free-page-reporting,stats=3601
check balloon-alone 2 "unexpected argument 'extra'" -- \
    run --kernel "$tmp/bzImage" --balloon --rng extra

# --vsock: the option's shape (usage), then the library's checks (before KVM).
check vsock-no-uds 2 "give both cid=N and uds=PATH" -- run --kernel "$tmp/bzImage" --vsock cid=3
check vsock-bad-cid 2 "cid= is not a number" -- run --kernel "$tmp/bzImage" --vsock cid=x,uds=v.sock
check vsock-unknown 2 "unknown part" -- run --kernel "$tmp/bzImage" --vsock cid=3,uds=v,port=1
check vsock-host-cid 1 "guest CID 2 is out of range" -- \
    run --kernel "$tmp/bzImage" --vsock cid=2,uds="$tmp/v.sock"
check vsock-long-path 1 "is longer than 96 bytes" -- \
    run --kernel "$tmp/bzImage" --vsock cid=3,uds="$tmp/$(printf 'a%.0s' $(seq 100))"
# --share: the option's shape, then the library's checks (before KVM).
check share-no-tag 2 "no tag (add ,tag=NAME" -- run --kernel "$tmp/bzImage" --share "$tmp"
check share-unknown 2 "unknown share option" -- run --kernel "$tmp/bzImage" --share "$tmp",tag=a,rw=1
check share-missing 1 "share '$tmp/nope': No such file or directory; check the path" -- \
    run --kernel "$tmp/bzImage" --share "$tmp/nope",tag=a
check share-cache-always 1 "share '$tmp/nope': No such file or directory" -- \
    run --kernel "$tmp/bzImage" --share "$tmp/nope",tag=a,cache=always
check share-cache-unknown 2 "unknown share option (use tag=TAG, ro or cache=always)" -- \
    run --kernel "$tmp/bzImage" --share "$tmp",tag=a,cache=never
check share-not-dir 1 "share '$tmp/bzImage' is not a directory" -- \
    run --kernel "$tmp/bzImage" --share "$tmp/bzImage",tag=a
check share-same-tag 1 "is already the tag of" -- \
    run --kernel "$tmp/bzImage" --share "$tmp",tag=a --share /,tag=a
check share-long-tag 1 "must be 1 to 36 bytes" -- \
    run --kernel "$tmp/bzImage" --share "$tmp",tag=0123456789012345678901234567890123456

# --restore: what may not come with it (usage), then the snapshot's checks,
# all made before KVM is opened. The valid state file is the fuzz seed
# (a 1-vCPU, 256 MiB snapshot).
seed=$(dirname "$0")/../fuzz/corpus/snapshot/one_cpu
mkdir -p "$tmp/snap" "$tmp/snap-empty" "$tmp/snap-bad" "$tmp/snap-v3" "$tmp/snap-cut" \
    "$tmp/snap-small" "$tmp/snap-altered"
cp "$seed" "$tmp/snap/state"
truncate -s 256M "$tmp/snap/memory"
echo "not a snapshot at all" >"$tmp/snap-bad/state"
printf 'VMLETSNP\003\000\000\000\000\000\000\000' >"$tmp/snap-v3/state"
head -c 3000 "$seed" >"$tmp/snap-cut/state"
cp "$seed" "$tmp/snap-small/state"
truncate -s 1M "$tmp/snap-small/memory"
cp "$seed" "$tmp/snap-altered/state"
printf '\001' | dd of="$tmp/snap-altered/state" bs=1 seek=200 conv=notrunc status=none
check restore-with-kernel 2 "--restore takes the VM from the snapshot; --kernel cannot be given" -- \
    run --restore "$tmp/snap" --kernel "$tmp/bzImage"
check restore-with-virtio-console 2 "--console virtio cannot be given" -- \
    run --restore "$tmp/snap" --console virtio
check restore-missing 1 "snapshot $tmp/nope: cannot open it: No such file" -- run --restore "$tmp/nope"
check restore-no-state 1 "cannot open its state file" -- run --restore "$tmp/snap-empty"
check restore-not-snapshot 1 "not a vmlet snapshot" -- run --restore "$tmp/snap-bad"
check restore-other-version 1 "format version 3; this vmlet reads versions 1 to 2" -- \
    run --restore "$tmp/snap-v3"
check restore-cut-short 1 "cut short" -- run --restore "$tmp/snap-cut"
check restore-memory-size 1 "its memory file has 1048576 bytes, but the VM had 268435456" -- \
    run --restore "$tmp/snap-small"
check restore-altered 1 "checksum mismatch" -- run --restore "$tmp/snap-altered"
check restore-paused-no-api 2 "--paused needs --api-sock" -- run --restore "$tmp/snap" --paused
check paused-without-restore 2 "--paused goes with --restore" -- run --kernel "$tmp/bzImage" --paused
check restore-net-extra 1 "restore: a network given for NIC 0, but the snapshot's VM has 0 NICs" -- \
    run --restore "$tmp/snap" --net user
check restore-disk-extra 1 "restore: an image given for disk 0, but the snapshot's VM has 0 disks" -- \
    run --restore "$tmp/snap" --disk "$tmp/bzImage"
check restore-disk-ro 2 "--disk with ro or serial= (a restored disk keeps the saved ones) cannot be given" -- \
    run --restore "$tmp/snap" --disk "$tmp/bzImage",ro
check restore-vsock-none 1 "vsock settings given, but the snapshot's VM has no vsock device" -- \
    run --restore "$tmp/snap" --vsock cid=5,uds="$tmp/v.sock"
# vmlet firecracker: Firecracker's flags and exit statuses (153 a bad
# command line, 152 a bad --config-file, 1 an error), also under the name
# firecracker.
check fc-version 0 "^Firecracker-API v[1-9][0-9]*\.[0-9]*\.[0-9]* (vmlet " -- firecracker --version
check fc-help 0 "Usage: vmlet firecracker" -- firecracker --help
check fc-unknown-option 153 "unknown option '--seccomp-level'" -- firecracker --seccomp-level 0
check fc-missing-value 153 "--api-sock needs a value" -- firecracker --api-sock
check fc-no-api-alone 153 "--no-api needs --config-file" -- firecracker --no-api
check fc-bad-id 153 "--id 'no spaces' is not an ID" -- firecracker --id "no spaces"
check fc-extra-argument 153 "unexpected argument 'boot'" -- firecracker --no-api boot
check fc-bad-start-time 153 "--start-time-us 'soon' is not a number" -- firecracker --start-time-us soon
check fc-api-sock-dir-missing 1 "$tmp/nodir/fc.sock" -- firecracker --api-sock "$tmp/nodir/fc.sock"
check fc-config-missing 152 "--config-file $tmp/nope.json: No such file" -- \
    firecracker --no-api --config-file "$tmp/nope.json"
echo '{"drives": {"rootfs": 1}}' >"$tmp/fc-bad.json"
check fc-config-bad 152 "drives: expected an array" -- firecracker --no-api --config-file "$tmp/fc-bad.json"
printf '{"boot-source": {"kernel_image_path": "%s"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 64}}' \
    "$tmp/bzImage" >"$tmp/fc.json"
check fc-config-no-kvm 152 "/nonexistent/kvm does not exist" -- \
    firecracker --no-api --config-file "$tmp/fc.json" --kvm-device /nonexistent/kvm
printf '{"boot-source": {"kernel_image_path": "%s"}, "mmds-config": {"network_interfaces": ["eth0"]}}' \
    "$tmp/bzImage" >"$tmp/fc-mmds.json"
check fc-config-mmds 152 "mmds-config: not supported by vmlet" -- \
    firecracker --no-api --config-file "$tmp/fc-mmds.json"
# Under the name firecracker (an orchestrator's configured path).
ln -s "$(cd "$(dirname "$vmlet")" && pwd)/$(basename "$vmlet")" "$tmp/firecracker"
real_vmlet=$vmlet
vmlet=$tmp/firecracker
check fc-argv0-version 0 "^Firecracker-API v" -- --version
check fc-argv0-unknown-option 153 "unknown option '--kernel'" -- --kernel x
vmlet=$real_vmlet
exit $((failed > 0))
