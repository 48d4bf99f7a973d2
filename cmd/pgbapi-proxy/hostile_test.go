package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawTLS opens a TLS connection to the proxy with pg-backup-user's
// certificate, for requests curl would not send.
func rawTLS(t *testing.T, p *proxyProc, d dirs) *tls.Conn {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(d.tpa, "pg-backup-user.crt"), filepath.Join(d.tpa, "pg-backup-user.key"))
	require.NoError(t, err)
	root, err := pki.LoadCert(filepath.Join(d.tpa, "root.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	c, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"})
	require.NoError(t, err)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// Hostile bytes on the TLS port: a clear answer or a closed connection,
// nothing at the upstream, and the proxy serves on.
func TestHostileTLSInput(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	up, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil)

	send := func(data string) string {
		c, err := net.Dial("tcp", p.addr)
		require.NoError(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(15 * time.Second))
		_, err = io.WriteString(c, data)
		require.NoError(t, err)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		out, _ := io.ReadAll(c)
		return string(out)
	}
	out := send("GET /diagnose HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.True(t, strings.HasPrefix(out, "HTTP/1.0 400 Bad Request"), "plain HTTP gets a clear 400: %q", out)
	assert.Contains(t, out, "use https://")
	assert.Empty(t, send("\x00\x01garbage\xff\xfe"+strings.Repeat("x", 4096)), "garbage: closed")
	// A ClientHello cut short.
	assert.Empty(t, send("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), "truncated handshake: closed")

	now := time.Now()
	l := pki.Layout{TPADir: d.tpa, StateDir: d.state}
	root, err := pki.LoadAuthority(l.CAStateCert(), l.CAKey())
	require.NoError(t, err)
	inter, err := pki.LoadAuthority(l.IntermediateCert(), l.IntermediateKey())
	require.NoError(t, err)
	writeClient(t, d.tpa, "future", root, nil, now.Add(24*time.Hour), now.Add(48*time.Hour))
	// A certificate whose signature was tampered with.
	writeClient(t, d.tpa, "tampered", root, nil, now.Add(-time.Hour), now.Add(time.Hour))
	tampered, err := pki.LoadCert(filepath.Join(d.tpa, "tampered.crt"))
	require.NoError(t, err)
	raw := append([]byte(nil), tampered.Raw...)
	raw[len(raw)-3] ^= 0xff
	require.NoError(t, os.WriteFile(filepath.Join(d.tpa, "tampered.crt"),
		[]byte(fmt.Sprintf("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n", b64(raw))), 0o644))
	// A chain deeper than allowed: a CA under the server-only intermediate.
	subKey, err := pki.ECDSAP256.Generate()
	require.NoError(t, err)
	serial, err := pki.NewSerial()
	require.NoError(t, err)
	subCert, err := inter.Sign(&x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "sub-CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, subKey.Public())
	require.NoError(t, err)
	writeClient(t, d.tpa, "deep", &pki.Authority{Cert: subCert, Key: subKey}, []*x509.Certificate{subCert, inter.Cert}, now.Add(-time.Hour), now.Add(time.Hour))
	for _, name := range []string{"future", "tampered", "deep"} {
		r := curlClient(t, d, name, p.url("/status"))
		assert.NotEqual(t, 0, r.code, "%s must be refused: %s", name, r.stdout)
	}

	assert.Equal(t, int64(0), up.Requests(), "nothing reached the upstream")
	m := metricsText(t, p)
	assert.Regexp(t, `pgbapi_proxy_tls_handshake_failures_total\{reason="not_tls"\} [2-9]`, m)
	requireOK(t, curlClient(t, d, "pg-backup-user", p.url("/status")))
}

// Hostile HTTP after a valid handshake.
func TestHostileHTTPInput(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	up, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil, "--read-header-timeout", "1s", "--request-body-timeout", "1s", "--max-body-bytes", "65536")

	t.Run("slowloris headers", func(t *testing.T) {
		c := rawTLS(t, p, d)
		defer c.Close()
		start := time.Now()
		_, err := io.WriteString(c, "GET /status HTTP/1.1\r\nHost: localhost\r\n")
		require.NoError(t, err)
		for i := 0; i < 5; i++ {
			if _, err := io.WriteString(c, "X"); err != nil {
				break
			}
			time.Sleep(400 * time.Millisecond)
		}
		out, _ := io.ReadAll(c)
		assert.NotContains(t, string(out), "200 OK")
		assert.Less(t, time.Since(start), 10*time.Second)
	})
	t.Run("slow body", func(t *testing.T) {
		c := rawTLS(t, p, d)
		defer c.Close()
		_, err := io.WriteString(c, "POST /servers/pg/operations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\"")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	})
	t.Run("huge body", func(t *testing.T) {
		big := filepath.Join(t.TempDir(), "big.json")
		require.NoError(t, os.WriteFile(big, []byte(`{"type":"recovery","x":"`+strings.Repeat("a", 200<<10)+`"}`), 0o600))
		r := curlClient(t, d, "pg-backup-user", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
			"--data-binary", "@"+big, p.url("/servers/pg/operations"))
		requireOK(t, r)
		assert.True(t, strings.HasSuffix(r.stdout, "\n413"), r.stdout)
	})
	t.Run("Content-Length with Transfer-Encoding does not smuggle", func(t *testing.T) {
		c := rawTLS(t, p, d)
		defer c.Close()
		body := "0\r\n\r\nGET /diagnose HTTP/1.1\r\nHost: localhost\r\n\r\n"
		_, err := fmt.Fprintf(c, "POST /servers/pg/operations HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%s", len(body), body)
		require.NoError(t, err)
		out, _ := io.ReadAll(c)
		assert.Equal(t, 1, strings.Count(string(out), "HTTP/1.1 "), "one answer, no smuggled second request: %q", out)
	})
	t.Run("invalid methods and paths", func(t *testing.T) {
		for _, req := range []string{
			"BREW /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
			"GET /../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
			"GET status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
			"G\x00T /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
		} {
			c := rawTLS(t, p, d)
			io.WriteString(c, req)
			out, _ := io.ReadAll(c)
			c.Close()
			assert.Regexp(t, `^HTTP/1\.1 [0-9]{3} `, string(out), "a clear answer to %q", req)
		}
	})
	t.Run("many headers", func(t *testing.T) {
		args := []string{"-o", "/dev/null", "-w", "%{http_code}"}
		for i := range 2000 {
			args = append(args, "-H", fmt.Sprintf("X-H%d: %s", i, strings.Repeat("v", 30)))
		}
		r := curlClient(t, d, "pg-backup-user", append(args, p.url("/status"))...)
		requireOK(t, r)
		assert.Equal(t, "431", r.stdout)
	})
	// Of everything above, only the smuggling attempt's POST (re-framed, as
	// one request) and the odd-but-valid requests may reach the upstream.
	assert.LessOrEqual(t, up.Requests(), int64(4))
	for _, b := range up.Bodies() {
		assert.NotContains(t, b, "GET /diagnose", "a smuggled request reached the upstream inside a body")
	}
	requireOK(t, curlClient(t, d, "pg-backup-user", p.url("/status")))
}

func b64(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s)
	return b.String()
}
