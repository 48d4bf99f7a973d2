// Package envfile reads a settings file the way systemd reads an
// EnvironmentFile=, so that a program checking the settings (doctor) sees
// what the service is really started with.
//
// The rules, as in systemd's env-file.c:
//   - KEY=VALUE, one per line; spaces around KEY and before VALUE are
//     dropped, and so are spaces at the end of an unquoted VALUE;
//   - a line whose first non-blank character is '#' or ';' is a comment;
//     there are no comments after a value: in "A=b # note" the value is
//     "b # note";
//   - 'single quotes' keep everything literally, "double quotes" take
//     backslash escapes of ", \, ` and $ (other backslashes stay), and
//     both may span lines; quoted and unquoted parts join ("a"b is ab);
//   - a backslash at the end of a line continues the value on the next
//     line; elsewhere outside quotes a backslash keeps the next character;
//   - no "export", no $VARIABLE expansion: "export A=b" is not an
//     assignment (systemd ignores it, and so does Parse, with a Problem);
//   - a KEY that is not a valid variable name, or a VALUE that is not
//     UTF-8 or holds control characters other than tab and newline, is
//     ignored, with a Problem.
package envfile

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Assignment is one KEY=VALUE that systemd would put in the environment.
type Assignment struct {
	Line  int // where KEY starts, from 1
	Key   string
	Value string
}

// Problem is a line systemd would ignore (or read differently from what
// its author likely meant), with why.
type Problem struct {
	Line int
	Msg  string
}

func (p Problem) String() string { return fmt.Sprintf("line %d: %s", p.Line, p.Msg) }

type state int

const (
	preKey state = iota
	key
	preValue
	value
	valueEscape
	singleQuote
	doubleQuote
	doubleQuoteEscape
	comment
	commentEscape
)

// Parse reads a settings file. It never fails: what systemd would ignore
// is left out of the assignments and described in the problems. A key
// assigned twice keeps its last value, as in systemd; both are returned,
// in file order.
func Parse(data string) ([]Assignment, []Problem) {
	p := &parser{line: 1}
	for i := 0; i < len(data); i++ {
		p.step(data[i])
		if data[i] == '\n' {
			p.line++
		}
		p.prev = data[i]
	}
	p.end()
	return p.out, p.problems
}

// Map is the environment the assignments make: the last value of each key.
func Map(as []Assignment) map[string]string {
	m := make(map[string]string, len(as))
	for _, a := range as {
		m[a.Key] = a.Value
	}
	return m
}

type parser struct {
	st          state
	line        int
	keyLine     int
	quoteLine   int
	k, v        strings.Builder
	keyTrail    int // length of k before its trailing blanks; -1: none
	valueTrail  int // length of v before its trailing unquoted blanks; -1: none
	out         []Assignment
	problems    []Problem
	prev        byte // the byte before the current one
	hashComment bool // an unquoted " #" in the value: a comment to its author, not to systemd
}

func isNewline(c byte) bool { return c == '\n' || c == '\r' }
func isBlank(c byte) bool   { return c == ' ' || c == '\t' || isNewline(c) }

// step feeds the parser one byte of the file.
func (p *parser) step(c byte) {
	switch p.st {
	case preKey:
		p.stepPreKey(c)
	case key:
		p.stepKey(c)
	case preValue:
		p.stepPreValue(c)
	case value:
		p.stepValue(c)
	case valueEscape:
		p.st = value
		if !isNewline(c) { // an escaped newline continues the value
			p.v.WriteByte(c)
		}
	case singleQuote, doubleQuote, doubleQuoteEscape:
		p.stepQuoted(c)
	case comment, commentEscape:
		p.stepComment(c)
	}
}

// stepPreKey skips blanks between assignments and starts a key or comment.
func (p *parser) stepPreKey(c byte) {
	switch {
	case c == '#' || c == ';':
		p.st = comment
	case !isBlank(c):
		p.st = key
		p.keyLine = p.line
		p.k.Reset()
		p.v.Reset()
		p.keyTrail, p.valueTrail = -1, -1
		p.hashComment = false
		p.k.WriteByte(c)
	}
}

// stepKey reads a key up to its '='; a line without one is a problem.
func (p *parser) stepKey(c byte) {
	switch {
	case isNewline(c):
		p.problems = append(p.problems, Problem{p.keyLine, fmt.Sprintf("%q has no '=': not an assignment, ignored", p.keyText())})
		p.st = preKey
	case c == '=':
		p.st = preValue
	default:
		if !isBlank(c) {
			p.keyTrail = -1
		} else if p.keyTrail < 0 {
			p.keyTrail = p.k.Len()
		}
		p.k.WriteByte(c)
	}
}

