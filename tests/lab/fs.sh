#!/bin/sh
# Shared-directory scenarios (issue 12): one L2 boot of vmlet with two
# shares (virtio-fs served by vmlet), "work" read-write and "ro"
# read-only; the guest (tests/lab/fsguest/init) works in them and prints
# what it saw, and this side checks the host's view. POSIX sh, busybox.
#   fs.sh VMLET KERNEL FSIMG LOGDIR
#   fs.sh --plan            the check names, one a line
CHECKS="fs-mount fs-files fs-rename fs-links fs-dirs fs-attrs fs-unlinked-open
        fs-git fs-256m-from-guest fs-256m-to-guest fs-tar fs-escape fs-read-only fs-open-cap
        fs-poweroff"
if [ "${1:-}" = --plan ]; then
    for c in $CHECKS; do echo "$c"; done
    exit 0
fi
vmlet=$1 kernel=$2 img=$3 logdir=$4
log=$logdir/vmlet-fs.log
tmp=${TMPDIR:-/tmp}/fs.$$
share=$tmp/share
mkdir -p "$share" "$tmp/ro" "$tmp/outside" "$tmp/src" "$logdir"
. "$(dirname "$0")/checks.sh"
VAL_PREFIX=VMLET-FS-
# want_ok CHECK MARKER: the guest's step printed "ok".
want_ok() {
    got=$(val "$2")
    if [ "$got" = ok ]; then ok "$1"; else not_ok "$1" "guest: '${got:-nothing}'"; fi
}

# What the guest finds: a token, 256 MiB to read, a tarball of a few
# thousand small files, symlinks that point outside the share; a file in
# the read-only share; a secret outside both, which must not change.
token=token-$$-$(cat /proc/sys/kernel/random/uuid)
echo "$token" >"$share/token"
dd if=/dev/urandom of="$share/h2g" bs=1M count=256 2>/dev/null
h2g_sha=$(sha <"$share/h2g")
i=0
while [ $i -lt 40 ]; do
    mkdir -p "$tmp/src/tree/d$i"
    j=0
    while [ $j -lt 75 ]; do
        echo "file $i/$j $token" >"$tmp/src/tree/d$i/f$j"
        j=$((j + 1))
    done
    i=$((i + 1))
done
(cd "$tmp/src" && tar cf "$share/tree.tar" tree)
mkdir "$tmp/hostunpack" && (cd "$tmp/hostunpack" && tar xf "$share/tree.tar")
tar_want=$(cd "$tmp/hostunpack" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha)
secret=secret-$(cat /proc/sys/kernel/random/uuid)
echo "$secret" >"$tmp/outside/secret"
ln -s "$tmp/outside/secret" "$share/abs-link"
ln -s ../outside/secret "$share/rel-link"
echo read-only-file >"$tmp/ro/file"
outside_before=$(find "$tmp/outside" "$tmp/ro" | LC_ALL=C sort | xargs ls -ld --full-time 2>/dev/null | sha)

"$vmlet" run --kernel "$kernel" --initrd "$img" --cmdline "console=ttyS0 quiet panic=-1" \
    --memory 768M --share "$share,tag=work" --share "$tmp/ro,tag=ro,ro" \
    </dev/null >"$log" 2>&1 &
pid=$!
deadline=$(($(secs) + 900))
limits=
while ! grep -aq VMLET-FS-DONE "$log" 2>/dev/null && kill -0 $pid 2>/dev/null &&
      [ "$(secs)" -lt "$deadline" ]; do
    # vmlet's descriptors (the most seen) and their limit while the guest
    # opens and holds its files
    # The host's swap under the working guest (fsguest/init, SWAP-READY):
    # "held" moved out of the share with a secret put in it, "swap"
    # replaced by a symlink to outside.
    if [ -z "${swapped:-}" ] && grep -aq VMLET-FS-SWAP-READY "$log"; then
        swapped=yes
        mkdir -p "$tmp/away"
        mv "$share/held" "$tmp/away/held" && echo "$secret" >"$tmp/away/held/secret"
        mv "$share/swap" "$share/swap-old" && ln -s "$tmp/outside" "$share/swap"
        touch "$share/swap-done"
    fi
    if grep -aq VMLET-FS-OPENMANY-START "$log" && ! grep -aq VMLET-FS-OPENMANY= "$log"; then
        set -- "/proc/$pid/fd/"*
        if [ "$#" -gt "${most_fds:-0}" ]; then
            most_fds=$#
            # what they are: the most common targets, for the record
            fd_kinds=$(for f in "$@"; do readlink "$f"; done | sed 's/[0-9][0-9]*$/N/' | sort | uniq -c | sort -rn | head -n 4 | tr -s ' \n' ' ')
        fi
        limits="$(grep -i 'max open files' "/proc/$pid/limits" | tr -s ' '), at most $most_fds open"
        sleep 0.5
        continue
    fi
    sleep 2
done

if [ "$(val MOUNT)" = ok ] && [ "$(val MOUNT-RO)" = ok ] && [ "$(val TOKEN)" = "$token" ]; then
    ok fs-mount
else
    not_ok fs-mount "mount work: '$(val MOUNT)', ro: '$(val MOUNT-RO)', token read: '$(val TOKEN)'"
fi
want_ok fs-files FILES
want_ok fs-rename RENAME
want_ok fs-links LINKS
want_ok fs-dirs DIRS
want_ok fs-attrs ATTRS
want_ok fs-unlinked-open UNLINKED-OPEN

