package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/pkisource"
	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/pgbapi/pgbapi-proxy/servercert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
)

var serveCommand = command{
	name:    "serve",
	summary: "run the TLS proxy in front of pg-backup-api",
	about: `Terminates TLS on --listen, requires a client certificate signed by the
cluster CA, and forwards each request to pg-backup-api (--upstream) byte
for byte. The verified client's name reaches the upstream in the
` + proxy.ClientHeader + ` header; identity headers a client sends are dropped.

The server certificate is issued from the cluster's intermediate and
renewed while serving, at a third of its lifetime left; each new one goes
into the service's own store (<state-dir>/server/), from which root's
'pgbapi-proxy sync-server-cert' (the packaged pgbapi-proxy-server-cert.path
unit) copies it to pg-backup-api.crt/.key. On a host without the CA key,
pg-backup-api.crt/.key are served as they are.

Revoked certificates (pgbapi-proxy revoke) are refused within a second,
on new and open connections. Access rules (--access-file) limit what each
client may do; a denied request gets 403 JSON naming the rule. root.crt,
the CRL, the revocation record and the rules are reloaded when they
change; one that goes missing, breaks or is older than one already seen
keeps its last good state (fail closed), and the log says so.

The admin listener (plain HTTP, loopback) answers /metrics, /healthz,
/readyz and /settings (what this proxy enforces, which doctor reads).
SIGHUP reloads the trust inputs and the server certificate (on a host
without the CA key, pg-backup-api.crt/.key as they are; with it, the
names init added since the start); what fails to load keeps its last
good state. SIGTERM lets requests in flight finish, then exits.

At most --upstream-max-inflight requests (default 1) reach pg-backup-api at
once: 'pg-backup-api serve' answers wrongly to concurrent requests, and the
packaged gunicorn service has one worker anyway. Raise it only for an
upstream with several workers.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		listen := fs.String("listen", proxy.DefaultListen, "TLS address to listen on")
		admin := fs.String("admin-listen", proxy.DefaultAdminListen, "admin address (/metrics, /healthz, /readyz, /settings); keep it on loopback")
		upstream := fs.String("upstream", proxy.DefaultUpstream, "pg-backup-api's address (http://HOST:PORT; HOST:PORT means http)")
		access := fs.String("access-file", proxy.DefaultAccessFile, "access rules by client name (see 'pgbapi-proxy check-access --help'); if this default file does not exist, every valid certificate may do everything; a file named here must exist; \"\" for no rules")
		upTimeout := fs.Duration("upstream-timeout", proxy.DefaultUpstreamTimeout, "how long to wait for pg-backup-api's answer (/diagnose can take a minute)")
		inflight := fs.Int("upstream-max-inflight", proxy.DefaultMaxInflight, "requests at pg-backup-api at once; 0 for no limit (raise it only for an upstream with several workers)")
		queue := fs.Duration("upstream-queue-timeout", proxy.DefaultQueueTimeout, "how long a request waits for a free slot before a 503")
		days := fs.Int("server-cert-days", pki.DefaultServerDays, "lifetime of each server certificate issued here, in days")
		lifetime := fs.Duration("server-cert-lifetime", 0, "lifetime of each server certificate as a duration (e.g. 10m, for testing renewals); overrides --server-cert-days")
		headerTimeout := fs.Duration("read-header-timeout", proxy.DefaultReadHeaderTimeout, "how long a client may take to send a request's headers")
		bodyTimeout := fs.Duration("request-body-timeout", proxy.DefaultBodyTimeout, "how long a client may take to send a request's body")
		writeTimeout := fs.Duration("write-timeout", proxy.DefaultWriteTimeout, "how long a client may take to read an answer once pg-backup-api gave it")
		maxBody := fs.Int64("max-body-bytes", proxy.DefaultMaxBodyBytes, "largest request body forwarded (413 above)")
		maxBuffered := fs.Int64("max-buffered-body-bytes", proxy.DefaultMaxBufferedBodyBytes, "request bodies held in memory at once, all clients together (503 above); at least --max-body-bytes")
		maxAnswers := fs.Int64("max-buffered-answer-bytes", proxy.DefaultMaxBufferedAnswerBytes, "answers held in memory for clients that have not read them yet, all together; past it an answer streams, holding its pg-backup-api slot while its client reads")
		maxConns := fs.Int("max-connections", proxy.DefaultMaxConns, "client connections open at once; one more is closed at once")
		maxHandshakes := fs.Int("max-handshakes", proxy.DefaultMaxPendingHandshakes, "TLS handshakes in progress at once; one more is closed at once")
		maxPerSource := fs.Int("max-handshakes-per-source", proxy.DefaultMaxPendingHandshakesPerIP, "TLS handshakes in progress from one address (IPv6: one /64), so that one source cannot take them all")
		shutdown := fs.Duration("shutdown-timeout", proxy.DefaultShutdownTimeout, "on SIGTERM, how long requests in flight may take to finish")
		poll := fs.Duration("trust-poll", 500*time.Millisecond, "how often root.crt, the CRL, the revocation record and the access rules are checked for changes")
		logFormat := fs.String("log-format", "text", "log format: text or json")
		logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
		pprofOn := fs.Bool("admin-pprof", false, "serve Go profiles on the admin listener at /debug/pprof/ (for performance work)")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("serve", args); err != nil {
				return err
			}
			// The access log is batched: one write every 100ms, not one
			// per request.
			logOut := proxy.NewLogWriter(sio.err, 100*time.Millisecond)
			defer logOut.Close()
			logger, err := newLogger(logOut, *logFormat, *logLevel)
			if err != nil {
				return err
			}
			up, err := parseUpstream(*upstream)
			if err != nil {
				return err
			}
			if *days < 1 {
				return usagef("--server-cert-days must be at least 1")
			}
			certLifetime := pki.Days(*days)
			if *lifetime != 0 {
				certLifetime = *lifetime
			}
			s := serveSetup{
				layout: *layout, listen: *listen, admin: *admin, poll: *poll, log: logger,
				access: pkisource.Options{Layout: *layout, AccessFile: *access, AccessFileRequired: fs.Changed("access-file") && *access != "", Log: logger},
				certs:  servercert.Options{Layout: *layout, Lifetime: certLifetime, Log: logger},
				cfg: proxy.Config{
					Upstream: up, UpstreamTimeout: *upTimeout, MaxInflight: *inflight, QueueTimeout: *queue,
					ShutdownTimeout: *shutdown, Version: versionString(), Logger: logger, Pprof: *pprofOn,
					ReadHeaderTimeout: *headerTimeout, BodyTimeout: *bodyTimeout, WriteTimeout: *writeTimeout, MaxBodyBytes: *maxBody,
					MaxBufferedBodyBytes: *maxBuffered, MaxBufferedAnswerBytes: *maxAnswers, MaxConns: *maxConns, MaxPendingHandshakes: *maxHandshakes, MaxPendingHandshakesPerIP: *maxPerSource,
				},
			}
			return flagError(s.run(ctx))
		}
	},
}

// serveSetup wires the parts of serve together: listeners, the trust
// loader, the server certificate source and the proxy.
type serveSetup struct {
	layout        pki.Layout
	listen, admin string
	poll          time.Duration
	log           *slog.Logger
	access        pkisource.Options
	certs         servercert.Options
	cfg           proxy.Config
}

// served is what build puts together: the proxy, ready to serve, and
// what serve runs beside it.
type served struct {
	srv      *proxy.Server
	certs    proxy.CertSource
	loader   *pkisource.Loader
	registry *prometheus.Registry
	close    func() // stops renewals and closes the listeners
}

func (s *serveSetup) run(ctx context.Context) error {
	b, err := s.build(ctx)
	if err != nil {
		return err
	}
	defer b.close()
	go b.loader.Watch(ctx, s.poll, b.srv.SetTrust)
	stopHUP := onSIGHUP(func() { s.reload(b.certs, b.loader, b.srv) })
	defer stopHUP()
	notifyReady(ctx, s.log) // systemd Type=notify: listeners up, certificate loaded
	return b.srv.Serve(ctx)
}

// build binds the listeners, loads the trust and the server certificate
// and sets the proxy up; on error nothing is left open.
func (s *serveSetup) build(ctx context.Context) (_ *served, err error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	if err := s.cfg.ValidateSettings(); err != nil {
		return nil, err // before anything is bound or loaded
	}
	if err := pkiPresent(s.layout); err != nil {
		return nil, err
	}
	// Bind first: a busy port fails at once, before any certificate work.
	l, err := proxy.Listen(s.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %w", err)
	}
	closers = append(closers, func() { l.Close() })
	al, err := proxy.Listen(s.admin)
	if err != nil {
		return nil, fmt.Errorf("--admin-listen %w", err)
	}
	closers = append(closers, func() { al.Close() })
	if !isLoopback(al.Addr()) {
		s.log.Warn("the admin listener is not on loopback: /metrics and /readyz are open to the network", "admin", al.Addr().String())
	}
	loader, err := pkisource.New(s.access)
	if err != nil {
		return nil, err
	}
	trust, err := loader.Load()
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	s.certs.Registerer = reg
	certs, err := servercert.Open(ctx, s.certs)
	if err != nil {
		return nil, err
	}
	if st, ok := certs.(proxy.Stopper); ok {
		closers = append(closers, st.Stop)
	}
	if err := reg.Register(&pkisource.ExpiryCollector{Layout: s.layout, Serving: certs.Leaf}); err != nil {
		return nil, err
	}
	s.cfg.Listener, s.cfg.AdminListener, s.cfg.Registry = l, al, reg
	srv, err := proxy.New(s.cfg, trust, certs)
	if err != nil {
		return nil, err
	}
	return &served{srv: srv, certs: certs, loader: loader, registry: reg, close: closeAll}, nil
}

// reload is SIGHUP: the server certificate files (where they are served
// as they are) and every trust input.
func (s *serveSetup) reload(certs proxy.CertSource, loader *pkisource.Loader, srv *proxy.Server) {
	if r, ok := certs.(proxy.Reloader); ok {
		if err := r.Reload(); err != nil {
			s.log.Error("the server certificate did not reload; the one served stays", "err", err)
		} else {
			s.log.Info("reloaded the server certificate")
		}
	}
	loader.Reload(srv.SetTrust)
}

// onSIGHUP runs fn on each SIGHUP until the returned stop is called.
func onSIGHUP(fn func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				fn()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// parseUpstream accepts http(s)://HOST:PORT, or HOST:PORT meaning http.
func parseUpstream(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--upstream %q: give pg-backup-api's address as http://HOST:PORT, e.g. %s", s, proxy.DefaultUpstream)
	}
	return u, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// serveFlags names, for each library field, the serve flag that sets it.
var serveFlags = map[string]string{
	"Upstream": "--upstream", "UpstreamTimeout": "--upstream-timeout", "MaxInflight": "--upstream-max-inflight",
	"QueueTimeout": "--upstream-queue-timeout", "ShutdownTimeout": "--shutdown-timeout",
	"ReadHeaderTimeout": "--read-header-timeout", "WriteTimeout": "--write-timeout", "BodyTimeout": "--request-body-timeout",
	"MaxBodyBytes": "--max-body-bytes", "MaxBufferedBodyBytes": "--max-buffered-body-bytes", "MaxBufferedAnswerBytes": "--max-buffered-answer-bytes", "MaxConns": "--max-connections",
	"MaxPendingHandshakes": "--max-handshakes", "MaxPendingHandshakesPerIP": "--max-handshakes-per-source", "Lifetime": "--server-cert-lifetime (or --server-cert-days)", "AccessFile": "--access-file",
}

// flagError turns a library's field error into a usage error naming the
// flag (exit status 2); other errors pass unchanged.
func flagError(err error) error {
	var fe *proxy.FieldError
	if errors.As(err, &fe) {
		if flag, ok := serveFlags[fe.Field]; ok {
			return usagef("%s: %s", flag, fe.Msg)
		}
	}
	return err
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: use text or json", format)
}

// pkiPresent refuses to start where no PKI was set up (no cluster root in
// the TPA directory), saying what to run, rather than failing on the
// first file that is missing.
func pkiPresent(l pki.Layout) error {
	_, err := os.Lstat(l.RootCert())
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no PKI here: %s does not exist; run 'pgbapi-proxy init' first (as root on a packaged host), or give the --tpa-dir and --state-dir it was set up with", l.RootCert())
	}
	return nil // anything else is the trust loader's to report
}
