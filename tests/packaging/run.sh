#!/bin/sh
# Packaging test: builds the .deb and the .rpm with scripts/build-packages.sh, checks their
# file lists and metadata, runs lintian on the .deb (no error allowed), then installs,
# upgrades, removes and purges the .deb in an isolated root and checks what is left.
#
# The isolated root, never the machine itself: a network namespace made here (eth0, eth1
# with addresses and default routes, so that the postinst really installs rules), a private
# mount namespace in it, an overlay of a cached Debian minbase (debootstrap, kept in
# target/packaging-test/cache/) whose written layer is a tmpfs, and a private PID namespace
# whose PID 1 is chrooted there, so the maintainer scripts see a live system, not a chroot.
# Three runs: the .deb without systemd; the .deb with /run/systemd/system and a systemctl
# that records its calls and runs the real symrouted for start/stop/restart (so upgrades are
# checked to restart the daemon without deleting a rule); the .rpm (Debian's rpm, --nodeps).
#
# Usage: tests/packaging/run.sh [--no-cargo]
#   --no-cargo   package the binaries already in target/release (and target/dist: the hook)
# Needs root: skipped with a message otherwise, a failure when CI=true. Installs lintian,
# debootstrap, rpm, dpkg-dev and shellcheck when missing. Cold: about 1 min more than the
# release build (debootstrap ~45 s); cached: ~30 s after the build.
# Word splitting of the file lists is intended.
# shellcheck disable=SC2086,SC2048,SC1091
set -eu

SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$SRC/target/packaging-test
. "$SRC/tests/lib.sh"
read_args "$@"
need_root "packaging test"

start_log

# --- tools -------------------------------------------------------------------------------
install_missing "packaging test" lintian:lintian debootstrap:debootstrap rpmbuild:rpm \
    dpkg-shlibdeps:dpkg-dev unshare:util-linux ip:iproute2 shellcheck:shellcheck

# --- build -------------------------------------------------------------------------------
UP=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' "$SRC/Cargo.toml")
V1=$UP-1 V2=$UP-2
rm -rf "$T/pkg1" "$T/pkg2"
echo "# building $V1 and $V2 (.deb, .rpm) $(elapsed)"
build_packages packaging $NO_CARGO --out "$T/pkg1" --version "$V1"
build_packages packaging --no-cargo --out "$T/pkg2" --version "$V2"
ARCH=$(dpkg --print-architecture)
DEB1=$T/pkg1/symroute_${V1}_$ARCH.deb
DEB2=$T/pkg2/symroute_${V2}_$ARCH.deb
RPM1=$T/pkg1/symroute-$V1.$(uname -m).rpm
RPM2=$T/pkg2/symroute-$V2.$(uname -m).rpm
check "built $(basename "$DEB1"), $(basename "$RPM1") and their $V2 versions" \
    test -s "$DEB1" -a -s "$DEB2" -a -s "$RPM1" -a -s "$RPM2"

# What this tree should produce: binaries of the crates that exist, the pages xtask
# generates (one per binary with a cli.rs, one per subcommand), the unit once
# packaging/systemd has it.
BINS="symroute-hook"
for b in symroute symrouted; do
    [ -f "$SRC/crates/$b/Cargo.toml" ] && BINS="$BINS $b"
done
rm -rf "$T/man"
PAGES=$("${CARGO_TARGET_DIR:-$SRC/target}/release/xtask" man "$T/man" | xargs -n1 basename | grep '\.8$')
for b in $BINS; do
    if [ -f "$SRC/crates/$b/src/cli.rs" ] || [ "$b" = symroute-hook ]; then
        check "man page $b.8 generated from crates/$b/src/cli.rs" sh -c "echo '$PAGES' | grep -qx '$b.8'"
    fi
