package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// The audit trail: every request that creates a pg-backup-api operation
// (a 202 to a POST on an operations route) is logged once with who did it
// (certificate name and serial), on which server, what type of operation
// and the operation_id the upstream gave it. Only the "type" field of the
// request body and "operation_id" of the answer are read; nothing else of
// either is kept or logged.

// auditPeek is how much of a request body is kept to find its "type": an
// operation request is a small JSON object.
const auditPeek = 16 << 10

// knownOperationTypes bound the metric's type label.
var knownOperationTypes = map[string]bool{"recovery": true, "config_switch": true, "config_update": true}

// audit is what one operations request carries to its answer.
type audit struct {
	serial string
	server string
	body   *peekReader
}

// peekReader passes a body through untouched, keeping its first bytes.
type peekReader struct {
	r    io.ReadCloser
	mu   sync.Mutex
	head bytes.Buffer
}

func (p *peekReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	if room := auditPeek - p.head.Len(); room > 0 && n > 0 {
		p.head.Write(b[:min(n, room)])
	}
	p.mu.Unlock()
	return n, err
}

func (p *peekReader) Close() error { return p.r.Close() }

func (p *peekReader) operationType() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var op struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(p.head.Bytes(), &op) != nil {
		return ""
	}
	return op.Type
}

// isOperationsPost reports whether a request may create an operation.
func isOperationsPost(method, template string) bool {
	return method == http.MethodPost && (template == routeServerOps || template == routeInstanceOps)
}

// operationID reads the upstream's 202 answer, which stays byte for byte
// what the client gets.
func operationID(resp *http.Response) string {
	const limit = 64 << 10
	if resp.Body == nil || resp.ContentLength > limit {
		return ""
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(data), rest), rest}
	if err != nil || len(data) > limit {
		return ""
	}
	var answer struct {
		ID string `json:"operation_id"`
	}
	if json.Unmarshal(data, &answer) != nil {
		return ""
	}
	return answer.ID
}

func (h *handler) auditOperation(resp *http.Response, ex *exchange) {
	if ex.audit == nil || resp.StatusCode != http.StatusAccepted {
		return
	}
	id := operationID(resp)
	typ := ex.audit.body.operationType()
	label := typ
	if !knownOperationTypes[label] {
		label = "other"
	}
	h.metrics.operations.WithLabelValues(ex.client, label).Inc()
	server := ex.audit.server
	if server == "" {
		server = "-" // an instance operation (/operations)
	}
	h.log.Info("operation started",
		"client", ex.client, "serial", ex.audit.serial, "server", server, "type", typ, "operation_id", id)
}
