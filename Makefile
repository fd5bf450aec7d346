# gopmd: a drop-in Erlang Port Mapper Daemon.

GO       ?= go
PORT     ?= 14369
ARGS     ?=
FUZZTIME ?= 30s
BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X main.version=$(VERSION)
PREFIX   ?= /usr/local
DESTDIR  ?=
# OTP_ROOT is the OTP installation install-otp changes: the directory
# that holds erts-*/ (code:root_dir() in Erlang).
OTP_ROOT ?=

# Tests that need Erlang skip without it under plain `go test`; under
# `make test` this variable turns those skips into failures.
export GOPMD_REQUIRE_ERLANG ?= 1

.PHONY: oracles otp-suite all build run test verify fmt-check vet tidy-check fsm-purity erlang conformance fuzz fuzz-smoke cover clean epmd-bin install uninstall install-otp uninstall-otp deb deb-test test-portable vet-cross conformance-portable

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# run starts the daemon in the foreground on PORT (14369 by default, so it
# does not collide with a stock epmd on 4369). Stop it with Ctrl-C.
run: build
	$(BIN)/epmd -port $(PORT) $(ARGS)

# epmd-bin builds bin/epmd alone.
epmd-bin:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/epmd ./cmd/epmd

# install copies bin/epmd to $(DESTDIR)$(PREFIX)/bin (see docs/epmd.md).
install: epmd-bin
	install -d '$(DESTDIR)$(PREFIX)/bin'
	install -m 0755 '$(BIN)/epmd' '$(DESTDIR)$(PREFIX)/bin/epmd'

uninstall:
	rm -f '$(DESTDIR)$(PREFIX)/bin/epmd'

# install-otp puts bin/epmd in place of the epmd of the OTP installation at
# OTP_ROOT (each erts-*/bin/epmd, and bin/epmd when it is a file rather than
# the usual symlink), so that erl starts gopmd. The stock binary is kept
# next to it as epmd.stock, never overwritten: running install-otp again
# only updates gopmd. uninstall-otp puts the stock binaries back. It warns
# about a binary that dpkg says a package owns (use the Debian package
# there: make deb), and about scripts (bin/erl, erts-*/bin/erl of a copied
# installation) whose ROOTDIR names another installation, whose epmd their
# nodes would start.
# See docs/drop-in.md.
install-otp: epmd-bin
	@test -n '$(OTP_ROOT)' || { echo "install-otp: set OTP_ROOT, e.g. make install-otp OTP_ROOT=/usr/lib/erlang"; exit 1; }
	@set -e; n=0; \
	for d in '$(OTP_ROOT)'/erts-*/bin '$(OTP_ROOT)/bin'; do \
		if [ "$$d" = '$(OTP_ROOT)/bin' ] && [ -L "$$d/epmd" ]; then continue; fi; \
		if [ ! -e "$$d/epmd" ] && [ ! -L "$$d/epmd" ]; then continue; fi; \
		if command -v dpkg >/dev/null && owner=$$(dpkg -S "$$d/epmd" 2>/dev/null); then \
			echo "install-otp: warning: $$d/epmd belongs to a package ($${owner%%:*}): its next upgrade puts the stock epmd back; the Debian package of gopmd (make deb, docs/packaging.md) diverts it instead"; \
		fi; \
		if [ ! -e "$$d/epmd.stock" ] && [ ! -L "$$d/epmd.stock" ]; then \
			mv "$$d/epmd" "$$d/epmd.stock"; \
		elif [ -e "$$d/epmd" ] && ! "$$d/epmd" -version 2>/dev/null | grep -q '^gopmd '; then \
			echo "install-otp: $$d/epmd is not gopmd but $$d/epmd.stock exists (Erlang upgraded or reinstalled?)."; \
			echo "Remove the old copy (rm $$d/epmd.stock), then run make install-otp again."; \
			exit 1; \
		fi; \
		install -m 0755 '$(BIN)/epmd' "$$d/epmd.gopmd-new"; \
		mv -f "$$d/epmd.gopmd-new" "$$d/epmd"; \
		echo "$$d/epmd: gopmd $$("$$d/epmd" -version | cut -d' ' -f2), stock kept as $$d/epmd.stock"; \
		n=$$((n+1)); \
	done; \
	if [ $$n = 0 ]; then echo "install-otp: no erts-*/bin/epmd under $(OTP_ROOT)"; exit 1; fi; \
	root=$$(cd '$(OTP_ROOT)' && pwd -P); \
	for s in '$(OTP_ROOT)'/bin/* '$(OTP_ROOT)'/erts-*/bin/*; do \
		if [ -L "$$s" ] || [ ! -f "$$s" ] || [ "$$(head -c 2 "$$s")" != '#!' ]; then continue; fi; \
		for r in $$(sed -n 's/^[[:space:]]*ROOTDIR=//p' "$$s" | tr -d "\"'" | sort -u); do \
			case "$$r" in *'$$'*) continue ;; esac; \
			if [ "$$(cd "$$r" 2>/dev/null && pwd -P)" = "$$root" ]; then continue; fi; \
			echo "install-otp: warning: $$s sets ROOTDIR=$$r: nodes started with it run the epmd under $$r, not this one; see docs/drop-in.md"; \
		done; \
	done

uninstall-otp:
	@test -n '$(OTP_ROOT)' || { echo "uninstall-otp: set OTP_ROOT, e.g. make uninstall-otp OTP_ROOT=/usr/lib/erlang"; exit 1; }
	@set -e; \
	for d in '$(OTP_ROOT)'/erts-*/bin '$(OTP_ROOT)/bin'; do \
		if [ ! -e "$$d/epmd.stock" ] && [ ! -L "$$d/epmd.stock" ]; then continue; fi; \
		if [ -e "$$d/epmd" ] && ! "$$d/epmd" -version 2>/dev/null | grep -q '^gopmd '; then \
			echo "uninstall-otp: $$d/epmd is not gopmd (Erlang upgraded or reinstalled?): left alone, and so is $$d/epmd.stock"; \
			continue; \
		fi; \
		mv -f "$$d/epmd.stock" "$$d/epmd"; \
		echo "$$d/epmd: stock epmd restored"; \
	done