done
UNIT=no
[ -f "$SRC/packaging/systemd/symrouted.service" ] && case " $BINS " in *" symrouted "*) UNIT=yes ;; esac
SHARED="etc/iproute2/rt_protos.d/symroute.conf etc/symroute/symroute.toml
usr/lib/NetworkManager/dispatcher.d/50-symroute usr/lib/systemd/networkd.conf.d/symroute.conf
usr/share/man/man5/symroute.toml.5.gz usr/lib/dhcpcd/dhcpcd-hooks/50-symroute
usr/share/doc/symroute/grafana-health.json usr/share/symroute/symrouted-health.conf"
for b in $BINS; do SHARED="$SHARED usr/sbin/$b"; done
for p in $PAGES; do SHARED="$SHARED usr/share/man/man8/$p.gz"; done
for s in routable configured degraded off no-carrier; do
    SHARED="$SHARED usr/lib/networkd-dispatcher/$s.d/50-symroute"
done
[ "$UNIT" = no ] || SHARED="$SHARED usr/lib/systemd/system/symrouted.service"
DEB_ONLY="usr/share/doc/symroute/README.md.gz usr/share/doc/symroute/changelog.Debian.gz
usr/share/doc/symroute/copyright usr/share/lintian/overrides/symroute
etc/network/if-up.d/symroute etc/network/if-post-down.d/symroute
etc/dhcp/dhclient-exit-hooks.d/symroute"
RPM_ONLY="usr/share/doc/symroute/README.md usr/share/licenses/symroute/LICENSE-APACHE
usr/share/licenses/symroute/LICENSE-MIT"
[ "$UNIT" = no ] || RPM_ONLY="$RPM_ONLY usr/lib/systemd/system-preset/50-symroute.preset"
sorted() { printf '%s\n' $* | LC_ALL=C sort; }

# --- .deb metadata and contents ----------------------------------------------------------
field() { dpkg-deb -f "$DEB1" "$1"; }
check "deb: Package symroute, Version $V1, Architecture $ARCH" \
    [ "$(field Package) $(field Version) $(field Architecture)" = "symroute $V1 $ARCH" ]
check "deb: depends on iproute2 and libc6" sh -c "dpkg-deb -f '$DEB1' Depends | grep -q 'iproute2' &&
    dpkg-deb -f '$DEB1' Depends | grep -q 'libc6 (>= '"
check "deb: recommends nftables (iif_rules)" sh -c "dpkg-deb -f '$DEB1' Recommends | grep -qw nftables"
check "deb: Section net, Maintainer, Homepage, Description set" \
    sh -c "[ '$(field Section)' = net ] && [ -n '$(field Maintainer)' ] && [ -n '$(field Homepage)' ] && [ -n \"\$(dpkg-deb -f '$DEB1' Description)\" ]"
ctrl=$T/ctrl
rm -rf "$ctrl" && mkdir -p "$ctrl" && dpkg-deb -e "$DEB1" "$ctrl"
check "deb: conffiles are the config, the rt_protos.d entry, the ifupdown and dhclient hooks" \
    [ "$(LC_ALL=C sort "$ctrl/conffiles" | tr '\n' ' ')" = "/etc/dhcp/dhclient-exit-hooks.d/symroute /etc/iproute2/rt_protos.d/symroute.conf /etc/network/if-post-down.d/symroute /etc/network/if-up.d/symroute /etc/symroute/symroute.toml " ]
check "deb: postinst, prerm, postrm present, executable, valid sh" \
    sh -c "for s in postinst prerm postrm; do [ -x '$ctrl'/\$s ] && sh -n '$ctrl'/\$s || exit 1; done"
# As packed (the sources are checked by scripts/lint-shell.sh too); shellcheck is installed
# above, so this check always runs.
check "deb: maintainer scripts pass shellcheck" shellcheck -s sh "$ctrl/postinst" "$ctrl/prerm" "$ctrl/postrm"
deb_files=$(dpkg-deb -c "$DEB1" | awk '$1 ~ /^-/ {sub("^\\./", "", $6); print $6}' | LC_ALL=C sort)
check "deb: file list is exactly the expected one" [ "$deb_files" = "$(sorted $SHARED $DEB_ONLY)" ]
[ "$deb_files" = "$(sorted $SHARED $DEB_ONLY)" ] ||
    sorted $SHARED $DEB_ONLY | diff - /dev/fd/3 3<<EOF | sed 's/^/    /'
