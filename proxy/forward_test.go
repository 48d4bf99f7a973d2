package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The forwarder's header rules, as ReverseProxy and rewrite applied them:
// hop-by-hop and Connection-listed headers stay behind, Idempotency-Key
// never goes with an operation, Expect never goes, the rest passes; the
// upstream's Connection: close never reaches the client, whose
// connection stays open.
func TestForwardHeaders(t *testing.T) {
	h := newHarness(t, nil)
	require.NotNil(t, h.srv.handler.lean, "a plain-HTTP upstream at its root goes through forward")
	pem := h.ca.Client(t, "pem")
	c := h.client(&pem)

	req, err := http.NewRequest("GET", h.url("/status?x=1"), nil)
	require.NoError(t, err)
	req.Header.Set("Connection", "keep-alive, X-Drop-Me")
	req.Header.Set("X-Drop-Me", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Idempotency-Key", "k1")
	req.Header.Set("User-Agent", "pem-agent/9")
	req.Header.Add("Accept", "application/json")
	req.Header.Add("Accept", "text/html")
	resp, err := c.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // test
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.False(t, resp.Close, "the upstream's Connection: close stays between proxy and upstream")
	assert.Empty(t, resp.Header.Get("Connection"))
	got := h.up.LastHeader()
	for _, name := range []string{"Connection", "X-Drop-Me", "Keep-Alive", "Proxy-Authorization", "Te"} {
		assert.Empty(t, got.Values(name), name)
	}
	assert.Equal(t, "k1", got.Get("Idempotency-Key"), "a GET keeps its Idempotency-Key")
	assert.Equal(t, "pem-agent/9", got.Get("User-Agent"))
	assert.Equal(t, []string{"application/json", "text/html"}, got.Values("Accept"))
	assert.Equal(t, "pem", got.Get(ClientHeader))
	assert.Equal(t, "https", got.Get("X-Forwarded-Proto"))

	// An operation: no Idempotency-Key, no Expect, a Content-Length.
	req, err = http.NewRequest("POST", h.url("/servers/pg/operations"), strings.NewReader(`{"type":"recovery"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "k2")
	req.Header.Set("X-Idempotency-Key", "k3")
	resp, err = c.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // test
	resp.Body.Close()
	got = h.up.LastHeader()
	assert.Empty(t, got.Get("Idempotency-Key"))
	assert.Empty(t, got.Get("X-Idempotency-Key"))
	assert.Empty(t, got.Get("Expect"))
	assert.Equal(t, []string{`{"type":"recovery"}`}, h.up.Bodies())

	// HEAD: the answer's headers, no body.
	req, err = http.NewRequest("HEAD", h.url("/diagnose"), nil)
	require.NoError(t, err)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "/diagnose", h.up.LastPath())
}

func TestListedIn(t *testing.T) {
	conn := []string{"keep-alive, X-A ,x-b", "X-C"}
	for name, want := range map[string]bool{"X-A": true, "X-B": true, "X-C": true, "Keep-Alive": true, "X-D": false, "X": false} {
		assert.Equal(t, want, listedIn(conn, name), name)
	}
	assert.False(t, listedIn(nil, "X-A"))
}

// An upstream under a base path goes through ReverseProxy (with the lean
// transport) and keeps the same rules.
func TestUpstreamWithABasePath(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) {
		u := *c.Upstream
		u.Path = "/base"
		c.Upstream = &u
	})
	require.Nil(t, h.srv.handler.lean)
	pem := h.ca.Client(t, "pem")
	req, err := http.NewRequest("GET", h.url("/status"), nil)
	require.NoError(t, err)
	req.Header.Set("X-Client-Cert-CN", "admin")
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := h.client(&pem).Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // test
	resp.Body.Close()
	assert.Equal(t, "/base/status", h.up.LastPath())
	got := h.up.LastHeader()
	assert.Equal(t, "pem", got.Get(ClientHeader))
	assert.Equal(t, "https", got.Get("X-Forwarded-Proto"))
	assert.Equal(t, "k1", got.Get("Idempotency-Key"))
}