# test is what CI runs: formatting, vet, the fsm purity check, then every
# test with the race detector. It needs the stock epmd and erl (the oracle).
test: erlang oracles verify
	$(GO) test -race -count=1 ./...

# test-portable runs the server, conformance and fuzz-smoke suites with the
# portable backend (the net package, a goroutine per connection), the one
# every system but Linux uses, instead of Linux's epoll loop.
test-portable: erlang
	GOPMD_BACKEND=portable $(GO) test -race -count=1 ./epmd/server/... ./conformance/...
	GOPMD_BACKEND=portable $(MAKE) --no-print-directory fuzz-smoke

verify: fmt-check vet vet-cross fsm-purity

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# vet-cross vets the whole module, tests included, for the other systems
# stock epmd runs on.
CROSS_TARGETS = darwin/amd64 darwin/arm64 freebsd/amd64 windows/amd64 linux/arm64
vet-cross:
	@for t in $(CROSS_TARGETS); do \
		echo "== go vet ($$t)"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet ./... || exit 1; \
	done

tidy-check:
	$(GO) mod tidy -diff

# fsm must stay pure: no I/O, no clock, directly or through what it imports.
fsm-purity:
	@bad=$$($(GO) list -deps ./fsm ./epmd/wire ./epmd/registry | grep -E '^(net|os|time|syscall|log|log/slog)$$' || true); \
	if [ -n "$$bad" ]; then echo "fsm, wire or registry pulls in: $$bad"; exit 1; fi

# erlang makes sure the stock epmd and erl, and elixir, are present:
# installed with apt-get when we are root on a Debian-like system,
# required otherwise.
erlang:
	@if command -v epmd >/dev/null && command -v erl >/dev/null && command -v elixir >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq erlang-base elixir >/dev/null; \
	else \
		echo "make test needs Erlang (epmd, erl) and Elixir: install erlang-base and elixir, or run 'GOPMD_REQUIRE_ERLANG=0 go test ./...' to skip those tests"; exit 1; \
	fi

# oracles fetches the stock epmd of OTP 27 and 29 from Debian's archive
# (nothing is installed) and prints "RELEASE PATH" for each; the OTP 25
# oracle is the installed epmd. See scripts/otp-oracles.
oracles:
	@scripts/otp-oracles

