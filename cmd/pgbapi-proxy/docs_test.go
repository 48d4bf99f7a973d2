package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var flagInHelp = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z][a-z0-9-]*)`)

// The man page lists every subcommand and every flag --help lists.
func TestManPageMatchesHelp(t *testing.T) {
	r := cli(t, nil, "manpage")
	requireOK(t, r)
	man := r.stdout
	assert.True(t, strings.HasPrefix(man, ".TH PGBAPI-PROXY 1 "))
	for _, c := range commands() {
		help := cli(t, nil, c.name, "--help")
		requireOK(t, help)
		assert.Contains(t, man, `.SS "`+strings.ReplaceAll(c.name, "-", `\-`)+" [flags]", c.name)
		for _, m := range flagInHelp.FindAllStringSubmatch(help.stdout, -1) {
			if m[1] == "help" {
				continue
			}
			assert.Contains(t, man, `.B \-\-`+strings.ReplaceAll(m[1], "-", `\-`), "%s --%s", c.name, m[1])
		}
	}
	cmd := exec.Command(needs.Command(t, "groff", "groff-base"), "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(man)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, string(out), "groff warnings")
}

func TestBashCompletion(t *testing.T) {
	r := cli(t, nil, "completion", "bash")
	requireOK(t, r)
	needs.Command(t, "bash", "bash")
	script := filepath.Join(t.TempDir(), "completion.bash")
	require.NoError(t, os.WriteFile(script, []byte(r.stdout), 0o644))
	// Complete "pgbapi-proxy issue-client --na" and "pgbapi-proxy re" for real.
	out, err := exec.Command("bash", "-c", `source `+script+`
COMP_WORDS=(pgbapi-proxy issue-client --na); COMP_CWORD=2; _pgbapi_proxy; echo "${COMPREPLY[@]}"
COMP_WORDS=(pgbapi-proxy re); COMP_CWORD=1; _pgbapi_proxy; echo "${COMPREPLY[@]}"`).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "--name\nrevoke\n", string(out))
	requireOneLineError(t, cli(t, nil, "completion", "zsh"), 2, "bash")
}
