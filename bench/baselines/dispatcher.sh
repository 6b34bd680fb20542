#!/bin/sh
# Baseline for bench/run: the NetworkManager dispatcher script admins write by hand for
# symmetric routing, done the efficient way: dump with `ip`, filter with sed, apply each
# family with one `ip -batch`. Usage: dispatcher.sh IFACE up
#
# Table 1000+ifindex gets a copy of every main-table route through IFACE; one rule
# `from ADDR lookup TABLE priority 32000` per global address, protocol 83 like symroute.
# It does less than symroute: no removal of stale routes or rules, no check that the table
# is free, no lock, no garbage collection of vanished interfaces.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
IF=$1
[ "$2" = up ] || exit 0
idx=$(ip -o link show dev "$IF" | cut -d: -f1) || exit 1
T=$((1000 + idx))

for fam in 4 6; do
    {
        # `ip route show dev IF` leaves out "dev IF"; drop what cannot be replayed.
        ip -$fam route show table main dev "$IF" | sed \
            -e 's/ proto [^ ]*//; s/ linkdown//; s/ expires [^ ]*//' \
            -e "s|^|route replace |; s|\$| dev $IF table $T proto 83|"
        have=$(ip -$fam rule show table "$T" priority 32000)
        ip -o -$fam addr show dev "$IF" scope global | while read -r _ _ _ cidr _; do
            a=${cidr%/*}
            case "$have" in
                *"from $a lookup"*) ;;
                *) if [ $fam = 4 ]; then len=32; else len=128; fi
                   echo "rule add from $a/$len table $T priority 32000 proto 83" ;;
            esac
        done
    } | ip -$fam -batch - || exit 1
done
