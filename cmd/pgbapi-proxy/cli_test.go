package main

import (
	"strings"
	"testing"

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
