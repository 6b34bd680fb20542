#!/bin/sh
# Baseline for bench/run: the naive hand-written dispatcher script, one `ip route replace`
# process per route and one `ip rule add` process per missing rule. Usage: per-route.sh IFACE up
# Same job and same omissions as dispatcher.sh.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
IF=$1
[ "$2" = up ] || exit 0
idx=$(ip -o link show dev "$IF" | cut -d: -f1) || exit 1
T=$((1000 + idx))

for fam in 4 6; do
    ip -$fam route show table main dev "$IF" | sed -e 's/ proto [^ ]*//; s/ linkdown//; s/ expires [^ ]*//' |
        while read -r route; do
            # shellcheck disable=SC2086 # the route's words are ip's arguments
            ip -$fam route replace $route dev "$IF" table $T proto 83 || exit 1
        done || exit 1
    have=$(ip -$fam rule show table "$T" priority 32000)
    for cidr in $(ip -o -$fam addr show dev "$IF" scope global | awk '{print $4}'); do
        a=${cidr%/*}
        case "$have" in
            *"from $a lookup"*) ;;
            *) ip -$fam rule add from "$a" table $T priority 32000 proto 83 || exit 1 ;;
        esac
    done
done
