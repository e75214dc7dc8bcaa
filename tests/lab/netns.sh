# shellcheck shell=sh
# Sourced by the scripts that make a TAP device, addresses and listening
# ports (tests/lab/net.sh, bench/net.sh), then `own_netns "$0" "$@"`: the
# script re-runs itself under `unshare -n`, in a network namespace of its
# own, so none of that touches the network of the machine it runs on (L1
# in the nested lab; the host itself where there is hardware KVM). It
# refuses to go on if its namespace is still the one it started in.
own_netns() {
    if [ -z "${OWN_NETNS_OUTER:-}" ]; then
        OWN_NETNS_OUTER=$(readlink /proc/self/ns/net || echo unknown) exec unshare -n sh "$@"
    fi
    own=$(readlink /proc/self/ns/net)
    if [ -z "$own" ] || [ "$own" = "$OWN_NETNS_OUTER" ]; then
        echo "# $(basename "$1"): not in a network namespace of its own; not touching this machine's network"
        exit 1
    fi
}
