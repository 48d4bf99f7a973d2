package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every client certificate the proxy must not serve fails in the
// handshake, is counted by reason, and nothing reaches the upstream.
func TestHandshakeRefusals(t *testing.T) {
	var revokedSerial string
	h := newHarness(t, nil)
	other := pkitest.NewCA(t, "other")
	twoCNs := h.ca.Leaf(t, &x509.Certificate{Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "admin"}, {Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "reader"}}}})
	noCN := h.ca.Leaf(t, &x509.Certificate{Subject: pkix.Name{Organization: []string{"x"}}})
	expired := h.ca.Leaf(t, &x509.Certificate{Subject: pkix.Name{CommonName: "old"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	revoked := h.ca.Client(t, "gone")
	revokedSerial = pki.SerialHex(revoked.Leaf)
	require.NoError(t, h.srv.SetTrust(&Trust{Roots: []*x509.Certificate{h.ca.Cert}, Revoked: map[string]bool{revokedSerial: true}}))
	otherCert := other.Client(t, "pem")

	for _, tc := range []struct {
		name   string
		cert   *tls.Certificate
		reason string
	}{
		{"no certificate", nil, "no_cert"},
		{"another CA", &otherCert, "unknown_ca"},
		{"expired", &expired, "expired"},
		{"revoked", &revoked, "revoked"},
		{"two common names", &twoCNs, "bad_identity"},
		{"no common name", &noCN, "bad_identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client(tc.cert).Get(h.url("/status"))
			require.Error(t, err)
			want := fmt.Sprintf(`pgbapi_proxy_tls_handshake_failures_total{reason=%q}`, tc.reason)
			assert.Eventually(t, func() bool { return h.hasMetric(t, want) }, 2*time.Second, 10*time.Millisecond, want)
		})
	}
	assert.Zero(t, h.up.Requests(), "no refused client reached the upstream")
	good := h.ca.Client(t, "pem")
	code, _ := h.do(t, h.client(&good), "GET", "/status", "")
	assert.Equal(t, http.StatusOK, code)
}

// Methods and paths mean one thing everywhere: only exact spellings are
// forwarded, doubled slashes are merged before anything looks at the
// path, dot segments are refused, and no client value becomes a label.
func TestRequestsAreNamedOnce(t *testing.T) {
	h := newHarness(t, func(_ *Config, tr *Trust) {
		tr.Rules = mustRules(t, "pem read\n")
	})
	pem := h.ca.Client(t, "pem")
	c := h.client(&pem)
	for _, tc := range []struct {
		method, path string
		code         int
		upstreamPath string
	}{
		{"GET", "/status", 200, "/status"},
		{"GET", "//diagnose", 200, "/diagnose"},
		{"GET", "//servers//pg/operations", 200, "/servers/pg/operations"},
		{"GET", "/%73tatus", 200, "/status"},
		{"post", "/operations", 405, ""},
		{"pOST", "//servers//pg/operations", 405, ""},
		{"DELETE", "/operations", 405, ""},
		{"BREW", "/status", 501, ""},
		{"GET", "/servers/../diagnose", 400, ""},
		{"POST", "//servers//pg/operations", 403, ""}, // the rule sees the merged path
	} {
		before := h.up.Requests()
		code, body := h.do(t, c, tc.method, tc.path, "")
		assert.Equal(t, tc.code, code, "%s %s: %s", tc.method, tc.path, body)
		if tc.upstreamPath != "" {
			assert.Equal(t, tc.upstreamPath, h.up.LastPath(), "%s %s", tc.method, tc.path)
		} else {
			assert.Equal(t, before, h.up.Requests(), "%s %s must not reach the upstream", tc.method, tc.path)
		}
	}
	// 300 requests with long unique methods: bounded labels, small /metrics.
	for i := range 300 {
		code, _ := h.do(t, c, fmt.Sprintf("M%d%s", i, strings.Repeat("X", 2000)), "/diagnose", "")
		require.Equal(t, http.StatusNotImplemented, code)
	}
	m := h.metrics(t)
	assert.Less(t, len(m), 64<<10, "metrics stay small")
	assert.False(t, strings.Contains(m, "XXXX"), "no client method in /metrics")
	want := `pgbapi_proxy_requests_total{client="pem",code="501",method="other",route="/diagnose"} 300`
	assert.True(t, strings.Contains(m, want), want)
	assert.NotContains(t, h.logs.String(), strings.Repeat("X", 300), "long client values are cut in the log")
}

func mustRules(t *testing.T, text string) *Rules {
	t.Helper()
	rs, err := ParseRules("access", strings.NewReader(text))
	require.NoError(t, err)
	return rs
}

// Identity headers a client sends never reach the upstream, also spelled
// with underscores, which WSGI reads as the hyphenated name.
func TestSpoofedIdentityHeadersAreDropped(t *testing.T) {
	h := newHarness(t, nil)
	reader := h.ca.Client(t, "reader")
	req, err := http.NewRequest("GET", h.url("/status"), nil)
	require.NoError(t, err)
	for _, name := range []string{"X-Client-Cert-CN", "X_Client_Cert_CN", "X_Real_IP", "X_Forwarded_For", "X-Forwarded-For", "Forwarded",
		"Remote-User", "X-Auth-Request-User", "X-Rewrite-Url", "Script-Name", "Client-Cert-Cn", "Upgrade"} {
		req.Header[name] = []string{"admin"}
	}
	resp, err := h.client(&reader).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	got := h.up.LastHeader()
	assert.Equal(t, []string{"reader"}, got.Values(ClientHeader))
	for name := range got {
		assert.NotContains(t, name, "_", "no underscore header reaches the upstream")
		assert.NotEqual(t, []string{"admin"}, got[name], name)
	}
}

// One pointer swap: while trusts that disagree are swapped under load, a
// request never sees the revocations of one and the rules of the other.
func TestTrustSwapIsAtomic(t *testing.T) {
	h := newHarness(t, nil)
	a, b := h.ca.Client(t, "a"), h.ca.Client(t, "b")
	roots := []*x509.Certificate{h.ca.Cert}
	// T1: a allowed, b revoked. T2: b allowed, a revoked. A mix of T1's
	// revocations and T2's rules would deny a by rule.
	t1 := &Trust{Roots: roots, Revoked: map[string]bool{pki.SerialHex(b.Leaf): true}, Rules: mustRules(t, "a all\n")}
	t2 := &Trust{Roots: roots, Revoked: map[string]bool{pki.SerialHex(a.Leaf): true}, Rules: mustRules(t, "b all\n")}
	require.NoError(t, h.srv.SetTrust(t1))
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tr := t1
			if i%2 == 1 {
				tr = t2
			}
			_ = h.srv.SetTrust(tr)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var ruleDenials, ok atomic.Int64
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			cert := a
			if w%2 == 1 {
				cert = b
			}
			c := h.client(&cert)
			for range 50 {
				resp, err := c.Get(h.url("/status"))
				if err != nil {
					c = h.client(&cert) // revoked in the handshake: a new connection
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					ok.Add(1)
				case strings.Contains(string(body), "may not"):
					ruleDenials.Add(1)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	close(stop)
	<-swapped
	assert.Zero(t, ruleDenials.Load(), "a request saw rules and revocations of different snapshots")
	assert.Positive(t, ok.Load())
}

// A revocation takes effect on a connection already open: 403, the
// connection closed, nothing forwarded.
func TestRevocationOnAnOpenConnection(t *testing.T) {
	h := newHarness(t, nil)
	pem := h.ca.Client(t, "pem")
	c := h.client(&pem)
	code, _ := h.do(t, c, "GET", "/status", "")
	require.Equal(t, 200, code)
	before := h.up.Requests()
	require.NoError(t, h.srv.SetTrust(&Trust{Roots: []*x509.Certificate{h.ca.Cert}, Revoked: map[string]bool{pki.SerialHex(pem.Leaf): true}}))
	resp, err := c.Get(h.url("/status"))
	require.NoError(t, err, "the kept-alive connection answers")
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.True(t, resp.Close, "and is closed")
	assert.Equal(t, before, h.up.Requests())
	_, err = c.Get(h.url("/status"))
	assert.Error(t, err, "a new handshake fails")
}

// A certificate that expires while its connection stays open stops
// working at its expiry, not at the next handshake.
func TestExpiryOnAnOpenConnection(t *testing.T) {
	h := newHarness(t, nil)
	soon := h.ca.Leaf(t, &x509.Certificate{Subject: pkix.Name{CommonName: "soon"}, NotAfter: time.Now().Add(1500 * time.Millisecond)})
	c := h.client(&soon)
	code, _ := h.do(t, c, "GET", "/status", "")
	require.Equal(t, 200, code)
	time.Sleep(time.Until(soon.Leaf.NotAfter) + 100*time.Millisecond)
	code, body := h.do(t, c, "GET", "/status", "")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "expired")
}

// A request that waits for the upstream slot while its certificate is
// revoked is refused when it would be forwarded.
func TestRevokedWhileWaiting(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) { c.MaxInflight = 1 })
	h.up.Delay = time.Second
	a, b := h.ca.Client(t, "a"), h.ca.Client(t, "b")
	first := make(chan int, 1)
	go func() { code, _ := h.do(t, h.client(&a), "GET", "/diagnose", ""); first <- code }()
	require.Eventually(t, func() bool { return h.up.Requests() == 1 }, 5*time.Second, 10*time.Millisecond)
	second := make(chan int, 1)
	go func() {
		code, _ := h.do(t, h.client(&b), "POST", "/operations", `{"type":"config_update"}`)
		second <- code
	}()
	time.Sleep(300 * time.Millisecond) // b is in line now
	require.NoError(t, h.srv.SetTrust(&Trust{Roots: []*x509.Certificate{h.ca.Cert}, Revoked: map[string]bool{pki.SerialHex(b.Leaf): true}}))
	assert.Equal(t, 200, <-first)
	assert.Equal(t, http.StatusForbidden, <-second)
	assert.Equal(t, int64(1), h.up.Requests(), "the revoked request never reached the upstream")
	assert.Empty(t, h.up.Bodies())
}

