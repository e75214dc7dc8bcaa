#!/bin/sh
# Networking scenarios (issue 4): one L2 boot of vmlet with a user-mode NIC
# (libslirp) and a TAP NIC, checked from the L1 side. POSIX sh, busybox.
#   net.sh VMLET KERNEL NETIMG LOGDIR
# Prints one TAP line per check. Needs: unshare, tunctl, httpd, wget (busybox),
# tun.
# It runs in a network namespace of its own (tests/lab/netns.sh), so its
# tap0, addresses and ports never touch the machine it runs on.
#   net.sh --plan            the check names, one a line
if [ "${1:-}" = --plan ]; then
    for c in net-user-dhcp net-user-hostfwd net-user-gateway net-tap-64m-to-guest \
             net-tap-64m-from-guest net-two-nics net-poweroff; do
        echo "$c"
    done
    exit 0
fi
. "$(dirname "$0")/netns.sh"
own_netns "$0" "$@"
vmlet=$1 kernel=$2 img=$3 logdir=$4
log=$logdir/vmlet-net.log
tmp=${TMPDIR:-/tmp}/net.$$
mkdir -p "$tmp/www" "$logdir"
. "$(dirname "$0")/checks.sh"

# Host side: a TAP device with an address, a web server on it (64 MiB
# file, and "done" once we have what we want), one on loopback.
ip link set lo up
ip link delete tap0 2>/dev/null
tunctl -t tap0 >/dev/null && ip addr add 192.168.100.1/24 dev tap0 && ip link set tap0 up \
    || echo "# net: could not set up tap0"
dd if=/dev/urandom of="$tmp/www/h2g" bs=1M count=64 2>/dev/null
h2g_sha=$(sha256sum "$tmp/www/h2g" | cut -c1-64)
echo no >"$tmp/www/done"
httpd -f -p 192.168.100.1:8001 -h "$tmp/www" &
httpd_tap=$!
mkdir -p "$tmp/lo"
token=hostfile-$$-$(cat /proc/sys/kernel/random/uuid)
echo "$token" >"$tmp/lo/hostfile.txt"
httpd -f -p 127.0.0.1:8000 -h "$tmp/lo" &
httpd_lo=$!

# tap0's host-side byte counters: what the host sent into the TAP device
# (tx, to the guest) and what came out of it (rx). From /proc/net/dev,
# which shows this network namespace's devices; /sys/class/net shows those
# of the namespace that mounted /sys, which has no tap0.
tap_bytes() {
    awk -v f="$1" 'sub(/^ *tap0:/, "") { print (f == "rx" ? $1 : $9); found = 1 }
                   END { if (!found) print 0 }' /proc/net/dev
}
tx0=$(tap_bytes tx)
"$vmlet" run --kernel "$kernel" --initrd "$img" --cmdline "console=ttyS0 quiet panic=-1" \
    --memory 512M --net user,hostfwd=tcp:127.0.0.1:8080-:80 --net tap=tap0 \
    </dev/null >"$log" 2>&1 &
pid=$!
deadline=$(($(secs) + 240))
while ! grep -q NET-GUEST-DONE "$log" 2>/dev/null && kill -0 $pid 2>/dev/null &&
      [ "$(secs)" -lt "$deadline" ]; do
    sleep 1
done

eth0=$(val NET-ETH0)
case $eth0 in
10.0.2.*) ok net-user-dhcp ;;
*) not_ok net-user-dhcp "eth0 got '${eth0:-nothing}' from DHCP" ;;
esac
page=$(wget -q -O - http://127.0.0.1:8080/index.html 2>&1 | head -n1)
if [ -n "$page" ] && [ "$page" = "$(val NET-PAGE)" ]; then
    ok net-user-hostfwd
else
    not_ok net-user-hostfwd "fetched '$page' through 127.0.0.1:8080, guest serves '$(val NET-PAGE)'"
fi
got=$(val NET-HOSTFILE)
if [ "$got" = "$token" ]; then ok net-user-gateway; else
    not_ok net-user-gateway "guest fetched '$got' from 10.0.2.2:8000, expected '$token'"; fi
# The 64 MiB must have gone through tap0: a guest without eth1 could fetch
# 192.168.100.1 through the user-mode NIC's gateway as well.
got=$(val NET-H2G-SHA)
tx=$(($(tap_bytes tx) - tx0))
if [ "$got" != "$h2g_sha" ]; then
    not_ok net-tap-64m-to-guest "sha256 in guest '$got', sent '$h2g_sha'"
elif [ "$tx" -lt $((64 * 1024 * 1024)) ]; then
    not_ok net-tap-64m-to-guest "the guest has the file, but tap0 carried only $tx bytes to it (want >= 64 MiB): it did not come over the TAP NIC"
else
    ok net-tap-64m-to-guest
    echo "# net: tap0 carried $tx bytes to the guest"
fi
wget -q -O "$tmp/g2h" http://192.168.100.2:80/g2h 2>/dev/null
got=$(sha256sum "$tmp/g2h" 2>/dev/null | cut -c1-64)
want=$(val NET-G2H-SHA)
if [ -n "$want" ] && [ "$got" = "$want" ]; then ok net-tap-64m-from-guest; else
    not_ok net-tap-64m-from-guest "sha256 on host '$got' ($(wc -c <"$tmp/g2h" 2>/dev/null) bytes), guest '$want'"; fi
# Both NICs carried traffic in the same VM: that is the two-NIC check.
if [ "$(val NET-ETH0 | cut -d. -f1-3)" = 10.0.2 ] && [ "$got" = "$want" ] && [ -n "$want" ]; then
    ok net-two-nics
else
    not_ok net-two-nics "user NIC '$(val NET-ETH0)', TAP transfer ok: $([ "$got" = "$want" ] && echo yes || echo no)"
fi

echo yes >"$tmp/www/done"
deadline=$(($(secs) + 60))
while kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do sleep 1; done
if kill -0 $pid 2>/dev/null; then
    kill -KILL $pid
    not_ok net-poweroff "vmlet still running 60 s after the guest was told to power off"
else
    wait $pid
    rc=$?
    if [ "$rc" = 0 ]; then ok net-poweroff; else not_ok net-poweroff "exit $rc"; fi
fi
[ "$fail" = 0 ] || { echo "# net: guest console:"; tail -n 20 "$log" | sed 's/^/#   /'; }
kill $httpd_tap $httpd_lo 2>/dev/null
ip link delete tap0 2>/dev/null
rm -rf "$tmp"
[ "$fail" = 0 ]
