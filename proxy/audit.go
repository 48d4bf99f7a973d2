package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
)

// The audit trail: every request that creates a pg-backup-api operation
// (a 202 to a POST on an operations route) is logged once with who did it
// (certificate name and serial), on which server, what type of operation
// and the operation_id the upstream gave it. Only the "type" field of the
// request body and "operation_id" of the answer are read; nothing else of
// either is kept or logged.

// knownOperationTypes bound the metric's type label.
var knownOperationTypes = map[string]bool{"recovery": true, "config_switch": true, "config_update": true}

// maxTypeLen bounds the type logged from a request body.
const maxTypeLen = 64

// audit is what one operations request carries to its answer: the body
// was read whole before forwarding, so it is not copied again.
type audit struct {
	server string
	body   []byte
}

func (a *audit) operationType() string {
	var op struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(a.body, &op) != nil {
		return ""
	}
	if len(op.Type) > maxTypeLen {
		return op.Type[:maxTypeLen]
	}
	return op.Type
}

// isOperationsPost reports whether a request may create an operation.
func isOperationsPost(t *target) bool {
	return t.method == http.MethodPost && (t.template == routeServerOps || t.template == routeInstanceOps)
}

// operationID reads the upstream's 202 answer (held in memory by then, or
// read here up to a limit), which stays byte for byte what the client gets.
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
	return cut(answer.ID)
}

func (h *handler) auditOperation(resp *http.Response, ex *exchange) {
	if ex.audit == nil || resp.StatusCode != http.StatusAccepted {
		return
	}
	id := operationID(resp)
	typ := ex.audit.operationType()
	label := typ
	if !knownOperationTypes[label] {
		label = otherLabel
	}
	h.metrics.operations.WithLabelValues(ex.id.Name, label).Inc()
	server := ex.audit.server
	if server == "" {
		server = "-" // an instance operation (/operations)
	}
	h.log.Info("operation started",
		"client", ex.id.Name, "serial", ex.id.Serial, "server", cut(server), "type", typ, "operation_id", id)
}

// auditRequested logs an operation request before it is forwarded, so
// that the trail holds it whatever becomes of the answer (a 202 adds
// "operation started" with its id).
func (h *handler) auditRequested(ex *exchange) {
	server := ex.audit.server
	if server == "" {
		server = "-"
	}
	h.log.Info("operation requested",
		"client", ex.id.Name, "serial", ex.id.Serial, "server", cut(server), "type", ex.audit.operationType())
}