// A client that does not read its answers holds no upstream slot: the
// answer is read whole first, and writing to the client has a deadline.
func TestSlowReaderBlocksNobody(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) {
		c.MaxInflight = 1
		c.WriteTimeout = time.Second
	})
	h.up.DiagnoseBytes = 40 << 10
	slow := h.ca.Client(t, "slow")
	conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{slow}})
	require.NoError(t, err)
	defer conn.Close()
	go func() {
		for range 400 { // pipelined, never read
			if _, err := io.WriteString(conn, "GET /diagnose HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				return
			}
		}
	}()
	require.Eventually(t, func() bool { return h.up.Requests() >= 2 }, 5*time.Second, 10*time.Millisecond)
	other := h.ca.Client(t, "other")
	c := h.client(&other)
	for range 5 {
		start := time.Now()
		code, _ := h.do(t, c, "GET", "/status", "")
		assert.Equal(t, 200, code)
		assert.Less(t, time.Since(start), 2*time.Second)
	}
	assert.Equal(t, int64(1), h.up.Peak(), "never two requests at the upstream at once")
}

// /readyz asks the upstream inside the in-flight limit.
func TestReadyzRespectsTheInflightLimit(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) { c.MaxInflight = 1 })
	resp, err := http.Get("http://" + h.admin + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	h.up.Delay = 3 * time.Second
	pem := h.ca.Client(t, "pem")
	go h.do(t, h.client(&pem), "GET", "/diagnose", "")
	require.Eventually(t, func() bool { return h.up.Requests() == 2 }, 5*time.Second, 10*time.Millisecond)
	for range 3 {
		resp, err := http.Get("http://" + h.admin + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, "busy is still ready: the last answer stands")
	}
	assert.Equal(t, int64(1), h.up.Peak())
}

