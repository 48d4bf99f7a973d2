package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type doctorLine struct {
	Area, Status, Detail, Fix string
}

func runDoctor(t *testing.T, d dirs, listen, admin, upstreamURL string) (result, []doctorLine) {
	t.Helper()
	args := d.flags("doctor", "--listen", listen, "--admin-listen", admin, "--upstream", upstreamURL,
		"--hostname", "localhost", "--settings-file", "/dev/null", "--service-user", "", "--json")
	r := cli(t, nil, args...)
	var lines []doctorLine
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &lines), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return r, lines
}

func failing(lines []doctorLine) []doctorLine {
	var out []doctorLine
	for _, l := range lines {
		if l.Status != "ok" {
			out = append(out, l)
		}
	}
	return out
}

func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem")...))
	_, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil)

	// Healthy: every line ok, exit 0, and a real request went through.
	r, lines := runDoctor(t, d, p.addr, p.admin, upURL)
	assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, failing(lines))
	areas := map[string]bool{}
	for _, l := range lines {
		areas[l.Area] = true
	}
	for _, a := range []string{"pki", "files", "chain", "expiry", "proxy", "upstream", "end-to-end"} {
		assert.True(t, areas[a], "a check of %s", a)
	}
	// The table form says the same.
	r = cli(t, nil, d.flags("doctor", "--listen", p.addr, "--admin-listen", p.admin, "--upstream", upURL, "--hostname", "localhost", "--settings-file", "/dev/null", "--service-user", "")...)
	requireOK(t, r)
	assert.Regexp(t, `(?m)^ok\s+end-to-end\s+GET /status through the proxy with a 10-minute certificate`, r.stdout)
	// Only the admin address: the listen address and the upstream come
	// from the running proxy, not the defaults (:443, 127.0.0.1:7480).
	r = cli(t, nil, d.flags("doctor", "--admin-listen", p.admin, "--hostname", "localhost", "--settings-file", "/dev/null", "--service-user", "")...)
	requireOK(t, r)
	assert.Regexp(t, `(?m)^ok\s+settings\s+from the running proxy \(admin `+regexp.QuoteMeta(p.admin)+`\): listens on `+regexp.QuoteMeta(p.addr)+`, upstream `+regexp.QuoteMeta(upURL), r.stdout)
	assert.Regexp(t, `(?m)^ok\s+end-to-end\s+`, r.stdout)

	l := pki.Layout{TPADir: d.tpa, StateDir: d.state}
	tests := []struct {
		name          string
		breakIt       func(t *testing.T) (listen, admin, upstream string)
		area, matches string
		fix           string
	}{
		{"key readable by others", func(t *testing.T) (string, string, string) {
			key := filepath.Join(d.tpa, "pem.key")
			require.NoError(t, os.Chmod(key, 0o644))
			t.Cleanup(func() { os.Chmod(key, 0o600) })
			return p.addr, p.admin, upURL
		}, "files", "pem.key is mode 0644", "chmod 600 " + filepath.Join(d.tpa, "pem.key")},
		{"mismatched key", func(t *testing.T) (string, string, string) {
			key := filepath.Join(d.tpa, "pem.key")
			orig, err := os.ReadFile(key)
			require.NoError(t, err)
			other, err := os.ReadFile(filepath.Join(d.tpa, "pg-backup-user.key"))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(key, other, 0o600))
			t.Cleanup(func() { os.WriteFile(key, orig, 0o600) })
			return p.addr, p.admin, upURL
		}, "files", "pem.key does not belong to", "issue-client --renew"},
		{"expired server certificate", func(t *testing.T) (string, string, string) {
			signer, err := pki.LoadServerSigner(l)
			require.NoError(t, err)
			key, err := pki.LoadKey(l.ServerKey())
			require.NoError(t, err)
			chain, err := signer.Sign(key.Public(), time.Hour, time.Now().Add(-48*time.Hour))
			require.NoError(t, err)
			orig, err := os.ReadFile(l.ServerCert())
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(l.ServerCert(), pki.EncodeCerts(chain...), 0o644))
			t.Cleanup(func() { os.WriteFile(l.ServerCert(), orig, 0o644) })
			return p.addr, p.admin, upURL
		}, "expiry", "the server certificate expired", "journalctl -u pgbapi-proxy"},
		{"upstream down", func(t *testing.T) (string, string, string) {
			return p.addr, p.admin, "http://" + closedAddr(t)
		}, "upstream", "does not answer", "systemctl start pg-backup-api"},
		{"port taken by something else", func(t *testing.T) (string, string, string) {
			other := pkiFor(t) // another cluster's server, as an old Apache site would be
			_, otherUp := upstream(t)
			q := startProxy(t, other, otherUp, nil)
			return q.addr, closedAddr(t), upURL
		}, "proxy", "something else holds", "a2dissite"},
		{"proxy not running", func(t *testing.T) (string, string, string) {
			return closedAddr(t), closedAddr(t), upURL
		}, "proxy", "is not running", "systemctl start pgbapi-proxy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			listen, admin, up := tc.breakIt(t)
			r, lines := runDoctor(t, d, listen, admin, up)
			assert.Equal(t, 1, r.code)
			assert.Contains(t, r.stderr, "doctor found")
			var hit *doctorLine
			for i, line := range lines {
				if line.Area == tc.area && line.Status == "FAIL" && strings.Contains(line.Detail, tc.matches) {
					hit = &lines[i]
				}
			}
			require.NotNil(t, hit, "a FAIL line in %s saying %q: %+v", tc.area, tc.matches, failing(lines))
			assert.Contains(t, hit.Fix, tc.fix)
		})
	}
}

