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

.PHONY: all build run test test-portable verify fmt-check vet vet-cross tidy-check fsm-purity erlang conformance conformance-portable fuzz fuzz-smoke cover clean epmd-bin install uninstall install-otp uninstall-otp

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
# only updates gopmd. uninstall-otp puts the stock binaries back.
# See docs/drop-in.md.
install-otp: epmd-bin
	@test -n '$(OTP_ROOT)' || { echo "install-otp: set OTP_ROOT, e.g. make install-otp OTP_ROOT=/usr/lib/erlang"; exit 1; }
	@set -e; n=0; \
	for d in '$(OTP_ROOT)'/erts-*/bin '$(OTP_ROOT)/bin'; do \
		if [ "$$d" = '$(OTP_ROOT)/bin' ] && [ -L "$$d/epmd" ]; then continue; fi; \
		if [ ! -e "$$d/epmd" ] && [ ! -L "$$d/epmd" ]; then continue; fi; \
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
	if [ $$n = 0 ]; then echo "install-otp: no erts-*/bin/epmd under $(OTP_ROOT)"; exit 1; fi

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
test: erlang verify
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

# erlang makes sure the stock epmd and erl are present: installed with
# apt-get when we are root on a Debian-like system, required otherwise.
erlang:
	@if command -v epmd >/dev/null && command -v erl >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq erlang-base >/dev/null; \
	else \
		echo "make test needs Erlang (epmd, erl): install erlang-base, or run 'GOPMD_REQUIRE_ERLANG=0 go test ./...' to skip those tests"; exit 1; \
	fi

# conformance runs the scripted conformance suite (docs/conformance.md):
# bin/epmd with the stock epmd as the reference, then the stock epmd alone
# as a self-check of the scripts. Both always run; either failing fails.
conformance: erlang
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/epmd ./cmd/epmd
	$(GO) build -o $(BIN)/epmd-conformance ./cmd/epmd-conformance
	@status=0; \
	echo "== $(BIN)/epmd against stock epmd"; \
	$(BIN)/epmd-conformance -epmd $(BIN)/epmd -reference $$(command -v epmd) || status=1; \
	echo "== stock epmd alone (self-check)"; \
	$(BIN)/epmd-conformance -epmd $$(command -v epmd) || status=1; \
	exit $$status

# conformance-portable is conformance with bin/epmd on the portable backend.
conformance-portable:
	GOPMD_BACKEND=portable $(MAKE) --no-print-directory conformance

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

cover:
	$(GO) test -count=1 -coverprofile=coverage.out ./epmd/... ./fsm
	$(GO) tool cover -func=coverage.out | tail -1

clean:
	rm -rf $(BIN) coverage.out