$deb_files
EOF
check "deb: every entry is root's; scripts 0755, other files (sourced hooks too) 0644, dirs 0755" sh -c "
    dpkg-deb -c '$DEB1' | awk '
        \$2 != \"root/root\" { bad = 1; print \"    owner: \" \$0 }
        \$1 ~ /^d/ && \$1 != \"drwxr-xr-x\" { bad = 1; print \"    mode: \" \$0 }
        \$1 ~ /^-/ { x = \$6 ~ /(sbin\/|dispatcher.*50-symroute\$|if-[a-z-]+\.d\/symroute\$)/ }
        \$1 ~ /^-/ && x && \$1 != \"-rwxr-xr-x\" { bad = 1; print \"    mode: \" \$0 }
        \$1 ~ /^-/ && !x && \$1 != \"-rw-r--r--\" { bad = 1; print \"    mode: \" \$0 }
        END { exit bad }'"
payload=$T/payload
rm -rf "$payload" && mkdir -p "$payload" && dpkg-deb -x "$DEB1" "$payload"
check "deb: scripts and hooks call /usr/sbin/symroute-hook, no @SBINDIR@ left" sh -c "
    ! grep -rq '@SBINDIR@' '$payload/usr/lib' '$payload/etc' &&
    grep -q '^HOOK=/usr/sbin/symroute-hook\$' '$payload/etc/network/if-up.d/symroute' &&
    grep -q '^symroute_hook=/usr/sbin/symroute-hook\$' '$payload/etc/dhcp/dhclient-exit-hooks.d/symroute' &&
    grep -q '^symroute_hook=/usr/sbin/symroute-hook\$' '$payload/usr/lib/dhcpcd/dhcpcd-hooks/50-symroute' &&
    grep -q '^HOOK=/usr/sbin/symroute-hook\$' '$payload/usr/lib/NetworkManager/dispatcher.d/50-symroute' &&
    grep -q '^HOOK=/usr/sbin/symroute-hook\$' '$payload/usr/lib/networkd-dispatcher/off.d/50-symroute'"
# NetworkManager sends pre-down events only to dispatcher.d/pre-down.d/, before anything is
# gone: the script does not subscribe to them (see its comment).
check "deb: the NetworkManager script subscribes to up/down, not to pre-down" sh -c "
    grep -Eq '^ +up \\| .*\\| down \\| vpn-down\\) ;;\$' '$payload/usr/lib/NetworkManager/dispatcher.d/50-symroute' &&
    ! grep -Eq '^ +up \\| .*pre-down' '$payload/usr/lib/NetworkManager/dispatcher.d/50-symroute'"
