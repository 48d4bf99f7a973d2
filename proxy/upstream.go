package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// upstreamTransport is the RoundTripper to a plain-HTTP pg-backup-api: one
// local process whose answers are small, always carry a Content-Length,
// and (in pg-backup-api's case) close the connection. It does what this
// job needs and no more: dial, write the request through a pooled
// bufio.Writer, read the answer with http.ReadResponse on a pooled
// bufio.Reader, in the caller's goroutine (net/http's Transport runs two
// more per connection). A connection goes back to a small idle list only
// when the upstream allowed it (HTTP/1.1 without "Connection: close") and
// the answer was read to its end with nothing left over.
//
// Safety, as with net/http's Transport or stricter:
//   - nothing is ever sent twice, except a GET, HEAD or OPTIONS whose
//     reused idle connection turned out to be closed before any byte of
//     an answer came back; a POST (or any other method) always gets a
//     fresh connection and is never resent;
//   - timeout, or the request context's deadline if earlier, bounds
//     everything (dial, write, answer headers and body) through the
//     connection's deadline (no timer per request), and a client that
//     goes away (the context ends) cancels the exchange at once;
//   - answer headers are bounded (maxHeader bytes), as are 1xx answers
//     (at most max1xx, each passed to the client through httptrace, as
//     ReverseProxy expects); 101 Switching Protocols is refused.
type upstreamTransport struct {
	addr      string
	dialer    net.Dialer
	maxHeader int64
	timeout   time.Duration // for the whole exchange, when the context has no earlier deadline; 0: none

	mu   sync.Mutex
	idle []*upConn // most recently used last
}

const (
	maxIdleUpstream  = 64
	upstreamIdleTime = 10 * time.Second
	max1xx           = 5
	upstreamBufSize  = 4 << 10
)

// upConn is a connection to the upstream with its buffers.
type upConn struct {
	net.Conn
	lr      io.LimitedReader // under br: bounds the answer headers
	br      *bufio.Reader
	bw      *bufio.Writer
	idleAt  time.Time
	reused  bool
	tr      *upstreamTransport
	stopCtx func() bool // ends the context watch
}

// connBufs are buffers of connections that were closed.
var connBufs = sync.Pool{New: func() any {
	c := &upConn{}
	c.br = bufio.NewReaderSize(&c.lr, upstreamBufSize)
	c.bw = bufio.NewWriterSize(nil, upstreamBufSize)
	return c
}}

func newUpstreamTransport(addr string, timeout time.Duration) *upstreamTransport {
	// No TCP keep-alive probes on a loopback connection that lives for
	// one exchange: four setsockopt calls less per connection.
	return &upstreamTransport{addr: addr, dialer: net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}, maxHeader: 1 << 20, timeout: timeout}
}

// errUpgrade refuses a protocol switch: pg-backup-api has none.
var errUpgrade = errors.New("pg-backup-api answered 101 Switching Protocols, which the proxy does not pass on")

func (t *upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	replayable := isIdempotent(req.Method) && (req.Body == nil || req.Body == http.NoBody)
	out := &stdRequest{req: req}
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil {
		out.got1xx = trace.Got1xxResponse
	}
	return t.exchange(req, replayable, out)
}

// outgoing writes a request to the upstream and takes its 1xx answers.
type outgoing interface {
	writeRequest(*bufio.Writer) error
	informational(code int, header textproto.MIMEHeader) error
}

// stdRequest is an *http.Request as an outgoing request (RoundTrip's).
type stdRequest struct {
	req    *http.Request
	got1xx func(int, textproto.MIMEHeader) error
}

func (s *stdRequest) writeRequest(bw *bufio.Writer) error { return s.req.Write(bw) }

func (s *stdRequest) informational(code int, header textproto.MIMEHeader) error {
	if s.got1xx == nil {
		return nil
	}
	return s.got1xx(code, header)
}

// exchange sends out and reads the answer to req (whose context and
// method count); 1xx answers go to out.
func (t *upstreamTransport) exchange(req *http.Request, replayable bool, out outgoing) (*http.Response, error) {
	var deadline time.Time
	if t.timeout > 0 {
		deadline = time.Now().Add(t.timeout)
	}
	if d, ok := req.Context().Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	for {
		c, err := t.conn(req.Context(), replayable, deadline)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(req, deadline, out)
		if err == nil {
			return resp, nil
		}
		c.close()
		var se staleError
		if replayable && c.reused && errors.As(err, &se) && req.Context().Err() == nil {
			continue // the idle connection was closed under us; nothing was answered
		}
		if errors.As(err, &se) {
			err = se.err
		}
		return nil, err
	}
}

