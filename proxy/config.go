// Package proxy is the TLS front of pg-backup-api: it terminates TLS with
// mandatory client certificates, checks each request against one trust
// snapshot (roots, revocations, access rules), forwards what is allowed
// to the local API byte for byte, and reports on an admin listener.
//
// It reads no files: the caller hands it a Trust (see trust.go), swaps in
// new ones with Server.SetTrust, and gives it a CertSource for its own
// certificate.
//
// Files: config.go (settings), server.go (startup, trust swaps,
// shutdown), trust.go (Trust, Identity, the certificate source),
// tlsconfig.go and listener.go (TLS and handshakes), route.go (methods,
// paths and route templates), handler.go (the reverse proxy), access.go
// (access rules), audit.go (operations started), admin.go and metrics.go
// (/metrics, /healthz, /readyz), logwriter.go (the batched log).
package proxy

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ClientHeader carries the verified client certificate's CN to the
// upstream. Whatever a client sends under this name is dropped first.
const ClientHeader = "X-Client-Cert-CN"

// Config is everything a Server needs besides its trust and certificate.
// Zero durations and sizes take the defaults below.
type Config struct {
	Listener      net.Listener // the TLS side, bound by the caller
	AdminListener net.Listener // plain HTTP admin side, loopback
	Upstream      *url.URL     // pg-backup-api, e.g. http://127.0.0.1:7480

	UpstreamTimeout time.Duration // waiting for the upstream's answer
	MaxInflight     int           // requests at the upstream at once; 0: no limit
	QueueTimeout    time.Duration // how long a request waits for a free slot
	MaxAnswerBytes  int64         // largest upstream answer buffered whole

	ShutdownTimeout   time.Duration // for in-flight requests on SIGTERM
	ReadHeaderTimeout time.Duration
	WriteTimeout      time.Duration // to write one answer to the client
	IdleTimeout       time.Duration
	HandshakeTimeout  time.Duration
	MaxHeaderBytes    int
	// MaxConns bounds the client connections open at once, and
	// MaxPendingHandshakes those still shaking hands; one more is
	// closed at once. Each costs about 45 kB when idle.
	MaxConns             int
	MaxPendingHandshakes int
	// MaxPendingHandshakesPerIP bounds the handshakes in progress from
	// one source (an IPv4 address or an IPv6 /64), so that one source
	// cannot hold all of MaxPendingHandshakes; one more from it is
	// closed at once. Above MaxPendingHandshakes it bounds nothing more.
	MaxPendingHandshakesPerIP int
	BodyTimeout               time.Duration // to receive a whole request body
	MaxBodyBytes              int64         // largest request body forwarded
	// MaxBufferedBodyBytes bounds the request body bytes held in memory
	// across all connections; a body past it is refused with 503 before
	// it is read. Zero: DefaultMaxBufferedBodyBytes, or MaxBodyBytes if
	// larger.
	MaxBufferedBodyBytes int64
	// MaxBufferedAnswerBytes bounds the upstream answer bytes held in
	// memory across all connections until their clients read them; an
	// answer past it streams instead, holding its upstream slot while
	// the client reads (within WriteTimeout). Zero:
	// DefaultMaxBufferedAnswerBytes, or MaxAnswerBytes if larger.
	MaxBufferedAnswerBytes int64

	// TicketKeyRotation is how often the TLS session ticket key changes;
	// a new trust snapshot always brings a new key.
	TicketKeyRotation time.Duration
	// HandshakeLogInterval is how often refused handshakes are summed up
	// in one log line per reason (the counters stay exact).
	HandshakeLogInterval time.Duration

	// Registry receives the proxy's metrics and is what /metrics serves;
	// the caller may register more collectors on it. Nil: a new one.
	Registry *prometheus.Registry
	Pprof    bool // serve /debug/pprof/ on the admin listener
	Version  string
	Logger   *slog.Logger
}

// Defaults for Config fields left zero.
const (
	DefaultListen            = ":443"
	DefaultAdminListen       = "127.0.0.1:7481"
	DefaultUpstream          = "http://127.0.0.1:7480"
	DefaultUpstreamTimeout   = 120 * time.Second
	DefaultQueueTimeout      = 30 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultBodyTimeout       = 30 * time.Second
	DefaultMaxBodyBytes      = 1 << 20 // pg-backup-api's requests are small JSON
	// DefaultMaxBufferedBodyBytes is 32 bodies of DefaultMaxBodyBytes.
	DefaultMaxBufferedBodyBytes = 32 << 20
	// DefaultMaxAnswerBytes bounds an upstream answer held in memory:
	// /diagnose is tens of KB; a larger answer streams, holding its slot.
	DefaultMaxAnswerBytes = 4 << 20
	// DefaultMaxBufferedAnswerBytes is 16 answers of DefaultMaxAnswerBytes,
	// thousands of /diagnose answers.
	DefaultMaxBufferedAnswerBytes = 64 << 20
	DefaultMaxInflight            = 1
	DefaultMaxConns               = 4096
	DefaultMaxPendingHandshakes   = 256
	// DefaultMaxPendingHandshakesPerIP leaves the pool to at least 8
	// sources.
	DefaultMaxPendingHandshakesPerIP = 32
	DefaultTicketKeyRotation         = 24 * time.Hour
	DefaultHandshakeLogInterval      = 10 * time.Second
	// readyMargin is how long the served certificate must still be valid
	// for /readyz to say ready (or a third of its lifetime, if shorter).
	readyMargin = 7 * 24 * time.Hour
)

