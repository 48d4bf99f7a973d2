# pgbapi-proxy — see README.md. `make help` lists the targets.

GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN     := bin/pgbapi-proxy
LDFLAGS := -s -w -X main.version=$(VERSION)
DEMO    := demo
DIST    ?= dist
# The operator's pg-backup-api pin (2.0.0-1.el8, 2:2.0.0-1, 2.0.0, 2.0.0*,
# 2:2.0.0*); empty: any version.
PG_BACKUP_API_VERSION ?=
RELEASE ?= 1
# nfpm builds the packages; v2.45.2 is the newest the module proxy here serves.
NFPM_VERSION := v2.45.2
TOOLS   := $(CURDIR)/bin/tools
NFPM    := $(TOOLS)/nfpm-$(NFPM_VERSION)

.PHONY: help build test lint run clean deb rpm packages install bench soak

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

build: ## build bin/pgbapi-proxy, its man page and bash completion (and bin/demo-upstream for make run)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pgbapi-proxy
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/demo-upstream ./cmd/demo-upstream
	$(BIN) manpage | gzip -9n > bin/pgbapi-proxy.1.gz
	$(BIN) completion bash > bin/pgbapi-proxy.bash-completion

# make install: where the packages put things. PREFIX for the program and
# its documentation; the unit and the settings file go where systemd and
# the distribution look for them.
PREFIX     ?= /usr
DESTDIR    ?=
SYSTEMDDIR ?= /usr/lib/systemd/system
DEFAULTS   ?= /etc/default/pgbapi-proxy

install: build ## install into $(DESTDIR)$(PREFIX): program, man page, completion, dashboard; the unit and settings file
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/pgbapi-proxy
	install -D -m 0644 bin/pgbapi-proxy.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/pgbapi-proxy.1.gz
	install -D -m 0644 bin/pgbapi-proxy.bash-completion $(DESTDIR)$(PREFIX)/share/bash-completion/completions/pgbapi-proxy
	install -D -m 0644 packaging/grafana-dashboard.json $(DESTDIR)$(PREFIX)/share/pgbapi-proxy/grafana-dashboard.json
	mkdir -p $(DESTDIR)$(SYSTEMDDIR)
	sed 's|/usr/bin/pgbapi-proxy|$(PREFIX)/bin/pgbapi-proxy|' packaging/pgbapi-proxy.service > $(DESTDIR)$(SYSTEMDDIR)/pgbapi-proxy.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/pgbapi-proxy.service
	@# The settings file is the operator's: never replaced.
	if [ -e $(DESTDIR)$(DEFAULTS) ]; then echo "kept $(DESTDIR)$(DEFAULTS)"; \
	else install -D -m 0644 packaging/pgbapi-proxy.default $(DESTDIR)$(DEFAULTS); fi
	@echo "Installed. To set up as the packages do (service user, init, permissions, service), run as root:"
	@echo "  sh packaging/scripts/postinstall.sh configure"

bench: build ## pgbapi-proxy against nginx, proxy pinned to CPU 0 (BENCH_QUICK=1: short); installs nginx when root and missing
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/pgbapi-bench ./cmd/pgbapi-bench
	@if ! command -v nginx >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null; fi
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./proxy
	./scripts/bench.sh

soak: ## long tests: 10,000 idle TLS connections, a million requests from good and bad clients (PGBAPI_SOAK_REQUESTS=N to shorten)
	ulimit -n $$(ulimit -Hn) && PGBAPI_SOAK=1 PGBAPI_SOAK_REQUESTS=$(PGBAPI_SOAK_REQUESTS) $(GO) test -count=1 -timeout 60m -run '^TestSoak' -v ./cmd/pgbapi-proxy 2>&1 | grep -E '^(=== RUN|--- |\s+soak_test.go:.*SOAK|PASS|FAIL|ok)'

FUZZTIME ?= 5s

test: lint ## run every test, and the fuzzers for a short while (see .ci/run for what to install; some tests need root)
	$(GO) test -count=1 -race ./...
	$(GO) test -run '^$$' -fuzz '^FuzzParseRules$$' -fuzztime $(FUZZTIME) ./proxy
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate$$' -fuzztime $(FUZZTIME) ./packaging/pin
	$(GO) test -run '^$$' -fuzz '^FuzzParsePEM$$' -fuzztime $(FUZZTIME) ./pki
	$(GO) test -run '^$$' -fuzz '^FuzzEnvFlags$$' -fuzztime $(FUZZTIME) ./cmd/pgbapi-proxy
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/envfile
	$(GO) test -run '^$$' -fuzz '^FuzzParseCSR$$' -fuzztime $(FUZZTIME) ./pki

lint: ## gofmt check and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run: build ## run the proxy in front of a demo pg-backup-api, PKI in ./demo (Ctrl-C stops)
	BIN=$(BIN) UPSTREAM_BIN=bin/demo-upstream DEMO=$(DEMO) ./scripts/run-demo.sh

$(NFPM):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	mv $(TOOLS)/nfpm $@

$(DIST)/nfpm.yaml: build FORCE
	$(GO) run ./packaging/nfpmconfig --pin '$(PG_BACKUP_API_VERSION)' --version '$(VERSION)' --release '$(RELEASE)' --out $(DIST)

deb: $(DIST)/nfpm.yaml $(NFPM) ## build dist/pgbapi-proxy_*.deb (PG_BACKUP_API_VERSION=pin, VERSION=...)
	$(NFPM) package --config $(DIST)/nfpm.yaml --packager deb --target $(DIST)/

rpm: $(DIST)/nfpm.yaml $(NFPM) ## build dist/pgbapi-proxy-*.rpm (PG_BACKUP_API_VERSION=pin, VERSION=...)
	$(NFPM) package --config $(DIST)/nfpm.yaml --packager rpm --target $(DIST)/

packages: deb rpm ## build both packages

FORCE:

clean: ## remove build output, packages and the demo directory
	rm -rf bin $(DIST) $(DEMO) bench-results
