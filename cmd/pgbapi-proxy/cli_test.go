package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHelpAndVersion(t *testing.T) {
	r := cli(t, nil, "help")
	requireOK(t, r)
	for _, c := range commands() {
		assert.Contains(t, r.stdout, c.name)
	}
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			r := cli(t, nil, c.name, "--help")
			requireOK(t, r)
			assert.Contains(t, r.stdout, "Usage: pgbapi-proxy "+c.name)
			assert.Equal(t, r.stdout, cli(t, nil, "help", c.name).stdout)
		})
	}
	r = cli(t, nil, "version")
	requireOK(t, r)
	assert.Regexp(t, `^pgbapi-proxy \S+ \(go`, r.stdout)
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command given"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"init", "--frobnicate"}, "unknown flag: --frobnicate"},
		{"stray argument", []string{"list", "extra"}, "takes no arguments"},
		{"issue-client without name", []string{"issue-client"}, "needs --name"},
		{"unknown key type", []string{"init", "--key-type", "dsa-1024"}, `unknown key type "dsa-1024"`},
		{"bad ip", []string{"init", "--ip", "300.1.1.1", "--cluster-name", "c", "--hostname", "h"}, "not an IP address"},
		{"bad owner", []string{"issue-client", "--name", "x", "--owner", "no-such-user-here"}, `no user "no-such-user-here"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDirs(t)
			args := tc.args
			if len(args) > 0 && args[0] != "frobnicate" {
				args = d.flags(args...)
			}
			requireOneLineError(t, cli(t, nil, args...), 2, tc.want)
			assert.Empty(t, tree(t, d.tpa), "a usage error writes nothing")
			assert.Empty(t, tree(t, d.state))
		})
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	d := newDirs(t)
	env := []string{
		"PGBAPI_PROXY_TPA_DIR=" + d.tpa,
		"PGBAPI_PROXY_STATE_DIR=" + d.state,
		"PGBAPI_PROXY_CLUSTER_NAME=fromenv",
		"PGBAPI_PROXY_HOSTNAME=a.example,b.example",
	}
	requireOK(t, cli(t, env, "init"))
	out := openssl(t, "x509", "-noout", "-subject", "-issuer", "-ext", "subjectAltName", "-in", d.tpa+"/pg-backup-api.crt")
	assert.Contains(t, out, "DNS:a.example, DNS:b.example")
	assert.Contains(t, out, "issuer=CN = fromenv.server-CA")

	// The command line wins over the environment.
	other := newDirs(t)
	requireOK(t, cli(t, env, "init", "--tpa-dir", other.tpa, "--state-dir", other.state, "--cluster-name", "fromflag"))
	out = openssl(t, "x509", "-noout", "-subject", "-in", other.tpa+"/root.crt")
	assert.Contains(t, out, "CN = fromflag.CA")

	r := cli(t, []string{"PGBAPI_PROXY_SERVER_DAYS=ninety"}, d.flags("init")...)
	requireOneLineError(t, r, 2, "PGBAPI_PROXY_SERVER_DAYS")
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"state-dir":    "PGBAPI_PROXY_STATE_DIR",
		"cluster-name": "PGBAPI_PROXY_CLUSTER_NAME",
		"json":         "PGBAPI_PROXY_JSON",
	} {
		require.Equal(t, want, envName(flag))
	}
	require.Equal(t, "a b", oneLine("a\nb\n"))
	require.False(t, strings.Contains(oneLine("x\r\ny"), "\n"))
}

// init's --server-cert-days is serve's setting of the same name; the old
// --server-days still works, with a warning, and the command line wins
// over either environment variable.
func TestServerCertDaysAlias(t *testing.T) {
	days := func(t *testing.T, d dirs) int {
		out := openssl(t, "x509", "-noout", "-startdate", "-enddate", "-in", filepath.Join(d.tpa, "pg-backup-api.crt"))
		var start, end time.Time
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			k, v, _ := strings.Cut(line, "=")
			tm, err := time.Parse("Jan _2 15:04:05 2006 MST", v)
			require.NoError(t, err)
			if k == "notBefore" {
				start = tm
			} else {
				end = tm
			}
		}
		return int(end.Sub(start).Round(24*time.Hour).Hours() / 24)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want int
		warn bool
	}{
		{"new name", nil, []string{"--server-cert-days", "20"}, 20, false},
		{"old name", nil, []string{"--server-days", "21"}, 21, true},
		{"new variable", []string{"PGBAPI_PROXY_SERVER_CERT_DAYS=22"}, nil, 22, false},
		{"old variable", []string{"PGBAPI_PROXY_SERVER_DAYS=23"}, nil, 23, true},
		{"old flag beats new variable", []string{"PGBAPI_PROXY_SERVER_CERT_DAYS=22"}, []string{"--server-days", "24"}, 24, true},
		{"new flag beats old variable", []string{"PGBAPI_PROXY_SERVER_DAYS=23"}, []string{"--server-cert-days", "25"}, 25, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDirs(t)
			r := cli(t, tc.env, d.flags(append([]string{"init", "--hostname", "h", "--cluster-name", "c"}, tc.args...)...)...)
			requireOK(t, r)
			assert.Equal(t, tc.want, days(t, d))
			if tc.warn {
				assert.Contains(t, r.stderr, "--server-days (PGBAPI_PROXY_SERVER_DAYS) is deprecated: use --server-cert-days")
			} else {
				assert.Empty(t, r.stderr)
			}
		})
	}
	help := cli(t, nil, "init", "--help")
	assert.Contains(t, help.stdout, "--server-cert-days")
	assert.NotContains(t, help.stdout, "--server-days")
}
