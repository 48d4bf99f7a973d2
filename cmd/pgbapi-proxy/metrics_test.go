package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/pkisource"
	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/pgbapi/pgbapi-proxy/servercert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	descName   = regexp.MustCompile(`fqName: "([a-z_]+)"`)
	metricName = regexp.MustCompile(`pgbapi_proxy_[a-z_]+`)
)

// builtServe wires serve exactly as the command does, on a fresh PKI and
// loopback ports, without serving.
func builtServe(t *testing.T) *served {
	t.Helper()
	d := newDirs(t)
	l := pki.Layout{TPADir: d.tpa, StateDir: d.state}
	_, err := pki.Init(pki.InitOptions{Layout: l, Cluster: "test", Hostnames: []string{"localhost"}, KeyType: pki.ECDSAP256, ServerDays: 90, ClientDays: 365})
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	up, err := parseUpstream("127.0.0.1:7480")
	require.NoError(t, err)
	s := serveSetup{layout: l, listen: "127.0.0.1:0", admin: "127.0.0.1:0", poll: time.Second, log: log,
		access: pkisource.Options{Layout: l, Log: log},
		certs:  servercert.Options{Layout: l, Lifetime: time.Hour, Log: log},
		cfg:    proxy.Config{Upstream: up, Logger: log}}
	b, err := s.build(context.Background())
	require.NoError(t, err)
	t.Cleanup(b.close)
	return b
}

// Every series the Grafana dashboard queries is one serve registers, and
// every series serve registers is on the dashboard.
func TestDashboardQueriesDefinedSeries(t *testing.T) {
	b := builtServe(t)
	defined := map[string]bool{}
	ch := make(chan *prometheus.Desc, 256)
	go func() { b.registry.Describe(ch); close(ch) }()
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil && strings.HasPrefix(m[1], "pgbapi_proxy_") {
			defined[m[1]] = true
		}
	}
	require.Contains(t, defined, "pgbapi_proxy_requests_total")
	require.Contains(t, defined, "pgbapi_proxy_server_cert_renewals_total")
	require.Contains(t, defined, "pgbapi_proxy_certificate_expiry_timestamp_seconds")

	data, err := os.ReadFile("../../packaging/grafana-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(data, &dash))
	require.NotEmpty(t, dash.Panels)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, target := range p.Targets {
			for _, name := range metricName.FindAllString(target.Expr, -1) {
				name = strings.TrimSuffix(name, "_bucket")
				used[name] = true
				assert.True(t, defined[name], "%s: %s is not a series the proxy exports", p.Title, name)
			}
		}
	}
	for name := range defined {
		assert.True(t, used[name] || name == "pgbapi_proxy_build_info", "the dashboard shows nothing of %s", name)
	}
}