check "deb: the config is packaging/symroute.toml" cmp -s "$payload/etc/symroute/symroute.toml" "$SRC/packaging/symroute.toml"
check "deb: man pages are groff-clean" sh -c "
    for p in '$payload'/usr/share/man/man*/*.gz; do
        w=\$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \"\$p\" 2>&1 >/dev/null)
        [ -z \"\$w\" ] || { echo \"    \$p: \$w\"; exit 1; }
    done"
check "deb: binaries are stripped" sh -c "for b in '$payload'/usr/sbin/*; do ! readelf -S \"\$b\" | grep -q ' .symtab ' || exit 1; done"

# --- lintian -----------------------------------------------------------------------------
echo "# lintian $(elapsed)"
lintian_out=$(lintian --fail-on error --pedantic -I "$DEB1" 2>&1) && lintian_rc=0 || lintian_rc=$?
echo "$lintian_out" | grep -v '^running with root privileges' | sed 's/^/    /'
check "lintian: no error" [ "$lintian_rc" -eq 0 ]

# --- .rpm metadata and contents ----------------------------------------------------------
rq() { rpm -qp --qf "$1" "$RPM1" 2>/dev/null; }
check "rpm: symroute $UP release 1, MIT OR Apache-2.0" \
    [ "$(rq '%{NAME} %{VERSION} %{RELEASE} %{LICENSE}')" = "symroute $UP 1 MIT OR Apache-2.0" ]
check "rpm: requires iproute (or iproute2)" sh -c "rpm -qp --requires '$RPM1' 2>/dev/null | grep -qx '(iproute or iproute2)'"
check "rpm: config files are the config and the rt_protos.d entry" \
    [ "$(rpm -qpc "$RPM1" 2>/dev/null | LC_ALL=C sort | tr '\n' ' ')" = "/etc/iproute2/rt_protos.d/symroute.conf /etc/symroute/symroute.toml " ]
check "rpm: config files are %config(noreplace)" \
    [ "$(rq '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' | grep -c '^cn /etc/')" -eq 2 ]
rpm_files=$(rq '[%{FILEMODES:perms} %{FILENAMES}\n]' | awk '$1 ~ /^-/ {sub("^/", "", $2); print $2}' | LC_ALL=C sort)
check "rpm: file list is exactly the expected one" [ "$rpm_files" = "$(sorted $SHARED $RPM_ONLY)" ]
[ "$rpm_files" = "$(sorted $SHARED $RPM_ONLY)" ] ||
    sorted $SHARED $RPM_ONLY | diff - /dev/fd/3 3<<EOF | sed 's/^/    /'
$rpm_files
EOF
check "rpm: networkd-dispatcher folders and scripts are root's, 0755" sh -c "
    rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' '$RPM1' 2>/dev/null |
        awk '\$3 ~ /networkd-dispatcher/ && \$1 !~ /^[-d]rwxr-xr-x\$/ { bad = 1; print } \$2 != \"root:root\" { bad = 1; print } END { exit bad }'"
scriptlets=$T/scriptlets
rm -rf "$scriptlets" && mkdir -p "$scriptlets"
rpm -qp --scripts "$RPM1" 2>/dev/null | awk -v dir="$scriptlets" '
    /^[a-z]+ scriptlet \(using \/bin\/sh\):$/ { out = dir "/" $1; next }
    out { print > out }'
check "rpm: post, preun, postun scriptlets, valid sh" sh -c "
    for s in postinstall preuninstall postuninstall; do [ -s '$scriptlets'/\$s ] && sh -n '$scriptlets'/\$s || exit 1; done"
# The scriptlets exist as files only here, expanded from the spec's macros.
check "rpm: scriptlets pass shellcheck" shellcheck -s sh "$scriptlets/postinstall" \
    "$scriptlets/preuninstall" "$scriptlets/postuninstall"
if [ "$UNIT" = yes ]; then
    # What %systemd_post/%systemd_preun/%systemd_postun_with_restart expand to: systemd's
    # own macros (systemd-update-helper) or the fallback in the spec (systemctl).
    check "rpm: scriptlets are the systemd macros' (preset, disable --now, try-restart)" sh -c "
        grep -Eq 'systemctl --no-reload preset symrouted.service|systemd-update-helper install-system-units symrouted.service' '$scriptlets/postinstall' &&
        grep -Eq 'systemctl --no-reload disable --now symrouted.service|systemd-update-helper remove-system-units symrouted.service' '$scriptlets/preuninstall' &&
        grep -Eq 'systemctl try-restart symrouted.service|systemd-update-helper mark-restart-system-units symrouted.service' '$scriptlets/postuninstall'"
fi
check "rpm: recommends nftables" sh -c "rpm -qp --recommends '$RPM1' 2>/dev/null | grep -qx nftables"
check "rpm: post syncs, preun flushes" sh -c "grep -q 'symroute-hook --all' '$scriptlets/postinstall' &&
    grep -q 'symroute-hook --flush' '$scriptlets/preuninstall'"

# --- the unit's hardening ------------------------------------------------------------------
if [ "$UNIT" = yes ]; then
    unit=$SRC/packaging/systemd/symrouted.service
    check "unit: 0700 run directory, kept; UMask 0077; no restart loop on a bad config; watchdog; memory and task bounds" sh -c "
        for line in RuntimeDirectoryMode=0700 RuntimeDirectoryPreserve=yes UMask=0077 \
            RestartPreventExitStatus=2 WatchdogSec= MemoryMax= TasksMax= NoNewPrivileges=yes; do
            grep -q \"^\$line\" '$unit' || { echo \"    missing: \$line\"; exit 1; }
        done"
    # The score is recorded, not judged (it moves with systemd's version); a unit that does
    # not parse, or has a line systemd ignores, fails.
    if command -v systemd-analyze >/dev/null 2>&1 &&
        systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
        sec_err=$T/security.err
        sec_out=$(systemd-analyze security --offline=true "$unit" 2>"$sec_err") && sec_rc=0 || sec_rc=$?
        score=$(echo "$sec_out" | sed -n 's/.*Overall exposure level for symrouted.service: \([0-9.]*\).*/\1/p')
        sed 's/^/    /' "$sec_err"
        echo "# systemd-analyze security --offline: exposure ${score:-unknown} (0 best, 10 worst), systemd $(systemd-analyze --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')" | tee -a "$LOG"
        check "unit: systemd-analyze security --offline=true parses it, no line ignored (exposure ${score:-?})" \
            sh -c "[ '$sec_rc' -eq 0 ] && [ -n '$score' ] && ! grep -q 'symrouted.service' '$sec_err'"
    elif [ "${CI:-}" = true ]; then
        bad "unit: systemd-analyze security --offline is not available (systemd 250 or later), and CI=true"
    else
        echo "SKIPPED unit: systemd-analyze security --offline not available here (systemd 250 or later)"
    fi
