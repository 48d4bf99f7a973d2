// Package proxy is the TLS front of pg-backup-api: it terminates TLS with
// mandatory client certificates, forwards requests to the local API byte
// for byte, keeps its server certificate renewed, and reports on an admin
// listener.
//
// Files: config.go (settings), server.go (startup, reload, shutdown),
// tlsconfig.go and listener.go (TLS and handshakes), servercert.go (the
// server certificate, through certmagic or from files), handler.go (the
// reverse proxy), admin.go and metrics.go (/metrics, /healthz, /readyz).
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
)

// ClientHeader carries the verified client certificate's CN to the
// upstream. Whatever a client sends under this name is dropped first.
const ClientHeader = "X-Client-Cert-CN"

// Config is everything serve needs.
type Config struct {
	Layout      pki.Layout
	Listen      string   // TLS address, e.g. ":443"
	AdminListen string   // plain HTTP admin address, loopback
	Upstream    *url.URL // pg-backup-api, e.g. http://127.0.0.1:7480
	AccessFile  string   // access rules; a missing file allows everything

	// PolicyPoll is how often the CRL and the rules file are checked
	// for changes.
	PolicyPoll time.Duration

	UpstreamTimeout time.Duration // waiting for the upstream's answer
	MaxInflight     int           // requests at the upstream at once; 0: no limit
	QueueTimeout    time.Duration // how long a request waits for a free slot

	ServerCertLifetime time.Duration // of each server certificate issued here
	ShutdownTimeout    time.Duration // for in-flight requests on SIGTERM

	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	HandshakeTimeout  time.Duration
	MaxHeaderBytes    int
	BodyTimeout       time.Duration // to receive a whole request body
	MaxBodyBytes      int64         // largest request body forwarded

	Pprof   bool // serve /debug/pprof/ on the admin listener
	Version string
	Logger  *slog.Logger
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
	DefaultIdleTimeout       = 120 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultBodyTimeout       = 30 * time.Second
	DefaultMaxBodyBytes      = 1 << 20 // pg-backup-api's requests are small JSON
	// readyMargin is how long the served certificate must still be valid
	// for /readyz to say ready (or a third of its lifetime, if shorter).
	readyMargin = 7 * 24 * time.Hour
)

func (c *Config) setDefaults() {
	orDefault(&c.Listen, DefaultListen)
	orDefault(&c.AdminListen, DefaultAdminListen)
	orDefault(&c.UpstreamTimeout, DefaultUpstreamTimeout)
	orDefault(&c.QueueTimeout, DefaultQueueTimeout)
	orDefault(&c.ServerCertLifetime, pki.Days(pki.DefaultServerDays))
	orDefault(&c.ShutdownTimeout, DefaultShutdownTimeout)
	orDefault(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	orDefault(&c.IdleTimeout, DefaultIdleTimeout)
	orDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	orDefault(&c.BodyTimeout, DefaultBodyTimeout)
	orDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	orDefault(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	orDefault(&c.PolicyPoll, 500*time.Millisecond)
	orDefault(&c.Logger, slog.Default())
}

// orDefault sets *v to d when it is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func (c *Config) validate() error {
	if c.Upstream == nil || (c.Upstream.Scheme != "http" && c.Upstream.Scheme != "https") || c.Upstream.Host == "" {
		return errors.New("--upstream must be an http:// or https:// URL, e.g. " + DefaultUpstream)
	}
	if c.MaxInflight < 0 {
		return errors.New("--upstream-max-inflight must be 0 (no limit) or more")
	}
	if c.ServerCertLifetime < time.Minute {
		return fmt.Errorf("the server certificate lifetime (%s) must be at least a minute", c.ServerCertLifetime)
	}
	for name, d := range map[string]time.Duration{
		"--upstream-timeout": c.UpstreamTimeout, "--shutdown-timeout": c.ShutdownTimeout, "--queue-timeout": c.QueueTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("%s must not be negative", name)
		}
	}
	return nil
}
