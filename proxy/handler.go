package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pgbapi/pgbapi-proxy/pki"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// routes are pg-backup-api's routes. They name requests in metrics and
// logs by template (/servers/{server}/operations), never by raw path.
var routes = []string{
	"/status",
	"/diagnose",
	"/servers/{server}/operations",
	"/servers/{server}/operations/{operation_id}",
	"/operations",
	"/operations/{operation_id}",
}

// otherRoute labels requests for paths pg-backup-api does not have.
const otherRoute = "other"

// handler checks the client, applies the in-flight limit and forwards to
// the upstream, writing one access log line per request.
type handler struct {
	upstream    *url.URL
	bodyTimeout time.Duration
	maxBody     int64
	proxy       *httputil.ReverseProxy
	routes      *routeMatcher
	policy      *policy
	limit       *limiter
	metrics     *metrics
	log         *slog.Logger
}

// exchange is what one request learns on its way, for the access log.
type exchange struct {
	host     string // the Host the client asked for
	client   string
	upstream time.Duration // until the upstream's answer headers
	started  time.Time
	audit    *audit // for requests that may create an operation
}

type exchangeKey struct{}

func newHandler(cfg *Config, m *metrics, p *policy) *handler {
	h := &handler{upstream: cfg.Upstream, bodyTimeout: cfg.BodyTimeout, maxBody: cfg.MaxBodyBytes, metrics: m, log: cfg.Logger, routes: newRouteMatcher(), policy: p}
	if cfg.MaxInflight > 0 {
		h.limit = &limiter{slots: make(chan struct{}, cfg.MaxInflight), wait: cfg.QueueTimeout}
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      newTransport(cfg.UpstreamTimeout),
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.upstreamError,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		BufferPool:     bufferPool{},
	}
	return h
}

// newTransport is the one Transport to the upstream. pg-backup-api closes
// every connection after its answer; an upstream that keeps connections
// open gets them reused (up to 64 idle). net/http resends a request on a
// reused connection only when nothing of it was written, or when the
// request is replayable; rewrite drops the Idempotency-Key headers that
// would make a POST replayable, so a POST (which creates an operation)
// that reached the upstream is never sent twice.
func newTransport(timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                  nil, // never via an HTTP proxy from the environment
		DialContext:            (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        10 * time.Second,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		DisableCompression:     true, // bodies pass byte for byte
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{host: r.Host, client: clientName(r.TLS), started: time.Now()}
	rec := &recorder{ResponseWriter: w}
	template, vars := h.routes.match(r)
	route := template
	if route == "" {
		route = otherRoute
	}
	defer func() { h.done(r, rec, ex, route) }()

	if ex.client == "" {
		// Cannot happen with RequireAndVerifyClientCert; refuse all the same.
		jsonError(rec, http.StatusForbidden, "a valid client certificate is required")
		return
	}
	// A connection opened before its certificate was revoked is refused
	// request by request, and closed.
	if h.policy.isRevoked(r.TLS.PeerCertificates[0]) {
		h.metrics.denied.WithLabelValues(ex.client, "revoked").Inc()
		h.log.Warn("request with a revoked certificate refused", "client", ex.client, "method", r.Method, "path", r.URL.Path)
		rec.Header().Set("Connection", "close")
		jsonError(rec, http.StatusForbidden, "the client certificate is revoked")
		return
	}
	if d := h.policy.rules.Load().Check(ex.client, r.Method, template, vars); !d.Allowed {
		h.metrics.denied.WithLabelValues(ex.client, "rule").Inc()
		h.log.Warn("request denied by the access rules", "client", ex.client, "method", r.Method, "path", r.URL.Path, "rule", d.Rule)
		jsonDenied(rec, ex.client, r.Method, d.Rule)
		return
	}
	// The whole body first, within a deadline and a size limit: a slow or
	// huge body never reaches the upstream, and what does is re-framed
	// with a Content-Length (no smuggling through Transfer-Encoding).
	if !h.readBody(rec, r) {
		return
	}
	release, err := h.limit.acquire(r.Context())
	if err != nil {
		h.metrics.upstream.WithLabelValues("queue_full").Inc()
		rec.Header().Set("Retry-After", "5")
		jsonError(rec, http.StatusServiceUnavailable, "too many requests at pg-backup-api; try again")
		return
	}
	defer release()
	if isOperationsPost(r.Method, template) && r.Body != nil && r.Body != http.NoBody {
		peek := &peekReader{r: r.Body}
		r.Body = peek
		ex.audit = &audit{serial: pki.SerialHex(r.TLS.PeerCertificates[0]), server: vars["server"], body: peek}
	}
	h.metrics.inflight.Inc()
	defer h.metrics.inflight.Dec()
	h.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
}

// readBody replaces r.Body with the whole body, read within bodyTimeout
// and at most maxBody bytes. It answers 408, 413 or 400 and returns false
// when that fails.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if r.ContentLength > h.maxBody {
		jsonError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", h.maxBody))
		return false
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(h.bodyTimeout)) //nolint:errcheck // best effort: not every conn has deadlines
	data, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	rc.SetReadDeadline(time.Time{}) //nolint:errcheck // as above
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		w.Header().Set("Connection", "close")
		jsonError(w, http.StatusRequestTimeout, fmt.Sprintf("request body not received within %s", h.bodyTimeout))
		return false
	case err != nil:
		w.Header().Set("Connection", "close")
		jsonError(w, http.StatusBadRequest, "request body could not be read")
		return false
	case int64(len(data)) > h.maxBody:
		w.Header().Set("Connection", "close")
		jsonError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", h.maxBody))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	r.TransferEncoding = nil
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	return true
}

