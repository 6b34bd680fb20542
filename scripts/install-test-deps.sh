#!/bin/sh
# Installs what symroute's root tests need, only the packages that are missing:
#   iproute2 iputils-ping nftables       netns labs, pings, the routers' IPv6 rpf filter
#   iptables                             Docker-style iptables-nft port publishing (hosts tests)
#   network-manager dnsmasq dbus          end-to-end tests with real NetworkManager and DHCP
#   systemd networkd-dispatcher           end-to-end tests with real systemd-networkd
#   ifupdown isc-dhcp-client dhcpcd-base  end-to-end tests with real ifup/ifdown, dhclient, dhcpcd
#   util-linux procps coreutils           unshare/nsenter/mount/setpriv, sysctl, timeout
#   python3                               an unprivileged user forging D-Bus signals (stdlib only)
#   systemd-container mmdebstrap          the boot test: Debian roots booted with systemd-nspawn
#   keepalived openvpn bird2              third-party peers: VRRP VIPs, a VPN client and server
#                                         (a static key made at test time), eBGP with many routes
#   lintian debootstrap rpm dpkg-dev      the packaging test (tests/packaging/run.sh)
#   (and) shellcheck                      `make lint` (scripts/lint-shell.sh), the packaging test
#
# The tests run their own copies of NetworkManager, dnsmasq, D-Bus and networkd inside network
# and mount namespaces. Installing the packages must not start them on the machine itself: a
# NetworkManager or dnsmasq in the root namespace would take over the machine's network or its
# DNS port; a keepalived, OpenVPN or BIRD there would claim addresses or install routes. So:
#   - while installing, /usr/sbin/policy-rc.d refuses every service start (invoke-rc.d and
#     deb-systemd-invoke ask it first); an existing policy-rc.d is left as it is;
#   - services of packages this run installed that manage the network (NetworkManager, dnsmasq,
#     ifupdown's networking.service, keepalived, OpenVPN, BIRD) are disabled at boot, so a reboot does not start them
#     either (ifupdown's postinst only writes a default /etc/network/interfaces with `lo`);
#   - afterwards it checks that no network daemon appeared in the root network namespace, and
#     fails naming it if one did.
set -eu

PACKAGES="iproute2 iputils-ping nftables iptables network-manager dnsmasq dbus systemd networkd-dispatcher ifupdown isc-dhcp-client dhcpcd-base util-linux procps coreutils python3 lintian debootstrap rpm dpkg-dev systemd-container mmdebstrap keepalived openvpn bird2 shellcheck"

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: must run as root" >&2
    exit 1
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

missing=""
for pkg in $PACKAGES; do
    installed "$pkg" || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    echo "install-test-deps: all present"
    exit 0
fi

# "pid name" of network daemons running in the root network namespace.
root_daemons() {
    root_ns=$(readlink /proc/1/ns/net 2>/dev/null || true)
    for comm in NetworkManager dnsmasq systemd-network networkd-dispat systemd-udevd \
        wpa_supplicant ModemManager dhclient dhcpcd keepalived openvpn bird; do
        for pid in $(pgrep -x "$comm" 2>/dev/null || true); do
            if [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)" = "$root_ns" ]; then
                echo "$pid $comm"
            fi
        done
    done | sort
}
before=$(root_daemons)

policy=/usr/sbin/policy-rc.d
own_policy=""
cleanup() {
    if [ -n "$own_policy" ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# symroute scripts/install-test-deps.sh: no service starts while it installs\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    own_policy=yes
fi

echo "install-test-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists, an old one stale lists: update and retry once.
# shellcheck disable=SC2086
if ! apt-get install -y -qq --no-install-recommends $missing; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
fi

# Not at boot either: these would manage the machine's own network or DNS.
for pkg in network-manager dnsmasq ifupdown keepalived openvpn bird2; do
    case " $missing " in *" $pkg "*) ;; *) continue ;; esac
    case "$pkg" in
        network-manager) units="NetworkManager.service NetworkManager-wait-online.service NetworkManager-dispatcher.service" init="" ;;
        dnsmasq) units="dnsmasq.service" init=dnsmasq ;;
        ifupdown) units="networking.service" init=networking ;;
        keepalived) units="keepalived.service" init=keepalived ;;
        openvpn) units="openvpn.service" init=openvpn ;;
        bird2) units="bird.service" init=bird ;;
    esac
    if command -v systemctl >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        systemctl disable --quiet $units 2>/dev/null || true
    fi
    if [ -n "$init" ] && [ -x "/etc/init.d/$init" ] && command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d "$init" disable >/dev/null 2>&1 || true
    fi
    echo "install-test-deps: $pkg installed but not enabled at boot (the tests start their own)"
done

after=$(root_daemons)
started=$(printf '%s\n' "$after" | while read -r pid comm; do
    [ -n "$pid" ] || continue
    printf '%s\n' "$before" | grep -qx "$pid $comm" || echo "$pid $comm"
done)
if [ -n "$started" ]; then
    echo "install-test-deps: ERROR: installing started network daemons in the root namespace:" >&2
    printf '%s\n' "$started" | sed 's/^/  /' >&2
    echo "install-test-deps: they manage this machine's own network; stop them" >&2
    exit 1
fi
echo "install-test-deps: done; no network daemon was started on the machine itself"
