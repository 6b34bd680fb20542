#!/bin/sh
# Boot test: symrouted.service under a real systemd as PID 1. Builds the .deb (and the .rpm,
# whose unit must be the same file) with scripts/build-packages.sh, then boots Debian roots
# with systemd-nspawn, each boot in a network namespace of its own holding eth0 and eth1
# (veths whose peers stay in a namespace this script made), on an overlay of a cached root
# (tests/systemd/roots.sh) whose written layer is a tmpfs in a private mount namespace: the
# cached root, the machine's files and its network are never touched.
#
# Boots (each reads the boot console, since systemd reports ordering cycles before journald
# runs, so the journal never shows them):
#   minimal   minimal Debian (no procps): `dpkg -i` of the .deb while systemd runs: started,
#             READY, rules; systemctl reload; a bad config neither loops nor stops the running
#             daemon; the watchdog restarts a SIGSTOPped daemon; systemd-analyze verify is
#             clean, security exposure <= 2.0; TasksMax/MemoryMax enforced or a visible note.
#             Then [health] (health_checks): refused without the drop-in (logged, routing goes
#             on), refused for ping_group_range as Debian 12 leaves it (logged, doctor fails),
#             then the shipped drop-in and the sysctl as the docs say: probes answered through
#             the sandbox, the state file shows the uplinks up, an outage goes down and back;
#             exposure with the drop-in <= 2.0.
#   networkd  the same root rebooted with systemd-networkd configuring eth0/eth1: no ordering
#             cycle, the daemon started by the boot before networkd, rules for its addresses.
#   nobus     the minimal root with D-Bus masked: no cycle, the daemon waits for the bus.
#   cloud     a cloud image: cloud-init with a NoCloud seed (static eth0/eth1) rendering to
#             ifupdown, the .deb installed before the boot: no ordering cycle,
#             cloud-init.service and networking.service ran, symrouted before them, rules.
#   nm        NetworkManager (after dbus, after symrouted) configures eth0/eth1: the daemon
#             started before the bus and follows NetworkManager once it is there.
#
# Usage: tests/systemd/run.sh [--no-cargo]
#   --no-cargo   package the binaries already in target/release (and target/dist: the hook)
# Needs root: skipped with a message otherwise, a failure when CI=true. Installs
# systemd-container and mmdebstrap when missing. Cold: the release build plus ~2 min of
# mmdebstrap (cached in target/systemd-test/cache/); cached: about 1 min after the build.
# Functions run through check() and eval look unreachable to shellcheck.
# shellcheck disable=SC2317,SC1091
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$SRC/target/systemd-test
. "$SRC/tests/lib.sh"
read_args "$@"
need_root "systemd boot test"

# Everything below runs in a private mount namespace: every mount made here (tmpfs, overlays)
# goes with it when the script ends, however it ends.
if [ -z "${SYMROUTE_BOOT_PRIVATE:-}" ]; then
    SYMROUTE_BOOT_PRIVATE=1 exec unshare --mount --propagation private sh "$0" "$@"
fi