// The settings file is read as systemd reads it: a trailing "# comment"
// is part of the value (and said so), "export" lines are ignored (and
// said so), quotes are removed. Nothing panics; fix lines name the
// non-default directories so that they can be pasted.
func TestDoctorSettingsFile(t *testing.T) {
	d := newDirs(t) // no PKI here
	admin := closedAddr(t)
	settings := filepath.Join(t.TempDir(), "pgbapi-proxy")
	require.NoError(t, os.WriteFile(settings, []byte(`# settings
export PGBAPI_PROXY_LISTEN=127.0.0.1:1
PGBAPI_PROXY_UPSTREAM=http://127.0.0.1:7480 # local pg-backup-api
PGBAPI_PROXY_ADMIN_LISTEN="`+admin+`"
PGBAPI_PROXY_UPSTREAM_TIMEOUT=1m
`), 0o644))
	r := cli(t, nil, d.flags("doctor", "--listen", closedAddr(t), "--hostname", "localhost", "--settings-file", settings, "--json")...)
	assert.Equal(t, 1, r.code, "stderr: %s", r.stderr)
	assert.NotContains(t, r.stderr, "panic")
	var lines []doctorLine
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &lines), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	find := func(area, status, detail string) *doctorLine {
		for i, l := range lines {
			if l.Area == area && l.Status == status && strings.Contains(l.Detail, detail) {
				return &lines[i]
			}
		}
		t.Errorf("no %s line in %s saying %q: %+v", status, area, detail, lines)
		return &doctorLine{}
	}
	find("settings", "warn", settings+":2: \"export PGBAPI_PROXY_LISTEN=\": systemd does not take 'export'")
	find("settings", "warn", settings+":3: the value of PGBAPI_PROXY_UPSTREAM is \"http://127.0.0.1:7480 # local pg-backup-api\"")
	bad := find("settings", "FAIL", settings+":3: PGBAPI_PROXY_UPSTREAM=\"http://127.0.0.1:7480 # local pg-backup-api\"")
	assert.Contains(t, bad.Detail, "checked with the default, http://127.0.0.1:7480")
	find("proxy", "FAIL", "nothing answers on "+admin) // the quoted value was used
	pki := find("pki", "FAIL", "no PKI")
	assert.Equal(t, "pgbapi-proxy init --tpa-dir "+d.tpa+" --state-dir "+d.state, pki.Fix)

	// An address serve would refuse is a FAIL line too, not a usage error.
	require.NoError(t, os.WriteFile(settings, []byte("PGBAPI_PROXY_LISTEN=443\nPGBAPI_PROXY_ADMIN_LISTEN="+admin+"\n"), 0o644))
	r = cli(t, nil, d.flags("doctor", "--hostname", "localhost", "--upstream", "http://"+closedAddr(t), "--settings-file", settings, "--json")...)
	assert.Equal(t, 1, r.code, "stderr: %s", r.stderr)
	lines = nil
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &lines), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	find("settings", "FAIL", settings+`:1: PGBAPI_PROXY_LISTEN="443": --listen "443": give HOST:PORT`)
}

// A client certificate that no longer verifies gets a fix line that
// renews it where it is, with the directories given.
func TestDoctorFixNamesDirectories(t *testing.T) {
	d := pkiFor(t)
	out := t.TempDir()
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem", "--out", out)...))
	other := pkiFor(t) // pem.crt now from another cluster's CA
	require.NoError(t, os.WriteFile(filepath.Join(out, "pem.crt"), []byte(tree(t, other.tpa)["pg-backup-user.crt"]), 0o644))
	r := cli(t, nil, d.flags("doctor", "--listen", closedAddr(t), "--admin-listen", closedAddr(t), "--upstream", "http://"+closedAddr(t),
		"--hostname", "localhost", "--settings-file", "/dev/null")...)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "fix: pgbapi-proxy issue-client --renew --name pem --out "+out+" --tpa-dir "+d.tpa+" --state-dir "+d.state+"\n")
}
