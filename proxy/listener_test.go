package proxy

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fromAddr makes c dial from the local address ip (Linux routes all of
// 127/8 to lo).
func fromAddr(c *http.Client, ip string) *http.Client {
	c.Transport.(*http.Transport).DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
	return c
}

// One source cannot take the handshake pool: past its own bound its
// silent connections are closed at once and counted as
// "overload_source", while a client from another address is served and
// the counts go back to nothing once the silent connections close.
func TestOneSourceCannotTakeTheHandshakePool(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) {
		c.MaxPendingHandshakes = 8
		c.MaxPendingHandshakesPerIP = 4
		c.HandshakeLogInterval = 100 * time.Millisecond
	})
	l := h.srv.mainL.(*tlsListener)
	var silent []net.Conn
	for range 12 { // bare TCP from 127.0.0.1, nothing sent
		c, err := net.Dial("tcp", h.addr)
		require.NoError(t, err)
		silent = append(silent, c)
	}
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	require.Eventually(t, func() bool {
		return h.hasMetric(t, `pgbapi_proxy_tls_handshake_failures_total{reason="overload_source"} 8`)
	}, 5*time.Second, 20*time.Millisecond, "8 of 12 refused at once")
	assert.False(t, h.hasMetric(t, `reason="overload"}`), "the pool itself never ran out")
	closed := 0
	for _, c := range silent {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) //nolint:errcheck // a test
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	assert.Equal(t, 8, closed, "the connections past the bound were closed, the others wait")
	sources, pending := l.pendingSources()
	assert.Equal(t, 1, sources)
	assert.Equal(t, 4, pending)

	pem := h.ca.Client(t, "pem")
	code, _ := h.do(t, fromAddr(h.client(&pem), "127.0.0.2"), "GET", "/status", "")
	assert.Equal(t, http.StatusOK, code, "another source is served meanwhile")
	_, err := fromAddr(h.client(&pem), "127.0.0.1").Get(h.url("/status"))
	assert.Error(t, err, "the crowded source is not")
	require.Eventually(t, func() bool { return h.hasMetric(t, `reason="overload_source"} 9`) }, 2*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return lineWith(h.logs.String(), "reason=overload_source count=") != ""
	}, 2*time.Second, 20*time.Millisecond, "summed up in the refusal log under its own reason")

	for _, c := range silent {
		c.Close()
	}
	require.Eventually(t, func() bool {
		sources, pending := l.pendingSources()
		return sources == 0 && pending == 0
	}, 5*time.Second, 20*time.Millisecond, "no source stays counted once its handshakes end")
	code, _ = h.do(t, fromAddr(h.client(&pem), "127.0.0.1"), "GET", "/status", "")
	assert.Equal(t, http.StatusOK, code, "served again once they left")
	// The count is given back just after the handshake hands the
	// connection over, which can be a moment after its request is served.
	assert.Eventually(t, func() bool {
		sources, pending := l.pendingSources()
		return sources+pending == 0
	}, 2*time.Second, 10*time.Millisecond, "a completed handshake leaves no count either")
}

func TestSourceOf(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:443":                  "192.0.2.7",
		"[::ffff:192.0.2.7]:443":         "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:443":     "2001:db8:1:2::",
		"[2001:db8:1:2:bbbb::9%eth0]:80": "2001:db8:1:2::",
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		require.NoError(t, err)
		assert.Equal(t, want, sourceOf(a).String(), addr)
	}
}
