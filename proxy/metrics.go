package proxy

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the proxy's Prometheus series. Every label takes values
// from a fixed set or from a verified certificate: methods and routes
// pg-backup-api does not have are "other".
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	inflight    prometheus.Gauge
	bodyBytes   prometheus.Gauge
	answerBytes prometheus.Gauge
	handshakes  *prometheus.CounterVec
	upstream    *prometheus.CounterVec
	denied      *prometheus.CounterVec
	operations  *prometheus.CounterVec
}

// newMetrics registers the proxy's series, the Go runtime's and the
// process's on reg.
func newMetrics(reg prometheus.Registerer, version string) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_requests_total",
			Help: "Requests answered, by pg-backup-api route template (or other), method (GET, HEAD, OPTIONS, POST or other), status code and client certificate name.",
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
		bodyBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgbapi_proxy_request_body_buffered_bytes",
			Help: "Bytes of request bodies held in memory now (reserved from the request body budget).",
		}),
		answerBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgbapi_proxy_answer_buffered_bytes",
			Help: "Bytes of upstream answers held in memory now, until their clients read them (reserved from the answer budget).",
		}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_tls_handshake_failures_total",
			Help: "TLS handshakes that failed, by reason (no_cert, unknown_ca, expired, revoked, bad_identity, bad_usage, protocol, timeout, aborted, overload, overload_source, ...).",
		}, []string{"reason"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_upstream_errors_total",
			Help: "Requests the upstream did not answer, by kind (unreachable, timeout, cut, queue_full; body_budget: refused with 503 before it, the request body budget being spent).",
		}, []string{"kind"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_access_denied_total",
			Help: "Requests refused with 403 before the upstream, by client name and reason (rule, revoked, expired).",
		}, []string{"client", "reason"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgbapi_proxy_operations_started_total",
			Help: "pg-backup-api operations started through the proxy (202 to a POST), by client name and operation type (recovery, config_switch, config_update, other; unknown for a body that is not strict JSON).",
		}, []string{"client", "type"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pgbapi_proxy_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	for _, c := range append(m.own(), build, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// own are the proxy's own series that change while it serves.
func (m *metrics) own() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.inflight, m.bodyBytes, m.answerBytes, m.handshakes, m.upstream, m.denied, m.operations}
}
