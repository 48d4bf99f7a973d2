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
	"path/filepath"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
)

// benchPKI sets up a PKI of key type kt in a temp dir.
func benchPKI(b *testing.B, kt pki.KeyType) pki.Layout {
	dir := b.TempDir()
	l := pki.Layout{TPADir: filepath.Join(dir, "tpa"), StateDir: filepath.Join(dir, "state")}
	if _, err := pki.Init(pki.InitOptions{Layout: l, Cluster: "bench", Hostnames: []string{"localhost"}, KeyType: kt,
		ServerDays: 90, ClientDays: 365}); err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkHandler is the request hot path: route match, checks, metrics,
// access log and the reverse proxy to a keep-alive upstream, without TLS.
func BenchmarkHandler(b *testing.B) {
	l := benchPKI(b, pki.ECDSAP256)
	up := &proxytest.Upstream{KeepAlive: true}
	upURL, stop, err := up.Start("")
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	u, _ := url.Parse(upURL)
	cfg := Config{Upstream: u, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg.setDefaults()
	pol, err := newPolicy(l, "", cfg.Logger)
	if err != nil {
		b.Fatal(err)
	}
	h := newHandler(&cfg, newMetrics("bench", l, func() (string, time.Time, bool) { return "", time.Time{}, false }), pol)
	client, err := pki.LoadCert(l.CertIn(l.TPADir, pki.TestClientName))
	if err != nil {
		b.Fatal(err)
	}
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{client}, VerifiedChains: [][]*x509.Certificate{{client}}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "https://localhost/status", nil)
		req.TLS = state
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
	for _, kt := range []pki.KeyType{pki.ECDSAP256, pki.RSA2048} {
		b.Run(string(kt), func(b *testing.B) {
			l := benchPKI(b, kt)
			static, err := newStaticCerts(l)
			if err != nil {
				b.Fatal(err)
			}
			pol, err := newPolicy(l, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			tc, err := newTLSConfigs(l, static, pol)
			if err != nil {
				b.Fatal(err)
			}
			serverCfg := tc.serverConfig()
			cert, err := tls.LoadX509KeyPair(l.CertIn(l.TPADir, pki.TestClientName), l.KeyIn(l.TPADir, pki.TestClientName))
			if err != nil {
				b.Fatal(err)
			}
			root, _ := pki.LoadCert(l.RootCert())
			pool := x509.NewCertPool()
			pool.AddCert(root)
			clientCfg := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost", SessionTicketsDisabled: true}
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
		})
	}
}