// Refused handshakes are summed up in the log; the counter is exact.
func TestRefusedHandshakesDoNotFloodTheLog(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) { c.HandshakeLogInterval = 200 * time.Millisecond })
	for range 200 {
		c, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost"})
		if err == nil {
			c.Read(make([]byte, 1)) //nolint:errcheck // the alert comes after the client's Finished
			c.Close()
		}
	}
	require.Eventually(t, func() bool {
		return h.hasMetric(t, `pgbapi_proxy_tls_handshake_failures_total{reason="no_cert"} 200`)
	}, 5*time.Second, 50*time.Millisecond)
	time.Sleep(400 * time.Millisecond)
	lines := strings.Count(h.logs.String(), "TLS handshakes refused")
	assert.GreaterOrEqual(t, lines, 1)
	assert.LessOrEqual(t, lines, 10, "one line per reason per interval, not one per handshake")
	assert.Contains(t, h.logs.String(), "reason=no_cert count=")
}

// Session tickets are encrypted with keys that rotate; a ticket stops
// resuming after two rotations, and a trust swap ends every ticket.
func TestSessionTicketKeysRotate(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) { c.TicketKeyRotation = 300 * time.Millisecond })
	pem := h.ca.Client(t, "pem")
	cache := tls.NewLRUClientSessionCache(4)
	resumed := func() bool {
		c, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pem}, ClientSessionCache: cache})
		require.NoError(t, err)
		defer c.Close()
		io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n") //nolint:errcheck // read below
		_, err = http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err) // TLS 1.3 tickets arrive after the handshake
		return c.ConnectionState().DidResume
	}
	resumed()
	assert.True(t, resumed(), "a fresh ticket resumes")
	time.Sleep(700 * time.Millisecond)
	assert.False(t, resumed(), "after two rotations the old key is gone")
	assert.True(t, resumed())
	require.NoError(t, h.srv.SetTrust(h.srv.Trust()))
	assert.False(t, resumed(), "a new trust snapshot ends old tickets")
}

