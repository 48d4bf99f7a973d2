package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// Every request is named once, here, before rules, audit, metrics, logs
// and forwarding look at it, so that all of them see the same thing: the
// method exactly as pg-backup-api will act on it, the path with duplicate
// slashes merged (as Apache and Werkzeug do), and the route template it
// matches. serve and check-access both go through target().

// routes are pg-backup-api's routes, by what the rules and metrics call
// them (templates, never raw paths).
const (
	routeStatus      = "/status"
	routeDiagnose    = "/diagnose"
	routeServerOps   = "/servers/{server}/operations"
	routeServerOp    = "/servers/{server}/operations/{operation_id}"
	routeInstanceOps = "/operations"
	routeInstanceOp  = "/operations/{operation_id}"
)

var routes = []string{routeStatus, routeDiagnose, routeServerOps, routeServerOp, routeInstanceOps, routeInstanceOp}

// otherLabel names, in metrics and logs, a route or method pg-backup-api
// does not have: nothing a client sends becomes a label of its own.
const otherLabel = "other"

// forwardedMethods are the methods that reach pg-backup-api, in exactly
// this spelling. Werkzeug treats "post" as POST; the proxy does not
// forward it at all, so the rules, the audit and the upstream never
// disagree about what a request is.
var forwardedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true, http.MethodPost: true,
}

// knownMethods are other methods HTTP defines: refused with 405.
// Anything else gets 501.
var knownMethods = map[string]bool{
	http.MethodPut: true, http.MethodDelete: true, http.MethodPatch: true,
	http.MethodTrace: true, http.MethodConnect: true,
}

// target is what a request is about, once named.
type target struct {
	method   string            // as sent; forwarded only if forwardedMethods says so
	path     string            // slashes merged
	template string            // a route template, or "" for no route
	vars     map[string]string // the template's variables
	refusal  *refusal          // set when the request must not be forwarded
}

// refusal is an answer given instead of forwarding.
type refusal struct {
	code int
	msg  string
}

// methodLabel and routeLabel are the bounded labels of a target.
func (t *target) methodLabel() string {
	if forwardedMethods[t.method] {
		return t.method
	}
	return otherLabel
}

func (t *target) routeLabel() string {
	if t.template == "" {
		return otherLabel
	}
	return t.template
}

// router matches route templates with gorilla/mux, without its own path
// cleaning (SkipClean): the path was normalised already.
var router = func() *mux.Router {
	r := mux.NewRouter().SkipClean(true)
	for _, t := range routes {
		r.Path(t)
	}
	return r
}()

// nameRequest normalises r's path in place and names the request.
func nameRequest(r *http.Request) *target {
	t := &target{method: r.Method}
	if !strings.HasPrefix(r.URL.Path, "/") {
		// OPTIONS * (and anything else without a path) is no route of
		// pg-backup-api's; net/http would answer it itself, unlogged.
		t.path = r.URL.Path
		t.refusal = &refusal{http.StatusBadRequest, "the request target must be a path starting with /"}
		return t
	}
	clean, ok := mergeSlashes(r.URL.Path)
	t.path = clean
	if !ok {
		t.refusal = &refusal{http.StatusBadRequest, "the path has '.' or '..' segments; send the path itself"}
		return t
	}
	r.URL.Path = clean
	if r.URL.RawPath != "" {
		r.URL.RawPath, _ = mergeSlashes(r.URL.RawPath)
	}
	var m mux.RouteMatch
	if router.Match(r, &m) && m.Route != nil {
		if tpl, err := m.Route.GetPathTemplate(); err == nil {
			t.template, t.vars = tpl, m.Vars
		}
	}
	switch {
	case forwardedMethods[t.method]:
	case knownMethods[strings.ToUpper(t.method)] || forwardedMethods[strings.ToUpper(t.method)]:
		t.refusal = &refusal{http.StatusMethodNotAllowed, "method not allowed: pg-backup-api takes GET, HEAD, OPTIONS and POST, spelled in capitals"}
	default:
		t.refusal = &refusal{http.StatusNotImplemented, "method not implemented"}
	}
	return t
}

// mergeSlashes merges runs of '/' into one. It reports false for a path
// with "." or ".." segments, which the proxy does not resolve.
func mergeSlashes(p string) (string, bool) {
	if strings.Contains(p, "//") {
		var b strings.Builder
		b.Grow(len(p))
		for i := 0; i < len(p); i++ {
			if p[i] == '/' && i > 0 && p[i-1] == '/' {
				continue
			}
			b.WriteByte(p[i])
		}
		p = b.String()
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return p, false
		}
	}
	return p, true
}

// CheckAccess answers `pgbapi-proxy check-access`: what rules (nil: no
// rules file) decide for client sending method to requestTarget (a path,
// with a query string if any). The request is parsed by net/http and
// named exactly as serve names it.
func CheckAccess(rules *Rules, client, method, requestTarget string) (Decision, error) {
	line := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: proxy\r\n\r\n", method, requestTarget)
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(line)))
	if err != nil {
		return Decision{}, fmt.Errorf("%s %s is not a request serve would accept: %w", method, requestTarget, err)
	}
	t := nameRequest(req)
	if t.refusal != nil {
		return Decision{Rule: fmt.Sprintf("refused before the rules: %d %s", t.refusal.code, t.refusal.msg)}, nil
	}
	return rules.Check(client, t.method, t.template, t.vars), nil
}