fi

# --- make install into a staging root ------------------------------------------------------
DEST=$T/destdir
rm -rf "$DEST"
# CARGO=true: install what build-packages.sh has just built, no second build.
if SYMROUTE_INTEGRATIONS=all make -s -C "$SRC" install DESTDIR="$DEST" PREFIX=/usr \
    CARGO=true >"$T/make-install.log" 2>&1; then
    ok "make install DESTDIR=... PREFIX=/usr"
else
    tail -20 "$T/make-install.log" | sed 's/^/    /'
    bad "make install DESTDIR=... PREFIX=/usr (log: $T/make-install.log)"
fi
check "make install (all integrations): ifupdown, dhclient and dhcpcd hooks, with SBINDIR" sh -c "
    grep -q '^HOOK=/usr/sbin/symroute-hook\$' '$DEST/etc/network/if-up.d/symroute' &&
    grep -q '^HOOK=/usr/sbin/symroute-hook\$' '$DEST/etc/network/if-post-down.d/symroute' &&
    [ -f '$DEST/etc/dhcp/dhclient-exit-hooks.d/symroute' ] &&
    ls '$DEST'/usr/lib/dhcpcd/dhcpcd-hooks/50-symroute '$DEST'/lib/dhcpcd/dhcpcd-hooks/50-symroute 2>/dev/null | grep -q ."
check "make install: the man pages of the packages, uncompressed" sh -c "
    for p in $(echo "$PAGES" | tr '\n' ' '); do [ -f '$DEST/usr/share/man/man8/'\$p ] || exit 1; done &&
    [ -f '$DEST/usr/share/man/man5/symroute.toml.5' ]"
rm -rf "$DEST"

# --- install, upgrade, remove, purge in an isolated root -----------------------------------
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
# iproute2: the package's dependency; rpm: to run the RPM's scriptlets too.
INCLUDE=iproute2,rpm
BASE=$T/cache/$SUITE-minbase-$(echo "$INCLUDE" | tr ',' '-')
if [ ! -f "$BASE/.symroute-base-complete" ]; then
    echo "# debootstrap $SUITE minbase (+$INCLUDE) into $BASE (once; cached) $(elapsed)"
    rm -rf "$BASE"
    mkdir -p "$BASE"
    if ! unshare --mount --propagation private \
        debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$BASE" >"$T/debootstrap.log" 2>&1; then
        tail -20 "$T/debootstrap.log" | sed 's/^/    /'
        bad "debootstrap $SUITE (log: $T/debootstrap.log)"
        exit 1
    fi
    touch "$BASE/.symroute-base-complete"
