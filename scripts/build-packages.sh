#!/bin/sh
# Builds symroute's Debian package and RPM from this source tree: release binaries with
# cargo, man pages with xtask (clap_mangen, from the binaries' own command lines), then one
# staged tree per format, packed by dpkg-deb and rpmbuild. No debhelper, no cargo-deb.
#
# Usage: scripts/build-packages.sh [--out DIR] [--version VERSION] [--no-cargo] [--deb] [--rpm]
#   --out DIR       where the packages go (default: target/packages)
#   --version V     package version, UPSTREAM-REVISION (default: the workspace version and
#                   revision 1, e.g. 0.1.0-1); the RPM gets Version UPSTREAM, Release REVISION
#   --no-cargo      package what target/release and target/dist already hold (no cargo run)
#   --deb, --rpm    build only that format (default: both)
# Environment:
#   CARGO               cargo to use (default: scripts/ensure-toolchain.sh finds or installs one)
#   CARGO_TARGET_DIR    cargo's target directory (default: target); binaries from its release/,
#                       symroute-hook from its dist/ (scripts/build-hook.sh: statically linked)
#   SOURCE_DATE_EPOCH   time stamp of files, changelog and man pages (default: last commit)
#   SYMROUTE_MAINTAINER Maintainer of the .deb and its changelog, "Name <address>"
#
# Missing packaging tools (dpkg-dev, rpm) are installed with apt-get when run as root.
# Prints the path of each package built, last.
#
# Contents (both formats):
#   /usr/sbin/symroute-hook, symroute, symrouted         the binaries that exist
#   /usr/lib/NetworkManager/dispatcher.d/50-symroute
#   /usr/lib/networkd-dispatcher/{routable,configured,degraded,off,no-carrier}.d/50-symroute
#   /usr/lib/systemd/networkd.conf.d/symroute.conf       stops networkd deleting our rules
#   /usr/lib/dhcpcd/dhcpcd-hooks/50-symroute             dhcpcd hook (sourced, 0644)
#   /usr/lib/systemd/system/symrouted.service            when packaging/systemd/ has it
#   /etc/symroute/symroute.toml                          conffile, every line commented
#   /etc/iproute2/rt_protos.d/symroute.conf              conffile, "83 symroute"
#   /usr/share/man/man8/*.8.gz, man5/symroute.toml.5.gz
#   README, copyright / licenses
# .deb only (Debian's ifupdown and dhclient-script hook folders; conffiles, inert once the
# package is removed):
#   /etc/network/{if-up.d,if-post-down.d}/symroute        ifupdown hook
#   /etc/dhcp/dhclient-exit-hooks.d/symroute              dhclient exit hook (sourced, 0644)
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"
umask 022

OUT=$SRC/target/packages
VERSION=""
RUN_CARGO=yes
WANT_DEB="" WANT_RPM=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --version) VERSION=$2; shift 2 ;;
        --version=*) VERSION=${1#--version=}; shift ;;
        --no-cargo) RUN_CARGO=no; shift ;;
        --deb) WANT_DEB=yes; shift ;;
        --rpm) WANT_RPM=yes; shift ;;
        -h | --help) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-packages: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$WANT_DEB$WANT_RPM" ]; then
    WANT_DEB=yes WANT_RPM=yes
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

say() { echo "build-packages: $*" >&2; }
die() { say "$*"; exit 1; }

# --- tools -------------------------------------------------------------------------------
# need_tool COMMAND PACKAGE: installs PACKAGE when COMMAND is missing (root only).
need_tool() {
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" -eq 0 ] || die "$1 is missing: apt-get install $2"
    say "installing $2 (for $1)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "$2" >&2 ||
        { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "$2" >&2; } ||
        die "cannot install $2"
}
need_tool dpkg-deb dpkg
need_tool strip binutils
need_tool gzip gzip
if [ "$WANT_DEB" = yes ]; then need_tool dpkg-shlibdeps dpkg-dev; fi
if [ "$WANT_RPM" = yes ]; then need_tool rpmbuild rpm; fi

