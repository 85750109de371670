# admq-manager — build, run and test. `make run` and `make test` are the
# README's quick start; everything else is for development.

GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/admq/admq-manager/internal/version.Version=$(VERSION)
PKGS      := ./...

.PHONY: all build run test test-setup unit fuzz lint vet fmt-check proto proto-check console console-check bench load compare soak clean

all: build

## build: bin/admq-manager and bin/admq-agent
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/admq-manager ./cmd/admq-agent

## run: a manager on ./data plus one local agent, in the foreground (Ctrl-C stops both)
run: build
	@BIN=$(BIN) bash packaging/scripts/run-local.sh

## test: install what the tests need, then lint and run every test, and every fuzz target for FUZZTIME
test: test-setup lint proto-check console-check unit fuzz

test-setup:
	@bash test/setup.sh

## unit: every Go test, with the race detector
unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## fuzz: every fuzz target (func Fuzz* in any _test.go), one go test -fuzz each, FUZZTIME each
## (5s in make test; longer by hand: make fuzz FUZZTIME=5m); prints the executions of each
FUZZTIME ?= 5s
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) bash test/fuzz.sh

lint: vet fmt-check

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## proto: regenerate proto/agent/v1 with Debian's protoc and the plugin versions pinned in go.mod
proto:
	GOBIN=$(BIN) $(GO) install tool
	PATH=$(BIN):$$PATH protoc --proto_path=proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		agent/v1/agent.proto

## proto-check: fail when the committed generated code differs from what `make proto` makes
proto-check:
	@tmp=$$(mktemp -d) && cp -r proto $$tmp/ && \
	GOBIN=$(BIN) $(GO) install tool && \
	PATH=$(BIN):$$PATH protoc --proto_path=$$tmp/proto \
		--go_out=$$tmp/proto --go_opt=paths=source_relative \
		--go-grpc_out=$$tmp/proto --go-grpc_opt=paths=source_relative \
		agent/v1/agent.proto && \
	diff -r proto $$tmp/proto >/dev/null || { echo "generated protobuf code is stale: run make proto"; rm -rf $$tmp; exit 1; }; \
	rm -rf $$tmp; echo "proto: generated code is current"

CONSOLE := manager/console

## console: rebuild the web console into manager/console/dist (committed, embedded) with node/npm and the lockfile
console:
	cd $(CONSOLE) && npm ci --prefer-offline --no-audit --no-fund && npm run build

## console-check: fail when the committed console build differs from what `make console` makes
console-check:
	@cd $(CONSOLE) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null && \
	tmp=$$(mktemp -d) && \
	npx vue-tsc --noEmit -p tsconfig.json && \
	npx vite build --logLevel error --outDir $$tmp/dist --emptyOutDir && \
	{ diff -r dist $$tmp/dist >/dev/null || { echo "the committed console build is stale: run make console"; diff -rq dist $$tmp/dist; rm -rf $$tmp; exit 1; }; } && \
	rm -rf $$tmp && echo "console: committed build is current"

## bench: benchmarks of the store, API and tunnel
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## soak: test/chaos's soak with flapping agents for SOAK (default 10m; make test runs 3m)
soak: test-setup
	$(GO) test -count=1 -timeout 40m -run '^TestSoak$$' -v ./test/chaos -args -soak=$${SOAK:-10m}

## load: hold N in-process agents against a real manager and print figures (N=1000 by default)
load: build
	$(GO) run ./test/load -manager-bin $(BIN)/admq-manager -agents $${N:-1000} $(LOADFLAGS)

## compare: the same jobs on M namespace hosts with Ansible and with one manager API call, side by side (as root; M=20 by default)
compare:
	@bash test/compare/setup.sh
	ADMQ_COMPARE=1 $(GO) test -count=1 -v -timeout 30m -run TestCompareWithAnsible ./test/compare -args -hosts $${M:-20}

clean:
	rm -rf $(BIN) dist

# Release files. ARCHES=amd64 packs one architecture; AGENT_ARCHES are the
# agent binaries every manager tarball and package carries (for SSH bootstrap).
ARCHES       ?= amd64 arm64
AGENT_ARCHES ?= amd64 arm64
DIST         ?= $(CURDIR)/dist
DIST_ABS      = $(abspath $(DIST))
DIST_PACK     = cd packaging/dist && $(GO) run . -root '$(CURDIR)' -dist '$(DIST_ABS)' -version '$(VERSION)' \
	-arches '$(ARCHES)' -agent-arches '$(AGENT_ARCHES)'

.PHONY: dist dist-bin packages

## dist: dist/ gets linux binaries, admq-manager-<version>-linux-<arch>.tar.gz, .deb and .rpm of both
dist: dist-bin
	$(DIST_PACK) -formats 'tar deb rpm'

## packages: only the .deb and .rpm files of dist
packages: dist-bin
	$(DIST_PACK) -formats 'deb rpm'

## dist-bin: static, trimmed admq-manager-linux-<arch> and admq-agent-linux-<arch> in dist/
dist-bin:
	@mkdir -p '$(DIST_ABS)'
	@set -e; for a in $(ARCHES); do \
		echo "build $(DIST_ABS)/admq-manager-linux-$$a"; \
		GOOS=linux GOARCH=$$a CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o '$(DIST_ABS)'/admq-manager-linux-$$a ./cmd/admq-manager; \
	done; \
	for a in $(sort $(ARCHES) $(AGENT_ARCHES)); do \
		echo "build $(DIST_ABS)/admq-agent-linux-$$a"; \
		GOOS=linux GOARCH=$$a CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o '$(DIST_ABS)'/admq-agent-linux-$$a ./cmd/admq-agent; \
	done
