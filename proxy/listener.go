package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errOverload is a connection closed because too many are open or
// shaking hands already.
var errOverload = errors.New("too many connections or handshakes in progress")

var (
	errAddrInUse = syscall.EADDRINUSE
	errAccess    = syscall.EACCES
)

// tlsListener completes each TLS handshake before handing the connection
// to the HTTP server, in a goroutine per connection with a deadline, so
// that a failed handshake can be counted by reason and a slow one holds
// up nobody.
type tlsListener struct {
	inner   net.Listener
	config  *tls.Config
	timeout time.Duration
	onFail  func(reason string, remote net.Addr, err error)
	// pending bounds the handshakes in progress; full reports whether
	// the server holds as many connections as it may. A connection past
	// either is closed at once (counted as "overload").
	pending chan struct{}
	full    func() bool

	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newTLSListener(inner net.Listener, config *tls.Config, timeout time.Duration, maxPending int, full func() bool, onFail func(string, net.Addr, error)) *tlsListener {
	l := &tlsListener{
		inner: inner, config: config, timeout: timeout, onFail: onFail, pending: make(chan struct{}, maxPending), full: full,
		conns: make(chan net.Conn), errs: make(chan error, 1), done: make(chan struct{}),
	}
	go l.acceptLoop()
	return l
}

func (l *tlsListener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-l.done:
					return
				}
			}
			select {
			case l.errs <- err:
			case <-l.done:
			}
			return
		}
		backoff = 0
		if l.full() {
			l.onFail("overload", c.RemoteAddr(), errOverload)
			c.Close()
			continue
		}
		select {
		case l.pending <- struct{}{}:
			go func() {
				defer func() { <-l.pending }()
				l.handshake(c)
			}()
		default:
			l.onFail("overload", c.RemoteAddr(), errOverload)
			c.Close()
		}
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader[:]) {
			// What net/http answers plain HTTP on a TLS port.
			re.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server: use https://\n") //nolint:errcheck // a courtesy
		}
		l.onFail(handshakeFailure(err), c.RemoteAddr(), err)
		c.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// handshakeFailure names why a handshake failed, for the metric.
func handshakeFailure(err error) string {
	var (
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		header  tls.RecordHeaderError
		ne      net.Error
	)
	msg := err.Error()
	switch {
	case errors.Is(err, errRevoked):
		return "revoked"
	case errors.Is(err, errBadIdentity):
		return "bad_identity"
	case errors.As(err, &unknown):
		return "unknown_ca"
	case errors.As(err, &invalid):
		switch invalid.Reason {
		case x509.Expired:
			return "expired"
		case x509.IncompatibleUsage:
			return "bad_usage"
		}
		return "invalid_cert"
	case strings.Contains(msg, "didn't provide a certificate"):
		return "no_cert"
	case errors.As(err, &header):
		return "not_tls"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF):
		return "aborted"
	case strings.Contains(msg, "version"), strings.Contains(msg, "cipher"), strings.Contains(msg, "no application protocol"):
		return "protocol"
	case strings.Contains(msg, "certificate"):
		return "invalid_cert"
	}
	return "other"
}

func looksLikeHTTP(hdr []byte) bool {
	switch string(hdr) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}

// refusalLog sums refused handshakes up: one log line per reason per
// interval, with the count and the last remote address and error, so
// that clients without a certificate cannot flood the log (and push the
// audit lines out of journald's rate limit). The metric counts each one.
type refusalLog struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	byReason map[string]*refusals
}

type refusals struct {
	count      int
	lastRemote string
	lastErr    string
}

func newRefusalLog(log *slog.Logger, interval time.Duration) *refusalLog {
	return &refusalLog{log: log, interval: interval, byReason: map[string]*refusals{}}
}

func (r *refusalLog) add(reason string, remote net.Addr, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byReason[reason] // reason is one of handshakeFailure's fixed words
	if e == nil {
		e = &refusals{}
		r.byReason[reason] = e
	}
	e.count++
	e.lastRemote, e.lastErr = remote.String(), cut(err.Error())
}

// run writes the summary every interval until ctx ends, then once more.
func (r *refusalLog) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.flush()
			return
		case <-t.C:
			r.flush()
		}
	}
}

func (r *refusalLog) flush() {
	r.mu.Lock()
	byReason := r.byReason
	r.byReason = map[string]*refusals{}
	r.mu.Unlock()
	reasons := make([]string, 0, len(byReason))
	for k := range byReason {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, reason := range reasons {
		e := byReason[reason]
		r.log.Info("TLS handshakes refused", "reason", reason, "count", e.count, "interval", r.interval,
			"last_remote", e.lastRemote, "last_err", e.lastErr)
	}
}