// stepPreValue skips blanks after '=' (and after a closing quote) and
// starts a quoted, escaped or plain value.
func (p *parser) stepPreValue(c byte) {
	switch {
	case isNewline(c):
		p.push()
		p.st = preKey
	case c == '\'':
		p.st, p.quoteLine = singleQuote, p.line
	case c == '"':
		p.st, p.quoteLine = doubleQuote, p.line
	case c == '\\':
		p.st = valueEscape
	case !isBlank(c):
		p.st = value
		p.hashComment = p.hashComment || (c == '#' && isBlank(p.prev))
		p.v.WriteByte(c)
	}
}

// stepValue reads an unquoted value to the end of its line, noting
// trailing blanks (dropped) and an unquoted " #".
func (p *parser) stepValue(c byte) {
	switch {
	case isNewline(c):
		p.chompValue()
		p.push()
		p.st = preKey
	case c == '\\':
		p.st = valueEscape
		p.valueTrail = -1
	default:
		if !isBlank(c) {
			p.valueTrail = -1
		} else if p.valueTrail < 0 {
			p.valueTrail = p.v.Len()
		}
		p.hashComment = p.hashComment || (c == '#' && isBlank(p.prev))
		p.v.WriteByte(c)
	}
}

// stepQuoted reads inside single or double quotes; only double quotes
// have escapes.
func (p *parser) stepQuoted(c byte) {
	switch p.st {
	case singleQuote:
		if c == '\'' {
			p.st = preValue
		} else {
			p.v.WriteByte(c)
		}
	case doubleQuote:
		switch c {
		case '"':
			p.st = preValue
		case '\\':
			p.st = doubleQuoteEscape
		default:
			p.v.WriteByte(c)
		}
	case doubleQuoteEscape:
		p.st = doubleQuote
		switch {
		case strings.IndexByte("\"\\`$", c) >= 0:
			p.v.WriteByte(c)
		case c != '\n':
			p.v.WriteByte('\\')
			p.v.WriteByte(c)
		}
	}
}

// stepComment skips a comment to the end of its line.
func (p *parser) stepComment(c byte) {
	switch p.st {
	case comment:
		switch {
		case c == '\\':
			p.st = commentEscape
		case isNewline(c):
			p.st = preKey
		}
	case commentEscape:
		// Since systemd 254 a backslash does not continue a comment.
		if isNewline(c) {
			p.st = preKey
		} else {
			p.st = comment
		}
	}
}

func (p *parser) end() {
	switch p.st {
	case key:
		p.problems = append(p.problems, Problem{p.keyLine, fmt.Sprintf("%q has no '=': not an assignment, ignored", p.keyText())})
	case singleQuote, doubleQuote, doubleQuoteEscape:
		p.problems = append(p.problems, Problem{p.quoteLine, "a quote opened here is never closed: the value runs to the end of the file"})
		p.push()
	case value:
		p.chompValue()
		p.push()
	case preValue, valueEscape:
		p.push()
	}
}

func (p *parser) keyText() string {
	s := p.k.String()
	if p.keyTrail >= 0 {
		s = s[:p.keyTrail]
	}
	return s
}

func (p *parser) chompValue() {
	if p.valueTrail >= 0 {
		s := p.v.String()[:p.valueTrail]
		p.v.Reset()
		p.v.WriteString(s)
		p.valueTrail = -1
	}
}

func (p *parser) push() {
	k, v := p.keyText(), p.v.String()
	switch {
	case strings.HasPrefix(k, "export ") || strings.HasPrefix(k, "export\t"):
		p.problems = append(p.problems, Problem{p.keyLine, fmt.Sprintf("%q: systemd does not take 'export', so it ignores this line; write %s=...", k+"=", strings.TrimSpace(strings.TrimPrefix(k, "export")))})
	case !ValidName(k):
		p.problems = append(p.problems, Problem{p.keyLine, fmt.Sprintf("%q is not a variable name (letters, digits and _, not starting with a digit): ignored", k)})
	case !validValue(v):
		p.problems = append(p.problems, Problem{p.keyLine, fmt.Sprintf("the value of %s is not UTF-8 text or holds control characters: ignored", k)})
	default:
		p.out = append(p.out, Assignment{Line: p.keyLine, Key: k, Value: v})
		if p.hashComment {
			p.problems = append(p.problems, Problem{p.keyLine, fmt.Sprintf("the value of %s is %q: systemd keeps the text after '#' (comments only start a line)", k, v)})
		}
	}
}

// ValidName reports whether name may be an environment variable name in
// systemd: ASCII letters, digits and '_', not starting with a digit.
func ValidName(name string) bool {
	if name == "" || len(name) > 4096 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && !(i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func validValue(v string) bool {
	if !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f {
			return false
		}
	}
	return true
}

// Quote writes value so that Parse reads it back unchanged: in double
// quotes, with ", \, ` and $ escaped.
func Quote(value string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(value); i++ {
		if strings.IndexByte("\"\\`$", value[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(value[i])
	}
	b.WriteByte('"')
	return b.String()
}
