#!/bin/sh
# Runs inside the isolated root made by tests/packaging/run.sh: PID 1 of a private PID
# namespace, chrooted into an overlay of a cached Debian minbase (writes go to a tmpfs),
# in a private mount namespace, in the test's own network namespace with eth0/eth1 set up.
# Nothing here can reach the machine's own files or routing.
#
# Usage: inside.sh SCENARIO V1 V2 UNIT
#   SCENARIO  plain    .deb, no systemd: install, upgrade, remove, purge (with leftovers to
#                      sweep)
#             systemd  .deb, /run/systemd/system and a recording systemctl that runs the real
#                      symrouted for start/stop/restart: install, upgrade, purge; one
#                      interface whose table is someone else's
#             rpm      .rpm (rpm --nodeps), no systemd: install, upgrade, erase
#   V1, V2    versions of /tmp/symroute-{1,2}.{deb,rpm} (UPSTREAM-REVISION)
#   UNIT      yes when the package ships symrouted.service
# Prints "ok - ..." / "FAIL - ..." lines; run.sh counts them.
# Functions run through check() look unreachable to shellcheck.
# shellcheck disable=SC2317
set -u

SCENARIO=$1 V1=$2 V2=$3 UNIT=$4
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
PROTO=83

ok() { echo "ok - [$SCENARIO] $*"; }
bad() { echo "FAIL - [$SCENARIO] $*"; }
check() {
    desc=$1
    shift
    if "$@"; then ok "$desc"; else bad "$desc"; fi
}
# run DESC CMD...: runs CMD, shows its output indented, checks its exit status.
run() {
    desc=$1
    shift
    if "$@" >/tmp/out 2>&1; then ok "$desc"; else bad "$desc (exit $?)"; fi
    sed 's/^/    | /' /tmp/out
}

ifindex() { ip -o link show "$1" | cut -d: -f1; }
T0=$((1000 + $(ifindex eth0)))
T1=$((1000 + $(ifindex eth1)))

# Our kernel state, numerically: rules with protocol 83 and routes with protocol 83.
our_rules() { { ip -N -4 rule show; ip -N -6 rule show; } | grep -E " proto $PROTO( |\$)" || true; }
our_routes() { { ip -N -4 route show table all proto $PROTO; ip -N -6 route show table all proto $PROTO; } 2>/dev/null || true; }
no_state_of_ours() { [ -z "$(our_rules)" ] && [ -z "$(our_routes)" ]; }
# Everything that is not ours and must never change: other rules, main and table 2000.
foreign_state() {
    { ip -N -4 rule show; ip -N -6 rule show; } | grep -Ev " proto $PROTO( |\$)"
    ip -N -4 route show table main
    ip -N -6 route show table main | grep -v '^fe80::/64'
    ip -N -4 route show table 2000
    [ -z "${T2:-}" ] || ip -N -4 route show table "$T2"
}
has_rule() { our_rules | grep -qE "from $1 lookup $2 proto $PROTO"; }
status_of() { dpkg-query -W -f='${Status} ${Version}' symroute 2>/dev/null; }
FORMAT=deb
[ "$SCENARIO" != rpm ] || FORMAT=rpm
installed_as() {
    if [ "$FORMAT" = rpm ]; then
        [ "$(rpm -q --qf '%{VERSION}-%{RELEASE}' symroute 2>/dev/null)" = "$1" ]
    else
        [ "$(status_of)" = "install ok installed $1" ]
    fi
}
config_files() {
    if [ "$FORMAT" = rpm ]; then
        rpm -qc symroute
    else
        dpkg-query -W -f='${Conffiles}' symroute | awk 'NF {print $1}'
    fi | sort | tr '\n' ' '
}
mode_of() { stat -c %a:%U:%G "$1" 2>/dev/null; }

