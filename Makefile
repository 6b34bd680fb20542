# symroute: build, install, test.
#   sudo make install   build, install, and make this host's routing symmetric now
#   sudo make test      install test dependencies and run every test (as CI does)

PREFIX  ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
DESTDIR ?=
CARGO   ?= $(shell scripts/ensure-toolchain.sh)
BINS     = symroute-hook

.PHONY: all build install uninstall test lint unit deps
all: build

build:
	$(CARGO) build --release --locked

install: build
	install -d $(DESTDIR)$(SBINDIR)
	for b in $(BINS); do install -m 0755 target/release/$$b $(DESTDIR)$(SBINDIR)/$$b; done
	install -D -m 0644 packaging/iproute2/symroute.conf $(DESTDIR)/etc/iproute2/rt_protos.d/symroute.conf
	if [ -x scripts/install-integrations.sh ]; then scripts/install-integrations.sh $(SBINDIR) "$(DESTDIR)"; fi
	# Make the host symmetric now; later interface events keep it so.
	if [ -z "$(DESTDIR)" ]; then $(SBINDIR)/symroute-hook --all; fi

uninstall:
	-$(SBINDIR)/symroute-hook --flush
	for b in $(BINS); do rm -f $(DESTDIR)$(SBINDIR)/$$b; done
	rm -f $(DESTDIR)/etc/iproute2/rt_protos.d/symroute.conf
	scripts/install-integrations.sh --remove "$(DESTDIR)"

deps:
	scripts/install-test-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked --lib --bins

test: deps lint
	$(CARGO) test --workspace --locked
