#!/bin/sh
# Installs symroute's event integrations where this host has the software they plug into:
#
#   NetworkManager        dispatcher.d/50-symroute
#                         -> $DESTDIR/etc/NetworkManager/dispatcher.d/50-symroute
#   networkd-dispatcher   networkd-dispatcher/50-symroute
#                         -> $DESTDIR/etc/networkd-dispatcher/{routable,configured,degraded,off,no-carrier}.d/50-symroute
#   systemd-networkd      packaging/networkd/symroute.conf
#                         -> $DESTDIR/etc/systemd/networkd.conf.d/symroute.conf
#   ifupdown              ifupdown/symroute
#                         -> $DESTDIR/etc/network/{if-up.d,if-post-down.d}/symroute
#   isc-dhcp-client       dhcp/dhclient-exit-hook
#                         -> $DESTDIR/etc/dhcp/dhclient-exit-hooks.d/symroute
#   dhcpcd                dhcp/dhcpcd-hook
#                         -> $DESTDIR/usr/lib/dhcpcd/dhcpcd-hooks/50-symroute (or the
#                            /lib/dhcpcd/dhcpcd-hooks of older dhcpcd5, whichever exists)
#
# Usage: install-integrations.sh SBINDIR [DESTDIR]
#        install-integrations.sh --remove [DESTDIR]
#   SBINDIR   absolute directory symroute-hook is installed in (without DESTDIR), written into
#             the scripts in place of @SBINDIR@ (dispatchers run them with no PATH)
#   DESTDIR   staging root, empty for the live system
#   --remove  deletes every file this script can install (state folders are left)
# Environment:
#   SYMROUTE_INTEGRATIONS  which to install instead of detecting them: a list of
#                          networkmanager, networkd-dispatcher, networkd, ifupdown, dhclient,
#                          dhcpcd, or "all" / "none"
#
# Scripts are installed owned by root with mode exactly 0755 (networkd-dispatcher skips
# anything else, NetworkManager skips scripts writable by others); the dhclient and dhcpcd
# hooks, which their clients source, 0644. Running it again changes
# nothing; it prints what it installed or found already in place.
set -eu

usage() {
    echo "usage: $0 SBINDIR [DESTDIR]" >&2
    echo "       $0 --remove [DESTDIR]" >&2
    exit 2
}
NETWORKD_STATES="routable configured degraded off no-carrier"
# dhcpcd's hook folder: the one this host's dhcpcd has, else Debian's current one.
dhcpcd_hooks() {
    for d in /usr/lib/dhcpcd/dhcpcd-hooks /lib/dhcpcd/dhcpcd-hooks; do
        if [ -d "$d" ]; then
            echo "$d"
            return 0
        fi
    done
    echo /usr/lib/dhcpcd/dhcpcd-hooks
}

