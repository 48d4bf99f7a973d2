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

// knownOperationTypes bound the metric's type label, with otherLabel and
// unknownType.
var knownOperationTypes = map[string]bool{"recovery": true, "config_switch": true, "config_update": true}

// unknownType is the type of a body that is not strict JSON: what
// pg-backup-api (Python's json, which also takes NaN and Infinity) reads
// from it cannot be told for sure.
const unknownType = "unknown"

// notStrict is what the audit lines say of such a body.
const notStrict = "the body is not strict JSON; its type is unknown"

// maxTypeLen bounds the type logged from a request body.
const maxTypeLen = 64

// audit is what one operations request carries to its answer: the body
// was read whole before forwarding, so it is not copied again.
type audit struct {
	server string
	body   []byte
}

// defaultServerOperation is what pg-backup-api starts for a server
// operation whose body has no "type" (its DEFAULT_OP_TYPE).
const defaultServerOperation = "recovery"

// utf8BOM starts a body Python's json.loads(bytes) reads as UTF-8 all the
// same (it detects utf-8-sig), so the audit skips it too.
var utf8BOM = []byte("\xef\xbb\xbf")

// operationType reads the body's top-level "type" as pg-backup-api does:
// the key matched case-sensitively (encoding/json would take "Type" for a
// struct field), the last of duplicate keys winning, a UTF-8 BOM skipped,
// and no "type" on a server's operations meaning a recovery. A body that
// is not a strict JSON object, or whose "type" is not a string, gives
// unknownType and strict false.
func (a *audit) operationType() (typ string, strict bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimPrefix(a.body, utf8BOM), &top) != nil || top == nil {
		return unknownType, false
	}
	raw, ok := top["type"]
	if !ok {
		if a.server != "" {
			return defaultServerOperation, true
		}
		return "", true // an instance operation needs a type: pg-backup-api refuses it
	}
	if json.Unmarshal(raw, &typ) != nil || len(raw) == 0 || raw[0] != '"' {
		return unknownType, false
	}
	if len(typ) > maxTypeLen {
		typ = typ[:maxTypeLen]
	}
	return typ, true
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
	typ, strict := ex.audit.operationType()
	label := typ
	switch {
	case !strict:
		label = unknownType
	case !knownOperationTypes[label]:
		label = otherLabel
	}
	h.metrics.operations.WithLabelValues(ex.id.Name, label).Inc()
	server := ex.audit.server
	if server == "" {
		server = "-" // an instance operation (/operations)
	}
	attrs := []any{"client", ex.id.Name, "serial", ex.id.Serial, "server", cut(server), "type", typ, "operation_id", id}
	if !strict {
		attrs = append(attrs, "note", notStrict)
	}
	h.log.Info("operation started", attrs...)
}

// auditRequested logs an operation request before it is forwarded, so
// that the trail holds it whatever becomes of the answer (a 202 adds
// "operation started" with its id).
func (h *handler) auditRequested(ex *exchange) {
	server := ex.audit.server
	if server == "" {
		server = "-"
	}
	typ, strict := ex.audit.operationType()
	attrs := []any{"client", ex.id.Name, "serial", ex.id.Serial, "server", cut(server), "type", typ}
	if !strict {
		attrs = append(attrs, "note", notStrict)
	}
	h.log.Info("operation requested", attrs...)
}
