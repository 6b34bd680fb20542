#!/bin/sh
# Regenerates the captured seeds of fuzz/corpus/ (netlink_dump, netlink_monitor from a
# network namespace built here; dbus_signal from a private dbus-daemon on a socket in a
# temporary directory). Root (network namespaces); nothing of the machine's own network is
# touched. The other corpora (config, hook_args) are written by hand.
#
# Usage: fuzz/seeds/capture.sh [CORPUS_DIR]   (default: fuzz/corpus)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mkdir -p "${1:-$HERE/../corpus}" && cd "${1:-$HERE/../corpus}" && pwd)
NS=symroute-fuzz-seeds-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/symroute-fuzz-seeds.XXXXXX")
bus=""
cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    if [ -n "$bus" ]; then kill "$bus" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A host with two uplinks, IPv4 and IPv6, a multipath route, route metrics, a source
# preference, symroute's table and rule.
ip netns add "$NS"
n() { ip -n "$NS" "$@"; }
n link set lo up
n link add eth0 type veth peer name r0
n link add eth1 type veth peer name r1
for l in eth0 r0 eth1 r1; do n link set "$l" up; done
n addr add 10.1.0.2/24 dev eth0
n addr add 10.2.0.2/24 dev eth1
n -6 addr add fd01::2/64 dev eth0 nodad
n -6 addr add fd02::2/64 dev eth1 nodad
n route add default via 10.1.0.1 dev eth0 metric 100
n route add default via 10.2.0.1 dev eth1 metric 101
n route add 10.50.0.0/16 nexthop via 10.1.0.1 dev eth0 weight 2 nexthop via 10.2.0.1 dev eth1
n route add 10.60.0.0/16 via 10.1.0.1 dev eth0 src 10.1.0.2 mtu 1400 advmss 1360 initcwnd 10
n route add unreachable 10.70.0.0/16
n -6 route add default via fd01::1 dev eth0 metric 100 pref high
n route add default via 10.1.0.1 dev eth0 table 1003 proto 83
n rule add from 10.1.0.2 lookup 1003 priority 32000 protocol 83
n -6 rule add from fd01::2 lookup 1003 priority 32000 protocol 83
ip netns exec "$NS" python3 -I "$HERE/netlink.py" "$OUT"

# D-Bus: signals as a bus delivers them (sender stamped by the bus).
dbus-daemon --session --nofork --nopidfile --address="unix:path=$WORK/bus" &
bus=$!
i=0
while [ ! -S "$WORK/bus" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
python3 -I "$HERE/dbus.py" "$WORK/bus" "$OUT/dbus_signal"
echo "seeds: $(find "$OUT" -type f | wc -l) files in $OUT"
