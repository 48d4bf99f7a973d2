package proxy

import (
	"runtime"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the proxy's Prometheus series, in a registry of its own.
type metrics struct {
	registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	inflight   prometheus.Gauge
	handshakes *prometheus.CounterVec
	upstream   *prometheus.CounterVec
	renewals   *prometheus.CounterVec
	denied     *prometheus.CounterVec
	operations *prometheus.CounterVec
}

func newMetrics(version string, l pki.Layout, serving func() (string, time.Time, bool)) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_requests_total",
			Help: "Requests answered, by pg-backup-api route template, method, status code and client certificate name.",
		}, []string{"route", "method", "code", "client"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgbapi_proxy_request_duration_seconds",
			Help:    "Time from request to the end of the answer, by route template and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgbapi_proxy_upstream_inflight_requests",
			Help: "Requests at the upstream now.",
		}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_tls_handshake_failures_total",
			Help: "TLS handshakes that failed, by reason (no_cert, unknown_ca, expired, bad_usage, protocol, timeout, aborted, ...).",
		}, []string{"reason"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_upstream_errors_total",
			Help: "Requests the upstream did not answer, by kind (unreachable, timeout, queue_full).",
		}, []string{"kind"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_server_cert_renewals_total",
			Help: "Server certificates obtained from the intermediate, by result (ok, failed).",
		}, []string{"result"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_access_denied_total",
			Help: "Requests refused with 403 before the upstream, by client name and reason (rule, revoked).",
		}, []string{"client", "reason"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_operations_started_total",
			Help: "pg-backup-api operations started through the proxy (202 to a POST), by client name and operation type.",
		}, []string{"client", "type"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgbapi_proxy_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m.registry.MustRegister(append(m.own(), build, &expiryCollector{layout: l, serving: serving},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))...)
	return m
}

// own are the proxy's own series that change while it serves.
func (m *metrics) own() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.inflight, m.handshakes, m.upstream, m.renewals, m.denied, m.operations}
}

var expiryDesc = prometheus.NewDesc("pgbapi_proxy_certificate_expiry_timestamp_seconds",
	"When a certificate of the cluster PKI expires (Unix time): the root, the intermediate, the server certificate served now and each issued client certificate.",
	[]string{"name", "kind", "serial"}, nil)

// expiryCollector reads the inventory at each scrape, so that certificates
// issued while the proxy runs show up without a restart.
type expiryCollector struct {
	layout  pki.Layout
	serving func() (serial string, notAfter time.Time, ok bool)
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	serial, notAfter, ok := c.serving()
	if ok {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(notAfter.Unix()), pki.ServerName, string(pki.KindServer), serial)
	}
	recs, err := pki.ReadInventory(c.layout)
	if err != nil {
		return
	}
	seen := map[string]bool{serial: true}
	for _, r := range recs {
		if r.Replaced || r.RevokedAt != nil || r.Kind == pki.KindServer || seen[r.Serial] {
			continue
		}
		seen[r.Serial] = true
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(r.NotAfter.Unix()), r.Name, string(r.Kind), r.Serial)
	}
}