// rewrite builds the upstream request: identity claims the client sent
// are dropped, and the proxy states what it verified.
func (h *handler) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(h.upstream)
	for name := range pr.Out.Header {
		if spoofable(name) {
			pr.Out.Header.Del(name)
		}
	}
	if !isIdempotent(pr.Out.Method) {
		// These would let net/http resend the request after a failure
		// on a reused connection: never for an operation.
		pr.Out.Header.Del("Idempotency-Key")
		pr.Out.Header.Del("X-Idempotency-Key")
	}
	pr.SetXForwarded()
	if ex, ok := pr.In.Context().Value(exchangeKey{}).(*exchange); ok {
		pr.Out.Header.Set(ClientHeader, ex.client)
	}
}

func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// spoofable reports whether a request header claims something only the
// proxy may say: who the client is, or where the request came from.
func spoofable(name string) bool {
	n := strings.ToLower(name)
	for _, p := range []string{"x-forwarded-", "x-client-", "x-ssl-", "ssl-client-", "x-real-ip", "forwarded", "x-original-", "x-remote-"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// modifyResponse notes when the upstream answered and points redirects
// at the proxy, as Apache's ProxyPassReverse does.
func (h *handler) modifyResponse(resp *http.Response) error {
	ex, _ := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	if ex == nil {
		return nil
	}
	ex.upstream = time.Since(ex.started)
	h.auditOperation(resp, ex)
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil && u.IsAbs() && u.Scheme == h.upstream.Scheme &&
			(strings.EqualFold(u.Host, h.upstream.Host) || strings.EqualFold(u.Host, ex.host)) {
			u.Scheme, u.Host = "https", ex.host
			resp.Header.Set("Location", u.String())
		}
	}
	return nil
}

// upstreamError answers for an upstream that did not: 504 when it was too
// slow, 502 otherwise. A client that went away gets nothing.
func (h *handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	var ne net.Error
	switch {
	case errors.Is(r.Context().Err(), context.Canceled):
		h.log.Info("client went away before the upstream answered", "path", r.URL.Path, "err", err)
		w.WriteHeader(499) // nginx's "client closed request", for the log and metrics
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		h.metrics.upstream.WithLabelValues("timeout").Inc()
		h.log.Warn("pg-backup-api did not answer in time", "path", r.URL.Path, "err", err)
		jsonError(w, http.StatusGatewayTimeout, "pg-backup-api did not answer in time")
	default:
		h.metrics.upstream.WithLabelValues("unreachable").Inc()
		h.log.Warn("pg-backup-api is unreachable", "upstream", h.upstream.String(), "err", err)
		jsonError(w, http.StatusBadGateway, "pg-backup-api is unreachable")
	}
}

func (h *handler) done(r *http.Request, rec *recorder, ex *exchange, route string) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(ex.started)
	client := ex.client
	if client == "" {
		client = "-"
	}
	h.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status), client).Inc()
	h.metrics.duration.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
	h.log.Info("request",
		"client", client, "method", r.Method, "path", r.URL.Path, "status", status,
		"bytes", rec.bytes, "duration_ms", ms(elapsed), "upstream_ms", ms(ex.upstream), "remote", r.RemoteAddr)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// jsonError answers {"error": msg} with code, as pg-backup-api answers 404s.
func jsonError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(code)
	w.Write(append(body, '\n')) //nolint:errcheck // the client may have gone
}

// jsonDenied answers 403 with the rule that denied the request.
func jsonDenied(w http.ResponseWriter, client, method, rule string) {
	body, _ := json.Marshal(map[string]string{
		"error": fmt.Sprintf("%s may not %s this path", client, method),
		"rule":  rule,
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(http.StatusForbidden)
	w.Write(append(body, '\n')) //nolint:errcheck // the client may have gone
}

// recorder remembers the final status and the bytes written, passing 1xx
// answers (100 Continue, 103) through untouched.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if code >= 200 && r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flushing).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// bufferPool reuses the 32 KiB buffers ReverseProxy copies bodies with,
// instead of allocating one per request.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// limiter bounds the requests at the upstream; the others wait in line up
// to a limit. A nil limiter lets everything through.
type limiter struct {
	slots chan struct{}
	wait  time.Duration
}

var errQueueFull = errors.New("no free upstream slot in time")

func (l *limiter) acquire(ctx context.Context) (func(), error) {
	if l == nil {
		return func() {}, nil
	}
	release := func() { <-l.slots }
	select {
	case l.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, errQueueFull
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
