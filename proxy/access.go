package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// The access rules file says, per client certificate name, what the client
// may do, in terms of pg-backup-api's own routes. Grammar, one rule per line:
//
//	# comment (also after a rule)
//	NAME  GRANT[, GRANT]...
//
// NAME is a client certificate's CN, or * for every client without a line
// of its own. A name has at most one line. GRANT is one of:
//
//	read              GET and HEAD on /status, /diagnose and the operation
//	                  lists and statuses (/servers/{server}/operations[/{id}],
//	                  /operations[/{id}])
//	operations        POST to /servers/{server}/operations and /operations
//	operations:SERVER POST to /servers/SERVER/operations only
//	all               everything, including paths pg-backup-api does not have
//	none              nothing (alone on its line)
//
// With a rules file, a client that has no line and no * line is denied.
// Without a file, every valid certificate may do everything.

// DefaultAccessFile is where serve looks for the rules.
const DefaultAccessFile = "/etc/pgbapi-proxy/access"

// Grants, by what the rules file calls them.
const (
	readable           = "read"
	grantOperations    = "operations"
	grantAll           = "all"
	grantNone          = "none"
	wildcardClientName = "*"
)

var readRoutes = map[string]bool{
	routeStatus: true, routeDiagnose: true, routeServerOps: true, routeServerOp: true,
	routeInstanceOps: true, routeInstanceOp: true,
}

// grant is one GRANT of a rule.
type grant struct {
	word   string // read, operations, all
	server string // for operations:SERVER
}

// rule is one line of the file.
type rule struct {
	line   int
	text   string // the line as written, without the comment
	grants []grant
}

// Rules are a parsed rules file. A nil *Rules allows everything.
type Rules struct {
	byName map[string]*rule
	path   string
}

// Decision is the answer for one request.
type Decision struct {
	Allowed bool
	Rule    string // "access:LINE: TEXT", or why no rule applied
}

var (
	ruleName   = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9._-]{0,63}|\*)$`)
	serverName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)
)

// ParseRules reads a rules file; name is used in messages. Errors say the
// line and what was wrong.
func ParseRules(name string, r io.Reader) (*Rules, error) {
	rs := &Rules{byName: map[string]*rule{}, path: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		if text = strings.TrimSpace(text); text == "" {
			continue
		}
		who, ru, err := parseRule(n, text)
		if err == nil {
			if prev, dup := rs.byName[who]; dup {
				err = fmt.Errorf("%q already has a rule on line %d; give each name one line", who, prev.line)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		rs.byName[who] = ru
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("%s:%d: a line over 64 KiB; a rule is a name and a few grants", name, n+1)
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rs, nil
}

// parseRule reads one line without its comment: NAME GRANT[, GRANT]...
func parseRule(line int, text string) (string, *rule, error) {
	fields := strings.Fields(text)
	who := fields[0]
	if !ruleName.MatchString(who) {
		return "", nil, fmt.Errorf("%q is not a client name (letters, digits, '.', '_', '-') or *", who)
	}
	rest := strings.TrimSpace(strings.TrimPrefix(text, who))
	if rest == "" {
		return "", nil, fmt.Errorf("no grant for %q: use read, operations, operations:SERVER, all or none", who)
	}
	ru := &rule{line: line, text: strings.Join(fields, " ")}
	seen := map[string]bool{}
	for _, g := range strings.Split(rest, ",") {
		g = strings.TrimSpace(g)
		switch {
		case g == "":
			return "", nil, errors.New("empty grant: grants are separated by single commas")
		case seen[g]:
			return "", nil, fmt.Errorf("%q given twice", g)
		}
		seen[g] = true
		gr, err := parseGrant(g)
		if err != nil {
			return "", nil, err
		}
		ru.grants = append(ru.grants, gr)
	}
	if len(ru.grants) > 1 && (seen[grantNone] || seen[grantAll]) {
		return "", nil, fmt.Errorf("%q must be alone on its line", map[bool]string{true: grantNone, false: grantAll}[seen[grantNone]])
	}
	return who, ru, nil
}

// parseGrant reads one GRANT.
func parseGrant(g string) (grant, error) {
	word, server, hasServer := strings.Cut(g, ":")
	switch {
	case word == grantOperations && hasServer:
		if !serverName.MatchString(server) {
			return grant{}, fmt.Errorf("%q is not a barman server name", server)
		}
		return grant{word: grantOperations, server: server}, nil
	case hasServer:
		return grant{}, fmt.Errorf("only operations takes a server (operations:SERVER), not %q", g)
	case word == readable, word == grantOperations, word == grantAll, word == grantNone:
		return grant{word: word}, nil
	}
	return grant{}, fmt.Errorf("unknown grant %q: use read, operations, operations:SERVER, all or none", g)
}

// Path is the file the rules were read from.
func (rs *Rules) Path() string { return rs.path }

// Len is how many names have a rule.
func (rs *Rules) Len() int { return len(rs.byName) }

// Check decides whether client may send method to the route template
// (with its variables) a request matched; template is "" for paths
// pg-backup-api does not have.
func (rs *Rules) Check(client, method, template string, vars map[string]string) Decision {
	if rs == nil {
		return Decision{Allowed: true, Rule: "no access rules file: every valid certificate may do everything"}
	}
	ru, ok := rs.byName[client]
	if !ok {
		if ru, ok = rs.byName[wildcardClientName]; !ok {
			return Decision{Rule: fmt.Sprintf("%s: no rule for %q and no * rule", rs.path, client)}
		}
	}
	where := fmt.Sprintf("%s:%d: %s", rs.path, ru.line, ru.text)
	for _, g := range ru.grants {
		if g.allows(method, template, vars) {
			return Decision{Allowed: true, Rule: where}
		}
	}
	return Decision{Rule: where}
}

func (g grant) allows(method, template string, vars map[string]string) bool {
	switch g.word {
	case grantAll:
		return true
	case readable:
		return (method == http.MethodGet || method == http.MethodHead) && readRoutes[template]
	case grantOperations:
		if method != http.MethodPost {
			return false
		}
		if g.server != "" {
			return template == routeServerOps && vars["server"] == g.server
		}
		return template == routeServerOps || template == routeInstanceOps
	}
	return false
}