func (c *Config) setDefaults() {
	orDefault(&c.UpstreamTimeout, DefaultUpstreamTimeout)
	orDefault(&c.QueueTimeout, DefaultQueueTimeout)
	orDefault(&c.MaxAnswerBytes, DefaultMaxAnswerBytes)
	orDefault(&c.ShutdownTimeout, DefaultShutdownTimeout)
	orDefault(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	orDefault(&c.WriteTimeout, DefaultWriteTimeout)
	orDefault(&c.IdleTimeout, DefaultIdleTimeout)
	orDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	orDefault(&c.BodyTimeout, DefaultBodyTimeout)
	orDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	orDefault(&c.MaxBufferedBodyBytes, max(DefaultMaxBufferedBodyBytes, c.MaxBodyBytes))
	orDefault(&c.MaxBufferedAnswerBytes, max(DefaultMaxBufferedAnswerBytes, c.MaxAnswerBytes))
	orDefault(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orDefault(&c.TicketKeyRotation, DefaultTicketKeyRotation)
	orDefault(&c.HandshakeLogInterval, DefaultHandshakeLogInterval)
	orDefault(&c.MaxConns, DefaultMaxConns)
	orDefault(&c.MaxPendingHandshakes, DefaultMaxPendingHandshakes)
	orDefault(&c.MaxPendingHandshakesPerIP, DefaultMaxPendingHandshakesPerIP)
	orDefault(&c.Logger, slog.Default())
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
}

// orDefault sets *v to d when it is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// FieldError names the Config field that is wrong, so that the command
// line can name its own flag.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }

// Validate checks the settings and the listeners; the error is a
// *FieldError.
func (c *Config) Validate() error {
	switch {
	case c.Listener == nil:
		return &FieldError{"Listener", "no TLS listener"}
	case c.AdminListener == nil:
		return &FieldError{"AdminListener", "no admin listener"}
	}
	return c.ValidateSettings()
}

// ValidateSettings checks everything but the listeners, so that a caller
// can refuse wrong settings before it binds anything; the error is a
// *FieldError.
func (c *Config) ValidateSettings() error {
	switch {
	case c.Upstream == nil || (c.Upstream.Scheme != "http" && c.Upstream.Scheme != "https") || c.Upstream.Host == "":
		return &FieldError{"Upstream", "must be an http:// or https:// URL, e.g. " + DefaultUpstream}
	case c.MaxInflight < 0:
		return &FieldError{"MaxInflight", "must be 0 (no limit) or more"}
	case c.MaxBodyBytes < 0:
		return &FieldError{"MaxBodyBytes", "must not be negative"}
	case c.MaxBufferedBodyBytes < c.MaxBodyBytes:
		return &FieldError{"MaxBufferedBodyBytes", "must not be less than the largest request body allowed, or no body that large could be read"}
	case c.MaxBufferedAnswerBytes != 0 && c.MaxBufferedAnswerBytes < cmp.Or(c.MaxAnswerBytes, DefaultMaxAnswerBytes):
		return &FieldError{"MaxBufferedAnswerBytes", "must not be less than the largest answer held in memory (4 MiB), or none that large could be"}
	case c.MaxConns < 0:
		return &FieldError{"MaxConns", "must not be negative"}
	case c.MaxPendingHandshakes < 0:
		return &FieldError{"MaxPendingHandshakes", "must not be negative"}
	case c.MaxPendingHandshakesPerIP < 0:
		return &FieldError{"MaxPendingHandshakesPerIP", "must not be negative"}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"UpstreamTimeout", c.UpstreamTimeout}, {"QueueTimeout", c.QueueTimeout}, {"ShutdownTimeout", c.ShutdownTimeout},
		{"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"WriteTimeout", c.WriteTimeout}, {"IdleTimeout", c.IdleTimeout},
		{"HandshakeTimeout", c.HandshakeTimeout}, {"BodyTimeout", c.BodyTimeout}, {"TicketKeyRotation", c.TicketKeyRotation},
	} {
		if d.v < 0 {
			return &FieldError{d.field, "must not be negative"}
		}
	}
	return nil
}