// Protocol details Apache got right: one 100 Continue, redirects back to
// the proxy, and a client offering only h2 goes on in HTTP/1.1.
func TestProtocolDetails(t *testing.T) {
	h := newHarness(t, nil)
	pem := h.ca.Client(t, "pem")
	t.Run("one 100 Continue", func(t *testing.T) {
		conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pem}})
		require.NoError(t, err)
		defer conn.Close()
		body := `{"type":"recovery"}`
		fmt.Fprintf(conn, "POST /servers/pg/operations HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
		r := bufio.NewReader(conn)
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "HTTP/1.1 100 Continue\r\n", line)
		_, err = r.ReadString('\n')
		require.NoError(t, err)
		io.WriteString(conn, body) //nolint:errcheck // read below
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusAccepted, resp.StatusCode, "no second 100 before the answer")
	})
	t.Run("h2-only ALPN", func(t *testing.T) {
		conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pem}, NextProtos: []string{"h2"}})
		require.NoError(t, err)
		defer conn.Close()
		assert.Empty(t, conn.ConnectionState().NegotiatedProtocol)
		io.WriteString(conn, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n") //nolint:errcheck // read below
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode)
	})
	t.Run("redirects point at the proxy", func(t *testing.T) {
		up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "http://"+r.Host+"/status")
			w.WriteHeader(http.StatusPermanentRedirect)
		})}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		go up.Serve(l) //nolint:errcheck // closed below
		defer up.Close()
		h2 := newHarness(t, func(c *Config, _ *Trust) { c.Upstream = &url.URL{Scheme: "http", Host: l.Addr().String()} })
		cert := h2.ca.Client(t, "pem")
		c := h2.client(&cert)
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Get(h2.url("/diagnose"))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, "https://"+h2.addr+"/status", resp.Header.Get("Location"))
	})
}

