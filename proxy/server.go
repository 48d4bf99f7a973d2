package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
)

// Server is a running proxy: the TLS listener, the admin listener and
// the server certificate behind them.
type Server struct {
	cfg          Config
	certs        certSource
	policy       *policy
	tls          *tlsConfigs
	metrics      *metrics
	statusClient *http.Client
	main, admin  *http.Server
	mainL        net.Listener
	adminL       net.Listener
	log          *slog.Logger
}

// New sets the proxy up: it loads or obtains the server certificate and
// binds both listeners, so that an error (a port in use, a missing PKI)
// shows before Serve.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.statusClient = &http.Client{Transport: newTransport(5 * time.Second), Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.metrics = newMetrics(cfg.Version, cfg.Layout, s.servingCert)

	meta, err := pki.ReadMeta(cfg.Layout)
	if err != nil {
		return nil, err
	}
	// Bind first: a busy port fails at once, before any certificate work.
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, listenError("--listen", cfg.Listen, err)
	}
	al, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		l.Close()
		return nil, listenError("--admin-listen", cfg.AdminListen, err)
	}
	ok := false
	defer func() {
		if !ok {
			l.Close()
			al.Close()
		}
	}()
	// Like ssh: a private key others can read is not used.
	for _, key := range []string{cfg.Layout.ServerKey(), cfg.Layout.IntermediateKey()} {
		if err := checkKeyMode(key); err != nil {
			return nil, err
		}
	}
	// The rules and the CRL next: a broken file stops serve before any
	// certificate work.
	if s.policy, err = newPolicy(cfg.Layout, cfg.AccessFile, s.log); err != nil {
		return nil, err
	}
	signer, err := pki.LoadServerSigner(cfg.Layout)
	switch {
	case err == nil:
		s.certs, err = newManagedCerts(ctx, cfg.Layout, signer, cfg.ServerCertLifetime, meta.KeyType, s.metrics, s.log)
	case errors.Is(err, pki.ErrNoCAKey):
		if s.certs, err = newStaticCerts(cfg.Layout); err == nil {
			s.log.Info("no CA key on this host: serving pg-backup-api.crt as it is; renew it where the CA is and send SIGHUP", "cert", cfg.Layout.ServerCert())
		}
	}
	if err != nil {
		return nil, err
	}
	if s.tls, err = newTLSConfigs(cfg.Layout, s.certs, s.policy); err != nil {
		s.certs.Stop()
		return nil, err
	}
	s.setup(l, al)
	ok = true
	return s, nil
}

func (s *Server) setup(l, al net.Listener) {
	s.mainL = newTLSListener(l, s.tls.serverConfig(), s.cfg.HandshakeTimeout, s.handshakeFailed)
	s.adminL = al
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.main = &http.Server{
		Handler:           newHandler(&s.cfg, s.metrics, s.policy),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          errLog,
	}
	s.admin = &http.Server{
		Handler:           s.adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
}

// Addr is the TLS listener's address; AdminAddr the admin listener's.
func (s *Server) Addr() net.Addr      { return s.mainL.Addr() }
func (s *Server) AdminAddr() net.Addr { return s.adminL.Addr() }

// Serve runs until ctx ends, then stops accepting, lets in-flight
// requests finish within the shutdown timeout and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for _, run := range []func() error{
		func() error { return s.main.Serve(s.mainL) },
		func() error { return s.admin.Serve(s.adminL) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}()
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go s.policy.watch(wctx, s.cfg.PolicyPoll)
	s.log.Info("serving", "listen", s.mainL.Addr().String(), "admin", s.adminL.Addr().String(), "upstream", s.cfg.Upstream.String())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	s.log.Info("shutting down: no new connections; waiting for requests in flight", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if serr := s.main.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("requests still in flight after %s: %w", s.cfg.ShutdownTimeout, serr)
	}
	s.admin.Shutdown(sctx) //nolint:errcheck // nothing to wait for there
	wg.Wait()
	s.certs.Stop()
	return err
}

// Reload reads the certificates, the CRL and the access rules again
// (SIGHUP). What fails to load keeps its last good state; the errors are
// returned for the log.
func (s *Server) Reload() error {
	errCerts := s.certs.Reload()
	if errCerts == nil {
		errCerts = s.tls.reload()
	}
	return errors.Join(errCerts, s.policy.reload())
}

func (s *Server) handshakeFailed(reason string, remote net.Addr, err error) {
	s.metrics.handshakes.WithLabelValues(reason).Inc()
	s.log.Info("TLS handshake refused", "reason", reason, "remote", remote.String(), "err", err)
}

// servingCert tells the metrics which server certificate is served now.
func (s *Server) servingCert() (string, time.Time, bool) {
	if s.certs == nil {
		return "", time.Time{}, false
	}
	leaf, err := s.certs.Leaf()
	if err != nil {
		return "", time.Time{}, false
	}
	return pki.SerialHex(leaf), leaf.NotAfter, true
}

// listenError says why an address cannot be bound and what to do.
func listenError(flag, addr string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%s %s: the port is already in use; if Apache still serves the old pg-backup-api site there, disable it (a2dissite / systemctl disable --now httpd or apache2), or choose another port with %s", flag, addr, flag)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s %s: permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE (the packaged service has it)", flag, addr)
	}
	return fmt.Errorf("%s %s: %w", flag, addr, err)
}

// checkKeyMode refuses a key file that group or others may read or write.
func checkKeyMode(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return nil // a missing key is reported where it is needed
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is readable by others (mode %04o), so it is not used; run: chmod 600 %s", path, perm, path)
	}
	return nil
}
