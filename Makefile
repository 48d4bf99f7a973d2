# pgbapi-proxy — see README.md. `make help` lists the targets.

GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN     := bin/pgbapi-proxy
LDFLAGS := -s -w -X main.version=$(VERSION)
DEMO    := demo

.PHONY: help build test lint run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build bin/pgbapi-proxy (and bin/demo-upstream for make run)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pgbapi-proxy
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/demo-upstream ./cmd/demo-upstream

test: lint ## run every test (openssl and curl must be installed; some tests need root)
	$(GO) test -count=1 -race ./...

lint: ## gofmt check and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run: build ## run the proxy in front of a demo pg-backup-api, PKI in ./demo (Ctrl-C stops)
	BIN=$(BIN) UPSTREAM_BIN=bin/demo-upstream DEMO=$(DEMO) ./scripts/run-demo.sh

clean: ## remove build output and the demo directory
	rm -rf bin $(DEMO)
