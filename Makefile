# symroute: build, install, test.
#   sudo make install   build, install, and make this host's routing symmetric now
#   sudo make test      install test dependencies and run every test (as CI does)
#   make fuzz           run each fuzz target for FUZZ_SECONDS (60) seconds (docs/fuzzing.md)

PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
DESTDIR ?=
CARGO   ?= $(shell scripts/ensure-toolchain.sh)
BINS     = symroute-hook symrouted symroute
UNITDIR ?= /etc/systemd/system
MANDIR  ?= $(PREFIX)/share/man
FUZZ_SECONDS ?= 60

.PHONY: all build install uninstall test lint unit deps bench package package-test boot-test fuzz
all: build

# Only what install installs: the daemon, the admin CLI and xtask (man pages) in release, and
# the hook in its own profile, statically linked where possible (its start-up is most of its
# cost): target/dist/symroute-hook. A release target/release/symroute-hook would be unused.
build:
	$(CARGO) build --release --locked --workspace --exclude symroute-hook --bins
	CARGO=$(CARGO) scripts/build-hook.sh >/dev/null

install: build
	install -d $(DESTDIR)$(SBINDIR)
	install -m 0755 target/dist/symroute-hook $(DESTDIR)$(SBINDIR)/symroute-hook
	for b in $(filter-out symroute-hook,$(BINS)); do install -m 0755 target/release/$$b $(DESTDIR)$(SBINDIR)/$$b; done
	install -D -m 0644 packaging/iproute2/symroute.conf $(DESTDIR)/etc/iproute2/rt_protos.d/symroute.conf
	# The commented default configuration, never over an admin's own.
	[ -e $(DESTDIR)/etc/symroute/symroute.toml ] || install -D -m 0644 packaging/symroute.toml $(DESTDIR)/etc/symroute/symroute.toml
	sed 's|/usr/sbin/symrouted|$(SBINDIR)/symrouted|' packaging/systemd/symrouted.service > symrouted.service.tmp
	install -D -m 0644 symrouted.service.tmp $(DESTDIR)$(UNITDIR)/symrouted.service
	rm -f symrouted.service.tmp
	# The drop-in [health] needs (an admin copies it: docs/configuration.md).
	install -D -m 0644 packaging/systemd/symrouted-health.conf $(DESTDIR)$(PREFIX)/share/symroute/symrouted-health.conf
	scripts/install-integrations.sh $(SBINDIR) "$(DESTDIR)"
	# Man pages, generated from the binaries' own command lines (as the packages do).
	rm -rf target/man && target/release/xtask man target/man >/dev/null
	install -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0644 target/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 target/man/symroute.toml.5 $(DESTDIR)$(MANDIR)/man5/
	# Make the host symmetric now: the daemon where systemd runs, else one sync (the
	# dispatcher scripts keep it so from then on).
	if [ -z "$(DESTDIR)" ]; then \
		if [ -d /run/systemd/system ]; then \
			systemctl daemon-reload && systemctl enable symrouted && systemctl restart symrouted; \
		else \
			$(SBINDIR)/symroute-hook --all; \
		fi; \
	fi

uninstall:
	-if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now symrouted; fi
	-if [ -z "$(DESTDIR)" ]; then $(SBINDIR)/symroute-hook --flush; fi
	for b in $(BINS); do rm -f $(DESTDIR)$(SBINDIR)/$$b; done
	rm -f $(DESTDIR)$(UNITDIR)/symrouted.service
	rm -f $(DESTDIR)$(PREFIX)/share/symroute/symrouted-health.conf
	-rmdir $(DESTDIR)$(PREFIX)/share/symroute 2>/dev/null
	rm -f $(DESTDIR)/etc/iproute2/rt_protos.d/symroute.conf
	rm -f $(DESTDIR)$(MANDIR)/man8/symroute*.8 $(DESTDIR)$(MANDIR)/man5/symroute.toml.5
	scripts/install-integrations.sh --remove "$(DESTDIR)"

deps:
	scripts/install-test-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	# The fuzz targets' entry points (fuzz/ itself is a workspace of its own).
	$(CARGO) clippy -p symroute-core --features fuzzing --locked -- -D warnings
	scripts/lint-shell.sh

unit:
	$(CARGO) test --workspace --locked --lib --bins

# Property tests draw from a fixed seed here, so that a landing is judged on the same cases
# every time; `cargo test` alone draws new ones (and `make fuzz` explores further).
PROPTEST_RNG_SEED ?= 20261207
test: deps lint
	PROPTEST_RNG_SEED=$(PROPTEST_RNG_SEED) $(CARGO) test --workspace --locked

bench:
	bench/run

# Debian package and RPM in target/packages/ (scripts/build-packages.sh --help)
package:
	CARGO=$(CARGO) scripts/build-packages.sh

# Build both packages, check them, lintian, install/upgrade/purge in an isolated root (root;
# also part of `make test` through cargo test)
package-test:
	CARGO=$(CARGO) tests/packaging/run.sh

# Boot the .deb under a real systemd (systemd-nspawn, cached mmdebstrap roots): ordering with
# cloud-init/ifupdown, networkd and NetworkManager, reload, watchdog (root; also part of
# `make test` through cargo test)
boot-test:
	CARGO=$(CARGO) tests/systemd/run.sh

# Every fuzz target (fuzz/, cargo-fuzz) for FUZZ_SECONDS seconds each, one after the other;
# fails on a crash (docs/fuzzing.md). Not part of `make test`.
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) CARGO=$(CARGO) fuzz/run.sh
