package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// handler names each request, checks it against the current trust
// snapshot, applies the in-flight limit and forwards it to the upstream,
// writing one access log line per request.
type handler struct {
	upstream     *url.URL
	upTimeout    time.Duration
	bodyTimeout  time.Duration
	writeTimeout time.Duration
	maxBody      int64
	bodies       *bodyBudget
	answers      *bodyBudget
	maxAnswer    int64
	proxy        *httputil.ReverseProxy
	lean         *upstreamTransport // set: requests go through forward, not proxy
	snap         func() *snapshot
	limit        *limiter
	metrics      *metrics
	log          *slog.Logger
}

// exchange is what one request learns on its way, for the answer, the
// audit and the access log.
type exchange struct {
	host           string // the Host the client asked for
	id             *Identity
	target         *target
	upstream       time.Duration // until the upstream's answer headers
	started        time.Time
	audit          *audit // for requests that may create an operation
	release        func() // frees the upstream slot; safe to call twice
	reserved       int64  // bytes of the body budget this request holds
	answerReserved int64  // bytes of the answer budget its answer holds
	rc             *http.ResponseController
	// answer is the buffered answer (from a pool), answerReader reads it.
	answer       *[]byte
	answerReader bytes.Reader
	// For forward, which makes the exchange its outgoing request.
	h    *handler
	w    *recorder
	r    *http.Request
	body []byte
}

type exchangeKey struct{}

func newHandler(cfg *Config, m *metrics, snap func() *snapshot) *handler {
	h := &handler{
		upstream: cfg.Upstream, upTimeout: cfg.UpstreamTimeout, bodyTimeout: cfg.BodyTimeout, writeTimeout: cfg.WriteTimeout,
		maxBody: cfg.MaxBodyBytes, maxAnswer: cfg.MaxAnswerBytes, metrics: m, log: cfg.Logger, snap: snap,
		bodies: &bodyBudget{max: cfg.MaxBufferedBodyBytes, interval: cfg.HandshakeLogInterval, gauge: m.bodyBytes,
			msg: "request bodies refused with 503: the memory budget for request bodies is spent"},
		answers: &bodyBudget{max: cfg.MaxBufferedAnswerBytes, interval: cfg.HandshakeLogInterval, gauge: m.answerBytes,
			msg: "answers streamed, each holding its upstream slot until its client reads it: the memory budget for answers is spent"},
	}
	if cfg.MaxInflight > 0 {
		h.limit = newLimiter(cfg.MaxInflight, cfg.QueueTimeout)
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      upstreamRoundTripper(cfg.Upstream, cfg.UpstreamTimeout),
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.upstreamError,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		BufferPool:     bufferPool{},
	}
	if t, ok := h.proxy.Transport.(*upstreamTransport); ok && (h.upstream.Path == "" || h.upstream.Path == "/") &&
		h.upstream.RawQuery == "" && h.upstream.User == nil {
		h.lean = t
	}
	return h
}

// upstreamRoundTripper is the lean upstreamTransport for a plain-HTTP
// upstream (pg-backup-api's case), net/http's Transport for https.
func upstreamRoundTripper(u *url.URL, timeout time.Duration) http.RoundTripper {
	if u.Scheme != "http" {
		return newTransport(timeout)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return newUpstreamTransport(net.JoinHostPort(u.Hostname(), port), timeout)
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
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		DisableCompression:     true, // bodies pass byte for byte
	}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{host: r.Host, id: identityFrom(r.Context()), target: nameRequest(r), started: time.Now()}
	rec := &recorder{ResponseWriter: w}
	ex.rc = http.NewResponseController(rec)
	defer h.done(r, rec, ex)

	if h.refused(rec, r, ex) {
		return
	}
	// The whole body first, within a deadline and a size limit: a slow or
	// huge body never reaches the upstream, and what does is re-framed
	// with a Content-Length (no smuggling through Transfer-Encoding).
	body, ok := h.readBody(rec, r, ex)
	if !ok {
		return
	}
	release, err := h.limit.acquire(r.Context())
	if err != nil && !errors.Is(err, errQueueFull) {
		// The client went away while it waited: nothing is sent, and it
		// is not a full queue.
		h.log.Info("client went away while waiting for a free slot", "path", cut(r.URL.Path), "err", err)
		rec.WriteHeader(499) // nginx's "client closed request", for the log and metrics
		return
	}
	if err != nil {
		h.metrics.upstream.WithLabelValues("queue_full").Inc()
		rec.Header().Set("Retry-After", "5")
		jsonError(rec, http.StatusServiceUnavailable, "too many requests at pg-backup-api; try again")
		return
	}
	ex.release = release
	defer release()
	// Again at the moment of forwarding: a revocation, an expiry or a
	// rules change while the body arrived or the request waited counts.
	if !h.allowed(rec, ex) {
		return
	}
	if isOperationsPost(ex.target) {
		ex.audit = &audit{server: ex.target.vars["server"], body: body}
		h.auditRequested(ex)
		// An operation that reached pg-backup-api may start whether or
		// not its client waits: its answer is read and audited even
		// if the client goes away (the upstream timeout still applies).
		r = r.WithContext(context.WithoutCancel(r.Context()))
	}
	h.metrics.inflight.Inc()
	defer h.metrics.inflight.Dec()
	h.send(rec, r, ex, body)
	if ex.answer != nil {
		putAnswerBuf(ex.answer) // written to the client by now
	}
}

