package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/proxy"
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
renewed while serving, at a third of its lifetime left; each new one is
also written to pg-backup-api.crt/.key. On a host without the CA key,
pg-backup-api.crt/.key are served as they are.

Revoked certificates (pgbapi-proxy revoke) are refused within a second.
Access rules (--access-file) limit what each client may do; a denied
request gets 403 JSON naming the rule. Both files are reloaded when they
change.

The admin listener (plain HTTP, loopback) answers /metrics, /healthz and
/readyz. SIGHUP reloads the certificates, the CRL and the rules (what
fails to load keeps its last good state); SIGTERM lets requests in flight
finish, then exits.

pg-backup-api run as 'pg-backup-api serve' (not the packaged gunicorn
service) answers wrongly under concurrent requests: there, set
--upstream-max-inflight 1.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		listen := fs.String("listen", proxy.DefaultListen, "TLS address to listen on")
		admin := fs.String("admin-listen", proxy.DefaultAdminListen, "admin address (/metrics, /healthz, /readyz); keep it on loopback")
		upstream := fs.String("upstream", proxy.DefaultUpstream, "pg-backup-api's address")
		access := fs.String("access-file", proxy.DefaultAccessFile, "access rules by client name (see 'pgbapi-proxy check-access --help'); no file: every valid certificate may do everything")
		upTimeout := fs.Duration("upstream-timeout", proxy.DefaultUpstreamTimeout, "how long to wait for pg-backup-api's answer (/diagnose can take a minute)")
		inflight := fs.Int("upstream-max-inflight", 0, "requests at pg-backup-api at once; 0 for no limit")
		queue := fs.Duration("upstream-queue-timeout", proxy.DefaultQueueTimeout, "how long a request waits for a free slot before a 503")
		days := fs.Int("server-cert-days", pki.DefaultServerDays, "lifetime of each server certificate issued here, in days")
		lifetime := fs.Duration("server-cert-lifetime", 0, "lifetime of each server certificate as a duration (e.g. 10m, for testing renewals); overrides --server-cert-days")
		headerTimeout := fs.Duration("read-header-timeout", proxy.DefaultReadHeaderTimeout, "how long a client may take to send a request's headers")
		bodyTimeout := fs.Duration("request-body-timeout", proxy.DefaultBodyTimeout, "how long a client may take to send a request's body")
		maxBody := fs.Int64("max-body-bytes", proxy.DefaultMaxBodyBytes, "largest request body forwarded (413 above)")
		shutdown := fs.Duration("shutdown-timeout", proxy.DefaultShutdownTimeout, "on SIGTERM, how long requests in flight may take to finish")
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
			up, err := url.Parse(*upstream)
			if err != nil {
				return usagef("--upstream %q: %v", *upstream, err)
			}
			if *days < 1 {
				return usagef("--server-cert-days must be at least 1")
			}
			cfg := proxy.Config{
				Layout: *layout, Listen: *listen, AdminListen: *admin, Upstream: up, AccessFile: *access,
				UpstreamTimeout: *upTimeout, MaxInflight: *inflight, QueueTimeout: *queue,
				ServerCertLifetime: pki.Days(*days), ShutdownTimeout: *shutdown,
				Version: versionString(), Logger: logger, Pprof: *pprofOn,
				ReadHeaderTimeout: *headerTimeout, BodyTimeout: *bodyTimeout, MaxBodyBytes: *maxBody,
			}
			if *lifetime != 0 {
				cfg.ServerCertLifetime = *lifetime
			}
			srv, err := proxy.New(ctx, cfg)
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					if err := srv.Reload(); err != nil {
						logger.Error("reload incomplete; what failed keeps its last good state", "err", err)
						continue
					}
					logger.Info("reloaded certificates, CRL and access rules")
				}
			}()
			notifyReady(ctx, logger) // systemd Type=notify: listeners up, certificate loaded
			return srv.Serve(ctx)
		}
	},
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

var statusCommand = command{
	name:    "status",
	summary: "print OK when the proxy is ready, or why it is not",
	about: `Asks the running proxy's admin listener (/readyz). Prints OK and exits 0
when pg-backup-api answers /status and the server certificate is not near
expiry; otherwise prints the reason and exits 1.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		admin := fs.String("admin-listen", proxy.DefaultAdminListen, "the proxy's admin address")
		timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for an answer")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("status", args); err != nil {
				return err
			}
			ready, err := proxy.CheckReady(ctx, *admin, *timeout)
			if err != nil {
				return err
			}
			if !ready.Ready {
				return fmt.Errorf("not ready: %s", ready.Reason)
			}
			fmt.Fprintln(sio.out, "OK")
			return nil
		}
	},
}