# git in the guest; the host's git sees the same two commits.
got=$(val GIT)
host_head=$(git -c safe.directory='*' -C "$share/repo" rev-parse HEAD 2>&1)
if [ "$got" = ok ] && [ "$host_head" = "$(val GIT-HEAD)" ] &&
   git -c safe.directory='*' -C "$share/repo" fsck --no-progress >/dev/null 2>&1; then
    ok fs-git
else
    not_ok fs-git "guest: '$got', HEAD there '$(val GIT-HEAD)', here '$host_head'"
fi

# The host's view of the guest's work.
got=$(sha <"$share/g2h" 2>/dev/null)
want=$(val G2H-SRC-SHA)
if [ -n "$want" ] && [ "$got" = "$want" ]; then ok fs-256m-from-guest; else
    not_ok fs-256m-from-guest "sha256 on the host '$got' ($(wc -c <"$share/g2h" 2>/dev/null) bytes), guest '$want'"; fi
got=$(val H2G-SHA)
if [ "$got" = "$h2g_sha" ]; then ok fs-256m-to-guest; else
    not_ok fs-256m-to-guest "sha256 in the guest '$got', host '$h2g_sha'"; fi
got=$(val TAR)
host_view=$(cd "$share/unpack" 2>/dev/null && find . -type f | LC_ALL=C sort | xargs sha256sum | sha)
if [ "$got" = "$tar_want " ] && [ "$host_view" = "$tar_want" ]; then ok fs-tar; else
    not_ok fs-tar "3000 files: guest's listing '$got', the host's of the guest's unpack '$host_view', want '$tar_want'"; fi

# Escapes: the guest never saw the secret, and nothing outside changed.
seen=
for m in ESC-DOTDOT ESC-ABS-LINK ESC-REL-LINK ESC-WRITE-LINK SWAP-HELD SWAP-LINK; do
    case $(val $m) in *"$secret"*) seen="$seen $m" ;; esac
done
outside_after=$(find "$tmp/outside" "$tmp/ro" | LC_ALL=C sort | xargs ls -ld --full-time 2>/dev/null | sha)
if [ -z "$seen" ] && [ "$outside_before" = "$outside_after" ] && [ ! -e "$share/passwd" ] &&
   [ "${swapped:-}" = yes ] && [ -n "$(val SWAP-HELD)" ] && [ -n "$(val SWAP-LINK)" ] &&
   [ "$(cat "$tmp/outside/secret")" = "$secret" ]; then
    ok fs-escape
    echo "# fs: escapes: ../..: '$(val ESC-DOTDOT)'; absolute link: '$(val ESC-ABS-LINK)'; relative link: '$(val ESC-REL-LINK)'; link from /proc: '$(val ESC-PROC-LINK)'"
    echo "# fs: after the host's swap: in the held directory moved out: '$(val SWAP-HELD)'; through the symlink put in: '$(val SWAP-LINK)'"
else
    not_ok fs-escape "the secret seen through:${seen:- nothing}; outside changed: $([ "$outside_before" = "$outside_after" ] && echo no || echo yes); passwd linked in: $([ -e "$share/passwd" ] && echo yes || echo no); host swap done: ${swapped:-no}, guest saw '$(val SWAP-HELD)' / '$(val SWAP-LINK)'"
fi
if [ "$(val RO-READ)" = read-only-file ] && [ "$(val RO-CHANGES)" = none ] &&
   [ "$(cat "$tmp/ro/file")" = read-only-file ] && [ "$(ls "$tmp/ro")" = file ]; then
    ok fs-read-only
else
    not_ok fs-read-only "read: '$(val RO-READ)', changes that went through: '$(val RO-CHANGES)', host now has: $(cd "$tmp/ro" && echo *)"
fi
got=$(val OPENMANY)
echo "# fs: vmlet's $limits ($fd_kinds)"
case $got in
"opened 5000 of 5000"*) not_ok fs-open-cap "the guest held 5000 files open: no cap ('$got')" ;;
"opened "*"first error: "*)
    # The share's cap (4096 open files, nothing else of the guest open
    # there), not the host's descriptor limit, is what stops it.
    n=$(echo "$got" | cut -d' ' -f2)
    if [ "$(val AFTER-OPENMANY)" = again ] && [ "$n" -ge 4000 ] && [ "$n" -le 4096 ]; then
        ok fs-open-cap
        echo "# fs: $got; afterwards a new file opened: $(val AFTER-OPENMANY)"
    else
        not_ok fs-open-cap "'$got' (want the cap, 4096, to stop it), afterwards: '$(val AFTER-OPENMANY)'; vmlet's $limits ($fd_kinds)"
    fi ;;
*) not_ok fs-open-cap "guest: '$got'" ;;
esac

deadline=$(($(secs) + 60))
while kill -0 $pid 2>/dev/null && [ "$(secs)" -lt "$deadline" ]; do sleep 1; done
if kill -0 $pid 2>/dev/null; then
    kill -KILL $pid
    not_ok fs-poweroff "vmlet still running 60 s after the guest's poweroff (or the guest never finished)"
else
    wait $pid
    rc=$?
    if [ "$rc" = 0 ] && grep -aq VMLET-FS-DONE "$log"; then ok fs-poweroff; else
        not_ok fs-poweroff "exit $rc$(grep -aq VMLET-FS-DONE "$log" || echo ', the guest never finished')"; fi
fi
[ "$fail" = 0 ] || { echo "# fs: guest console:"; tr -d '\r' <"$log" | grep -av '^VMLET-FS-' | tail -n 20 | sed 's/^/#   /'; }
rm -rf "$tmp"
[ "$fail" = 0 ]