if [ "${1:-}" = --remove ]; then
    [ $# -le 2 ] || usage
    DESTDIR=${2:-}
    DESTDIR=${DESTDIR%/}
    for f in "$DESTDIR/etc/NetworkManager/dispatcher.d/50-symroute" \
        "$DESTDIR/etc/systemd/networkd.conf.d/symroute.conf" \
        "$DESTDIR/etc/network/if-up.d/symroute" "$DESTDIR/etc/network/if-post-down.d/symroute" \
        "$DESTDIR/etc/dhcp/dhclient-exit-hooks.d/symroute" \
        "$DESTDIR/usr/lib/dhcpcd/dhcpcd-hooks/50-symroute" \
        "$DESTDIR/lib/dhcpcd/dhcpcd-hooks/50-symroute" \
        $(for state in $NETWORKD_STATES; do
            echo "$DESTDIR/etc/networkd-dispatcher/$state.d/50-symroute"
        done); do
        # Only files that are ours (they all say so in their first lines).
        if [ -f "$f" ] && head -n 3 "$f" | grep -q '^# symroute'; then
            rm -f "$f"
            echo "removed    $f"
        fi
    done
    exit 0
fi

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
SBINDIR=$1
DESTDIR=${2:-}
case "$SBINDIR" in
    /*) ;;
    *) echo "install-integrations: SBINDIR must be an absolute path, got '$SBINDIR'" >&2; exit 2 ;;
esac
case "$SBINDIR" in
    *[!A-Za-z0-9/._+-]*)
        echo "install-integrations: SBINDIR '$SBINDIR' has characters a script path cannot carry" >&2
        exit 2 ;;
esac
SBINDIR=${SBINDIR%/}
[ -n "$SBINDIR" ] || SBINDIR=/
DESTDIR=${DESTDIR%/}

SRC=$(cd "$(dirname "$0")/.." && pwd)

owner=""
if [ "$(id -u)" -eq 0 ]; then
    owner="-o root -g root"
fi

# --- what does this host have? ---------------------------------------------------------------
has_networkmanager() {
    [ -d /etc/NetworkManager ] || command -v NetworkManager >/dev/null 2>&1 ||
        [ -x /usr/sbin/NetworkManager ]
}
has_networkd_dispatcher() {
    [ -d /etc/networkd-dispatcher ] || command -v networkd-dispatcher >/dev/null 2>&1 ||
        [ -x /usr/bin/networkd-dispatcher ]
}
has_ifupdown() {
    [ -x /sbin/ifup ] || [ -x /usr/sbin/ifup ]
}
has_dhclient() {
    [ -x /sbin/dhclient-script ] || [ -x /usr/sbin/dhclient-script ]
}
has_dhcpcd() {
    { [ -x /sbin/dhcpcd ] || [ -x /usr/sbin/dhcpcd ]; } &&
        { [ -d /usr/lib/dhcpcd/dhcpcd-hooks ] || [ -d /lib/dhcpcd/dhcpcd-hooks ]; }
}
has_networkd() {
    for f in /lib/systemd/systemd-networkd /usr/lib/systemd/systemd-networkd; do
        [ -x "$f" ] && return 0
    done
    return 1
}

want_nm=no want_nd=no want_networkd=no want_ifupdown=no want_dhclient=no want_dhcpcd=no
case "${SYMROUTE_INTEGRATIONS-auto}" in
    auto)
        if has_networkmanager; then want_nm=yes; fi
        if has_networkd_dispatcher; then want_nd=yes; fi
        if has_networkd; then want_networkd=yes; fi
        if has_ifupdown; then want_ifupdown=yes; fi
        if has_dhclient; then want_dhclient=yes; fi
        if has_dhcpcd; then want_dhcpcd=yes; fi
        ;;
    *)
        for i in $(echo "$SYMROUTE_INTEGRATIONS" | tr ',' ' '); do
            case "$i" in
                all) want_nm=yes want_nd=yes want_networkd=yes want_ifupdown=yes want_dhclient=yes want_dhcpcd=yes ;;
                none) ;;
                networkmanager | NetworkManager) want_nm=yes ;;
                networkd-dispatcher) want_nd=yes ;;
                networkd | systemd-networkd) want_networkd=yes ;;
                ifupdown) want_ifupdown=yes ;;
                dhclient | isc-dhcp-client) want_dhclient=yes ;;
                dhcpcd) want_dhcpcd=yes ;;
                *) echo "install-integrations: unknown integration '$i' in SYMROUTE_INTEGRATIONS" >&2; exit 2 ;;
            esac
        done
        ;;
esac

# --- helpers ---------------------------------------------------------------------------------
tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -f "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# mkdir_0755 DIR: creates DIR (and parents) with mode 0755.
mkdir_0755() {
    if [ ! -d "$1" ]; then
        # shellcheck disable=SC2086
        install -d -m 0755 $owner "$1"
    fi
}

# install_file SRC DEST MODE SUBSTITUTE: copies SRC to DEST (replacing @SBINDIR@ when
# SUBSTITUTE=yes), atomically, with MODE and root ownership; reports what it did.
install_file() {
    src=$1 dest=$2 mode=$3 subst=$4
    mkdir_0755 "$(dirname "$dest")"
    tmp=$(mktemp "$(dirname "$dest")/.symroute.XXXXXX")
    if [ "$subst" = yes ]; then
        sed "s|@SBINDIR@|$SBINDIR|g" "$src" >"$tmp"
    else
        cat "$src" >"$tmp"
    fi
    if grep -q '@SBINDIR@' "$tmp"; then
        echo "install-integrations: $src: @SBINDIR@ left after substitution" >&2
        exit 1
    fi
    chmod "$mode" "$tmp"
    if [ -n "$owner" ]; then
        chown root:root "$tmp"
    fi
    if [ -f "$dest" ] && cmp -s "$tmp" "$dest" && [ "$(stat -c %a:%u:%g "$tmp")" = "$(stat -c %a:%u:%g "$dest")" ]; then
        rm -f "$tmp"
        tmp=""
        echo "unchanged  $dest"
        changed=no
        return 0
    fi
    mv -f "$tmp" "$dest"
    tmp=""
    echo "installed  $dest"
    changed=yes
}

# --- install ---------------------------------------------------------------------------------
installed_any=no
changed=no
if [ "$want_nm" = yes ]; then
    install_file "$SRC/dispatcher.d/50-symroute" \
        "$DESTDIR/etc/NetworkManager/dispatcher.d/50-symroute" 0755 yes
    installed_any=yes
fi

if [ "$want_nd" = yes ]; then
    base="$DESTDIR/etc/networkd-dispatcher"
    for state in $NETWORKD_STATES; do
        install_file "$SRC/networkd-dispatcher/50-symroute" "$base/$state.d/50-symroute" 0755 yes
        dir_mode=$(stat -c %a:%u:%g "$base/$state.d")
        if [ "$dir_mode" != "755:0:0" ] && [ -n "$owner" ]; then
            echo "install-integrations: warning: $base/$state.d is $dir_mode, networkd-dispatcher" \
                "runs scripts only from folders that are 0755 and owned by root" >&2
        fi
    done
    installed_any=yes
fi

if [ "$want_networkd" = yes ]; then
    install_file "$SRC/packaging/networkd/symroute.conf" \
        "$DESTDIR/etc/systemd/networkd.conf.d/symroute.conf" 0644 no
    if [ "$changed" = yes ] && [ -z "$DESTDIR" ] && pgrep -x systemd-network >/dev/null 2>&1; then
        echo "           systemd-networkd reads it when it starts: restart it (systemctl restart" \
            "systemd-networkd) so that it stops deleting symroute's rules"
    fi
    installed_any=yes
fi

if [ "$want_ifupdown" = yes ]; then
    for dir in if-up.d if-post-down.d; do
        install_file "$SRC/ifupdown/symroute" "$DESTDIR/etc/network/$dir/symroute" 0755 yes
    done
    installed_any=yes
fi

if [ "$want_dhclient" = yes ]; then
    install_file "$SRC/dhcp/dhclient-exit-hook" \
        "$DESTDIR/etc/dhcp/dhclient-exit-hooks.d/symroute" 0644 yes
    installed_any=yes
fi

if [ "$want_dhcpcd" = yes ]; then
    install_file "$SRC/dhcp/dhcpcd-hook" "$DESTDIR$(dhcpcd_hooks)/50-symroute" 0644 yes
    installed_any=yes
fi

if [ "$installed_any" = no ] && [ "${SYMROUTE_INTEGRATIONS-auto}" = auto ]; then
    echo "install-integrations: neither NetworkManager, networkd-dispatcher, systemd-networkd," \
        "ifupdown, dhclient nor dhcpcd found;" \
        "run symroute-hook from your own interface hooks"
fi