fi

NS=symroute-pkg-$$
cleanup() {
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# scenario NAME: a fresh network namespace and overlay root, inside.sh as PID 1 in it, then
# a look at everything written to the root.
scenario() {
    name=$1 pkg1=$2 pkg2=$3
    cleanup
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip -n "$NS" link add eth0 type veth peer name uplink0
    ip -n "$NS" link add eth1 type veth peer name uplink1
    for l in eth0 uplink0 eth1 uplink1; do ip -n "$NS" link set "$l" up; done
    ip -n "$NS" addr add 10.81.0.2/24 dev eth0
    ip -n "$NS" addr add fd81::2/64 dev eth0 nodad
    ip -n "$NS" addr add 10.82.0.2/24 dev eth1
    ip -n "$NS" route add default via 10.81.0.1 dev eth0 metric 100
    ip -n "$NS" route add default via 10.82.0.1 dev eth1 metric 101
    ip -n "$NS" -6 route add default via fd81::1 dev eth0 metric 100

    mnt=$T/mnt
    mkdir -p "$mnt"
    # shellcheck disable=SC2016
    ip netns exec "$NS" unshare --mount --propagation private sh -eu -c '
        BASE=$1 MNT=$2 PKG1=$3 PKG2=$4 INSIDE=$5; shift 5
        mount -t tmpfs -o mode=0755 symroute-test "$MNT"
        mkdir "$MNT/upper" "$MNT/work" "$MNT/root"
        mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$MNT/upper,workdir=$MNT/work" "$MNT/root"
        mount -t tmpfs -o mode=0755 run "$MNT/root/run"
        cp "$PKG1" "$MNT/root/tmp/symroute-1.${PKG1##*.}"
        cp "$PKG2" "$MNT/root/tmp/symroute-2.${PKG2##*.}"
        cp "$INSIDE" "$MNT/root/tmp/inside.sh"
        unshare --pid --fork --mount-proc --root="$MNT/root" /bin/sh /tmp/inside.sh "$@" || true
        # What the packages left in the root: every path written, minus dpkg'\''s own
        # records and logs, must be free of symroute.
        cd "$MNT/upper"
        left=$(find . \( -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache/debconf \) -prune -o -print |
            grep -i symrout || true)
        if [ -z "$left" ] && ! grep -qs "^Package: symroute\$" var/lib/dpkg/status && ! ls var/lib/dpkg/info/symroute.* >/dev/null 2>&1; then
            echo "ok - [$1] no file of symroute left in the root, nor in dpkg'\''s database"
        else
            echo "FAIL - [$1] left in the root:"
            echo "$left" | sed "s/^/    /"
        fi
    ' sh "$BASE" "$mnt" "$pkg1" "$pkg2" "$SRC/tests/packaging/inside.sh" \
        "$name" "$V1" "$V2" "$UNIT" 2>&1 | tee -a "$LOG"
    check "[$name] no rule or table route of ours left in the namespace" sh -c "
        [ -z \"\$({ ip -n $NS -N -4 rule show; ip -n $NS -N -6 rule show; } | grep -E ' proto 83( |\$)')\" ] &&
        [ -z \"\$(ip -n $NS -N route show table all proto 83; ip -n $NS -N -6 route show table all proto 83)\" ]"
    cleanup
}

echo "# isolated root: plain .deb (no systemd) $(elapsed)"
scenario plain "$DEB1" "$DEB2"
echo "# isolated root: .deb with systemd (recorded systemctl) $(elapsed)"
scenario systemd "$DEB1" "$DEB2"
echo "# isolated root: .rpm (no systemd) $(elapsed)"
scenario rpm "$RPM1" "$RPM2"

finish packaging