# --- version, dates ----------------------------------------------------------------------
UPSTREAM=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
[ -n "$UPSTREAM" ] || die "no version in [workspace.package] of Cargo.toml"
VERSION=${VERSION:-$UPSTREAM-1}
case "$VERSION" in
    *-*) ;;
    *) die "--version must be UPSTREAM-REVISION, e.g. $UPSTREAM-1" ;;
esac
case "$VERSION" in
    *[!A-Za-z0-9.+~-]* | [!0-9]*) die "--version '$VERSION' is not a valid package version" ;;
esac
RPM_VERSION=$(echo "${VERSION%-*}" | tr '~-' '^_')
RPM_RELEASE=$(echo "${VERSION##*-}" | tr '~-' '^_')

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
MAINTAINER=${SYMROUTE_MAINTAINER:-symroute developers <packaging@symroute.invalid>}
DEB_ARCH=$(dpkg --print-architecture)
RPM_ARCH=$(uname -m)

# --- binaries, man pages -----------------------------------------------------------------
BINS_ALL="symroute-hook symroute symrouted"
RELEASE=${CARGO_TARGET_DIR:-$SRC/target}/release
if [ "$RUN_CARGO" = yes ]; then
    CARGO=${CARGO:-$(scripts/ensure-toolchain.sh)}
    # Not the hook: the package ships scripts/build-hook.sh's, never a release one.
    say "cargo build --release (the workspace's binaries but the hook, and xtask)"
    "$CARGO" build --release --locked --workspace --exclude symroute-hook --bins >&2
    say "scripts/build-hook.sh (the hook statically linked where possible)"
    CARGO=$CARGO scripts/build-hook.sh >/dev/null
fi
# The hook as `make install` installs it; the dynamically linked one only when no
# scripts/build-hook.sh ran (--no-cargo over a plain cargo build).
HOOK_BIN=$(scripts/build-hook.sh --path 2>/dev/null) || {
    HOOK_BIN=$RELEASE/symroute-hook
    say "warning: no $(dirname "$RELEASE")/dist/symroute-hook: packaging $HOOK_BIN"
}
# bin_path NAME: the file packaged as /usr/sbin/NAME.
bin_path() {
    if [ "$1" = symroute-hook ]; then echo "$HOOK_BIN"; else echo "$RELEASE/$1"; fi
}
BINS=""
for b in $BINS_ALL; do
    if [ -f "crates/$b/Cargo.toml" ] && [ -x "$(bin_path "$b")" ]; then
        BINS="$BINS $b"
    fi
done
case "$BINS" in
    *symroute-hook*) ;;
    *) die "no hook to package: $(dirname "$RELEASE")/dist/symroute-hook is missing (run without --no-cargo)" ;;
esac
[ -x "$RELEASE/xtask" ] || die "$RELEASE/xtask is missing (run without --no-cargo)"
UNIT_SRC=packaging/systemd/symrouted.service
HAVE_UNIT=no
case "$BINS" in *symrouted*) [ -f "$UNIT_SRC" ] && HAVE_UNIT=yes ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/symroute-pkg.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

MAN=$WORK/man
"$RELEASE/xtask" man "$MAN" --version "$UPSTREAM" >/dev/null

