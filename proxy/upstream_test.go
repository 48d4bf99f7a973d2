package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawUpstream answers each request read on a connection with the next of
// answers (one per connection when closeAfter), counting connections and
// requests.
type rawUpstream struct {
	l        net.Listener
	conns    atomic.Int64
	requests atomic.Int64
}

func startRaw(t *testing.T, answer func(n int64, r *http.Request) (raw string, closeAfter bool)) *rawUpstream {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := &rawUpstream{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, r.Body) //nolint:errcheck // test
					raw, closeAfter := answer(u.requests.Add(1), r)
					if _, err := io.WriteString(c, raw); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return u
}

func get(t *testing.T, tr http.RoundTripper, ctx context.Context, method, addr string) (*http.Response, string, error) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"type":"recovery"}`)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/status", body)
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

const okKeep = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\"OK\""
const okClose = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\n\"OK\""

func TestUpstreamTransportReuse(t *testing.T) {
	keep := startRaw(t, func(int64, *http.Request) (string, bool) { return okKeep, false })
	closing := startRaw(t, func(int64, *http.Request) (string, bool) { return okClose, true })
	tr := newUpstreamTransport(keep.l.Addr().String(), 0)
	for range 5 {
		_, body, err := get(t, tr, context.Background(), "GET", keep.l.Addr().String())
		require.NoError(t, err)
		assert.Equal(t, `"OK"`, body)
	}
	assert.Equal(t, int64(1), keep.conns.Load(), "a keep-alive upstream's connection is reused")

	tr = newUpstreamTransport(closing.l.Addr().String(), 0)
	for range 5 {
		_, body, err := get(t, tr, context.Background(), "GET", closing.l.Addr().String())
		require.NoError(t, err)
		assert.Equal(t, `"OK"`, body)
	}
	assert.Equal(t, int64(5), closing.conns.Load(), "Connection: close is respected")
	assert.Empty(t, tr.idle)
}

// An idle connection the upstream closed: a GET goes again on a new
// connection; a POST never takes an idle connection, so it is never
// resent.
func TestUpstreamTransportStaleConnection(t *testing.T) {
	// Answers keep-alive, then hangs up after each answer without saying so.
	u := startRaw(t, func(int64, *http.Request) (string, bool) { return okKeep, true })
	addr := u.l.Addr().String()
	tr := newUpstreamTransport(addr, 0)
	_, _, err := get(t, tr, context.Background(), "GET", addr)
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // the close reaches us
	_, body, err := get(t, tr, context.Background(), "GET", addr)
	require.NoError(t, err, "a GET on a stale connection is retried once")
	assert.Equal(t, `"OK"`, body)
	assert.Equal(t, int64(2), u.requests.Load())

	time.Sleep(50 * time.Millisecond)
	_, _, err = get(t, tr, context.Background(), "POST", addr)
	require.NoError(t, err)
	assert.Equal(t, int64(3), u.requests.Load())
	assert.Equal(t, int64(3), u.conns.Load(), "the POST had a new connection")

	// The upstream reads a POST and hangs up: an error, never a resend.
	posts := startRaw(t, func(n int64, r *http.Request) (string, bool) {
		if r.Method == http.MethodPost {
			return "", true
		}
		return okKeep, false
	})
	tr = newUpstreamTransport(posts.l.Addr().String(), 0)
	_, _, err = get(t, tr, context.Background(), "GET", posts.l.Addr().String())
	require.NoError(t, err)
	_, _, err = get(t, tr, context.Background(), "POST", posts.l.Addr().String())
	require.Error(t, err)
	assert.Equal(t, int64(2), posts.requests.Load(), "the POST was sent once")
}

func TestUpstreamTransportInformational(t *testing.T) {
	u := startRaw(t, func(int64, *http.Request) (string, bool) {
		return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + okClose, true
	})
	var got []int
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error { got = append(got, code); return nil },
	})
	resp, body, err := get(t, newUpstreamTransport(u.l.Addr().String(), 0), ctx, "GET", u.l.Addr().String())
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, `"OK"`, body)
	assert.Equal(t, []int{103}, got)

	many := startRaw(t, func(int64, *http.Request) (string, bool) {
		return strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 10) + okClose, true
	})
	_, _, err = get(t, newUpstreamTransport(many.l.Addr().String(), 0), context.Background(), "GET", many.l.Addr().String())
	assert.ErrorContains(t, err, "informational")

	upgrade := startRaw(t, func(int64, *http.Request) (string, bool) {
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", true
	})
	_, _, err = get(t, newUpstreamTransport(upgrade.l.Addr().String(), 0), context.Background(), "GET", upgrade.l.Addr().String())
	assert.ErrorIs(t, err, errUpgrade)
}

func TestUpstreamTransportBounds(t *testing.T) {
	huge := startRaw(t, func(int64, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\nContent-Length: 0\r\n\r\n", true
	})
	_, _, err := get(t, newUpstreamTransport(huge.l.Addr().String(), 0), context.Background(), "GET", huge.l.Addr().String())
	assert.ErrorContains(t, err, "headers are over")

	// An upstream that never answers: the context's deadline ends it,
	// as a timeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = get(t, newUpstreamTransport(silent.Addr().String(), 0), ctx, "GET", silent.Addr().String())
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.Less(t, time.Since(start), 2*time.Second)

	// The transport's own timeout, without a context deadline.
	start = time.Now()
	_, _, err = get(t, newUpstreamTransport(silent.Addr().String(), 200*time.Millisecond), context.Background(), "GET", silent.Addr().String())
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.Less(t, time.Since(start), 2*time.Second)

	// A client that goes away: cancelled at once.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, _, err = get(t, newUpstreamTransport(silent.Addr().String(), 0), ctx, "GET", silent.Addr().String())
	require.Error(t, err)
	assert.Less(t, time.Since(start), 2*time.Second)
}