// Connections and handshakes in progress are bounded: past the bound a
// connection is closed at once and counted, and once the crowd leaves a
// client is served again.
func TestConnectionsAreBounded(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) {
		c.MaxPendingHandshakes = 4
		c.MaxConns = 3
	})
	var stalled []net.Conn
	for range 12 { // half a ClientHello each, then nothing
		c, err := net.Dial("tcp", h.addr)
		require.NoError(t, err)
		c.Write([]byte{0x16, 0x03, 0x01}) //nolint:errcheck // a stall
		stalled = append(stalled, c)
	}
	require.Eventually(t, func() bool {
		return h.hasMetric(t, `pgbapi_proxy_tls_handshake_failures_total{reason="overload"} 8`)
	}, 5*time.Second, 20*time.Millisecond, "8 of 12 refused at once")
	for _, c := range stalled {
		c.Close()
	}
	pem := h.ca.Client(t, "pem")
	var clients []*http.Client
	for range 3 {
		c := h.client(&pem)
		require.Eventually(t, func() bool {
			resp, err := c.Get(h.url("/status"))
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body) //nolint:errcheck // drained: the connection stays open
			resp.Body.Close()
			return resp.StatusCode == 200
		}, 5*time.Second, 50*time.Millisecond)
		clients = append(clients, c) // each keeps its connection open
	}
	_, err := h.client(&pem).Get(h.url("/status"))
	assert.Error(t, err, "a fourth connection is closed (open: %d)", h.srv.conns.Load())
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	require.Eventually(t, func() bool {
		resp, err := h.client(&pem).Get(h.url("/status"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}, 5*time.Second, 50*time.Millisecond, "served again once they left")
}

// An operation whose client goes away while pg-backup-api works on it is
// still read and audited: the trail never misses an operation started.
func TestOperationAuditedWhenTheClientLeaves(t *testing.T) {
	h := newHarness(t, nil)
	h.up.Delay = time.Second
	ops := h.ca.Client(t, "ops")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", h.url("/servers/pg/operations"), strings.NewReader(`{"type":"recovery"}`))
	require.NoError(t, err)
	_, err = h.client(&ops).Do(req)
	require.Error(t, err, "the client gave up")
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), `msg="operation started" client=ops`) }, 5*time.Second, 50*time.Millisecond)
	assert.Contains(t, h.logs.String(), `msg="operation requested" client=ops`)
	assert.True(t, h.hasMetric(t, `pgbapi_proxy_operations_started_total{client="ops",type="recovery"} 1`))
	assert.Len(t, h.up.Bodies(), 1)
}

// OPTIONS * is a request like any other: refused (no route), logged and
// counted, never answered by net/http on its own.
func TestOptionsStarIsNamed(t *testing.T) {
	h := newHarness(t, nil)
	pem := h.ca.Client(t, "pem")
	conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pem}})
	require.NoError(t, err)
	defer conn.Close()
	io.WriteString(conn, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n") //nolint:errcheck // read below
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Zero(t, h.up.Requests())
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), "method=OPTIONS path=* status=400") }, 2*time.Second, 20*time.Millisecond)
}

// A client that goes away while its request waits for the upstream slot
// is logged as 499, not as a full queue (503, queue_full).
func TestClientGoneWhileQueued(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) { c.MaxInflight = 1 })
	h.up.Delay = 2 * time.Second
	pem := h.ca.Client(t, "pem")
	go h.do(t, h.client(&pem), "GET", "/diagnose", "") // holds the slot
	require.Eventually(t, func() bool { return h.up.Requests() >= 1 }, 5*time.Second, 10*time.Millisecond)
	gone := h.ca.Client(t, "gone")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", h.url("/status"), nil)
	require.NoError(t, err)
	_, err = h.client(&gone).Do(req)
	require.Error(t, err, "the client gave up")
	require.Eventually(t, func() bool {
		return strings.Contains(h.logs.String(), "client went away while waiting for a free slot")
	}, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return strings.Contains(h.logs.String(), "client=gone method=GET path=/status status=499")
	}, 5*time.Second, 10*time.Millisecond)
	assert.False(t, h.hasMetric(t, `pgbapi_proxy_upstream_errors_total{kind="queue_full"}`), "not a full queue")
}