start_log
# wait_for SECONDS CMD...: runs CMD every 0.2 s until it succeeds, at most SECONDS.
wait_for() {
    limit=$(($(date +%s) + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$limit" ] || return 1
        sleep 0.2
    done
}

# --- tools -------------------------------------------------------------------------------
install_missing "systemd boot test" systemd-nspawn:systemd-container mmdebstrap:mmdebstrap \
    script:bsdutils nsenter:util-linux ip:iproute2

# --- packages and roots ------------------------------------------------------------------
echo "# building the .deb and the .rpm $(elapsed)"
rm -rf "$T/pkg"
build_packages "systemd boot" $NO_CARGO --out "$T/pkg"
DEB=$(grep '\.deb$' "$T/build.out" | head -1)
RPM=$(grep '\.rpm$' "$T/build.out" | head -1)
UNIT_IN_DEB=$T/unit-in-deb
rm -rf "$UNIT_IN_DEB" && mkdir -p "$UNIT_IN_DEB" && dpkg-deb -x "$DEB" "$UNIT_IN_DEB"
UNIT=$UNIT_IN_DEB/usr/lib/systemd/system/symrouted.service
check "the .deb ships packaging/systemd/symrouted.service" cmp -s "$UNIT" "$SRC/packaging/systemd/symrouted.service"
# rpm --dump lists each file's digest (SHA-256 with today's rpm, MD5 with an old one).
rpm_digest=$(rpm -qp --dump "$RPM" 2>/dev/null | awk '$1 == "/usr/lib/systemd/system/symrouted.service" { print $4 }')
check "the .rpm's unit is the .deb's, byte for byte" eval "
    [ -n '$rpm_digest' ] && { [ '$rpm_digest' = \"\$(sha256sum <'$UNIT' | cut -d' ' -f1)\" ] ||
        [ '$rpm_digest' = \"\$(md5sum <'$UNIT' | cut -d' ' -f1)\" ]; }"
note "no Fedora or Alma root can be built here (only Debian's mirror is reachable): the .rpm's unit and scriptlets are not booted"

echo "# cached roots $(elapsed)"
. "$SRC/tests/systemd/roots.sh"
MINIMAL=$(minimal_root) || { bad "minimal root (mmdebstrap)"; exit 1; }
CLOUD=$(cloud_root) || { bad "cloud root (mmdebstrap)"; exit 1; }

# --- one boot ----------------------------------------------------------------------------
ID=$$
NS=symroute-boot-$ID
MACHINE=""
MNT=$T/mnt-$ID
LEADER=""
SESSION=""

# The container's network namespace $NS holds eth0 and eth1; their peers uplink0 and uplink1
# are in $NS-up, the "routers" (10.9N.0.1). (nspawn's --network-interface= would refuse
# interfaces udev has not seen, and udev does not run here: the container is given a
# namespace made for it instead, with CAP_NET_ADMIN that --private-network would imply.)
links() {
    for ns in "$NS" "$NS-up"; do
        ip netns del "$ns" 2>/dev/null || true
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    for i in 0 1; do
        ip -n "$NS" link add "eth$i" type veth peer name "uplink$i" netns "$NS-up"
        ip -n "$NS-up" link set "uplink$i" up
        ip -n "$NS-up" addr add "10.9$((i + 1)).0.1/24" dev "uplink$i"
    done
}

# The container's PID 1: a systemd that is PID 1 in its PID namespace and descends from this
# boot's script(1) (other sessions may boot containers of their own meanwhile).
find_leader() {
    for p in $(pgrep -x systemd); do
        awk '$1 == "NSpid:" { exit !($NF == 1 && NF > 2) }' "/proc/$p/status" 2>/dev/null || continue
        up=$p
        for _ in 1 2 3 4 5 6 7 8; do
            up=$(awk '$1 == "PPid:" { print $2 }' "/proc/$up/status" 2>/dev/null)
            if [ -z "$up" ] || [ "$up" -le 1 ]; then break; fi
            if [ "$up" = "$SESSION" ]; then
                LEADER=$p
                return 0
            fi
        done
    done
    return 1
}

# inside CMD...: runs CMD in the booted container (all its namespaces and root).
inside() {
    nsenter -t "$LEADER" -m -u -i -n -p -C -r -w \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"
}
show() { inside systemctl show -P "$2" "$1" 2>/dev/null; }

# prepare NAME ROOT: a fresh overlay of ROOT at $MNT/NAME/root; the test edits it before boot.
prepare() {
    name=$1
    dir=$MNT/$name
    mkdir -p "$dir"
    mount -t tmpfs -o mode=0755 symroute-boot "$dir"
    mkdir "$dir/upper" "$dir/work" "$dir/root"
    mount -t overlay overlay -o "lowerdir=$2,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
    ROOT=$dir/root
    echo "symroute-$name" >"$ROOT/etc/hostname"
    # The container's console is read, not typed into: no login prompt.
    ln -sf /dev/null "$ROOT/etc/systemd/system/console-getty.service"
    cp "$DEB" "$ROOT/root/symroute.deb"
}

# boot NAME: boots the prepared root in the uplinks' namespace, waits until systemd is done
# starting (running or degraded); the boot console goes to $T/NAME.console.
boot() {
    name=$1
    links
    MACHINE=symroute-boot-$ID-$name
    CONSOLE=$T/$name.console
    : >"$CONSOLE"
    # script(1) gives nspawn the terminal its read-only console needs; PID 1 logs to the
    # console so that what it says before journald runs (ordering cycles) is there too.
    # /proc/sys/net stays writable, as on a host (nspawn makes it writable by itself only for
    # a namespace it made): systemd-sysctl then applies /etc/sysctl.d's net.* keys, which
    # [health] needs (ping_group_range); the namespace is the container's own.
    SYSTEMD_NSPAWN_API_VFS_WRITABLE=network script -qfec "systemd-nspawn --quiet --boot --network-namespace-path=/run/netns/$NS \
        --capability=CAP_NET_ADMIN --register=no --keep-unit \
        --console=read-only --machine=$MACHINE --directory=$ROOT \
        -- --log-target=console --show-status=yes" "$CONSOLE" </dev/null >/dev/null 2>&1 &
    SESSION=$!
    LEADER=""
    wait_for 30 eval "find_leader || ! kill -0 $SESSION 2>/dev/null" || true
    if [ -z "$LEADER" ]; then
        bad "[$name] the container did not start (console: $CONSOLE)"
        tail -20 "$CONSOLE" | sed 's/^/    | /'
        return 1
    fi
    # PID 1 makes its private socket a moment after it starts.
    wait_for 30 inside test -S /run/systemd/private
    state=$(inside timeout 90 systemctl is-system-running --wait 2>"$T/$name.state.err" || true)
    sed 's/^/    | /' "$T/$name.state.err"
    check "[$name] systemd booted (is-system-running: $state)" eval "[ '$state' = running ] || [ '$state' = degraded ]"
    if [ "$state" = degraded ]; then
        for u in $(inside systemctl --failed --no-legend --plain 2>/dev/null | awk '{ print $1 }'); do
            echo "    failed: $u"
            inside journalctl -q -b -u "$u" -o cat 2>/dev/null | tail -4 | sed 's/^/    | /'
        done
    fi
}

# halt: powers the container off (or kills it), waits for nspawn to end.
halt() {
    [ -n "$LEADER" ] || return 0
    inside systemctl poweroff --no-block >/dev/null 2>&1 || true
    if ! wait_for 20 sh -c "! kill -0 $SESSION 2>/dev/null"; then
        kill -9 "$LEADER" 2>/dev/null || true
        wait_for 10 sh -c "! kill -0 $SESSION 2>/dev/null" || kill -9 "$SESSION" 2>/dev/null || true
    fi
    wait "$SESSION" 2>/dev/null || true
    LEADER="" SESSION=""
}

cleanup() {
    if [ -n "$LEADER" ]; then kill -9 "$LEADER" 2>/dev/null || true; fi
    if [ -n "$SESSION" ]; then kill -9 "$SESSION" 2>/dev/null || true; fi
    for ns in "$NS" "$NS-up"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    # The mounts go with this mount namespace; the folders are removed here.
    for d in "$MNT"/*; do
        [ -d "$d" ] || continue
        umount -R "$d" 2>/dev/null || umount -l "$d" 2>/dev/null || true
    done
    rm -rf "$MNT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The checks every boot makes.
no_cycle() {
    if grep -qiE 'ordering cycle|to break ordering cycle' "$CONSOLE"; then
        grep -iE 'ordering cycle|break ordering|deleted' "$CONSOLE" | sed 's/^/    | /'
        return 1
    fi
}
active() { [ "$(show "$1" ActiveState)" = active ]; }
rule_for() { inside ip -N rule show | grep -qE "from $1 lookup [0-9]+ proto 83"; }
journal_has() { inside journalctl -q -b -u symrouted.service -o cat | grep -qF -- "$1"; }
started_before() {
    a=$(show "$1" ExecMainStartTimestampMonotonic)
    b=$(show "$2" ExecMainStartTimestampMonotonic)
    [ -z "$b" ] || [ "$b" = 0 ] && b=$(show "$2" ActiveEnterTimestampMonotonic)
    [ -n "$a" ] && [ -n "$b" ] && [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && [ "$a" -lt "$b" ]
}
boot_checks() {
    check "[$1] no ordering cycle on the boot console" no_cycle
    check "[$1] symrouted.service active" active symrouted.service
    check "[$1] symrouted.service is not after dbus.service (the bus comes later)" \
        eval "! echo '$(show symrouted.service After)' | grep -qw dbus.service"
}
# addresses IP/PREFIX IP/PREFIX: what a boot without a network manager gets by hand.
addresses() {
    inside ip addr add "$1" dev eth0
    inside ip link set eth0 up
    inside ip route add default via 10.91.0.1 dev eth0 metric 100
    inside ip addr add "$2" dev eth1
    inside ip link set eth1 up
    inside ip route add default via 10.92.0.1 dev eth1 metric 101
}

# health_checks: [health] under the unit's sandbox, in the booted minimal root. The uplinks'
# namespace answers pings for an "internet" address on its loopback (198.51.100.1,
# 2001:db8:ff::1: through eth0 for both families, through eth1 for IPv4). First without the
# health drop-in (refused, said in the journal, routing goes on), then with the shipped
# drop-in copied as the docs say, its example targets still in it (probes dropped by
# IPAddressAllow=), then with the targets listed (probes answered, the uplinks up with an RTT
# in the state file), then an uplink's answers blackholed (it goes down and back up).
HEALTH_DROPIN=/etc/systemd/system/symrouted.service.d/health.conf
# invocation_has TEXT: the current run of symrouted.service logged TEXT.
invocation_has() {
    inv=$(show symrouted.service InvocationID)
    [ -n "$inv" ] && inside journalctl -q -b "_SYSTEMD_INVOCATION_ID=$inv" -o cat | grep -qF -- "$1"
}
# uplink_state IF FAMILY STATE: the state file says IF's FAMILY is STATE, with an RTT for up.
uplink_state() {
    case $3 in
        up) pattern="^uplink $1 [0-9]+ $2 up loss=0\.000 rtt_ms=[0-9.]+ " ;;
        *) pattern="^uplink $1 [0-9]+ $2 $3 " ;;
    esac
    inside cat /run/symroute/health 2>/dev/null | grep -qE "$pattern"
}
restart_symrouted() {
    inside systemctl daemon-reload
    inside systemctl restart symrouted.service
    wait_for 10 active symrouted.service
}
health_checks() {
    ip -n "$NS-up" addr add 198.51.100.1/32 dev lo
    ip -n "$NS-up" addr add 2001:db8:ff::1/128 dev lo
    ip -n "$NS-up" addr add 2001:db8:91::1/64 dev uplink0 nodad
    inside ip addr add 2001:db8:91::2/64 dev eth0 nodad
    inside ip -6 route add default via 2001:db8:91::1 dev eth0 metric 100
    inside cp /etc/symroute/symroute.toml /root/symroute.toml.before-health
    inside sh -c 'printf "\n[health]\ntargets = [\"198.51.100.1\", \"2001:db8:ff::1\"]\ninterval = 0.5\ndown = 2\nup = 2\n" >>/etc/symroute/symroute.toml'
    echo "# [health] probing under the unit's sandbox $(elapsed)"
    echo "    ping_group_range in the container: $(inside cat /proc/sys/net/ipv4/ping_group_range)"

    # Without the drop-in: socket(AF_INET) is refused by RestrictAddressFamilies=.
    restart_symrouted
    check "[health] without the drop-in: one error per uplink says probing is refused" wait_for 10 eval "
        invocation_has 'eth0: cannot probe: Address family not supported by protocol' &&
        invocation_has 'eth1: cannot probe: Address family not supported by protocol'"
    inside journalctl -q -b -u symrouted.service -o cat | grep -F 'cannot probe' | sort -u | sed 's/^/    | /'
    inside ip addr add 10.91.0.12/24 dev eth0
    check "[health] ... and the daemon still routes (a new address gets its rule)" eval "
        wait_for 10 rule_for 10.91.0.12 && active symrouted.service"
    inside ip addr del 10.91.0.12/24 dev eth0

    # The drop-in as shipped (/usr/share/symroute, kept where minimal images drop
    # /usr/share/doc), installed as its header and the docs say.
    inside mkdir -p "${HEALTH_DROPIN%/*}"
    inside cp /usr/share/symroute/symrouted-health.conf "$HEALTH_DROPIN"
    restart_symrouted
    # Debian 12 leaves net.ipv4.ping_group_range at the kernel's "1 0" (its systemd does
    # not ship upstream's 50-default.conf): ping sockets are refused to every group.
    check "[health] ping_group_range as Debian 12 leaves it (1 0): the error names the sysctl" wait_for 10 eval "
        invocation_has 'eth0: cannot probe: Permission denied (os error 13): ping sockets are not allowed'"
    inside journalctl -q -b _SYSTEMD_INVOCATION_ID="$(show symrouted.service InvocationID)" -o cat |
        grep -F 'cannot probe' | sort -u | sed 's/^/    | /'
    check "[health] ... and symroute doctor fails on it" eval "
        inside symroute doctor 2>&1 | grep -q 'ping_group_range is \"1 0\"'"
    # The sysctl as the docs say, kept in /etc/sysctl.d; the daemon retries its sockets every
    # round, so no restart.
    inside sh -c 'echo "net.ipv4.ping_group_range = 0 0" >/etc/sysctl.d/60-symroute-health.conf'
    inside systemctl restart systemd-sysctl.service
    check "[health] systemd-sysctl set ping_group_range to 0 0" eval "
        [ \"\$(inside cat /proc/sys/net/ipv4/ping_group_range | tr -s '\t' ' ')\" = '0 0' ]"
    # The drop-in's example targets are not ours: IPAddressAllow= drops every echo, if this
    # systemd can enforce it (a cgroup BPF program: unified cgroups only).
    wait_for 10 eval "(uplink_state eth0 ipv4 down && uplink_state eth1 ipv4 down && uplink_state eth0 ipv6 down) ||
        (uplink_state eth0 ipv4 up && uplink_state eth1 ipv4 up && uplink_state eth0 ipv6 up)" || true
    ALLOW_ENFORCED=yes
    if [ "$(inside stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] ||
        uplink_state eth0 ipv4 down; then
        check "[health] the drop-in with targets it does not list: IPAddressAllow= drops the echoes, the uplinks go down" \
            eval "uplink_state eth0 ipv4 down && uplink_state eth1 ipv4 down && uplink_state eth0 ipv6 down"
    else
        note "[health] IPAddressDeny=/IPAddressAllow= NOT ENFORCED here: the container's cgroups are not unified (this machine's are a v1/v2 hybrid), so systemd has no BPF firewall for units and the echoes to targets the drop-in does not list were answered; what IPAddressAllow= lets through is not tested (its syntax is: verify, show)"
        ALLOW_ENFORCED=no
    fi
    inside cat /run/symroute/health | sed 's/^/    | /'

    # The targets listed, as the drop-in says.
    inside sed -i 's/^IPAddressAllow=.*/IPAddressAllow=198.51.100.1 2001:db8:ff::1/' "$HEALTH_DROPIN"
    restart_symrouted
    check "[health] with the targets in IPAddressAllow=: eth0 and eth1 up for IPv4, eth0 for IPv6, each with an RTT" \
        wait_for 15 eval "uplink_state eth0 ipv4 up && uplink_state eth1 ipv4 up && uplink_state eth0 ipv6 up"
    inside cat /run/symroute/health | sed 's/^/    | /'
    check "[health] ... no socket refused" eval "! invocation_has 'cannot probe'"
    if [ "$ALLOW_ENFORCED" = yes ]; then
        check "[health] ... logged as up again" invocation_has 'eth0: IPv4 is up again'
    fi
    check "[health] the unit with the drop-in: IPAddressAllow= holds the targets" eval "
        show symrouted.service IPAddressAllow | grep -q '198.51.100.1' &&
        show symrouted.service IPAddressAllow | grep -q '2001:db8:ff::1'"
    inside systemd-analyze verify --man=no symrouted.service >"$T/verify-health.out" 2>&1 && verify_rc=0 || verify_rc=$?
    check "[health] systemd-analyze verify with the drop-in: clean" eval "[ $verify_rc -eq 0 ] && [ ! -s '$T/verify-health.out' ]"
    sed 's/^/    | /' "$T/verify-health.out"

    # eth0's IPv4 answers lost beyond its link: down, then back.
    ip -n "$NS-up" route add blackhole 10.91.0.2/32
    check "[health] eth0's answers blackholed: eth0 IPv4 down (logged), eth1 still up" wait_for 10 eval "
        uplink_state eth0 ipv4 down && invocation_has 'eth0: IPv4 is down' && uplink_state eth1 ipv4 up"
    ip -n "$NS-up" route del blackhole 10.91.0.2/32
    check "[health] ... and up again once they come back" wait_for 10 uplink_state eth0 ipv4 up

    exposure=$(inside systemd-analyze security symrouted.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for symrouted.service: \([0-9.]*\).*/\1/p')
    check "[health] systemd-analyze security with the health drop-in: exposure ${exposure:-unknown} <= 2.0" \
        awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }'

    echo "# [health] done $(elapsed)"
    # Back to the root as it was: the next boot reuses it.
    inside rm -f "$HEALTH_DROPIN" /etc/sysctl.d/60-symroute-health.conf
    inside cp /root/symroute.toml.before-health /etc/symroute/symroute.toml
    restart_symrouted
}

# From here a failed command is a failed check, not the end of the run.
set +e
mkdir -p "$MNT"
# SYMROUTE_BOOTS="minimal cloud nm" runs only those boots (networkd comes with minimal).
want() { case " ${SYMROUTE_BOOTS:-minimal cloud nm} " in *" $1 "*) ;; *) return 1 ;; esac; }

# === minimal: install on a running system ================================================
echo "# boot: minimal Debian, the .deb installed while systemd runs $(elapsed)"
want minimal && prepare minimal "$MINIMAL"
if want minimal && boot minimal; then
    check "[minimal] no /bin/kill, no procps (a minimal Debian)" eval "! inside test -e /bin/kill && ! inside test -e /usr/bin/kill"
    addresses 10.91.0.2/24 10.92.0.2/24
    if inside dpkg -i /root/symroute.deb >"$T/minimal.dpkg" 2>&1; then ok "[minimal] dpkg -i"; else bad "[minimal] dpkg -i"; fi
    sed 's/^/    | /' "$T/minimal.dpkg"
    check "[minimal] the postinst started symrouted.service and it is ready (Type=notify)" wait_for 10 active symrouted.service
    check "[minimal] enabled" eval "[ \"\$(inside systemctl is-enabled symrouted.service)\" = enabled ]"
    check "[minimal] STATUS: following rtnetlink" eval "show symrouted.service StatusText | grep -q '^following rtnetlink'"
    check "[minimal] rules for eth0's and eth1's addresses" wait_for 10 eval "rule_for 10.91.0.2 && rule_for 10.92.0.2"
    check "[minimal] the daemon's log lines reach the journal" journal_has "in sync; following rtnetlink"

    pid=$(show symrouted.service MainPID)
    if inside systemctl reload symrouted.service >"$T/reload.out" 2>&1; then ok "[minimal] systemctl reload"; else
        bad "[minimal] systemctl reload"
        sed 's/^/    | /' "$T/reload.out"
        inside journalctl -q -b -u symrouted.service -o cat | tail -5 | sed 's/^/    | /'
    fi
    check "[minimal] reload reloaded (same process, logged, active)" eval "
        [ \"\$(show symrouted.service MainPID)\" = '$pid' ] && active symrouted.service &&
        wait_for 10 journal_has 'configuration reloaded'"

    # A broken file: reload keeps the configuration in force; a restart fails with exit 2 and
    # is not restarted again (RestartPreventExitStatus=2).
    inside cp /etc/symroute/symroute.toml /root/symroute.toml.good
    inside sh -c 'echo "this is = = not toml" >>/etc/symroute/symroute.toml'
    inside systemctl reload symrouted.service >/dev/null 2>&1 || true
    check "[minimal] reload with a broken file: still running, the same process, one error logged" eval "
        active symrouted.service && [ \"\$(show symrouted.service MainPID)\" = '$pid' ] &&
        wait_for 10 journal_has 'keeping the configuration in force'"
    inside systemctl restart symrouted.service >/dev/null 2>&1 || true
    restarts_at() { [ "$(show symrouted.service ExecMainStatus)" = 2 ] && [ "$(show symrouted.service ActiveState)" = failed ]; }
    check "[minimal] restart with a broken file: fails with exit status 2" wait_for 10 restarts_at
    # RestartSec=2s: a looping unit would have been started again within 3 s.
    sleep 3
    check "[minimal] ... and is not restarted in a loop (NRestarts=$(show symrouted.service NRestarts))" eval "
        [ \"\$(show symrouted.service NRestarts)\" = 0 ] && [ \"\$(show symrouted.service ActiveState)\" = failed ]"
    inside cp /root/symroute.toml.good /etc/symroute/symroute.toml
    inside systemctl reset-failed symrouted.service >/dev/null 2>&1 || true
    inside systemctl start symrouted.service >/dev/null 2>&1 || true
    check "[minimal] starts again with the file repaired" wait_for 10 active symrouted.service

    # The watchdog: a stopped process sends no WATCHDOG=1. The unit's 30 s are shortened by a
    # drop-in here (the mechanism is the same, the wait shorter).
    inside mkdir -p /run/systemd/system/symrouted.service.d
    inside sh -c 'printf "[Service]\nWatchdogSec=3s\n" >/run/systemd/system/symrouted.service.d/test-watchdog.conf'
    inside systemctl daemon-reload
    inside systemctl restart symrouted.service
    wait_for 10 active symrouted.service || true
    pid=$(show symrouted.service MainPID)
    note "[minimal] watchdog: WatchdogSec=3s by a drop-in for the test (the unit has 30s)"
    # The shell's kill: there is no /bin/kill here.
    inside sh -c "kill -STOP $pid" 2>/dev/null || true
    restarted() { p=$(show symrouted.service MainPID); [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$pid" ] && active symrouted.service; }
    check "[minimal] the watchdog killed the stopped daemon and a new one runs" wait_for 20 restarted
    # PID 1 logs to the console here (--log-target=console), not to the journal.
    check "[minimal] ... reported by systemd as a watchdog timeout" \
        grep -q 'symrouted.service: Watchdog timeout' "$CONSOLE"
    inside rm -rf /run/systemd/system/symrouted.service.d
    inside systemctl daemon-reload
    inside systemctl restart symrouted.service
    wait_for 10 active symrouted.service || true

    # man pages are not installed in a minimal root (no man-db): --man=no.
    inside systemd-analyze verify --man=no symrouted.service >"$T/verify.out" 2>&1 && verify_rc=0 || verify_rc=$?
    check "[minimal] systemd-analyze verify symrouted.service: clean" eval "[ $verify_rc -eq 0 ] && [ ! -s '$T/verify.out' ]"
    sed 's/^/    | /' "$T/verify.out"
    exposure=$(inside systemd-analyze security symrouted.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for symrouted.service: \([0-9.]*\).*/\1/p')
    check "[minimal] systemd-analyze security: exposure ${exposure:-unknown} <= 2.0" \
        awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 2.0) }'

    tasks=$(show symrouted.service TasksCurrent)
    memory=$(show symrouted.service MemoryCurrent)
    check "[minimal] TasksMax=16 and MemoryMax=512M in force in the unit" eval "
        [ \"\$(show symrouted.service TasksMax)\" = 16 ] && [ \"\$(show symrouted.service MemoryMax)\" = 536870912 ]"
    if [ "$tasks" = "[not set]" ] || [ -z "$tasks" ] || [ "$memory" = "[not set]" ] || [ -z "$memory" ]; then
        note "[minimal] TasksMax/MemoryMax NOT ENFORCED here: the pids and memory controllers are cgroup v1 on this machine, which a container cannot use (TasksCurrent=$tasks MemoryCurrent=$memory); the limits are not tested"
    else
        cg=$(show symrouted.service ControlGroup)
        check "[minimal] the service's cgroup enforces pids.max=16 and memory.max=512M" eval "
            [ \"\$(inside cat /sys/fs/cgroup$cg/pids.max)\" = 16 ] && [ \"\$(inside cat /sys/fs/cgroup$cg/memory.max)\" = 536870912 ]"
    fi

    health_checks
    halt

    # === networkd: the same root rebooted, systemd-networkd configures the uplinks =======
    echo "# boot: the minimal root rebooted with systemd-networkd $(elapsed)"
    for i in 0 1; do
        cat >"$ROOT/etc/systemd/network/5$i-eth$i.network" <<EOF
[Match]
Name=eth$i
[Network]
Address=10.9$((i + 1)).0.3/24
[Route]
Gateway=10.9$((i + 1)).0.1
Metric=10$i
EOF
    done
    ln -sf /lib/systemd/system/systemd-networkd.service "$ROOT/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    if boot networkd; then
        boot_checks networkd
        check "[networkd] systemd-networkd.service active" active systemd-networkd.service
        check "[networkd] symrouted started before systemd-networkd" started_before symrouted.service systemd-networkd.service
        check "[networkd] rules for the addresses networkd set" wait_for 15 eval "rule_for 10.91.0.3 && rule_for 10.92.0.3"
        check "[networkd] networkd keeps foreign rules (the packaged drop-in)" eval "
            inside networkctl reconfigure eth1 && sleep 1 && wait_for 15 rule_for 10.92.0.3"
    fi
    halt
fi

# === nobus: no D-Bus at all =================================================================
if want minimal; then
echo "# boot: the minimal root without D-Bus, the .deb installed before the boot $(elapsed)"
prepare nobus "$MINIMAL"
# logind needs the bus: masked with it.
for u in dbus.service dbus.socket systemd-logind.service; do ln -sf /dev/null "$ROOT/etc/systemd/system/$u"; done
chroot "$ROOT" dpkg -i /root/symroute.deb >"$T/nobus.dpkg" 2>&1 || sed 's/^/    | /' "$T/nobus.dpkg"
if boot nobus; then
    boot_checks nobus
    addresses 10.91.0.7/24 10.92.0.7/24
    check "[nobus] the daemon waits for the bus's socket and follows the kernel" eval "
        journal_has 'no system bus yet' && wait_for 10 eval 'rule_for 10.91.0.7 && rule_for 10.92.0.7'"
fi
halt
fi

# === cloud: cloud-init (NoCloud) + ifupdown ==============================================
if want cloud; then
echo "# boot: a cloud image (cloud-init NoCloud, ifupdown) with the .deb installed $(elapsed)"
prepare cloud "$CLOUD"
seed=$ROOT/var/lib/cloud/seed/nocloud
mkdir -p "$seed"
printf 'instance-id: symroute-boot-%s\nlocal-hostname: symroute-cloud\n' "$ID" >"$seed/meta-data"
# C.UTF-8 needs no locale generated (the image's en_US.UTF-8 would fail cloud-config here).
printf '#cloud-config\nlocale: C.UTF-8\n' >"$seed/user-data"
cat >"$seed/network-config" <<'EOF'
version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: static
        address: 10.91.0.4/24
        gateway: 10.91.0.1
  - type: physical
    name: eth1
    subnets:
      - type: static
        address: 10.92.0.4/24
        routes:
          - network: 0.0.0.0
            netmask: 0.0.0.0
            gateway: 10.92.0.1
            metric: 101
EOF
printf 'datasource_list: [ NoCloud, None ]\n' >"$ROOT/etc/cloud/cloud.cfg.d/90-symroute-test.cfg"
# A cloud image has no NetworkManager.
for u in NetworkManager.service NetworkManager-wait-online.service NetworkManager-dispatcher.service; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$u"
done
chroot "$ROOT" dpkg -i /root/symroute.deb >"$T/cloud.dpkg" 2>&1 && dpkg_rc=0 || dpkg_rc=$?
check "[cloud] dpkg -i into the image (enables symrouted.service)" eval "[ $dpkg_rc -eq 0 ] &&
    [ -L '$ROOT/etc/systemd/system/multi-user.target.wants/symrouted.service' ]"
[ "$dpkg_rc" -eq 0 ] || sed 's/^/    | /' "$T/cloud.dpkg"
if boot cloud; then
    boot_checks cloud
    check "[cloud] cloud-init-local.service and cloud-init.service ran" eval "
        [ \"\$(show cloud-init-local.service Result)\" = success ] && active cloud-init-local.service &&
        [ \"\$(show cloud-init.service Result)\" = success ] && active cloud-init.service"
    check "[cloud] cloud-init rendered the seed for ifupdown" inside grep -qs 10.92.0.4 /etc/network/interfaces.d/50-cloud-init
    check "[cloud] networking.service ran" active networking.service
    check "[cloud] symrouted started before networking.service" started_before symrouted.service networking.service
    check "[cloud] rules for the addresses ifupdown set" wait_for 15 eval "rule_for 10.91.0.4 && rule_for 10.92.0.4"
fi
halt

fi

# === nm: NetworkManager starts after symrouted ============================================
if want nm; then
echo "# boot: NetworkManager, started after symrouted and the bus $(elapsed)"
prepare nm "$CLOUD"
for u in cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service networking.service; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$u"
done
mkdir -p "$ROOT/etc/NetworkManager/conf.d" "$ROOT/etc/NetworkManager/system-connections"
printf '[main]\nno-auto-default=*\n[keyfile]\nunmanaged-devices=*,except:interface-name:eth0,except:interface-name:eth1\n[connectivity]\nenabled=false\n' \
    >"$ROOT/etc/NetworkManager/conf.d/90-symroute-test.conf"
for i in 0 1; do
    cat >"$ROOT/etc/NetworkManager/system-connections/eth$i.nmconnection" <<EOF
[connection]
id=eth$i
type=ethernet
interface-name=eth$i
[ipv4]
method=manual
address1=10.9$((i + 1)).0.5/24,10.9$((i + 1)).0.1
route-metric=10$i
[ipv6]
method=ignore
EOF
    chmod 0600 "$ROOT/etc/NetworkManager/system-connections/eth$i.nmconnection"
done
chroot "$ROOT" dpkg -i /root/symroute.deb >"$T/nm.dpkg" 2>&1 || sed 's/^/    | /' "$T/nm.dpkg"
if boot nm; then
    boot_checks nm
    check "[nm] NetworkManager.service active" active NetworkManager.service
    check "[nm] symrouted started before dbus.service and NetworkManager.service" eval "
        started_before symrouted.service dbus.service && started_before symrouted.service NetworkManager.service"
    check "[nm] the daemon follows NetworkManager (STATUS=, log)" wait_for 15 eval "
        show symrouted.service StatusText | grep -q 'following rtnetlink and NetworkManager' &&
        journal_has 'NetworkManager'"
    inside journalctl -q -b -u symrouted.service -o cat | grep -iE 'bus|NetworkManager' | sed 's/^/    | /'
    check "[nm] rules for the addresses NetworkManager set" wait_for 15 eval "rule_for 10.91.0.5 && rule_for 10.92.0.5"
    inside nmcli connection modify eth1 ipv4.addresses 10.92.0.6/24 >/dev/null 2>&1 || true
    inside nmcli connection up eth1 >/dev/null 2>&1 || true
    check "[nm] an address changed through NetworkManager gets its rule, the old one goes" \
        wait_for 15 eval "rule_for 10.92.0.6 && ! rule_for 10.92.0.5"
fi
halt
fi

finish "systemd boot"
