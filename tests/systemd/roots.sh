#!/bin/sh
# Builds (once) and prints the cached Debian roots the boot tests overlay: sourced by
# tests/systemd/run.sh, or run alone as `tests/systemd/roots.sh` to warm the cache.
#
# Two roots, from the distribution mirror this machine's apt uses (mmdebstrap), each kept
# under target/systemd-test/cache/ in a folder named by a hash of what went into it (suite,
# mirror, package list), so a changed list builds a new root and an old one is never reused:
#   minimal  the required packages, systemd, dbus and what the .deb depends on (iproute2):
#            no procps, so no /bin/kill, as on a minimal Debian;
#   cloud    minimal plus cloud-init (NoCloud), ifupdown and NetworkManager, as on a Debian
#            cloud image; each boot enables the ones its scenario wants.
# Needs root and mmdebstrap.
# shellcheck disable=SC1091
set -eu

SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE=${SYMROUTE_SYSTEMD_TEST_CACHE:-$SRC/target/systemd-test/cache}
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
MINIMAL_PACKAGES="systemd,systemd-sysv,dbus,iproute2,libc6"
CLOUD_PACKAGES="$MINIMAL_PACKAGES,cloud-init,ifupdown,isc-dhcp-client,network-manager"

# The machine's own Debian mirror: the deb822 or one-line source that names /debian.
mirror_sources() {
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && grep -Eq '^[^#]*(URIs:|deb) .*/debian/?( |$)' "$f" && echo "$f"
    done | head -1
}

# root_for NAME PACKAGES: the path of the cached root, built first when missing.
root_for() {
    name=$1 packages=$2
    sources=$(mirror_sources)
    [ -n "$sources" ] || { echo "roots: no Debian mirror in /etc/apt/sources.list*" >&2; return 1; }
    key=$(printf '%s\n' "$SUITE" "$packages" "$(cat "$sources")" "minbase" | sha256sum | cut -c1-12)
    root=$CACHE/$name-$SUITE-$key
    if [ ! -f "$root/.symroute-root-complete" ]; then
        echo "# mmdebstrap $SUITE $name root into $root (once; cached)" >&2
        rm -rf "$root" "$root.log"
        mkdir -p "$CACHE"
        # The machine's dpkg lock is not touched: mmdebstrap runs its own apt in the root.
        if ! mmdebstrap --variant=minbase --include="$packages" \
            --dpkgopt=path-exclude=/usr/share/man/* --dpkgopt=path-exclude=/usr/share/locale/* \
            --dpkgopt=path-exclude=/usr/share/doc/* \
            "$SUITE" "$root" "$sources" >"$root.log" 2>&1; then
            tail -20 "$root.log" | sed 's/^/    /' >&2
            echo "roots: mmdebstrap failed (log: $root.log)" >&2
            rm -rf "$root"
            return 1
        fi
        touch "$root/.symroute-root-complete"
    fi
    echo "$root"
}

minimal_root() { root_for minimal "$MINIMAL_PACKAGES"; }
cloud_root() { root_for cloud "$CLOUD_PACKAGES"; }

if [ "$(basename "$0")" = roots.sh ]; then
    minimal_root
    cloud_root
fi
