package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
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
	// perSource bounds the handshakes in progress from one source (an
	// IPv4 address, or an IPv6 /64), so that one source cannot take the
	// whole of pending; past it a connection is closed at once (counted
	// as "overload_source"). bySource holds a count for each source with
	// a handshake in progress, and nothing else.
	perSource int
	mu        sync.Mutex
	bySource  map[netip.Addr]int

	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newTLSListener(inner net.Listener, config *tls.Config, timeout time.Duration, maxPending, maxPerSource int, full func() bool, onFail func(string, net.Addr, error)) *tlsListener {
	l := &tlsListener{
		inner: inner, config: config, timeout: timeout, onFail: onFail, pending: make(chan struct{}, maxPending), full: full,
		perSource: maxPerSource, bySource: map[netip.Addr]int{},
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
		src, ok := l.takeSource(c.RemoteAddr())
		if !ok {
			l.onFail("overload_source", c.RemoteAddr(), errOverloadSource)
			c.Close()
			continue
		}
		select {
		case l.pending <- struct{}{}:
			go func() {
				defer func() { <-l.pending; l.releaseSource(src) }()
				l.handshake(c)
			}()
		default:
			l.releaseSource(src)
			l.onFail("overload", c.RemoteAddr(), errOverload)
			c.Close()
		}
	}
}

// errOverloadSource is a connection closed because its source has as
// many handshakes in progress as one source may.
var errOverloadSource = errors.New("too many handshakes in progress from this source")

// sourceOf is the source a connection's handshakes count against: its
// IPv4 address, or the /64 of its IPv6 address (what one host or site
// usually holds). A remote address that is no IP counts as one source.
func sourceOf(remote net.Addr) netip.Addr {
	var ip netip.Addr
	if ta, ok := remote.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			ip = p.Addr()
		}
	}
	return ip
}

// takeSource counts a handshake in progress from remote's source, unless
// that source has perSource already.
func (l *tlsListener) takeSource(remote net.Addr) (netip.Addr, bool) {
	src := sourceOf(remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySource[src] >= l.perSource {
		return src, false
	}
	l.bySource[src]++
	return src, true
}

// releaseSource ends a handshake counted by takeSource; a source with
// none left leaves the map.
func (l *tlsListener) releaseSource(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.bySource[src] - 1; n > 0 {
		l.bySource[src] = n
	} else {
		delete(l.bySource, src)
	}
}

// pendingSources is how many sources have a handshake in progress, and
// how many handshakes they have in all (for tests).
func (l *tlsListener) pendingSources() (sources, handshakes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.bySource {
		handshakes += n
	}
	return len(l.bySource), handshakes
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