// refused answers a request that goes no further: no identity, a request
// that cannot be named, one the rules deny, or a body on a method that
// takes none.
func (h *handler) refused(rec *recorder, r *http.Request, ex *exchange) bool {
	switch {
	case ex.id == nil:
		// Cannot happen with RequireAndVerifyClientCert; refuse all the same.
		jsonError(rec, http.StatusForbidden, "a valid client certificate is required")
	case ex.target.refusal != nil:
		jsonError(rec, ex.target.refusal.code, ex.target.refusal.msg)
	case !h.allowed(rec, ex):
	case r.ContentLength != 0 && ex.target.method != http.MethodPost:
		// GET, HEAD and OPTIONS: pg-backup-api reads no body on them, so
		// none is read or forwarded (-1 is a chunked body).
		rec.Header().Set("Connection", "close")
		jsonError(rec, http.StatusBadRequest, ex.target.method+" takes no request body")
	default:
		return false
	}
	return true
}

// send forwards the request: straight through the lean transport to a
// plain-HTTP upstream at its root, through ReverseProxy otherwise.
func (h *handler) send(rec *recorder, r *http.Request, ex *exchange, body []byte) {
	if h.lean != nil {
		h.forward(rec, r, ex, body)
		return
	}
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	if _, lean := h.proxy.Transport.(*upstreamTransport); !lean {
		// The lean transport applies upTimeout itself, without a timer.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.upTimeout)
		defer cancel()
	}
	h.proxy.ServeHTTP(rec, r.WithContext(ctx))
}

// allowed checks the client against the current snapshot: not revoked,
// not expired, and allowed by the rules. It answers 403 otherwise; a
// revoked or expired certificate also loses its connection.
func (h *handler) allowed(w http.ResponseWriter, ex *exchange) bool {
	snap := h.snap()
	id, t := ex.id, ex.target
	var why, reason string
	switch {
	case snap.trust.IsRevoked(id.Serial):
		why, reason = "the client certificate is revoked", "revoked"
	case !time.Now().Before(id.NotAfter):
		why, reason = "the client certificate has expired", "expired"
	}
	if why != "" {
		h.metrics.denied.WithLabelValues(id.Name, reason).Inc()
		h.log.Warn("request refused: "+why, "client", id.Name, "serial", id.Serial, "method", t.methodLabel(), "route", t.routeLabel())
		w.Header().Set("Connection", "close")
		jsonError(w, http.StatusForbidden, why)
		return false
	}
	if d := snap.trust.Rules.Check(id.Name, t.method, t.template, t.vars); !d.Allowed {
		h.metrics.denied.WithLabelValues(id.Name, "rule").Inc()
		h.log.Warn("request denied by the access rules", "client", id.Name, "method", t.methodLabel(), "path", cut(t.path), "rule", d.Rule)
		jsonDenied(w, id.Name, t.method, d.Rule)
		return false
	}
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
	// The body was read whole, and the client got its one 100 Continue
	// then: pg-backup-api's own (the development server sends two) must
	// not reach it as well.
	pr.Out.Header.Del("Expect")
	// No protocol switch past the per-request checks.
	pr.Out.Header.Del("Upgrade")
	if !isIdempotent(pr.Out.Method) {
		// These would let net/http resend the request after a failure
		// on a reused connection: never for an operation.
		pr.Out.Header.Del("Idempotency-Key")
		pr.Out.Header.Del("X-Idempotency-Key")
	}
	pr.SetXForwarded()
	if ex, ok := pr.In.Context().Value(exchangeKey{}).(*exchange); ok {
		pr.Out.Header.Set(ClientHeader, ex.id.Name)
	}
}

