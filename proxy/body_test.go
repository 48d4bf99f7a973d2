package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawConn is a TLS connection presenting cert, for requests written by
// hand.
func (h *harness) rawConn(t *testing.T, cert tls.Certificate) *tls.Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{cert}})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// GET, HEAD and OPTIONS take no body at pg-backup-api: one sent with a
// length or chunked is refused with a JSON 400 and never read, and the
// upstream sees nothing.
func TestBodyOnARequestThatTakesNone(t *testing.T) {
	h := newHarness(t, nil)
	pem := h.ca.Client(t, "pem")
	for _, req := range []string{
		"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\nxxxx",
		"GET /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nxxxx\r\n",
		"HEAD /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"OPTIONS /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	} {
		conn := h.rawConn(t, pem)
		io.WriteString(conn, req) //nolint:errcheck // read below
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, req)
		body, _ := io.ReadAll(resp.Body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, req)
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), req)
		if !strings.HasPrefix(req, "HEAD") {
			assert.Contains(t, string(body), "takes no request body", req)
		}
		assert.True(t, resp.Close, "the unread body ends the connection")
	}
	assert.Zero(t, h.up.Requests(), "nothing reached the upstream")
	assert.Zero(t, h.srv.handler.bodies.inUse())
	code, _ := h.do(t, h.client(&pem), "GET", "/status", "")
	assert.Equal(t, http.StatusOK, code, "a GET without a body still passes")
}

// Request bodies in memory have one budget across all connections:
// stalled bodies hold it, one more is refused with 503 and Retry-After
// before it is read (and said once in the log), others without a body
// pass meanwhile, the stalled ones complete, and the budget is all given
// back.
func TestRequestBodiesHaveABudget(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) {
		c.MaxBodyBytes = 64 << 10
		c.MaxBufferedBodyBytes = 3 * 64 << 10
	})
	ops := h.ca.Client(t, "ops")
	const size = 64 << 10
	body := `{"type":"config_update","pad":"` + strings.Repeat("x", size-len(`{"type":"config_update","pad":""}`)) + `"}`
	require.Len(t, body, size)
	head := fmt.Sprintf("POST /servers/pg/operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
	var stalled []*tls.Conn
	for i := range 3 {
		conn := h.rawConn(t, ops)
		io.WriteString(conn, head+body[:size-1]) //nolint:errcheck // the last byte comes later
		require.Eventually(t, func() bool { return h.srv.handler.bodies.inUse() == int64(i+1)*size }, 5*time.Second, 10*time.Millisecond)
		stalled = append(stalled, conn)
	}
	assert.True(t, h.hasMetric(t, fmt.Sprintf("pgbapi_proxy_request_body_buffered_bytes %d", 3*size)))
	for range 5 {
		conn := h.rawConn(t, ops)
		io.WriteString(conn, head+body[:100]) //nolint:errcheck // refused before it is read
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		msg, _ := io.ReadAll(resp.Body)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "5", resp.Header.Get("Retry-After"))
		assert.Contains(t, string(msg), "too many request bodies")
	}
	// The chunked kind grows into the budget and is refused as well.
	conn := h.rawConn(t, ops)
	io.WriteString(conn, "POST /operations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n") //nolint:errcheck // read below
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	code, _ := h.do(t, h.client(&ops), "GET", "/status", "")
	assert.Equal(t, http.StatusOK, code, "a request without a body passes meanwhile")
	assert.True(t, h.hasMetric(t, `pgbapi_proxy_upstream_errors_total{kind="body_budget"} 6`))
	assert.Equal(t, 1, strings.Count(h.logs.String(), "the memory budget for request bodies is spent"), "one log line per interval, not one per refusal")
	assert.Equal(t, int64(1), h.up.Requests(), "only the GET reached the upstream")

	for _, c := range stalled {
		io.WriteString(c, body[size-1:]) //nolint:errcheck // read below
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusAccepted, resp.StatusCode, "the stalled bodies complete and pass")
	}
	require.Eventually(t, func() bool { return h.srv.handler.bodies.inUse() == 0 }, 5*time.Second, 10*time.Millisecond, "the budget is given back")
	assert.True(t, h.hasMetric(t, "pgbapi_proxy_request_body_buffered_bytes 0"))
	code, _ = h.do(t, h.client(&ops), "POST", "/operations", `{"type":"config_update"}`)
	assert.Equal(t, http.StatusAccepted, code, "bodies pass again")
	assert.Eventually(t, func() bool { return h.srv.handler.bodies.inUse() == 0 }, 5*time.Second, 10*time.Millisecond)
}

