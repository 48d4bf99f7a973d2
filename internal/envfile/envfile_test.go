package envfile

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     map[string]string
		problems []string // substrings, one per problem, in order
	}{
		{"plain", "A=b\nC=d", map[string]string{"A": "b", "C": "d"}, nil},
		{"blanks around", "  A = b  \n\tC=\td\t\n", map[string]string{"A": "b", "C": "d"}, nil},
		{"comments at line start only", "# c\n ; c\nA=b # not a comment\n", map[string]string{"A": "b # not a comment"}, []string{"line 3: the value of A is \"b # not a comment\""}},
		{"hash inside a word", "A=http://h/#frag\n", map[string]string{"A": "http://h/#frag"}, nil},
		{"empty value", "A=\nB=", map[string]string{"A": "", "B": ""}, nil},
		{"single quotes", `A='x "y" \z $HOME'`, map[string]string{"A": `x "y" \z $HOME`}, nil},
		{"double quotes", `A="x \"y\" \\ \$ \` + "`" + ` \z"`, map[string]string{"A": "x \"y\" \\ $ ` \\z"}, nil},
		{"quoted comment is kept", `A="x # y"`, map[string]string{"A": "x # y"}, nil},
		{"quotes join", `A="a"'b'c`, map[string]string{"A": "abc"}, nil},
		{"quotes span lines", "A=\"a\nb\"\nB=c", map[string]string{"A": "a\nb", "B": "c"}, nil},
		{"continuation", "A=a\\\nb\nB=c", map[string]string{"A": "ab", "B": "c"}, nil},
		{"escaped blank kept", `A=a\ `, map[string]string{"A": "a "}, nil},
		{"continued comment ends at the line", "# c \\\nA=b", map[string]string{"A": "b"}, nil},
		{"crlf", "A=b\r\nC=d\r\n", map[string]string{"A": "b", "C": "d"}, nil},
		{"later wins", "A=1\nA=2", map[string]string{"A": "2"}, nil},
		{"export", "export A=b\nC=d", map[string]string{"C": "d"}, []string{"line 1: \"export A=\": systemd does not take 'export'"}},
		{"no equals", "JUNK\nA=b", map[string]string{"A": "b"}, []string{"line 1: \"JUNK\" has no '='"}},
		{"bad name", "1A=b\nA-B=c\n", map[string]string{}, []string{"line 1: \"1A\" is not a variable name", "line 2: \"A-B\" is not"}},
		{"control character", "A=a\x01b", map[string]string{}, []string{"the value of A is not UTF-8"}},
		{"not utf-8", "A=\xff", map[string]string{}, []string{"the value of A is not UTF-8"}},
		{"unclosed quote", "A=1\nB=\"x\nC=3", map[string]string{"A": "1", "B": "x\nC=3"}, []string{"line 2: a quote opened here is never closed"}},
		{"no dollar expansion", "A=$HOME", map[string]string{"A": "$HOME"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			as, probs := Parse(tc.in)
			assert.Equal(t, tc.want, Map(as))
			var got []string
			for _, p := range probs {
				got = append(got, p.String())
			}
			assert.Len(t, got, len(tc.problems), "%q", got)
			for i := range min(len(got), len(tc.problems)) {
				assert.Contains(t, got[i], tc.problems[i])
			}
		})
	}
}

// FuzzParse: no input panics; every assignment has a valid name and a
// value that, written back with Quote, reads back the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "A=b", "A=b # c", "export A=b", "A='x", "A=\"a\\\nb\"", "A=a\\", "#\\\nA=b", "A\n", "=x", "A=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		as, _ := Parse(in)
		var b strings.Builder
		for _, a := range as {
			if !ValidName(a.Key) || !validValue(a.Value) {
				t.Fatalf("%q: returned invalid %q=%q", in, a.Key, a.Value)
			}
			if a.Line < 1 || a.Line > strings.Count(in, "\n")+1 {
				t.Fatalf("%q: line %d out of range", in, a.Line)
			}
			b.WriteString(a.Key + "=" + Quote(a.Value) + "\n")
		}
		again, probs := Parse(b.String())
		if len(probs) > 0 || len(again) != len(as) {
			t.Fatalf("%q: written back as %q, read %v with %v", in, b.String(), again, probs)
		}
		for i := range as {
			if again[i].Key != as[i].Key || again[i].Value != as[i].Value {
				t.Fatalf("%q: %q=%q read back as %q=%q", in, as[i].Key, as[i].Value, again[i].Key, again[i].Value)
			}
		}
	})
}