# otp-suite runs OTP's own epmd test suite (erts/epmd/test/epmd_SUITE.erl,
# from the Debian source package of the installed Erlang) with common_test
# against bin/epmd, then against the stock epmd as its self-check. Results
# other than ok must be the ones scripts/otp-suite.expect lists, with their
# reason. Needs ct_run (erlang-common-test). See docs/otp-suite.md.
otp-suite: erlang epmd-bin
	@status=0; \
	scripts/otp-suite gopmd $(BIN)/epmd || status=1; \
	scripts/otp-suite stock $$(command -v epmd) || status=1; \
	exit $$status

# conformance runs the scripted conformance suite (docs/conformance.md):
# bin/epmd with each stock release as the reference (OTP 25, the installed
# epmd; OTP 27 and 29, fetched by scripts/otp-oracles), then each stock
# epmd alone as a self-check of the scripts. Every run always happens;
# any failing fails the target. CONFORMANCE_FLAGS are passed to every run.
# SELF_CHECK=0 leaves the stock-alone runs out (conformance-portable does:
# they do not depend on gopmd's backend).
CONFORMANCE_FLAGS ?=
SELF_CHECK ?= 1
conformance: erlang
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/epmd ./cmd/epmd
	$(GO) build -o $(BIN)/epmd-conformance ./cmd/epmd-conformance
	@status=0; \
	oracles=$$(scripts/otp-oracles) || { echo "conformance: scripts/otp-oracles failed: OTP 27 and 29 cannot be checked"; status=1; oracles=; }; \
	set -- 25 "$$(command -v epmd)" $$oracles; \
	while [ $$# -ge 2 ]; do \
		rel=$$1; ref=$$2; shift 2; \
		echo "== $(BIN)/epmd against stock epmd of OTP $$rel ($$ref)"; \
		$(BIN)/epmd-conformance $(CONFORMANCE_FLAGS) -epmd $(BIN)/epmd -reference "$$ref" -reference-otp $$rel || status=1; \
		[ '$(SELF_CHECK)' = 0 ] && continue; \
		echo "== stock epmd of OTP $$rel alone (self-check)"; \
		$(BIN)/epmd-conformance $(CONFORMANCE_FLAGS) -epmd "$$ref" -otp $$rel || status=1; \
	done; \
	exit $$status

# deb builds the Debian package bin/gopmd_DEB_VERSION_DEB_ARCH.deb with nfpm
# (pinned in packaging/tools/go.mod, like go-md2man, which makes the man
# page from docs/epmd.md), then checks it with lintian when lintian is
# installed. DEB_VERSION is VERSION without its v, 0.1.0+3.gabcdef for the
# third commit after v0.1.0, 0~git.abcdef before any tag. See
# docs/packaging.md.
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DEB_VERSION ?= $(shell sh packaging/deb/version.sh '$(VERSION)')
DEB         := $(BIN)/gopmd_$(DEB_VERSION)_$(DEB_ARCH).deb
GO_TOOLS    := $(GO) tool -modfile=packaging/tools/go.mod

deb:
	@rm -rf $(BIN)/deb $(BIN)/gopmd_*.deb && mkdir -p $(BIN)/deb
	CGO_ENABLED=0 GOARCH=$(DEB_ARCH) $(GO) build -trimpath -buildmode=pie -ldflags '-s -w $(LDFLAGS)' -o $(BIN)/deb/gopmd ./cmd/epmd
	sed -e '1s/.*/# gopmd 1 "" "gopmd $(VERSION)" "User Commands"/' \
		-e 's/^`epmd` - /`gopmd`, `epmd` - /' \
		-e 's/\[\([^]]*\)\](\([a-z-]*\.md\)[^)]*)/\1 (\2 in the sources)/g' \
		docs/epmd.md | $(GO_TOOLS) go-md2man -out $(BIN)/deb/gopmd.1
	gzip -9n $(BIN)/deb/gopmd.1
	printf 'gopmd (%s) unstable; urgency=medium\n\n  * gopmd %s. CHANGELOG.md in the sources lists the changes.\n\n -- %s  %s\n' \
		'$(DEB_VERSION)' '$(VERSION)' "$$(sed -n 's/^maintainer: //p' packaging/deb/nfpm.yaml)" "$$(git log -1 --format=%aD 2>/dev/null || date -R)" \
		| gzip -9n >$(BIN)/deb/changelog.gz
	@# The units' sandbox must stay the one of docs/systemd/epmd.service.
	@for u in docs/systemd/epmd.service packaging/deb/gopmd.service; do \
		grep -v '^#' $$u | sed -n '/^DynamicUser=/,/^UMask=/p' >$(BIN)/deb/sandbox.$${u##*/}; done; \
	cmp -s $(BIN)/deb/sandbox.epmd.service $(BIN)/deb/sandbox.gopmd.service || \
		{ echo "deb: the sandbox of packaging/deb/gopmd.service differs from docs/systemd/epmd.service"; exit 1; }
	DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' $(GO_TOOLS) nfpm package -f packaging/deb/nfpm.yaml -p deb -t $(DEB)
	@if command -v lintian >/dev/null; then echo "lintian $(DEB)"; lintian --fail-on error --tag-display-limit 0 $(DEB); \
	else echo "lintian not found: $(DEB) not checked (apt-get install lintian)"; fi

# deb-test installs, upgrades and purges the package in a throwaway Debian
# root (root, mmdebstrap and unshare needed; packaging/deb/test.sh says
# what it checks). The root's tarball is cached in ~/.cache/gopmd/debroot.
deb-test: deb
	sh packaging/deb/test.sh $(DEB)

# conformance-portable is conformance with bin/epmd on the portable backend.
conformance-portable:
	GOPMD_BACKEND=portable $(MAKE) --no-print-directory conformance SELF_CHECK=0

FUZZ_TARGETS = $(shell grep -ho '^func Fuzz[A-Za-z0-9_]*' fuzz/*_test.go 2>/dev/null | sed 's/func //')

# fuzz runs every fuzz target for FUZZTIME, one after another.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) ./fuzz || exit 1; \
	done

# fuzz-smoke runs each target for a count of executions rather than a
# time: with a duration, Go 1.26 can report a target as failed with
# "context deadline exceeded" when the time runs out (golang/go#75804).
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=500x

# fuzz-ci is what CI runs (docs/fuzzing.md): every fuzz target of the
# module, found by scripts/fuzz-ci (each func FuzzXxx(*testing.F) in any
# package's tests), fuzzed for the count of executions its line in
# scripts/fuzz-ci/budgets.txt gives (about a minute each here; a target
# with no line is sized by a short calibration run). FuzzDifferential runs
# once against OTP 25's stock epmd and once against OTP 29's (make
# oracles fetches it). One line per run;
# fails on any failure, whose input go test writes to testdata/fuzz/.
# FUZZ_CI_FLAGS passes more flags, e.g. -scale 0.1 for a quick look or
# -targets Differential for some targets only.
.PHONY: fuzz-ci fuzz-promote props-ci
FUZZ_CI_FLAGS ?=
fuzz-ci: erlang oracles
	$(GO) build -o $(BIN)/fuzz-ci ./scripts/fuzz-ci
	GO='$(GO)' $(BIN)/fuzz-ci run $(FUZZ_CI_FLAGS)

# fuzz-promote copies the inputs fuzzing found interesting (go test keeps
# them in $$(go env GOCACHE)/fuzz) into the committed corpus,
# testdata/fuzz/FuzzXxx/ next to each target, leaving out inputs already
# there; then replays every target's corpus. Commit the new files.
fuzz-promote:
	$(GO) build -o $(BIN)/fuzz-ci ./scripts/fuzz-ci
	GO='$(GO)' $(BIN)/fuzz-ci promote
	$(GO) test -count=1 -run='^Fuzz' ./...

# props-ci runs every rapid property test (a test calling rapid.Check:
# the registry and fsm state machines among them) with PROPS_CHECKS checks
# each instead of rapid's 100 under make test.
PROPS_CHECKS ?= 10000
props-ci:
	$(GO) build -o $(BIN)/fuzz-ci ./scripts/fuzz-ci
	GO='$(GO)' $(BIN)/fuzz-ci props -checks $(PROPS_CHECKS)

cover:
	$(GO) test -count=1 -coverprofile=coverage.out ./epmd/... ./fsm
	$(GO) tool cover -func=coverage.out | tail -1

clean:
	rm -rf $(BIN) coverage.out
