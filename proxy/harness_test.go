package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
	"github.com/stretchr/testify/require"
)

// staticSource serves one certificate, for in-process tests.
type staticSource struct{ cert tls.Certificate }

func (s *staticSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return &s.cert, nil
}
func (s *staticSource) Leaf() (*x509.Certificate, error) { return s.cert.Leaf, nil }

// syncBuffer is a log sink tests read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a Server in process: a pkitest CA, the proxytest upstream,
// listeners on 127.0.0.1:0, no files.
type harness struct {
	srv   *Server
	ca    *pkitest.CA
	up    *proxytest.Upstream
	addr  string
	admin string
	logs  *syncBuffer
}

// newHarness starts a server; tune may change the config and the first
// trust before it starts.
func newHarness(t *testing.T, tune func(*Config, *Trust)) *harness {
	t.Helper()
	h := &harness{ca: pkitest.NewCA(t, "test"), up: &proxytest.Upstream{}, logs: &syncBuffer{}}
	upURL, stop, err := h.up.Start("")
	require.NoError(t, err)
	t.Cleanup(stop)
	u, err := url.Parse(upURL)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	al, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg := Config{Listener: l, AdminListener: al, Upstream: u,
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	trust := &Trust{Roots: []*x509.Certificate{h.ca.Cert}, Describe: "test"}
	if tune != nil {
		tune(&cfg, trust)
	}
	h.srv, err = New(cfg, trust, &staticSource{h.ca.Server(t)})
	require.NoError(t, err)
	h.addr, h.admin = l.Addr().String(), al.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return h
}

// client is an HTTPS client presenting cert (none if nil) that trusts
// the harness CA.
func (h *harness) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost"}
	if cert != nil {
		// Sent whatever CA the server asks for, as a hostile client would.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func (h *harness) url(path string) string { return "https://" + h.addr + path }

// do sends one request and returns the status and body.
func (h *harness) do(t *testing.T, c *http.Client, method, path string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.url(path), strings.NewReader(body))
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(data)
}

// metrics fetches the admin listener's /metrics.
func (h *harness) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + h.admin + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(data)
}

// hasMetric reports whether /metrics holds line, without printing all of
// /metrics when it does not.
func (h *harness) hasMetric(t *testing.T, line string) bool {
	t.Helper()
	return strings.Contains(h.metrics(t), line)
}
