package servercert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newPKI(t *testing.T) pki.Layout {
	t.Helper()
	dir := t.TempDir()
	l := pki.Layout{TPADir: filepath.Join(dir, "tpa"), StateDir: filepath.Join(dir, "state")}
	_, err := pki.Init(pki.InitOptions{Layout: l, Cluster: "test", Hostnames: []string{"localhost"}, KeyType: pki.ECDSAP256, ServerDays: 90, ClientDays: 365})
	require.NoError(t, err)
	return l
}

func options(l pki.Layout, lifetime time.Duration) Options {
	return Options{Layout: l, Lifetime: lifetime, Registerer: prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func serial(t *testing.T, src proxy.CertSource) string {
	t.Helper()
	leaf, err := src.Leaf()
	require.NoError(t, err)
	return pki.SerialHex(leaf)
}

// The managed certificate renews at a third of its lifetime left, and
// each new one is copied to pg-backup-api.crt for operators.
func TestManagedRenews(t *testing.T) {
	l := newPKI(t)
	o := options(l, 6*time.Second)
	src, err := Open(context.Background(), o)
	require.NoError(t, err)
	m, ok := src.(*Managed)
	require.True(t, ok, "the CA key is here: managed")
	defer m.Stop()
	first := serial(t, src)
	got, err := src.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Eventually(t, func() bool { return serial(t, src) != first }, 15*time.Second, 100*time.Millisecond, "renewed")
	require.Eventually(t, func() bool {
		certs, err := pki.LoadCerts(l.ServerCert())
		return err == nil && pki.SerialHex(certs[0]) == serial(t, src)
	}, 5*time.Second, 50*time.Millisecond, "copied to the TPA directory")
	assert.GreaterOrEqual(t, testutil.ToFloat64(m.renewals.WithLabelValues("ok")), 1.0)
}

// The pair init installed is served as it is: init and the first serve
// do not issue two certificates.
func TestManagedServesTheInstalledPair(t *testing.T) {
	l := newPKI(t)
	installed, err := pki.LoadCerts(l.ServerCert())
	require.NoError(t, err)
	src, err := Open(context.Background(), options(l, pki.Days(pki.DefaultServerDays)))
	require.NoError(t, err)
	defer src.(*Managed).Stop()
	assert.Equal(t, pki.SerialHex(installed[0]), serial(t, src))
	_, err = os.Stat(l.ServerCert() + ".old")
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing was replaced")
}

// Without the CA key the files are served as they are; SIGHUP reloads
// them, and a broken file keeps the one served.
func TestStaticReloadKeepsTheLastGoodPair(t *testing.T) {
	l := newPKI(t)
	require.NoError(t, os.Remove(l.IntermediateKey()))
	src, err := Open(context.Background(), options(l, time.Hour))
	require.NoError(t, err)
	s, ok := src.(*Static)
	require.True(t, ok)
	first := serial(t, s)
	require.NoError(t, os.WriteFile(l.ServerCert(), []byte("garbage"), 0o644))
	require.Error(t, s.Reload())
	assert.Equal(t, first, serial(t, s))
}

// Keys others can read are refused, with the chmod that fixes it; so are
// options that cannot work.
func TestOpenRefuses(t *testing.T) {
	l := newPKI(t)
	require.NoError(t, os.Chmod(l.ServerKey(), 0o644))
	_, err := Open(context.Background(), options(l, time.Hour))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "chmod 600 "+l.ServerKey())
	require.NoError(t, os.Chmod(l.ServerKey(), 0o600))

	_, err = Open(context.Background(), options(l, time.Second))
	var fe *proxy.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "Lifetime", fe.Field)

	_, err = Open(context.Background(), options(pki.Layout{TPADir: t.TempDir(), StateDir: t.TempDir()}, time.Hour))
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "run 'pgbapi-proxy init' first"), err.Error())
}

// A name init adds later is served after a SIGHUP (Reload): init records
// it and replaces the intermediate whose constraints left it out; Reload
// obtains a certificate that covers it before serving it.
func TestManagedReloadServesANewName(t *testing.T) {
	l := newPKI(t)
	src, err := Open(context.Background(), options(l, pki.Days(pki.DefaultServerDays)))
	require.NoError(t, err)
	m := src.(*Managed)
	defer m.Stop()
	first := serial(t, m)
	require.NoError(t, m.Reload(), "nothing changed: nothing to do")
	assert.Equal(t, first, serial(t, m))

	_, err = pki.Init(pki.InitOptions{Layout: l, Cluster: "test", Hostnames: []string{"localhost", "barman2.example.com"}, KeyType: pki.ECDSAP256, ServerDays: 90, ClientDays: 365})
	require.NoError(t, err)
	require.NoError(t, m.Reload())
	leaf, err := m.Leaf()
	require.NoError(t, err)
	assert.Contains(t, leaf.DNSNames, "barman2.example.com")
	got, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "barman2.example.com"})
	require.NoError(t, err)
	assert.Contains(t, got.Leaf.DNSNames, "barman2.example.com")
}

// An RSA PKI also gets an ECDSA companion certificate, served to clients
// that support ECDSA; an RSA-only client still gets the RSA one, and the
// TPA directory keeps the RSA pair.
func TestManagedServesAnECDSACompanionOnRSA(t *testing.T) {
	dir := t.TempDir()
	l := pki.Layout{TPADir: filepath.Join(dir, "tpa"), StateDir: filepath.Join(dir, "state")}
	_, err := pki.Init(pki.InitOptions{Layout: l, Cluster: "test", Hostnames: []string{"localhost"}, KeyType: pki.RSA2048, ServerDays: 90, ClientDays: 365})
	require.NoError(t, err)
	src, err := Open(context.Background(), options(l, pki.Days(pki.DefaultServerDays)))
	require.NoError(t, err)
	m := src.(*Managed)
	defer m.Stop()
	require.NotNil(t, m.cur.Load().ecdsa, "an RSA PKI gets the companion")
	roots, err := pki.LoadCerts(l.RootCert())
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])

	served := func(client *tls.Config) x509.PublicKeyAlgorithm {
		c, s := net.Pipe()
		defer c.Close()
		defer s.Close()
		go tls.Server(s, &tls.Config{GetCertificate: src.GetCertificate}).Handshake() //nolint:errcheck // the client side reports
		client.RootCAs, client.ServerName = pool, "localhost"
		tc := tls.Client(c, client)
		require.NoError(t, tc.Handshake())
		return tc.ConnectionState().PeerCertificates[0].PublicKeyAlgorithm
	}
	assert.Equal(t, x509.ECDSA, served(&tls.Config{}), "a client that supports ECDSA gets the companion")
	assert.Equal(t, x509.RSA, served(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}),
		"an RSA-only client gets the RSA certificate")
	installed, err := pki.LoadCerts(l.ServerCert())
	require.NoError(t, err)
	assert.Equal(t, x509.RSA, installed[0].PublicKeyAlgorithm, "pg-backup-api.crt stays the RSA one")
	leaf, err := src.Leaf()
	require.NoError(t, err)
	assert.Equal(t, x509.RSA, leaf.PublicKeyAlgorithm)

	// An ECDSA PKI has no companion.
	e := newPKI(t)
	src2, err := Open(context.Background(), options(e, pki.Days(pki.DefaultServerDays)))
	require.NoError(t, err)
	defer src2.(*Managed).Stop()
	assert.Nil(t, src2.(*Managed).cur.Load().ecdsa)
}
