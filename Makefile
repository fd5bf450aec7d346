# gopmd: a drop-in Erlang Port Mapper Daemon.

GO       ?= go
PORT     ?= 14369
ARGS     ?=
FUZZTIME ?= 30s
BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X main.version=$(VERSION)

# Tests that need Erlang skip without it under plain `go test`; under
# `make test` this variable turns those skips into failures.
export GOPMD_REQUIRE_ERLANG ?= 1

.PHONY: all build run test verify fmt-check vet tidy-check fsm-purity erlang fuzz fuzz-smoke cover clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# run starts the daemon in the foreground on PORT (14369 by default, so it
# does not collide with a stock epmd on 4369). Stop it with Ctrl-C.
run: build
	$(BIN)/epmd -port $(PORT) $(ARGS)

# test is what CI runs: formatting, vet, the fsm purity check, then every
# test with the race detector. It needs the stock epmd and erl (the oracle).
test: erlang verify
	$(GO) test -race -count=1 ./...

verify: fmt-check vet fsm-purity

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

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

FUZZ_TARGETS = $(shell grep -ho '^func Fuzz[A-Za-z0-9_]*' fuzz/*_test.go 2>/dev/null | sed 's/func //')

# fuzz runs every fuzz target for FUZZTIME, one after another.
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) ./fuzz || exit 1; \
	done

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=5s

cover:
	$(GO) test -count=1 -coverprofile=coverage.out ./epmd/... ./fsm
	$(GO) tool cover -func=coverage.out | tail -1

clean:
	rm -rf $(BIN) coverage.out