func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// spoofable reports whether a request header must not reach the upstream:
// one that claims something only the proxy may say (who the client is,
// where the request came from), or any name with an underscore, which
// WSGI servers read as the same variable as its hyphenated twin
// (nginx drops those too).
func spoofable(name string) bool {
	if strings.Contains(name, "_") {
		return true
	}
	n := strings.ToLower(name)
	for _, p := range []string{"x-forwarded-", "x-client-", "x-ssl-", "ssl-client-", "x-real-ip", "forwarded", "x-original-", "x-remote-",
		"remote-", "x-auth-", "x-user", "x-rewrite-url", "script-name", "client-cert", "auth-user", "x-proxy-user"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// modifyResponse notes when the upstream answered, audits operations,
// points redirects at the proxy (as Apache's ProxyPassReverse does), and
// reads a small answer whole so that pg-backup-api's slot is free before
// a slow client reads it; writing to the client then has a deadline.
func (h *handler) modifyResponse(resp *http.Response) error {
	ex, _ := resp.Request.Context().Value(exchangeKey{}).(*exchange)
	if ex == nil {
		return nil
	}
	return h.finishAnswer(resp, ex)
}

// finishAnswer is modifyResponse for the exchange ex.
func (h *handler) finishAnswer(resp *http.Response, ex *exchange) error {
	ex.upstream = time.Since(ex.started)
	if loc := resp.Header.Get("Location"); loc != "" {
		if u, err := url.Parse(loc); err == nil && u.IsAbs() && u.Scheme == h.upstream.Scheme &&
			(strings.EqualFold(u.Host, h.upstream.Host) || strings.EqualFold(u.Host, ex.host)) {
			u.Scheme, u.Host = "https", ex.host
			resp.Header.Set("Location", u.String())
		}
	}
	if err := h.bufferAnswer(resp, ex); err != nil {
		return err
	}
	h.auditOperation(resp, ex)
	ex.rc.SetWriteDeadline(time.Now().Add(h.writeTimeout)) //nolint:errcheck // best effort, as for reads
	return nil
}

// bufferAnswer reads an answer of up to maxAnswer bytes into memory and
// frees the upstream slot. A larger one, or one the answer budget has no
// room for, streams and keeps its slot. An answer with a Content-Length
// (pg-backup-api always sends one) is read into a pooled buffer of that
// size, given back when the exchange ends.
func (h *handler) bufferAnswer(resp *http.Response, ex *exchange) error {
	if resp.Body == nil || resp.Body == http.NoBody || resp.ContentLength > h.maxAnswer {
		if resp.ContentLength == 0 {
			ex.release()
		}
		return nil
	}
	want := resp.ContentLength
	if want < 0 {
		want = h.maxAnswer + 1
	}
	if !h.answers.reserve(want) {
		h.answers.refused(h.log)
		return nil // streams: bounded memory, the slot held within the write deadline
	}
	ex.answerReserved = want
	if resp.ContentLength >= 0 {
		buf := getAnswerBuf(int(resp.ContentLength))
		_, err := io.ReadFull(resp.Body, *buf)
		if err == nil {
			// The end, seen: the connection may carry another answer.
			var one [1]byte
			if _, err = resp.Body.Read(one[:]); err == io.EOF {
				err = nil
			} else if err == nil {
				err = errors.New("more than its Content-Length")
			}
		}
		if err != nil {
			putAnswerBuf(buf)
			return fmt.Errorf("%w: %w", errCutAnswer, err)
		}
		resp.Body.Close()
		ex.release()
		ex.answer = buf
		ex.answerReader.Reset(*buf)
		resp.Body = io.NopCloser(&ex.answerReader)
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, h.maxAnswer+1))
	if err != nil {
		return fmt.Errorf("%w: %w", errCutAnswer, err)
	}
	h.answers.release(want - int64(len(data)))
	ex.answerReserved = int64(len(data))
	if int64(len(data)) > h.maxAnswer {
		rest := resp.Body
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(data), rest), rest}
		return nil
	}
	resp.Body.Close()
	ex.release()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	resp.TransferEncoding = nil
	resp.Header.Set("Content-Length", strconv.Itoa(len(data)))
	return nil
}

// Answer buffers come from two pools: up to 4 KiB (/status, operation
// states) and up to 64 KiB (/diagnose); larger answers get their own.
var (
	smallAnswers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
	largeAnswers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
)

