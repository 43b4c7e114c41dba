# Mycorrizal — the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:/usr/sbin:/sbin:$(PATH)
GO ?= go
# Tests run with the race detector; CI sets CI=true so tests that need a
# tool or root do not skip.
TEST_FLAGS ?= -race -count=1 -timeout 15m
FUZZTIME ?= 30s

.PHONY: all demo test vet bench fuzz soak faults check-go test-deps

# Debian packages the tests need: iproute2 (network namespaces) and nftables
# (cutting hosts off, packet loss). Installed when missing and running as
# root; otherwise the tests that need them skip (outside CI) or fail (CI).
TEST_PACKAGES := ip:iproute2 nft:nftables dnsmasq:dnsmasq-base

all: test

check-go:
	@command -v $(GO) >/dev/null || { echo "Go 1.26+ is required (expected at /usr/local/go)"; exit 1; }

## demo: a 3-node cluster in one process doing real work; ends by itself.
demo: check-go
	$(GO) run ./examples/demo

## test: vet, then every test with -race (what CI runs).
test: check-go test-deps vet
	$(GO) test $(TEST_FLAGS) ./...
	@# The 1Password SDK's WASM validator takes ~45 s to load under -race, so
	@# its test runs once more here without the race detector.
	$(GO) test -count=1 -run '^TestSDK$$' ./adapters/certs/onepassword
	cd bench && $(GO) vet ./... && $(GO) test -count=1 -run=^$$ -bench=. -benchtime=1x ./... >/dev/null

vet: check-go
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

## bench: run the benchmarks and write BENCHMARKS.md.
bench: check-go
	cd bench && ./run.sh

## soak: random fault schedules for SOAK (default 10m), NEMESIS_SKEW the
## clock skew bound (e.g. 2s; unset: none); prints each schedule and a total.
SOAK ?= 10m
soak: check-go
	SOAK=$(SOAK) $(GO) test -race -count=1 -timeout 0 -run '^TestSoak$$' -v ./testkit

## faults: the seeded fault schedules (TestFaultSchedules; NEMESIS_SEED=N
## replays one).
faults: check-go
	NEMESIS=1 $(GO) test -race -count=1 -run '^TestFaultSchedules$$' -v ./testkit

## fuzz: run every fuzz target for FUZZTIME each.
fuzz: check-go
	$(GO) test -run='^$$' -fuzz='^FuzzReader$$' -fuzztime=$(FUZZTIME) ./core/wire
	$(GO) test -run='^$$' -fuzz='^FuzzRoundTrip$$' -fuzztime=$(FUZZTIME) ./core/wire
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeMeta$$' -fuzztime=$(FUZZTIME) ./adapters/membership/memberlist
	$(GO) test -run='^$$' -fuzz='^FuzzUnmarshal$$' -fuzztime=$(FUZZTIME) ./adapters/codec/gob
	$(GO) test -run='^$$' -fuzz='^FuzzUnmarshal$$' -fuzztime=$(FUZZTIME) ./adapters/codec/raw
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeRequest$$' -fuzztime=$(FUZZTIME) ./core/cache
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeResponse$$' -fuzztime=$(FUZZTIME) ./core/cache
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeRecords$$' -fuzztime=$(FUZZTIME) ./core/cache
	$(GO) test -run='^$$' -fuzz='^FuzzDecodePull$$' -fuzztime=$(FUZZTIME) ./core/cache
	$(GO) test -run='^$$' -fuzz='^FuzzReply$$' -fuzztime=$(FUZZTIME) ./adapters/discovery/dnssd

test-deps:
	@missing=""; for p in $(TEST_PACKAGES); do cmd=$${p%%:*}; pkg=$${p#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; \
	  else echo "not installing$$missing (not root): tests that need them will skip"; fi; \
	fi