// Headers that announce a body and then stall hold none of the budget:
// memory is reserved as bytes arrive, so a client cannot spend the budget
// of everyone else by promising bodies it never sends.
func TestAnnouncedBodiesHoldNoBudget(t *testing.T) {
	h := newHarness(t, func(c *Config, _ *Trust) {
		c.MaxBodyBytes = 64 << 10
		c.MaxBufferedBodyBytes = 2 * 64 << 10
	})
	ops := h.ca.Client(t, "ops")
	head := fmt.Sprintf("POST /servers/pg/operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 64<<10)
	for range 10 {
		conn := h.rawConn(t, ops)
		io.WriteString(conn, head) //nolint:errcheck // the body never comes
	}
	time.Sleep(200 * time.Millisecond)
	assert.Zero(t, h.srv.handler.bodies.inUse(), "ten announced bodies, none sent: nothing reserved")
	code, _ := h.do(t, h.client(&ops), "POST", "/operations", `{"type":"config_update"}`)
	assert.Equal(t, http.StatusAccepted, code, "a real body passes")

	// One byte sent holds a little, not the announced 64 KiB.
	conn := h.rawConn(t, ops)
	io.WriteString(conn, head+"{") //nolint:errcheck // the rest never comes
	require.Eventually(t, func() bool { return h.srv.handler.bodies.inUse() > 0 }, 5*time.Second, 10*time.Millisecond)
	assert.LessOrEqual(t, h.srv.handler.bodies.inUse(), int64(512))
}

// Answers held for clients that have not read them yet share a budget:
// with the budget spent (by answers waiting for slow clients), an answer
// streams instead of adding to memory, arrives whole, and the budget
// holds nothing of it afterwards.
func TestAnswersHaveABudget(t *testing.T) {
	const size = 40 << 10
	h := newHarness(t, func(c *Config, _ *Trust) {
		c.MaxAnswerBytes = 2 * size
		c.MaxBufferedAnswerBytes = 2 * size
	})
	h.up.DiagnoseBytes = size
	pem := h.ca.Client(t, "pem")
	c := h.client(&pem)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.logs.String())
		}
	})

	code, body := h.do(t, c, "GET", "/diagnose", "")
	require.Equal(t, http.StatusOK, code)
	assert.Greater(t, len(body), size-(16<<10))
	assert.Zero(t, h.srv.handler.answers.inUse(), "given back once written")
	assert.NotContains(t, h.logs.String(), "the memory budget for answers is spent", "room for it: buffered")

	// Slow clients hold the whole budget now.
	require.True(t, h.srv.handler.answers.reserve(2*size))
	code, streamed := h.do(t, c, "GET", "/diagnose", "")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, body, streamed, "streamed, the answer arrives whole")
	assert.Equal(t, int64(2*size), h.srv.handler.answers.inUse(), "nothing added past the budget")
	assert.Contains(t, h.logs.String(), "the memory budget for answers is spent")
	assert.True(t, h.hasMetric(t, fmt.Sprintf("pgbapi_proxy_answer_buffered_bytes %d", 2*size)))
	h.srv.handler.answers.release(2 * size)
	assert.True(t, h.hasMetric(t, "pgbapi_proxy_answer_buffered_bytes 0"))
}