func getAnswerBuf(n int) *[]byte {
	var b *[]byte
	switch {
	case n <= 4<<10:
		b = smallAnswers.Get().(*[]byte)
	case n <= 64<<10:
		b = largeAnswers.Get().(*[]byte)
	default:
		s := make([]byte, n)
		return &s
	}
	*b = (*b)[:n]
	return b
}

func putAnswerBuf(b *[]byte) {
	switch cap(*b) {
	case 4 << 10:
		smallAnswers.Put(b)
	case 64 << 10:
		largeAnswers.Put(b)
	}
}

// errCutAnswer is an upstream answer that ended before its end.
var errCutAnswer = errors.New("the answer broke off")

// upstreamError answers for an upstream that did not: 504 when it was too
// slow, 502 otherwise. A client that went away gets nothing.
func (h *handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	switch {
	case errors.Is(err, errCutAnswer) && r.Context().Err() == nil && !timeout:
		h.metrics.upstream.WithLabelValues("cut").Inc()
		h.log.Warn("pg-backup-api's answer broke off", "path", cut(r.URL.Path), "err", err)
		jsonError(w, http.StatusBadGateway, "pg-backup-api's answer broke off")
	case errors.Is(context.Cause(r.Context()), context.Canceled):
		h.log.Info("client went away before the upstream answered", "path", cut(r.URL.Path), "err", err)
		w.WriteHeader(499) // nginx's "client closed request", for the log and metrics
	case errors.Is(err, context.DeadlineExceeded), timeout:
		h.metrics.upstream.WithLabelValues("timeout").Inc()
		h.log.Warn("pg-backup-api did not answer in time", "path", cut(r.URL.Path), "err", err)
		jsonError(w, http.StatusGatewayTimeout, "pg-backup-api did not answer in time")
	default:
		h.metrics.upstream.WithLabelValues("unreachable").Inc()
		h.log.Warn("pg-backup-api is unreachable", "upstream", h.upstream.String(), "err", err)
		jsonError(w, http.StatusBadGateway, "pg-backup-api is unreachable")
	}
}

func (h *handler) done(r *http.Request, rec *recorder, ex *exchange) {
	h.bodies.release(ex.reserved)
	h.answers.release(ex.answerReserved)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(ex.started)
	client := "-"
	if ex.id != nil {
		client = ex.id.Name
	}
	route, method := ex.target.routeLabel(), ex.target.methodLabel()
	h.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status), client).Inc()
	h.metrics.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
	// LogAttrs: typed attributes, no boxing of each value (same line).
	h.log.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("client", client), slog.String("method", cut(r.Method)), slog.String("path", cut(ex.target.path)),
		slog.Int("status", status), slog.Int64("bytes", rec.bytes), slog.Float64("duration_ms", ms(elapsed)),
		slog.Float64("upstream_ms", ms(ex.upstream)), slog.String("remote", r.RemoteAddr))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// maxLogValue bounds what a client-sent value adds to a log line.
const maxLogValue = 256

// cut shortens a client-sent value for the log.
func cut(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	return s[:maxLogValue] + fmt.Sprintf("...(%d bytes)", len(s))
}

// jsonError answers {"error": msg} with code, as pg-backup-api answers 404s.
func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// jsonDenied answers 403 with the rule that denied the request.
func jsonDenied(w http.ResponseWriter, client, method, rule string) {
	writeJSON(w, http.StatusForbidden, map[string]string{
		"error": fmt.Sprintf("%s may not %s this path", client, method),
		"rule":  rule,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(code)
	w.Write(append(body, '\n')) //nolint:errcheck // the client may have gone
}

// recorder remembers the final status and the bytes written, passing 1xx
// answers (103) through untouched.
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

// Unwrap lets http.ResponseController reach the connection.
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

func newLimiter(n int, wait time.Duration) *limiter {
	return &limiter{slots: make(chan struct{}, n), wait: wait}
}

// newLimiterSharing is a limiter on the same slots as l with its own
// wait.
func newLimiterSharing(l *limiter, wait time.Duration) *limiter {
	return &limiter{slots: l.slots, wait: wait}
}

var errQueueFull = errors.New("no free upstream slot in time")

// acquire waits for a slot; the release it returns may be called more
// than once (the slot is freed once).
func (l *limiter) acquire(ctx context.Context) (func(), error) {
	if l == nil {
		return func() {}, nil
	}
	select {
	case l.slots <- struct{}{}:
		return sync.OnceFunc(func() { <-l.slots }), nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return sync.OnceFunc(func() { <-l.slots }), nil
	case <-t.C:
		return nil, errQueueFull
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
