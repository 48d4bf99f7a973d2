package proxy

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	descName   = regexp.MustCompile(`fqName: "([a-z_]+)"`)
	metricName = regexp.MustCompile(`pgbapi_proxy_[a-z_]+`)
)

// Every series the Grafana dashboard queries is one the proxy defines.
func TestDashboardQueriesDefinedSeries(t *testing.T) {
	m := newMetrics("test", pki.Layout{}, nil)
	defined := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range append(m.own(), &expiryCollector{}) {
		c.Describe(ch)
	}
	close(ch)
	for d := range ch {
		defined[descName.FindStringSubmatch(d.String())[1]] = true
	}
	defined["pgbapi_proxy_build_info"] = true

	data, err := os.ReadFile("../packaging/grafana-dashboard.json")
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