# --- staging -----------------------------------------------------------------------------
# stage ROOT: the tree both formats share.
stage() {
    root=$1
    install -d -m 0755 "$root/usr/sbin"
    for b in $BINS; do
        install -m 0755 "$(bin_path "$b")" "$root/usr/sbin/$b"
        strip --remove-section=.comment --remove-section=.note "$root/usr/sbin/$b"
    done

    install -d -m 0755 "$root/usr/share/man/man8" "$root/usr/share/man/man5"
    # xtask writes pages only for binaries that have a cli.rs, i.e. exist.
    for page in "$MAN"/*.8; do
        gzip -9n -c "$page" >"$root/usr/share/man/man8/$(basename "$page").gz"
    done
    gzip -9n -c "$MAN/symroute.toml.5" >"$root/usr/share/man/man5/symroute.toml.5.gz"

    install -d -m 0755 "$root/usr/lib/NetworkManager/dispatcher.d"
    sed 's|@SBINDIR@|/usr/sbin|g' dispatcher.d/50-symroute \
        >"$root/usr/lib/NetworkManager/dispatcher.d/50-symroute"
    chmod 0755 "$root/usr/lib/NetworkManager/dispatcher.d/50-symroute"
    for state in routable configured degraded off no-carrier; do
        install -d -m 0755 "$root/usr/lib/networkd-dispatcher/$state.d"
        sed 's|@SBINDIR@|/usr/sbin|g' networkd-dispatcher/50-symroute \
            >"$root/usr/lib/networkd-dispatcher/$state.d/50-symroute"
        chmod 0755 "$root/usr/lib/networkd-dispatcher/$state.d/50-symroute"
    done
    install -d -m 0755 "$root/usr/lib/dhcpcd/dhcpcd-hooks"
    sed 's|@SBINDIR@|/usr/sbin|g' dhcp/dhcpcd-hook >"$root/usr/lib/dhcpcd/dhcpcd-hooks/50-symroute"
    chmod 0644 "$root/usr/lib/dhcpcd/dhcpcd-hooks/50-symroute"
    if grep -rl '@SBINDIR@' "$root/usr/lib" >/dev/null 2>&1; then
        die "@SBINDIR@ left in a staged script"
    fi
    install -D -m 0644 packaging/networkd/symroute.conf \
        "$root/usr/lib/systemd/networkd.conf.d/symroute.conf"
    if [ "$HAVE_UNIT" = yes ]; then
        install -D -m 0644 "$UNIT_SRC" "$root/usr/lib/systemd/system/symrouted.service"
    fi

    install -D -m 0644 packaging/symroute.toml "$root/etc/symroute/symroute.toml"
    install -D -m 0644 packaging/iproute2/symroute.conf "$root/etc/iproute2/rt_protos.d/symroute.conf"
}

# clamp ROOT: every time stamp to SOURCE_DATE_EPOCH (reproducible archives).
clamp() {
    find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

built=""

# --- .deb --------------------------------------------------------------------------------
if [ "$WANT_DEB" = yes ]; then
    root=$WORK/deb
    stage "$root"
    for dir in if-up.d if-post-down.d; do
        install -d -m 0755 "$root/etc/network/$dir"
        sed 's|@SBINDIR@|/usr/sbin|g' ifupdown/symroute >"$root/etc/network/$dir/symroute"
        chmod 0755 "$root/etc/network/$dir/symroute"
    done
    install -d -m 0755 "$root/etc/dhcp/dhclient-exit-hooks.d"
    sed 's|@SBINDIR@|/usr/sbin|g' dhcp/dhclient-exit-hook >"$root/etc/dhcp/dhclient-exit-hooks.d/symroute"
    chmod 0644 "$root/etc/dhcp/dhclient-exit-hooks.d/symroute"
    if grep -rl '@SBINDIR@' "$root/etc" >/dev/null 2>&1; then
        die "@SBINDIR@ left in a staged script"
    fi
    doc=$root/usr/share/doc/symroute
    install -d -m 0755 "$doc"
    install -m 0644 packaging/deb/copyright "$doc/copyright"
    gzip -9n -c README.md >"$doc/README.md.gz"
    install -m 0644 docs/grafana-health.json "$doc/"
    # Not under /usr/share/doc, which minimal and container images leave out (dpkg
    # path-exclude): the drop-in [health] needs is configuration an admin copies.
    install -D -m 0644 packaging/systemd/symrouted-health.conf \
        "$root/usr/share/symroute/symrouted-health.conf"
    install -d -m 0755 "$root/usr/share/lintian/overrides"
    if [ "$HAVE_UNIT" = yes ]; then
        cat packaging/deb/lintian-overrides
    else
        # The override about the unit would be reported as unused.
        grep -v -e 'symrouted\.service' -e 'the daemon is systemd-only' packaging/deb/lintian-overrides
    fi >"$root/usr/share/lintian/overrides/symroute"
    chmod 0644 "$root/usr/share/lintian/overrides/symroute"
    {
        echo "symroute ($VERSION) unstable; urgency=medium"
        echo
        echo "  * Built from the symroute source tree by scripts/build-packages.sh."
        echo
        echo " -- $MAINTAINER  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
    } | gzip -9n >"$doc/changelog.Debian.gz"

    # Shared-library dependencies, as debhelper would compute them.
    mkdir -p "$WORK/shlibs/debian"
    printf 'Source: symroute\n\nPackage: symroute\nArchitecture: any\n' >"$WORK/shlibs/debian/control"
    shlibs=$(cd "$WORK/shlibs" && for b in $BINS; do printf -- '-e%s\n' "$root/usr/sbin/$b"; done |
        xargs dpkg-shlibdeps -O 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
    [ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies"

    install -d -m 0755 "$root/DEBIAN"
    for script in postinst prerm postrm; do
        install -m 0755 "packaging/deb/$script" "$root/DEBIAN/$script"
    done
    (cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
    chmod 0644 "$root/DEBIAN/conffiles"
    (cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
        xargs md5sum) >"$root/DEBIAN/md5sums"
    chmod 0644 "$root/DEBIAN/md5sums"
    size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
    sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$DEB_ARCH|" -e "s|@MAINTAINER@|$MAINTAINER|" \
        -e "s|@INSTALLED_SIZE@|$size|" -e "s|@SHLIBS_DEPENDS@|$shlibs|" \
        packaging/deb/control.in >"$root/DEBIAN/control"
    chmod 0644 "$root/DEBIAN/control"
    clamp "$root"
    deb=$OUT/symroute_${VERSION#*:}_$DEB_ARCH.deb
    dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
    built="$built $deb"
fi

# --- .rpm --------------------------------------------------------------------------------
if [ "$WANT_RPM" = yes ]; then
    root=$WORK/rpm-stage
    stage "$root"
    install -D -m 0644 README.md "$root/usr/share/doc/symroute/README.md"
    install -m 0644 docs/grafana-health.json "$root/usr/share/doc/symroute/"
    install -D -m 0644 packaging/systemd/symrouted-health.conf \
        "$root/usr/share/symroute/symrouted-health.conf"
    lic=$root/usr/share/licenses/symroute
    install -d -m 0755 "$lic"
    # MIT text from the Debian copyright file; Apache-2.0 from the tree or the build host.
    sed -n '/^License: MIT$/,/^$/p' packaging/deb/copyright | sed -e '1d' -e 's/^ //' -e 's/^\.$//' \
        >"$lic/LICENSE-MIT"
    for f in LICENSE-APACHE /usr/share/common-licenses/Apache-2.0; do
        if [ -f "$f" ]; then
            install -m 0644 "$f" "$lic/LICENSE-APACHE"
            break
        fi
    done
    [ -s "$lic/LICENSE-APACHE" ] || die "no Apache-2.0 license text (LICENSE-APACHE) found"
    if [ -f LICENSE-MIT ]; then install -m 0644 LICENSE-MIT "$lic/LICENSE-MIT"; fi
    with_daemon=""
    if [ "$HAVE_UNIT" = yes ]; then
        install -d -m 0755 "$root/usr/lib/systemd/system-preset"
        echo "enable symrouted.service" >"$root/usr/lib/systemd/system-preset/50-symroute.preset"
        with_daemon="--with daemon"
    fi
    clamp "$root"
    # shellcheck disable=SC2086
    rpmbuild -bb --quiet \
        --define "_topdir $WORK/rpmbuild" \
        --define "_rpmdir $OUT" \
        --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
        --define "_dbpath $WORK/rpmdb" \
        --define "use_source_date_epoch_as_buildtime 1" \
        --define "clamp_mtime_to_source_date_epoch 1" \
        --define "symroute_stage $root" \
        --define "symroute_version $RPM_VERSION" \
        --define "symroute_release $RPM_RELEASE" \
        --target "$RPM_ARCH" $with_daemon \
        packaging/rpm/symroute.spec >&2
    built="$built $OUT/symroute-$RPM_VERSION-$RPM_RELEASE.$RPM_ARCH.rpm"
fi

for p in $built; do
    [ -f "$p" ] || die "expected $p, not built"
    echo "$p"
done
