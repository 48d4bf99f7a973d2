package pkisource

import (
	"crypto/x509"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/prometheus/client_golang/prometheus"
)

var expiryDesc = prometheus.NewDesc("pgbapi_proxy_certificate_expiry_timestamp_seconds",
	"When a certificate of the cluster PKI expires (Unix time): the root, the intermediate, the server certificate served now and each issued client certificate.",
	[]string{"name", "kind", "serial"}, nil)

// ExpiryCollector reports certificate expiry times. It reads the
// inventory at each scrape, so that certificates issued while the proxy
// runs show up without a restart; the served server certificate comes
// from Serving.
type ExpiryCollector struct {
	Layout  pki.Layout
	Serving func() (*x509.Certificate, error)
}

// Describe implements prometheus.Collector.
func (c *ExpiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- expiryDesc }

// Collect implements prometheus.Collector.
func (c *ExpiryCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	if c.Serving != nil {
		if leaf, err := c.Serving(); err == nil && leaf != nil {
			serial := pki.SerialHex(leaf)
			seen[serial] = true
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), pki.ServerName, string(pki.KindServer), serial)
		}
	}
	recs, err := pki.ReadInventory(c.Layout)
	if err != nil {
		return
	}
	for _, r := range recs {
		if r.Replaced || r.RevokedAt != nil || r.Kind == pki.KindServer || seen[r.Serial] {
			continue
		}
		seen[r.Serial] = true
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(r.NotAfter.Unix()), r.Name, string(r.Kind), r.Serial)
	}
}
