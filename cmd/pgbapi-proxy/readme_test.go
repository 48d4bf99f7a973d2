package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var repoDir = filepath.Join("..", "..")

// readmeCommands is every command line in README.md's sh blocks, without
// its trailing comment, split at &&.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoDir, "README.md"))
	require.NoError(t, err)
	var cmds []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
			continue
		case strings.HasPrefix(line, "```"):
			in = false
			continue
		}
		if !in || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if i := strings.Index(line, " # "); i >= 0 {
			line = line[:i]
		}
		for _, c := range strings.Split(line, "&&") {
			if c = strings.TrimSpace(c); c != "" {
				cmds = append(cmds, c)
			}
		}
	}
	require.NotEmpty(t, cmds)
	return cmds
}

var longFlag = regexp.MustCompile(`(?:^|\s)--([a-z][a-z0-9-]*)`)

// Every command README.md shows is run where it can be (pgbapi-proxy
// commands against a scratch PKI, make targets as a dry run) or checked
// mechanically (the test prerequisites against .ci/run, the make run
// curl against what scripts/run-demo.sh prints, paths that must exist).
func TestREADMECommands(t *testing.T) {
	d := newDirs(t)
	requireOK(t, cli(t, nil, d.flags("init", "--cluster-name", "test", "--hostname", "localhost")...))
	for _, c := range readmeCommands(t) {
		fields := strings.Fields(c)
		switch fields[0] {
		case "pgbapi-proxy":
			sub := fields[1]
			help := cli(t, nil, sub, "--help")
			require.Equal(t, 0, help.code, "%s: no such command: %s", c, help.stderr)
			for _, m := range longFlag.FindAllStringSubmatch(c, -1) {
				assert.Contains(t, help.stdout, "--"+m[1], "%s: %s has no --%s", c, sub, m[1])
			}
			if sub == "serve" || sub == "status" || sub == "doctor" {
				continue // a running service; TestNotify*, serve_test and doctor_test run these
			}
			// For real, in the scratch PKI: whatever the outcome, never a
			// usage error.
			args := []string{}
			for _, f := range fields[1:] {
				if strings.HasSuffix(f, "...") { // revoke --serial 3A9F...
					f = "3A9F"
				}
				args = append(args, f)
			}
			if sub != "check-access" {
				args = d.flags(args...)
			}
			if sub == "issue-client" {
				args = append(args, "--out", t.TempDir())
				for i, a := range args {
					if a == "pem.tar.gz" {
						args[i] = filepath.Join(t.TempDir(), a)
					}
				}
			}
			if sub == "check-access" {
				args = append(args, "--access-file", filepath.Join(t.TempDir(), "access"))
				require.NoError(t, os.WriteFile(args[len(args)-1], []byte("pem read\n"), 0o644))
			}
			r := cli(t, nil, args...)
			assert.NotEqual(t, 2, r.code, "%s: a usage error: %s", c, r.stderr)
		case "make":
			out, err := exec.Command("sh", "-c", "make -n -C "+repoDir+" "+strings.Join(fields[1:], " ")+" BUILD="+t.TempDir()).CombinedOutput()
			assert.NoError(t, err, "%s: %s", c, out)
		case "apt-get":
			if strings.Contains(c, "./pgbapi-proxy_") {
				assert.Regexp(t, `\./pgbapi-proxy_\d+\.\d+\.\d+-1_amd64\.deb 'pg-backup-api=[0-9.]+\*'$`, c, "the file name make deb gives, the pin quoted")
				continue
			}
			ci, err := os.ReadFile(filepath.Join(repoDir, ".ci", "run"))
			require.NoError(t, err)
			m := regexp.MustCompile(`(?s)apt-get install -y -qq --no-install-recommends \\\n(.*?) >/dev/null`).FindSubmatch(ci)
			require.NotNil(t, m, ".ci/run's apt-get install")
			want := strings.Fields(strings.ReplaceAll(string(m[1]), "\\", ""))
			got := strings.Fields(strings.TrimPrefix(c, "apt-get install"))
			sort.Strings(want)
			sort.Strings(got)
			assert.Equal(t, want, got, "README's test prerequisites and what .ci/run installs")
			for _, pkg := range got {
				if needs.InCI() {
					assert.NoError(t, exec.Command("dpkg-query", "-W", pkg).Run(), "CI=true: %s is not installed", pkg)
				}
			}
		case "curl":
			if strings.Contains(c, "demo/tpa") {
				script, err := os.ReadFile(filepath.Join(repoDir, "scripts", "run-demo.sh"))
				require.NoError(t, err)
				printed := regexp.MustCompile(`(?m)^\s+(curl .*)$`).FindSubmatch(script)
				require.NotNil(t, printed)
				r := strings.NewReplacer("$DEMO", "demo", "$PORT", "8443")
				assert.Equal(t, r.Replace(string(printed[1])), c, "README's make run curl is what make run prints (with its defaults)")
			}
		case "go":
			assert.DirExists(t, filepath.Join(repoDir, strings.TrimPrefix(fields[len(fields)-1], "./")))
		case "sh":
			assert.FileExists(t, filepath.Join(repoDir, fields[1]))
		}
	}
}