// conn is an idle connection (only for a replayable request) or a new one.
func (t *upstreamTransport) conn(ctx context.Context, replayable bool, deadline time.Time) (*upConn, error) {
	if replayable {
		if c := t.takeIdle(); c != nil {
			return c, nil
		}
	}
	d := t.dialer
	d.Deadline = deadline
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	c := connBufs.Get().(*upConn)
	c.Conn, c.tr, c.reused = nc, t, false
	c.lr.R = nc
	c.br.Reset(&c.lr)
	c.bw.Reset(nc)
	return c, nil
}

func (t *upstreamTransport) takeIdle() *upConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		c := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		if time.Since(c.idleAt) < upstreamIdleTime {
			c.reused = true
			return c
		}
		go c.close() // too old; the rest are older
		for i, old := range t.idle {
			t.idle[i] = nil
			go old.close()
		}
		t.idle = t.idle[:0]
	}
	return nil
}

func (t *upstreamTransport) putIdle(c *upConn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle) < maxIdleUpstream {
		t.idle = append(t.idle, c)
		c = nil
	}
	t.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// CloseIdleConnections closes the idle connections.
func (t *upstreamTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// staleError is a failure on a connection before any byte of an answer
// arrived: on a reused connection, the upstream had closed it.
type staleError struct{ err error }

func (e staleError) Error() string { return e.err.Error() }
func (e staleError) Unwrap() error { return e.err }

func (c *upConn) roundTrip(req *http.Request, deadline time.Time, out outgoing) (*http.Response, error) {
	ctx := req.Context()
	c.SetDeadline(deadline) //nolint:errcheck // a closed conn fails below
	// A client that goes away, or the context's end, interrupts the
	// exchange at once; no goroutine unless that happens.
	nc := c.Conn
	c.stopCtx = context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) }) //nolint:errcheck // as above
	if err := out.writeRequest(c.bw); err != nil {
		return nil, staleError{err}
	}
	if err := c.bw.Flush(); err != nil {
		return nil, staleError{err}
	}
	for n := 0; ; n++ {
		c.lr.N = c.tr.maxHeader
		if _, err := c.br.Peek(1); err != nil {
			if n == 0 {
				return nil, staleError{err}
			}
			return nil, err
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			if c.lr.N <= 0 {
				return nil, fmt.Errorf("pg-backup-api's answer headers are over %d bytes", c.tr.maxHeader)
			}
			return nil, err
		}
		c.lr.N = 1<<63 - 1
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errUpgrade
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			if n >= max1xx {
				return nil, fmt.Errorf("pg-backup-api sent more than %d informational answers", max1xx)
			}
			if err := out.informational(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
			continue
		}
		keep := !resp.Close && resp.ProtoAtLeast(1, 1) && resp.ContentLength >= 0
		if resp.Body == http.NoBody {
			c.release(keep)
			return resp, nil
		}
		resp.Body = &upBody{rc: resp.Body, c: c, keep: keep}
		return resp, nil
	}
}

// close closes the connection and keeps its buffers for another.
func (c *upConn) close() {
	if c.stopCtx != nil {
		c.stopCtx()
		c.stopCtx = nil
	}
	c.Conn.Close()
	c.Conn, c.tr, c.lr.R = nil, nil, nil
	c.br.Reset(&c.lr)
	c.bw.Reset(nil)
	connBufs.Put(c)
}

// release hands a connection whose answer was read to its end back to
// the idle list, or closes it.
func (c *upConn) release(keep bool) {
	if !keep || c.br.Buffered() > 0 || !c.stopCtx() {
		// stopCtx false: the context ended and may have set a past
		// deadline; do not reuse.
		c.stopCtx = nil
		c.close()
		return
	}
	c.stopCtx = nil
	// The deadline stays: the next roundTrip sets its own before using
	// the connection (one system call less per request).
	c.tr.putIdle(c)
}

// upBody is an answer's body: once read to its end (or closed), the
// connection goes back to the idle list or is closed.
type upBody struct {
	rc   io.ReadCloser
	c    *upConn
	keep bool // the upstream allows reuse
	eof  bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.c == nil {
		return 0, errors.New("read on a closed answer body")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *upBody) Close() error {
	if b.c == nil {
		return nil
	}
	c := b.c
	b.c = nil
	if !b.eof {
		// Not read to its end: the connection cannot carry another
		// answer (and draining it could wait on the upstream).
		c.release(false)
		return nil
	}
	c.release(b.keep)
	return nil
}
