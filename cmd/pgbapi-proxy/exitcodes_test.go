package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every usage error (bad value, missing flag, invalid name, --days 0)
// exits 2; every runtime failure 1; both with one line on stderr that
// names the flag or the cause. Each command has at least one of each
// (runtime failures only where a command can fail at run time).
func TestExitCodes(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem")...))
	empty := newDirs(t)
	rules := filepath.Join(t.TempDir(), "access")
	require.NoError(t, os.WriteFile(rules, []byte("pem read\n"), 0o644))
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	closed := closedAddr(t)

	tests := []struct {
		cmd  string
		args []string
		code int
		want string
	}{
		{"help", []string{"help", "frobnicate"}, 2, `unknown command "frobnicate"`},

		{"init", empty.flags("init", "--client-days", "0", "--cluster-name", "c", "--hostname", "h"), 2, "--client-days: a lifetime of 0 days"},
		{"init", empty.flags("init", "--server-cert-days", "-1", "--cluster-name", "c", "--hostname", "h"), 2, "--server-cert-days: a lifetime of -1 days"},
		{"init", empty.flags("init", "--cluster-name", "a b", "--hostname", "h"), 2, `--cluster-name: invalid cluster name "a b"`},
		{"init", empty.flags("init", "--cluster-name", "c", "--hostname", "Bad_Host"), 2, `--hostname: invalid host name "bad_host"`},
		{"init", empty.flags("init", "--cluster-name", "c", "--hostname", "h", "--ca-cert", "x.crt"), 2, "--ca-cert: the CA certificate and its key go together"},
		{"init", empty.flags("init", "--key-type", "dsa"), 2, `--key-type: unknown key type "dsa"`},
		{"init", empty.flags("init", "--client-days", "ten"), 2, "--client-days"},
		{"init", []string{"init", "--cluster-name", "c", "--hostname", "h", "--tpa-dir", empty.tpa, "--state-dir", filepath.Join(notDir, "s")}, 1, "not a directory"},

		{"issue-client", d.flags("issue-client", "--name", "x", "--days", "0"), 2, "--days: a lifetime of 0 days: it must be at least 1"},
		{"issue-client", d.flags("issue-client", "--name", "x", "--days", "99999"), 2, "--days: 99999 days would outlast the cluster CA, which expires on"},
		{"issue-client", d.flags("issue-client", "--name", "../x"), 2, `--name: invalid client name "../x"`},
		{"issue-client", d.flags("issue-client", "--name", "root"), 2, `--name: "root" is the name of a file init manages`},
		{"issue-client", d.flags("issue-client"), 2, "needs --name"},
		{"issue-client", d.flags("issue-client", "--name", "x", "--key-type", "ed448"), 2, `--key-type: unknown key type "ed448"`},
		{"issue-client", d.flags("issue-client", "pem"), 2, "did you mean --name pem?"},
		{"issue-client", d.flags("issue-client", "--name", "pem"), 1, "use --renew"},
		{"issue-client", d.flags("issue-client", "--name", "x", "--out", filepath.Join(d.tpa, "nope")), 1, "does not exist"},
		{"issue-client", empty.flags("issue-client", "--name", "x"), 1, "no PKI here"},

		{"list", d.flags("list", "extra"), 2, "takes no arguments"},
		{"list", empty.flags("list"), 1, "no PKI here"},
		{"revoke", empty.flags("revoke", "--name", "pem"), 1, "no PKI here: the state directory"},
		{"revoke", d.flags("revoke", "pem"), 2, "did you mean --name pem?"},
		{"serve", empty.flags("serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"), 1, "no PKI here: " + filepath.Join(empty.tpa, "root.crt") + " does not exist; run 'pgbapi-proxy init' first"},

		{"show", d.flags("show"), 2, "show needs one of NAME, --serial SERIAL or --cert FILE"},
		{"show", d.flags("show", "pem", "--serial", "01"), 2, "show needs one of"},
		{"show", d.flags("show", "a", "b"), 2, "show takes one NAME"},
		{"show", d.flags("show", "nobody"), 1, `no certificate named "nobody"`},
		{"show", empty.flags("show", "pem"), 1, "no PKI here"},

		{"status", []string{"status", "--timeout", "0s"}, 2, "--timeout must be more than 0"},
		{"status", []string{"status", "--admin-listen", "localhost"}, 2, `--admin-listen "localhost": give HOST:PORT`},
		{"doctor", empty.flags("doctor", "--settings-file", "/dev/null", "--listen", "443"), 2, `--listen "443": give HOST:PORT`},
		{"revoke", d.flags("revoke"), 2, "revoke needs one of --name NAME, --serial SERIAL or --cert FILE"},
		{"revoke", d.flags("revoke", "--name", "pem", "--serial", "1000"), 2, "revoke takes only one of --name NAME, --serial SERIAL or --cert FILE"},
		{"revoke", d.flags("revoke", "--name", "pem", "--serial", "01"), 2, "revoke takes only one of"},
		{"revoke", d.flags("revoke", "--name", "nobody"), 1, `no client certificate named "nobody"`},

		{"serve", empty.flags("serve", "--log-format", "xml"), 2, `--log-format "xml"`},
		{"serve", empty.flags("serve", "--server-cert-days", "0"), 2, "--server-cert-days must be at least 1"},
		{"serve", empty.flags("serve", "--max-connections", "-1"), 2, "--max-connections: must not be negative"},
		{"serve", empty.flags("serve", "--max-buffered-answer-bytes", "10"), 2, "--max-buffered-answer-bytes: must not be less than the largest answer held in memory"},
		{"serve", empty.flags("serve", "--max-handshakes-per-source", "-1"), 2, "--max-handshakes-per-source: must not be negative"},
		{"serve", empty.flags("serve", "--max-buffered-body-bytes", "10"), 2, "--max-buffered-body-bytes: must not be less than the largest request body allowed"},
		{"serve", empty.flags("serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"), 1, ""},

		{"status", []string{"status", "--timeout", "soon"}, 2, "--timeout"},
		{"status", []string{"status", "--admin-listen", closed, "--timeout", "2s"}, 1, "does not answer on " + closed},

		{"check-access", []string{"check-access", "--access-file", rules, "GET"}, 2, "needs METHOD PATH"},
		{"check-access", []string{"check-access", "--access-file", rules, "GET", "/diagnose"}, 2, "needs --name"},
		{"check-access", []string{"check-access", "--access-file", rules, "--name", "pem", "POST", "/operations"}, 1, "denied"},

		{"doctor", empty.flags("doctor", "--settings-file", "/dev/null", "--cert", "c.crt"), 2, "--cert and --key go together"},
		{"doctor", empty.flags("doctor", "--settings-file", "/dev/null", "--upstream", "http://"), 2, "--upstream"},
		{"doctor", empty.flags("doctor", "--settings-file", "/dev/null", "--listen", closed, "--admin-listen", closed, "--hostname", "h"), 1, "doctor found"},

		{"sync-server-cert", d.flags("sync-server-cert", "x"), 2, "takes no arguments"},
		{"sync-server-cert", empty.flags("sync-server-cert"), 1, ""},

		{"version", []string{"version", "x"}, 2, "takes no arguments"},
		{"manpage", []string{"manpage", "x"}, 2, "takes no arguments"},
		{"completion", []string{"completion", "tcsh"}, 2, "completion takes one argument"},
	}
	covered := map[string]map[int]bool{}
	for _, tc := range tests {
		if covered[tc.cmd] == nil {
			covered[tc.cmd] = map[int]bool{}
		}
		covered[tc.cmd][tc.code] = true
		t.Run(tc.cmd, func(t *testing.T) {
			r := cli(t, nil, tc.args...)
			if tc.code == 1 && tc.want == "" {
				assert.Equal(t, 1, r.code, "stderr: %s", r.stderr)
				return
			}
			requireOneLineError(t, r, tc.code, tc.want)
		})
	}
	noRuntimeFailure := map[string]bool{"version": true, "manpage": true, "completion": true}
	for _, c := range commands() {
		assert.True(t, covered[c.name][2], "%s: no usage error case", c.name)
		assert.True(t, covered[c.name][1] || noRuntimeFailure[c.name], "%s: no runtime failure case", c.name)
	}
}

// Run by a user who cannot read the state dir, the PKI commands say to
// run as root rather than only "permission denied".
func TestErrorsSayRunAsRoot(t *testing.T) {
	needs.Root(t, "to run the binary as another user")
	d := pkiFor(t)
	dir, err := os.MkdirTemp("", "pgbapi-proxy-nobody-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "pgbapi-proxy")
	data, err := os.ReadFile(binary)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, data, 0o755))
	fresh := newDirs(t)
	for _, args := range [][]string{
		d.flags("list"), d.flags("issue-client", "--name", "x"), d.flags("show", "pem"), d.flags("revoke", "--name", "pem"),
		fresh.flags("init", "--cluster-name", "c", "--hostname", "h"),
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		requireOneLineError(t, runCmd(t, cmd), 1, "permission denied: run this as root")
	}
}
