package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a running proxy: the TLS listener, the admin listener, the
// current trust snapshot and the server certificate behind them.
type Server struct {
	cfg          Config
	certs        CertSource
	current      atomic.Pointer[snapshot]
	metrics      *metrics
	handler      *handler
	refusals     *refusalLog
	ready        *readiness
	main, admin  *http.Server
	mainL        net.Listener
	adminL       net.Listener
	log          *slog.Logger
	rotationDone chan struct{}
	conns        atomic.Int64 // client connections the HTTP server holds
}

// countConns keeps the number of open client connections.
func (s *Server) countConns(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.conns.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.conns.Add(-1)
	}
}

// New sets the proxy up on the listeners in cfg, serving trust and the
// certificate certs gives. Nothing is served before Serve.
func New(cfg Config, trust *Trust, certs CertSource) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if certs == nil {
		return nil, &FieldError{"CertSource", "no server certificate source"}
	}
	if _, err := certs.Leaf(); err != nil {
		return nil, fmt.Errorf("the server certificate: %w", err)
	}
	s := &Server{cfg: cfg, certs: certs, log: cfg.Logger, rotationDone: make(chan struct{})}
	var err error
	if s.metrics, err = newMetrics(cfg.Registry, cfg.Version); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	if err := s.SetTrust(trust); err != nil {
		return nil, err
	}
	s.refusals = newRefusalLog(s.log, cfg.HandshakeLogInterval)
	s.handler = newHandler(&s.cfg, s.metrics, s.current.Load)
	s.ready = newReadiness(cfg.Upstream, s.handler.limit)
	s.mainL = newTLSListener(cfg.Listener, s.listenerConfig(), cfg.HandshakeTimeout, cfg.MaxPendingHandshakes, cfg.MaxPendingHandshakesPerIP,
		func() bool { return s.conns.Load() >= int64(cfg.MaxConns) }, s.handshakeFailed)
	s.adminL = cfg.AdminListener
	errLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.main = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          errLog,
		ConnContext:       withIdentity,
		ConnState:         s.countConns,
		// OPTIONS * goes through the handler like any request.
		DisableGeneralOptionsHandler: true,
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
	return s, nil
}

// SetTrust makes t the trust every new handshake and every request uses,
// with one pointer swap. An invalid t changes nothing.
func (s *Server) SetTrust(t *Trust) error {
	snap, err := newSnapshot(t, s.certs, nil)
	if err != nil {
		return err
	}
	s.current.Store(snap)
	return nil
}

// Trust is the trust in force now.
func (s *Server) Trust() *Trust { return s.current.Load().trust }

type identityKey struct{}

// withIdentity makes the connection's Identity, once, when net/http
// starts serving it (the handshake is complete by then).
func withIdentity(ctx context.Context, c net.Conn) context.Context {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return ctx
	}
	id, err := identityOf(tc.ConnectionState())
	if err != nil {
		return ctx // refused in the handshake already; the handler refuses too
	}
	return context.WithValue(ctx, identityKey{}, id)
}

func identityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// Serve runs until ctx ends, then stops accepting, lets in-flight
// requests finish within the shutdown timeout and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for _, run := range []func() error{
		func() error { return s.main.Serve(s.mainL) },
		func() error { return s.admin.Serve(s.adminL) },
	} {
		wg.Go(func() {
			if err := run(); !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		})
	}
	rctx, stopRotation := context.WithCancel(ctx)
	defer stopRotation()
	go s.rotateTicketKeys(rctx)
	go s.refusals.run(rctx)
	s.log.Info("serving", "listen", s.mainL.Addr().String(), "admin", s.adminL.Addr().String(), "upstream", s.cfg.Upstream.String(),
		"upstream_max_inflight", s.cfg.MaxInflight, "trust", s.Trust().Describe)
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
	return err
}

// rotateTicketKeys gives the current trust a new session ticket key every
// TicketKeyRotation; tickets of the previous period still resume.
func (s *Server) rotateTicketKeys(ctx context.Context) {
	t := time.NewTicker(s.cfg.TicketKeyRotation)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := s.current.Load()
		next, err := newSnapshot(cur.trust, s.certs, cur.ticketKeys[:1])
		if err != nil {
			s.log.Error("rotating the session ticket key failed; the current one stays", "err", err)
			continue
		}
		s.current.CompareAndSwap(cur, next) // a trust swap meanwhile brought its own key
	}
}

func (s *Server) handshakeFailed(reason string, remote net.Addr, err error) {
	s.metrics.handshakes.WithLabelValues(reason).Inc()
	s.refusals.add(reason, remote, err)
}

// Listen binds addr for the proxy, saying why it cannot and what to do.
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err == nil {
		return l, nil
	}
	switch {
	case errors.Is(err, errAddrInUse):
		_, port, _ := net.SplitHostPort(addr)
		if port == "443" || port == "https" {
			return nil, fmt.Errorf("%s: the port is already in use; if Apache still serves the old pg-backup-api site there, disable it (a2dissite / systemctl disable --now httpd or apache2), or choose another port", addr)
		}
		return nil, fmt.Errorf("%s: the port is already in use (ss -ltnp 'sport = :%s' shows by what); stop that or choose another port", addr, port)
	case errors.Is(err, errAccess):
		return nil, fmt.Errorf("%s: permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE (the packaged service has it)", addr)
	}
	return nil, err
}
