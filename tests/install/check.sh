#!/bin/sh
# `meson install` into a scratch DESTDIR, then build examples/simplevm.c the
# way the README says, against what was installed: once with the shared
# library (pkg-config --cflags --libs vmlet) and once with the static one
# (pkg-config --static). Both binaries must run: without arguments they
# print their usage (exit 2); with a kernel that does not exist the library
# says so (exit 1) - no KVM needed for either.
#   check.sh SOURCE_ROOT BUILD_DIR
src=${1:?usage: check.sh SOURCE_ROOT BUILD_DIR}
build=${2:?usage: check.sh SOURCE_ROOT BUILD_DIR}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
CC="${CC:-cc} ${SANITIZE_FLAGS:-}"   # the sanitizer build's library needs its runtime
echo "1..5"
n=0
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1: $2"; n=$((n + 1)); }

if meson install -C "$build" --no-rebuild --destdir "$dest" >"$dest/install.log" 2>&1; then
    ok install
else
    not_ok install "meson install failed: $(tail -n 3 "$dest/install.log" | tr '\n' ' ')"
fi

pc=$(find "$dest" -name vmlet.pc | head -n 1)
header=$(find "$dest" -path '*/include/vmlet.h' | head -n 1)
so=$(find "$dest" -name 'libvmlet.so.*' | head -n 1)
a=$(find "$dest" -name libvmlet.a | head -n 1)
if [ -n "$pc" ] && [ -n "$header" ] && [ -n "$so" ] && [ -n "$a" ]; then
    ok installed-files
else
    not_ok installed-files "missing: pc='$pc' header='$header' so='$so' a='$a'"
fi

# The .pc file names the real prefix; the sysroot points it into DESTDIR.
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR="$dest"
if flags=$(pkg-config --cflags --libs vmlet 2>"$dest/pc.err"); then
    ok "pkg-config: $flags"
else
    not_ok pkg-config "$(cat "$dest/pc.err")"
fi

# run NAME BINARY [env...]: usage without arguments, the library's error
# for a missing kernel.
run() {
    name=$1 bin=$2
    shift 2
    env "$@" "$bin" >/dev/null 2>"$dest/usage.err"
    usage_rc=$?
    env "$@" "$bin" /no/such/vmlinuz /no/such/initrd /no/such/disk >/dev/null 2>"$dest/run.err"
    run_rc=$?
    if [ "$usage_rc" = 2 ] && [ "$run_rc" = 1 ] && grep -q vmlinuz "$dest/run.err"; then
        ok "$name: runs ($(head -c 120 "$dest/run.err"))"
    else
        not_ok "$name" "usage exit $usage_rc, run exit $run_rc: $(cat "$dest/usage.err" "$dest/run.err" | head -c 300)"
    fi
}

# shellcheck disable=SC2046
if $CC -o "$dest/simplevm" "$src/examples/simplevm.c" $(pkg-config --cflags --libs vmlet) \
        2>"$dest/cc.err"; then
    run simplevm-shared "$dest/simplevm" LD_LIBRARY_PATH="$(dirname "$so")"
else
    not_ok simplevm-shared "does not build: $(head -c 300 "$dest/cc.err")"
fi

# Static: the archive itself, and what it needs from pkg-config --static.
others=$(pkg-config --static --libs vmlet | tr ' ' '\n' | grep -v '^-lvmlet$' | tr '\n' ' ')
# shellcheck disable=SC2046,SC2086
if $CC -o "$dest/simplevm-static" "$src/examples/simplevm.c" $(pkg-config --cflags vmlet) \
        "$a" $others 2>"$dest/cc.err"; then
    if ldd "$dest/simplevm-static" | grep -q libvmlet; then
        not_ok simplevm-static "linked against the shared library, not libvmlet.a"
    else
        run simplevm-static "$dest/simplevm-static"
    fi
else
    not_ok simplevm-static "does not build: $(head -c 300 "$dest/cc.err")"
fi
[ "$n" = 0 ]
