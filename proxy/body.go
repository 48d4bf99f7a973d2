package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Request bodies: read whole before anything reaches pg-backup-api,
// within a deadline, a size limit and a memory budget shared by every
// connection.

// readBody replaces r.Body with the whole body, read within bodyTimeout
// and at most maxBody bytes, and returns it. The bytes it holds come out
// of the body budget first (ex.reserved, given back by done). It answers
// 408, 413, 503 or 400 and returns false when that fails.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, ex *exchange) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	if r.ContentLength > h.maxBody {
		jsonError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", h.maxBody))
		return nil, false
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(h.bodyTimeout)) //nolint:errcheck // best effort: not every conn has deadlines
	data, err := h.readBudgeted(r.Body, r.ContentLength, ex)
	rc.SetReadDeadline(time.Time{}) //nolint:errcheck // as above
	var ne net.Error
	switch {
	case errors.Is(err, errOverBudget):
		h.metrics.upstream.WithLabelValues("body_budget").Inc()
		h.bodies.refused(h.log)
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "5")
		jsonError(w, http.StatusServiceUnavailable, "too many request bodies in transit; try again")
		return nil, false
	case errors.As(err, &ne) && ne.Timeout():
		w.Header().Set("Connection", "close")
		jsonError(w, http.StatusRequestTimeout, fmt.Sprintf("request body not received within %s", h.bodyTimeout))
		return nil, false
	case err != nil:
		w.Header().Set("Connection", "close")
		jsonError(w, http.StatusBadRequest, "request body could not be read")
		return nil, false
	case int64(len(data)) > h.maxBody:
		w.Header().Set("Connection", "close")
		jsonError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", h.maxBody))
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	r.TransferEncoding = nil
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	return data, true
}

// bodyChunk is what one read of a request body takes at most; the chunks
// are pooled, so a connection whose body has not arrived holds one.
const bodyChunk = 4 << 10

var bodyChunks = sync.Pool{New: func() any { return new([bodyChunk]byte) }}

// readBudgeted reads body whole: n bytes (its Content-Length), or, when n
// is -1 (chunked), up to maxBody+1 bytes, so that the caller sees one
// that is too long. Memory is reserved in the request body budget only
// as bytes arrive (the buffer grows by doubling, and each growth is
// reserved first): a client that sends headers and stalls holds none of
// it, one that sends part of a body holds about what it sent.
func (h *handler) readBudgeted(body io.Reader, n int64, ex *exchange) ([]byte, error) {
	limit := h.maxBody + 1
	if n >= 0 {
		limit = n
	}
	chunk := bodyChunks.Get().(*[bodyChunk]byte)
	defer bodyChunks.Put(chunk)
	var data []byte
	for int64(len(data)) < limit {
		m, err := body.Read(chunk[:min(int64(bodyChunk), limit-int64(len(data)))])
		if m > 0 {
			if len(data)+m > cap(data) {
				grow := min(int64(max(2*cap(data), len(data)+m, 512)), limit) - int64(cap(data))
				if !h.bodies.reserve(grow) {
					return nil, errOverBudget
				}
				ex.reserved += grow
				grown := make([]byte, len(data), int64(cap(data))+grow)
				copy(grown, data)
				data = grown
			}
			data = append(data, chunk[:m]...)
		}
		if err == io.EOF {
			if n >= 0 && int64(len(data)) < n {
				return nil, io.ErrUnexpectedEOF
			}
			return data, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}

// errOverBudget is a request body that would take the request bodies
// held in memory past their budget.
var errOverBudget = errors.New("over the request body budget")

// bodyBudget bounds the request body bytes held in memory across all
// connections (MaxBufferedBodyBytes): each request reserves memory for
// its body as the bytes arrive and gives it back when it is done. Refusals are
// counted by the caller and said in the log at most once per interval.
type bodyBudget struct {
	max      int64
	interval time.Duration
	gauge    prometheus.Gauge
	msg      string // what the log says when refusals happened
	used     atomic.Int64
	unlogged atomic.Int64 // refusals not yet in the log
	lastLog  atomic.Int64 // when they last were, in Unix nanoseconds
}

// reserve takes n bytes of the budget, unless that would pass max.
func (b *bodyBudget) reserve(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	b.gauge.Add(float64(n))
	return true
}

// release gives back n bytes reserve took.
func (b *bodyBudget) release(n int64) {
	if n != 0 {
		b.used.Add(-n)
		b.gauge.Sub(float64(n))
	}
}

// inUse is how many bytes are reserved now.
func (b *bodyBudget) inUse() int64 { return b.used.Load() }

// refused notes a refusal; the first one of an interval writes a line
// with how many there were since the last line.
func (b *bodyBudget) refused(log *slog.Logger) {
	b.unlogged.Add(1)
	now, last := time.Now().UnixNano(), b.lastLog.Load()
	if now-last < int64(b.interval) || !b.lastLog.CompareAndSwap(last, now) {
		return
	}
	log.Warn(b.msg,
		"count", b.unlogged.Swap(0), "budget_bytes", b.max, "in_use_bytes", b.inUse(), "interval", b.interval)
}
