package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Readiness is what /readyz answers, and what `pgbapi-proxy status` reads.
type Readiness struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// adminHandler serves /metrics, /healthz and /readyz on the loopback
// admin listener.
func (s *Server) adminHandler() http.Handler {
	r := mux.NewRouter()
	r.Handle("/metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{
		ErrorLog: nil, Timeout: 10 * time.Second,
	})).Methods(http.MethodGet, http.MethodHead)
	if s.cfg.Pprof {
		// Profiles for `go tool pprof`, on the loopback admin listener only
		// and only when asked for (--admin-pprof).
		r.HandleFunc("/debug/pprof/profile", pprof.Profile)
		r.HandleFunc("/debug/pprof/trace", pprof.Trace)
		r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index)
	}
	r.HandleFunc("/settings", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, Settings{
			Listen: s.mainL.Addr().String(), Upstream: s.cfg.Upstream.String(), MaxInflight: s.cfg.MaxInflight,
		})
	}).Methods(http.MethodGet)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "alive")
	}).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", func(w http.ResponseWriter, req *http.Request) {
		ready := s.readiness(req.Context())
		code := http.StatusOK
		if !ready.Ready {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(ready) //nolint:errcheck // the client may have gone
	}).Methods(http.MethodGet, http.MethodHead)
	return r
}

// readiness is ready when the served certificate has more than
// readyMargin (or a third of its lifetime, if shorter) left and the
// upstream's /status answers 200.
func (s *Server) readiness(ctx context.Context) Readiness {
	leaf, err := s.certs.Leaf()
	if err != nil {
		return Readiness{Reason: "no server certificate: " + err.Error()}
	}
	left := time.Until(leaf.NotAfter)
	if margin := min(readyMargin, leaf.NotAfter.Sub(leaf.NotBefore)/3); left < margin {
		return Readiness{Reason: fmt.Sprintf("the server certificate expires in %s (at %s): renewal is failing, see the log",
			left.Round(time.Second), leaf.NotAfter.UTC().Format(time.RFC3339))}
	}
	return s.ready.probe(ctx)
}

// readiness asks the upstream's /status, inside the in-flight limit like
// every other request (pg-backup-api serve answers wrongly to two at
// once). When no slot frees up quickly the upstream is busy answering,
// and the last probe's answer stands.
type readiness struct {
	client *http.Client
	url    string
	base   string
	limit  *limiter
	mu     sync.Mutex
	last   Readiness
}

func newReadiness(upstream *url.URL, limit *limiter) *readiness {
	r := &readiness{
		client: &http.Client{Transport: newTransport(5 * time.Second), Timeout: 5 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		url:  upstream.JoinPath("/status").String(),
		base: upstream.String(),
		last: Readiness{Reason: "pg-backup-api not asked yet"},
	}
	if limit != nil {
		r.limit = newLimiterSharing(limit, 2*time.Second)
	}
	return r
}

func (r *readiness) probe(ctx context.Context) Readiness {
	release, err := r.limit.acquire(ctx)
	if err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.last
	}
	defer release()
	got := r.ask(ctx)
	r.mu.Lock()
	r.last = got
	r.mu.Unlock()
	return got
}

func (r *readiness) ask(ctx context.Context) Readiness {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return Readiness{Reason: err.Error()}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return Readiness{Reason: fmt.Sprintf("pg-backup-api at %s does not answer: %v", r.base, err)}
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Readiness{Reason: fmt.Sprintf("pg-backup-api /status answered %s", resp.Status)}
	}
	return Readiness{Ready: true}
}

// Settings are what a running proxy was started with, as /settings on the
// admin listener says: doctor checks those rather than defaults.
type Settings struct {
	Listen      string `json:"listen"`
	Upstream    string `json:"upstream"`
	MaxInflight int    `json:"upstream_max_inflight"`
}

// FetchSettings asks a running proxy's admin listener for its settings.
func FetchSettings(ctx context.Context, adminAddr string, timeout time.Duration) (Settings, error) {
	var st Settings
	err := adminGet(ctx, adminAddr, "/settings", timeout, &st)
	return st, err
}

// adminGet decodes the JSON answer of GET path on the admin listener.
func adminGet(ctx context.Context, adminAddr, path string, timeout time.Duration, v any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+path, nil)
	if err != nil {
		return fmt.Errorf("admin address %q: %w", adminAddr, err)
	}
	resp, err := (&http.Client{Transport: newTransport(timeout)}).Do(req)
	if err != nil {
		return fmt.Errorf("the proxy does not answer on %s (is pgbapi-proxy serve running?): %w", adminAddr, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("unexpected answer from %s%s (%s): %w", adminAddr, path, resp.Status, err)
	}
	return nil
}

// CheckReady asks a running proxy's admin listener whether it is ready.
func CheckReady(ctx context.Context, adminAddr string, timeout time.Duration) (Readiness, error) {
	var ready Readiness
	err := adminGet(ctx, adminAddr, "/readyz", timeout, &ready)
	return ready, err
}
