# pgbapi-proxy — see README.md. `make help` lists the targets.

GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# The release tag (git describe: v1.2.3, or v1.2.3-4-gSHA after it). With
# no tag: 0.0.0+git<commit time, UTC>.<sha>, which sorts by commit date
# in dpkg and rpm (a bare sha would not); .dirty for local changes.
ifeq ($(origin VERSION),undefined)
VERSION := $(shell git describe --tags --dirty 2>/dev/null || \
	{ TZ=UTC git log -1 --format='0.0.0+git%cd.%h' --date=format-local:%Y%m%d%H%M%S 2>/dev/null | grep . && \
	  { git diff --quiet HEAD 2>/dev/null || echo .dirty; }; } | tr -d '\n' | grep . || echo dev)
endif
# Where build puts the program, man page and completion (the tests build
# into a directory of their own, never into the developer's bin/).
BUILD   ?= bin
BIN     := $(BUILD)/pgbapi-proxy
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

.PHONY: help version build test lint run clean deb rpm packages install bench soak

help: ## list the targets (paths as this make would use them)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}' | \
		sed -e 's|$$(BUILD)|$(BUILD)|g' -e 's|$$(DIST)|$(DIST)|g' -e 's|$$(DESTDIR)$$(PREFIX)|$(DESTDIR)$(PREFIX)|g' \
			-e 's|$$(SYSTEMDDIR)|$(DESTDIR)$(SYSTEMDDIR)|g' -e 's|$$(DEFAULTS)|$(DESTDIR)$(DEFAULTS)|g' -e 's|$$(DEMO)|$(DEMO)|g' \
			-e 's|$$(VERSION)|$(VERSION)|g'

version: ## print the version the build and the packages get: $(VERSION)
	@echo '$(VERSION)'

build: ## build $(BUILD)/pgbapi-proxy, its man page and bash completion (and $(BUILD)/demo-upstream for make run)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/pgbapi-proxy
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BUILD)/demo-upstream ./cmd/demo-upstream
	$(BIN) manpage | gzip -9n > $(BUILD)/pgbapi-proxy.1.gz
	$(BIN) completion bash > $(BUILD)/pgbapi-proxy.bash-completion

# make install: where the packages put things. PREFIX for the program and
# its documentation; the unit goes where systemd looks for units of that
# prefix (/usr/lib/systemd/system, or PREFIX/lib/systemd/system, e.g.
# /usr/local/lib/systemd/system, which systemd reads too), the settings
# file where the distribution looks for it.
PREFIX     ?= /usr
DESTDIR    ?=
SYSTEMDDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/systemd/system,$(PREFIX)/lib/systemd/system)
DEFAULTS   ?= /etc/default/pgbapi-proxy

install: build ## install into $(DESTDIR)$(PREFIX): program, man page, completion, dashboard; the unit into $(SYSTEMDDIR), the settings file $(DEFAULTS)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/pgbapi-proxy
	install -D -m 0644 $(BUILD)/pgbapi-proxy.1.gz $(DESTDIR)$(PREFIX)/share/man/man1/pgbapi-proxy.1.gz
	install -D -m 0644 $(BUILD)/pgbapi-proxy.bash-completion $(DESTDIR)$(PREFIX)/share/bash-completion/completions/pgbapi-proxy
	install -D -m 0644 packaging/grafana-dashboard.json $(DESTDIR)$(PREFIX)/share/pgbapi-proxy/grafana-dashboard.json
	mkdir -p $(DESTDIR)$(SYSTEMDDIR)
	sed 's|/usr/bin/pgbapi-proxy|$(PREFIX)/bin/pgbapi-proxy|' packaging/pgbapi-proxy.service > $(DESTDIR)$(SYSTEMDDIR)/pgbapi-proxy.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/pgbapi-proxy.service
	@# The settings file is the operator's: never replaced.
	if [ -e $(DESTDIR)$(DEFAULTS) ]; then echo "kept $(DESTDIR)$(DEFAULTS)"; \
	else install -D -m 0644 packaging/pgbapi-proxy.default $(DESTDIR)$(DEFAULTS); fi
	@echo "Installed. To set up as the packages do (service user, init, permissions, service), run as root:"
	@echo "  sh packaging/scripts/preinstall.sh install && sh packaging/scripts/postinstall.sh configure"

