package proxy

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const exampleRules = `
# name            allowed
pem               read
barman-operator   read, operations   # everything but config changes
pg-main-only      operations:pg-main
admin             all
pg-backup-user    read
*                 none
`

func TestRulesEveryWordAndRoute(t *testing.T) {
	rs, err := ParseRules("access", strings.NewReader(exampleRules))
	require.NoError(t, err)
	tests := []struct {
		client, method, path string
		allowed              bool
	}{
		{"pem", "GET", "/status", true},
		{"pem", "HEAD", "/diagnose", true},
		{"pem", "GET", "/servers/pg/operations", true},
		{"pem", "GET", "/servers/pg/operations/20261122", true},
		{"pem", "GET", "/operations", true},
		{"pem", "GET", "/operations/20261122", true},
		{"pem", "POST", "/servers/pg/operations", false},
		{"pem", "POST", "/operations", false},
		{"pem", "DELETE", "/diagnose", false},
		{"pem", "OPTIONS", "/diagnose", false},
		{"pem", "GET", "/unknown", false},
		{"pem", "GET", "//diagnose", true}, // slashes merged, as pg-backup-api merges them
		{"pem", "GET", "/%73tatus", true},  // decoded as serve decodes it
		{"pem", "GET", "/diagnose?verbose=1", true},
		{"pem", "get", "/diagnose", false}, // only exact method spellings go on
		{"pem", "GET", "/servers/../diagnose", false},
		{"pem", "GET", "/diagnose/", false},
		{"barman-operator", "POST", "/servers/pg/operations", true},
		{"barman-operator", "POST", "/operations", true},
		{"barman-operator", "GET", "/diagnose", true},
		{"barman-operator", "POST", "/servers/pg/operations/1", false},
		{"barman-operator", "PUT", "/operations", false},
		{"barman-operator", "pOST", "/operations", false},
		{"barman-operator", "POST", "//servers//pg/operations", true},
		{"pg-main-only", "POST", "/servers/pg-main/operations", true},
		{"pg-main-only", "POST", "/servers/pg%2Dmain/operations", true},
		{"pg-main-only", "POST", "/servers/other/operations", false},
		{"pg-main-only", "POST", "/operations", false},
		{"pg-main-only", "GET", "/servers/pg-main/operations", false},
		{"admin", "GET", "/anything/at/all", true},
		{"admin", "DELETE", "/anything/at/all", false}, // refused before the rules: 405
		{"admin", "POST", "/operations", true},
		{"stranger", "GET", "/status", false},
	}
	for _, tc := range tests {
		d, err := CheckAccess(rs, tc.client, tc.method, tc.path)
		require.NoError(t, err)
		assert.Equal(t, tc.allowed, d.Allowed, "%s %s %s (%s)", tc.client, tc.method, tc.path, d.Rule)
		assert.NotEmpty(t, d.Rule)
	}
	d := rs.Check("stranger", "GET", routeStatus, nil)
	assert.Equal(t, "access:8: * none", d.Rule, "the rule that decided, with its line")

	// No * rule: a client without a line is denied.
	rs, err = ParseRules("access", strings.NewReader("pem read\n"))
	require.NoError(t, err)
	d = rs.Check("other", "GET", routeStatus, nil)
	assert.False(t, d.Allowed)
	assert.Contains(t, d.Rule, `no rule for "other"`)

	// No file: everything allowed.
	var none *Rules
	assert.True(t, none.Check("anyone", "POST", "", nil).Allowed)
}

func TestRulesErrors(t *testing.T) {
	for text, want := range map[string]string{
		"pem":                          "access:1: no grant",
		"pem read\npem all":            `access:2: "pem" already has a rule on line 1`,
		"pem write":                    `access:1: unknown grant "write"`,
		"pem read,,operations":         "access:1: empty grant",
		"pem read, read":               `"read" given twice`,
		"pem none, read":               `"none" must be alone`,
		"pem all, read":                `"all" must be alone`,
		"pem read:pg":                  "only operations takes a server",
		"pem operations:":              "is not a barman server name",
		"pem operations:../x":          "is not a barman server name",
		"../etc read":                  "is not a client name",
		"\n\n# comment\n  p/q  read\n": "access:4:",
		"pem read\n# " + strings.Repeat("x", 100<<10) + "\n": "access:2: a line over 64 KiB",
	} {
		_, err := ParseRules("access", strings.NewReader(text))
		require.Error(t, err, text)
		assert.Contains(t, err.Error(), want, text)
	}
}

// FuzzParseRules: no input crashes the parser, and what parses is a
// consistent set of rules (every line it kept can be checked).
func FuzzParseRules(f *testing.F) {
	f.Add(exampleRules)
	f.Add("pem read, operations:pg-main # c\n* none\n")
	f.Add("a all\nb none\n")
	f.Add("x operations:\n")
	f.Fuzz(func(t *testing.T, text string) {
		rs, err := ParseRules("fuzz", strings.NewReader(text))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		for name := range rs.byName {
			for _, method := range []string{"GET", "POST"} {
				d := rs.Check(name, method, routeServerOps, map[string]string{"server": "pg"})
				if d.Rule == "" {
					t.Fatalf("no rule named for %q", name)
				}
			}
		}
	})
}
