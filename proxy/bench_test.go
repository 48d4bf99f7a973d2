package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkHandler is the request hot path: naming, checks, metrics,
// access log and the reverse proxy, without TLS, to a keep-alive upstream
// and to one that closes every connection (as pg-backup-api does).
func BenchmarkHandler(b *testing.B) {
	b.Run("keepalive", func(b *testing.B) { benchHandler(b, true, "/status", 0) })
	b.Run("keepalive-40KB", func(b *testing.B) { benchHandler(b, true, "/diagnose", 40<<10) })
	b.Run("upstream-closes", func(b *testing.B) { benchHandler(b, false, "/status", 0) })
}

func benchHandler(b *testing.B, keepAlive bool, path string, diagnoseBytes int) {
	ca := pkitest.NewCA(b, "bench")
	up := &proxytest.Upstream{KeepAlive: keepAlive, DiagnoseBytes: diagnoseBytes}
	upURL, stop, err := up.Start("")
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	u, _ := url.Parse(upURL)
	cfg := Config{Upstream: u, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.setDefaults()
	m, err := newMetrics(prometheus.NewRegistry(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	snap, err := newSnapshot(&Trust{Roots: []*x509.Certificate{ca.Cert}}, &staticSource{ca.Server(b)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := newHandler(&cfg, m, func() *snapshot { return snap })
	client := ca.Client(b, "bench").Leaf
	id, err := identityOf(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{client, ca.Cert}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), identityKey{}, id)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "https://localhost"+path, nil).WithContext(ctx)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// BenchmarkHandshake is a full TLS 1.3 handshake with client certificate
// verification, server side and client side together, over a pipe.
func BenchmarkHandshake(b *testing.B) {
	ca := pkitest.NewCA(b, "bench")
	snap, err := newSnapshot(&Trust{Roots: []*x509.Certificate{ca.Cert}}, &staticSource{ca.Server(b)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := &Server{}
	srv.current.Store(snap)
	serverCfg := srv.listenerConfig()
	clientCfg := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{ca.Client(b, "bench")}, ServerName: "localhost", SessionTicketsDisabled: true}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c, s := net.Pipe()
		errs := make(chan error, 1)
		go func() {
			errs <- tls.Server(s, serverCfg).HandshakeContext(context.Background())
		}()
		if err := tls.Client(c, clientCfg).HandshakeContext(context.Background()); err != nil {
			b.Fatal(err)
		}
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		c.Close()
		s.Close()
	}
}