bench: build ## pgbapi-proxy against nginx and HAProxy, proxy pinned to CPU 0 (BENCH_QUICK=1: short); installs nginx and haproxy when root and missing
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BUILD)/pgbapi-bench ./cmd/pgbapi-bench
	@for p in nginx haproxy; do \
		if ! command -v $$p >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$p >/dev/null; fi; done
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./proxy
	BIN=$(BIN) GEN=$(BUILD)/pgbapi-bench UP=$(BUILD)/demo-upstream ./scripts/bench.sh

soak: ## long tests: 10,000 idle TLS connections, a million requests from good and bad clients (PGBAPI_SOAK_REQUESTS=N to shorten)
	ulimit -n $$(ulimit -Hn) && PGBAPI_SOAK=1 PGBAPI_SOAK_REQUESTS=$(PGBAPI_SOAK_REQUESTS) $(GO) test -count=1 -timeout 60m -run '^TestSoak' -v ./cmd/pgbapi-proxy 2>&1 | grep -E '^(=== RUN|--- |\s+soak_test.go:.*SOAK|PASS|FAIL|ok)'

FUZZTIME ?= 5s

test: lint ## run every test, and the fuzzers for a short while (README's test prerequisites; .ci/run installs them; some tests need root); ends with a line per skipped test
	$(GO) run ./internal/testreport $(GO) test -count=1 -race -json ./...
	$(GO) test -run '^$$' -fuzz '^FuzzParseRules$$' -fuzztime $(FUZZTIME) ./proxy
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate$$' -fuzztime $(FUZZTIME) ./packaging/pin
	$(GO) test -run '^$$' -fuzz '^FuzzParsePEM$$' -fuzztime $(FUZZTIME) ./pki
	$(GO) test -run '^$$' -fuzz '^FuzzEnvFlags$$' -fuzztime $(FUZZTIME) ./cmd/pgbapi-proxy
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/envfile
	$(GO) test -run '^$$' -fuzz '^FuzzParseCSR$$' -fuzztime $(FUZZTIME) ./pki

lint: ## gofmt check and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run: build ## run the proxy in front of a demo pg-backup-api, PKI in $(DEMO) (Ctrl-C stops)
	BIN=$(BIN) UPSTREAM_BIN=$(BUILD)/demo-upstream DEMO=$(DEMO) ./scripts/run-demo.sh

$(NFPM):
	mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	mv $(TOOLS)/nfpm $@

$(DIST)/nfpm.yaml: build FORCE
	$(GO) run ./packaging/nfpmconfig --pin '$(PG_BACKUP_API_VERSION)' --version '$(VERSION)' --release '$(RELEASE)' --build '$(BUILD)' --out $(DIST)

deb: $(DIST)/nfpm.yaml $(NFPM) ## build $(DIST)/pgbapi-proxy_*.deb (PG_BACKUP_API_VERSION=pin, VERSION=...)
	$(NFPM) package --config $(DIST)/nfpm.yaml --packager deb --target $(DIST)/

rpm: $(DIST)/nfpm.yaml $(NFPM) ## build $(DIST)/pgbapi-proxy-*.rpm (PG_BACKUP_API_VERSION=pin, VERSION=...)
	$(NFPM) package --config $(DIST)/nfpm.yaml --packager rpm --target $(DIST)/

packages: deb rpm ## build both packages

FORCE:

clean: ## remove build output, packages and the demo directory: $(BUILD) $(DIST) $(DEMO) bench-results
	rm -rf $(BUILD) $(DIST) $(DEMO) bench-results