# Files every package has, and what the maintainer scripts must leave after a purge.
PACKAGED="/usr/sbin/symroute-hook /usr/lib/NetworkManager/dispatcher.d/50-symroute
/usr/lib/systemd/networkd.conf.d/symroute.conf /etc/symroute/symroute.toml
/etc/iproute2/rt_protos.d/symroute.conf /usr/share/man/man8/symroute-hook.8.gz
/usr/share/man/man5/symroute.toml.5.gz"
if [ "$FORMAT" = rpm ]; then
    PACKAGED="$PACKAGED /usr/share/licenses/symroute/LICENSE-MIT"
else
    PACKAGED="$PACKAGED /usr/share/doc/symroute/copyright"
fi
STATES="routable configured degraded off no-carrier"
for s in $STATES; do PACKAGED="$PACKAGED /usr/lib/networkd-dispatcher/$s.d/50-symroute"; done
if [ "$UNIT" = yes ]; then PACKAGED="$PACKAGED /usr/lib/systemd/system/symrouted.service"; fi

all_present() { for f in $PACKAGED; do [ -e "$f" ] || { echo "    missing $f"; return 1; }; done; }
none_present() {
    for f in $PACKAGED /etc/symroute /etc/iproute2/rt_tables.d/symroute.conf; do
        [ ! -e "$f" ] || { echo "    still there: $f"; return 1; }
    done
}
scripts_exec_root_0755() {
    for f in /usr/lib/NetworkManager/dispatcher.d/50-symroute /usr/lib/networkd-dispatcher \
        /usr/lib/networkd-dispatcher/*.d /usr/lib/networkd-dispatcher/*.d/50-symroute; do
        [ "$(mode_of "$f")" = 755:root:root ] || { echo "    $f is $(mode_of "$f")"; return 1; }
    done
}

# Someone else's rule and table, which symroute must never touch.
ip rule add from 10.81.0.9 lookup 2000 priority 31000 proto static
ip route add 192.0.2.0/24 via 10.81.0.1 dev eth0 table 2000 proto static
if [ "$SCENARIO" = systemd ]; then
    # eth2's table already belongs to someone else: symroute refuses eth2, the postinst's
    # sync fails for it, and the installation must go on regardless.
    ip link add eth2 type veth peer name uplink2
    ip link set eth2 up
    ip link set uplink2 up
    ip addr add 10.83.0.2/24 dev eth2
    T2=$((1000 + $(ifindex eth2)))
    ip route add 198.51.100.0/24 via 10.83.0.1 dev eth2 table "$T2" proto static
fi
FOREIGN_BEFORE=$(foreign_state)
foreign_unchanged() {
    [ "$(foreign_state)" = "$FOREIGN_BEFORE" ] || {
        echo "$FOREIGN_BEFORE" >/tmp/f.before
        foreign_state >/tmp/f.after
        diff /tmp/f.before /tmp/f.after | sed 's/^/    /'
        return 1
    }
}

if [ "$SCENARIO" = systemd ]; then
    # A host where systemd runs: what deb-systemd-helper/-invoke and the scripts ask of
    # systemctl is recorded, and start/stop/restart of symrouted.service run the real
    # daemon (in the background, SIGTERM to stop, as systemd would).
    mkdir -p /run/systemd/system
    cat >/usr/bin/systemctl <<'EOF'
#!/bin/sh
echo "systemctl $*" >>/run/systemctl.log
alive() { [ -n "$1" ] && [ -d "/proc/$1" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat"; }
pid=$(cat /run/symrouted.pid 2>/dev/null || true)
stop() {
    if alive "$pid"; then
        kill -TERM "$pid"
        while alive "$pid"; do sleep 0.05; done
    fi
    rm -f /run/symrouted.pid
}
start() {
    if ! alive "$pid" && [ -x /usr/sbin/symrouted ]; then
        SYMROUTE_LOG=stderr /usr/sbin/symrouted </dev/null >>/run/symrouted.log 2>&1 &
        echo $! >/run/symrouted.pid
    fi
}
case " $* " in
    *" is-enabled "*) echo enabled ;;
    *" start symrouted.service "*) start ;;
    *" stop symrouted.service "*) stop ;;
    *" restart symrouted.service "* | *" try-restart symrouted.service "*) stop; pid=""; start ;;
esac
exit 0
EOF
    chmod 0755 /usr/bin/systemctl
    : >/run/systemctl.log
fi
daemon_pid() { cat /run/symrouted.pid 2>/dev/null; }
daemon_alive() {
    pid=$(daemon_pid)
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat"
}
systemctl_called() { grep -qE "$1" /run/systemctl.log; }

# --- install ---------------------------------------------------------------------------
check "no rule of ours before installing" no_state_of_ours
if [ "$FORMAT" = rpm ]; then
    # --nodeps: the minbase's packages are dpkg's, rpm's database knows none of them.
    run "rpm -i $V1" rpm -i --nodeps /tmp/symroute-1.rpm
else
    run "dpkg -i $V1" dpkg -i /tmp/symroute-1.deb
fi
cp /tmp/out /tmp/install.out
check "installed as $V1" installed_as "$V1"
check "packaged files in place" all_present
check "dispatcher scripts and folders are root's, mode 0755" scripts_exec_root_0755
check "dispatcher scripts call /usr/sbin/symroute-hook" \
    grep -q '^HOOK=/usr/sbin/symroute-hook$' /usr/lib/NetworkManager/dispatcher.d/50-symroute \
    /usr/lib/networkd-dispatcher/routable.d/50-symroute
# The .deb also has the ifupdown and dhclient hooks in /etc (Debian's hook folders).
CONFIG_FILES="/etc/iproute2/rt_protos.d/symroute.conf /etc/symroute/symroute.toml "
[ "$FORMAT" = rpm ] || CONFIG_FILES="/etc/dhcp/dhclient-exit-hooks.d/symroute $CONFIG_FILES"
[ "$FORMAT" = rpm ] || CONFIG_FILES="$(echo "$CONFIG_FILES /etc/network/if-post-down.d/symroute /etc/network/if-up.d/symroute" | tr ' ' '\n' | grep . | sort | tr '\n' ' ')"
check "config files registered" [ "$(config_files)" = "$CONFIG_FILES" ]
check "installing synced eth0 (rule from 10.81.0.2 lookup $T0)" has_rule 10.81.0.2 "$T0"
check "installing synced eth1 (rule from 10.82.0.2 lookup $T1)" has_rule 10.82.0.2 "$T1"
check "installing synced eth0's IPv6 address" has_rule fd81::2 "$T0"
check "table $T0 holds eth0's default route" sh -c "ip -N route show table $T0 | grep -q '^default via 10.81.0.1 dev eth0'"
check "protocol 83 is named symroute (rt_protos.d)" sh -c "ip rule show | grep -q 'proto symroute'"
check "a second sync changes nothing" [ -z "$(symroute-hook --all --dry-run 2>/dev/null)" ]
check "others' rules and main table untouched" foreign_unchanged

# The packaged event scripts, called as NetworkManager and networkd-dispatcher call them
# (no PATH, nothing else in the environment). Not with the daemon running: it would put
# eth1's rule back at once, eth1 being still up.
# A down-class event settles against the kernel (docs/design.md, "Events"): as the managers
# do, the address goes first, then the event comes; before `up` it is back.
eth1_gone() { ip addr del 10.82.0.2/24 dev eth1; }
eth1_back() {
    ip addr add 10.82.0.2/24 dev eth1
    ip route replace default via 10.82.0.1 dev eth1 metric 101
}
if ! daemon_alive; then
eth1_gone
env -i /usr/lib/NetworkManager/dispatcher.d/50-symroute eth1 down 2>&1 | sed "s/^/    | /"
check "NetworkManager script: 'eth1 down' removes eth1's rule" sh -c "! ip -N rule show | grep -q 'from 10.82.0.2 '"
eth1_back
env -i /usr/lib/NetworkManager/dispatcher.d/50-symroute eth1 up 2>&1 | sed "s/^/    | /"
check "NetworkManager script: 'eth1 up' restores it" has_rule 10.82.0.2 "$T1"
eth1_gone
env -i IFACE=eth1 STATE=off /usr/lib/networkd-dispatcher/off.d/50-symroute 2>&1 | sed "s/^/    | /"
check "networkd-dispatcher off.d script removes eth1's rule" sh -c "! ip -N rule show | grep -q 'from 10.82.0.2 '"
eth1_back
env -i IFACE=eth1 STATE=routable /usr/lib/networkd-dispatcher/routable.d/50-symroute 2>&1 | sed "s/^/    | /"
check "networkd-dispatcher routable.d script restores it" has_rule 10.82.0.2 "$T1"
fi

if [ "$SCENARIO" = systemd ]; then
    check "a failed sync (eth2's table is someone else's) did not fail the installation" \
        sh -c "grep -q 'table $T2' /tmp/install.out && grep -q 'warning: .symroute-hook --all. failed' /tmp/install.out"
    check "eth2 was left alone" sh -c "! ip -N rule show | grep -q 'lookup $T2 '"
    if [ "$UNIT" = yes ]; then
        check "postinst started symrouted.service" systemctl_called ' start symrouted\.service'
        # Let the daemon come up (its first sync finds nothing to do).
        sleep 0.5
        check "symrouted runs" daemon_alive
        # deb-systemd-helper enables through `systemctl preset` when systemctl exists,
        # else by making the [Install] symlinks itself.
        check "postinst enabled symrouted.service" sh -c "
            grep -qE ' preset symrouted\.service' /run/systemctl.log ||
            find /etc/systemd/system -lname '*symrouted.service' | grep -q ."
    else
        check "no unit shipped: systemctl never asked about symrouted" sh -c "! grep -q symrouted /run/systemctl.log"
    fi
fi

# --- upgrade ---------------------------------------------------------------------------
echo "# edited by the admin" >>/etc/symroute/symroute.toml
STATE_BEFORE="$(our_rules; our_routes)"
PID_BEFORE=$(daemon_pid)
ip monitor rule route >/tmp/monitor.log 2>&1 &
monitor=$!
sleep 0.2
if [ "$FORMAT" = rpm ]; then
    run "rpm -U $V2 (upgrade)" rpm -U --nodeps /tmp/symroute-2.rpm
else
    run "dpkg -i $V2 (upgrade)" dpkg -i /tmp/symroute-2.deb
fi
# Long enough for a restarted daemon to finish its first sync.
sleep 0.5
kill "$monitor" 2>/dev/null
wait "$monitor" 2>/dev/null
check "upgraded to $V2" installed_as "$V2"
check "upgrade deleted no rule or route (ip monitor saw no deletion)" sh -c "! grep -q '^Deleted' /tmp/monitor.log"
check "upgrade left rules and tables as they were" [ "$(our_rules; our_routes)" = "$STATE_BEFORE" ]
check "upgrade kept the admin's edit of the conffile" grep -q '^# edited by the admin$' /etc/symroute/symroute.toml
if [ "$SCENARIO" = systemd ] && [ "$UNIT" = yes ]; then
    check "upgrade restarted symrouted.service" systemctl_called ' restart symrouted\.service'
    check "symrouted runs again, as a new process" sh -c "[ -n '$PID_BEFORE' ] && [ \"\$(cat /run/symrouted.pid)\" != '$PID_BEFORE' ]"
    check "symrouted runs after the upgrade" daemon_alive
fi

# --- remove, purge ---------------------------------------------------------------------
if [ "$FORMAT" = rpm ]; then
    run "rpm -e (erase)" rpm -e symroute
    check "preun's symroute-hook --flush did it all" sh -c "! grep -q 'removing leftover' /tmp/out"
    check "erased: rpm knows no symroute" sh -c "! rpm -q symroute >/dev/null 2>&1"
    # RPM has no purge: the edited config is kept as .rpmsave, by design.
    check "erase kept the edited config as symroute.toml.rpmsave" \
        grep -q '^# edited by the admin$' /etc/symroute/symroute.toml.rpmsave
    rm -f /etc/symroute/symroute.toml.rpmsave
    rmdir /etc/symroute 2>/dev/null || true
elif [ "$SCENARIO" = plain ]; then
    run "dpkg -r (remove)" dpkg -r symroute
    check "removed, configuration kept" [ "$(status_of)" = "deinstall ok config-files $V2" ]
    check "prerm's symroute-hook --flush did it all (postrm's sweep found nothing)" \
        sh -c "! grep -q 'removing leftover' /tmp/out"
    check "remove flushed every rule and table route of ours" no_state_of_ours
    check "remove kept /etc/symroute/symroute.toml" [ -f /etc/symroute/symroute.toml ]
    check "remove left no binary or script" sh -c "[ ! -e /usr/sbin/symroute-hook ] && [ ! -e /usr/lib/NetworkManager/dispatcher.d/50-symroute ]"
    check "others' rules and main table untouched by remove" foreign_unchanged
    # State an older version could have left behind, for purge to sweep up.
    ip rule add from 10.81.0.2 lookup 1999 priority 32000 proto $PROTO
    ip route add default via 10.81.0.1 dev eth0 table 1999 proto $PROTO
    ip rule add to 172.30.0.0/16 lookup main priority 31999 proto $PROTO
    ip -6 rule add from fd81::2 lookup 1999 priority 32000 proto $PROTO
    ip -6 route add default via fd81::1 dev eth0 table 1999 proto $PROTO
    # An IPv4 rule whose table also holds an IPv6 route (IPv4-only interfaces do).
    ip rule add from 10.82.0.2 lookup 1998 priority 32000 proto $PROTO
    ip route add default via 10.82.0.1 dev eth1 table 1998 proto $PROTO
    ip -6 route add fe80::/64 dev eth1 table 1998 proto $PROTO
    echo "1999 symroute-eth0" >/etc/iproute2/rt_tables.d/symroute.conf
    # What dpkg leaves beside a conffile the admin and the package both changed.
    cp /etc/symroute/symroute.toml /etc/symroute/symroute.toml.dpkg-old
    run "dpkg --purge (package in config-files state)" dpkg --purge symroute
else
    run "dpkg --purge (installed package)" dpkg --purge symroute
    check "prerm's symroute-hook --flush did it all (postrm's sweep found nothing)" \
        sh -c "! grep -q 'removing leftover' /tmp/out"
    if [ "$UNIT" = yes ]; then
        check "purge stopped symrouted.service" systemctl_called ' stop symrouted\.service'
        check "symrouted no longer runs" sh -c "! [ -e /run/symrouted.pid ]"
        sed 's/^/    symrouted| /' /run/symrouted.log
    fi
    check "purge left no unit symlink" sh -c "! find /etc/systemd -lname '*symrouted.service' 2>/dev/null | grep -q ."
fi
[ "$FORMAT" = rpm ] ||
    check "purged: dpkg knows no symroute" sh -c "! dpkg-query -W -f='\${Status}' symroute 2>/dev/null | grep -q ok"
GONE=purge
[ "$FORMAT" = deb ] || GONE=erase
check "$GONE left no rule or table route of ours" no_state_of_ours
check "$GONE left no file of ours" none_present
check "others' rules and main table untouched by $GONE" foreign_unchanged

if [ "$SCENARIO" = systemd ]; then
    rm -f /usr/bin/systemctl
fi
# Leave nothing but what the packages did, for run.sh's look at the written layer.
rm -f /tmp/symroute-1.* /tmp/symroute-2.* /tmp/out /tmp/install.out /tmp/monitor.log /tmp/f.before /tmp/f.after /tmp/inside.sh
exit 0
