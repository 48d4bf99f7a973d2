package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Revoke a; within 2s the running proxy refuses it on a new connection
// and on a kept-alive one, while b goes on.
func TestRevocationTakesEffectWithoutRestart(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	for _, n := range []string{"a", "b"} {
		requireOK(t, cli(t, nil, d.flags("issue-client", "--name", n)...))
	}
	up, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil)
	clientA, clientB := goClient(t, d, "a"), goClient(t, d, "b")
	get := func(c *http.Client) (int, string, error) {
		resp, err := c.Get(p.url("/diagnose"))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	for _, c := range []*http.Client{clientA, clientB} {
		code, _, err := get(c)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	requireOK(t, curlClient(t, d, "a", p.url("/status")))

	r := cli(t, nil, d.flags("revoke", "--name", "a")...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "revoked a (serial ")
	revokedAt := time.Now()

	// The kept-alive connection: 403 JSON, then closed.
	require.Eventually(t, func() bool {
		code, body, err := get(clientA)
		return err == nil && code == http.StatusForbidden && strings.Contains(body, "revoked")
	}, 2*time.Second, 50*time.Millisecond, "a's open connection is refused within 2s")
	assert.Less(t, time.Since(revokedAt), 2*time.Second)
	// From the first refusal on, nothing from a reaches the upstream.
	before := up.RequestsFrom("a")
	for range 3 {
		code, _, err := get(clientA)
		assert.True(t, err != nil || code == http.StatusForbidden, "a refused: %d %v", code, err)
	}
	// A new connection: the handshake fails.
	r = curlClient(t, d, "a", p.url("/status"))
	assert.NotEqual(t, 0, r.code, "curl with a's certificate must fail: %s", r.stdout)
	assert.Regexp(t, `pgbapi_proxy_tls_handshake_failures_total\{reason="revoked"\} [1-9]`, metricsText(t, p))
	// b goes on.
	code, _, err := get(clientB)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, before, up.RequestsFrom("a"), "nothing from a reached the upstream after the revocation")

	// list shows it, openssl agrees, revoking again is harmless.
	r = cli(t, nil, d.flags("list")...)
	requireOK(t, r)
	assert.Regexp(t, `(?m)^a\s+client\s+\S+\s+\S+ \S+\s+revoked\s`, r.stdout)
	out := openssl(t, "crl", "-in", filepath.Join(d.tpa, "crl.pem"), "-noout", "-text", "-CAfile", filepath.Join(d.tpa, "root.crt"))
	assert.Contains(t, out, "Revoked Certificates:")
	r = cli(t, nil, d.flags("revoke", "--name", "a")...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "already revoked a")
	requireOneLineError(t, cli(t, nil, d.flags("revoke", "--name", "nobody")...), 1, `no client certificate named "nobody"`)
}

func writeRules(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(text), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

func TestAccessRulesEndToEnd(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	for _, n := range []string{"pem", "operator"} {
		requireOK(t, cli(t, nil, d.flags("issue-client", "--name", n)...))
	}
	rules := filepath.Join(t.TempDir(), "access")
	writeRules(t, rules, "pem read\noperator read, operations:pg-main\n* none\n")
	up, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil, "--access-file", rules)

	post := func(name, path string) result {
		return curlClient(t, d, name, "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
			"--data-binary", `{"type":"recovery"}`, p.url(path))
	}
	r := curlClient(t, d, "pem", p.url("/diagnose"))
	requireOK(t, r)
	assert.True(t, strings.HasPrefix(r.stdout, `{"global"`))

	n := up.Requests()
	r = post("pem", "/servers/pg-main/operations")
	requireOK(t, r)
	assert.True(t, strings.HasSuffix(r.stdout, "\n403"), r.stdout)
	var denied struct{ Error, Rule string }
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSuffix(r.stdout, "\n403")), &denied))
	assert.Equal(t, "pem may not POST this path", denied.Error)
	assert.Equal(t, rules+":1: pem read", denied.Rule)
	assert.Equal(t, n, up.Requests(), "a denied request never reaches the upstream")

	r = post("operator", "/servers/pg-main/operations")
	requireOK(t, r)
	assert.True(t, strings.HasSuffix(r.stdout, "\n202"), r.stdout)
	r = post("operator", "/servers/other/operations")
	requireOK(t, r)
	assert.True(t, strings.HasSuffix(r.stdout, "\n403"), r.stdout)
	r = curlClient(t, d, "pg-backup-user", "-w", "\n%{http_code}", p.url("/status"))
	assert.True(t, strings.HasSuffix(r.stdout, "\n403"), "the * rule: %s", r.stdout)
	assert.Contains(t, metricsText(t, p), `pgbapi_proxy_access_denied_total{client="pem",reason="rule"} 1`)
	p.waitLog(t, "request denied by the access rules")

	// A broken file while running: logged, the old rules stay.
	writeRules(t, rules, "pem read\npem all\n")
	p.waitLog(t, "did not load")
	p.waitLog(t, `already has a rule on line 1`)
	r = post("pem", "/operations")
	assert.True(t, strings.HasSuffix(r.stdout, "\n403"), "old rules in force: %s", r.stdout)
	p.signal(t, syscall.SIGHUP)
	require.Eventually(t, func() bool { return strings.Count(p.logs.String(), "last good state stays in force") >= 2 }, 3*time.Second, 50*time.Millisecond)

	// A good change is picked up without a signal.
	writeRules(t, rules, "pem read, operations\n* none\n")
	require.Eventually(t, func() bool {
		return strings.HasSuffix(post("pem", "/operations").stdout, "\n202")
	}, 3*time.Second, 100*time.Millisecond)
}

func TestBrokenRulesStopServe(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	rules := filepath.Join(t.TempDir(), "access")
	writeRules(t, rules, "# rules\npem reed\n")
	r := cli(t, nil, d.flags("serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--access-file", rules)...)
	requireOneLineError(t, r, 1, rules+`:2: unknown grant "reed"`)
}

func TestCheckAccess(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "access")
	writeRules(t, rules, "pem read\nops operations:pg-main\n")
	r := cli(t, nil, "check-access", "--access-file", rules, "--name", "pem", "GET", "/diagnose")
	requireOK(t, r)
	assert.Equal(t, "allowed: "+rules+":1: pem read\n", r.stdout)
	r = cli(t, nil, "check-access", "--access-file", rules, "--name", "ops", "POST", "/servers/other/operations")
	requireOneLineError(t, r, 1, "denied: "+rules+":2: ops operations:pg-main")
	r = cli(t, nil, "check-access", "--access-file", rules, "--name", "x", "GET", "/status")
	requireOneLineError(t, r, 1, `no rule for "x"`)
	requireOneLineError(t, cli(t, nil, "check-access", "--name", "x", "GET"), 2, "needs METHOD PATH")
	r = cli(t, nil, "check-access", "--access-file", filepath.Join(t.TempDir(), "none"), "--name", "x", "GET", "/x")
	requireOK(t, r)
	assert.Contains(t, r.stdout, "no access rules file")
	// Named exactly as serve names requests: decoded, slashes merged,
	// query strings allowed, methods only in their exact spelling.
	for _, path := range []string{"/%73tatus", "//diagnose", "/diagnose?verbose=1"} {
		r = cli(t, nil, "check-access", "--access-file", rules, "--name", "pem", "GET", path)
		requireOK(t, r)
	}
	r = cli(t, nil, "check-access", "--access-file", rules, "--name", "ops", "POST", "/servers/pg%2Dmain/operations")
	requireOK(t, r)
	requireOneLineError(t, cli(t, nil, "check-access", "--access-file", rules, "--name", "pem", "get", "/diagnose"), 1, "refused before the rules: 405")
	requireOneLineError(t, cli(t, nil, "check-access", "--access-file", rules, "--name", "pem", "GET", "/servers/../diagnose"), 1, "refused before the rules: 400")
}

// Attacks on the trust inputs of a running proxy, as a compromised
// account with write access to them would make: deleting the CRL, copying
// an older validly signed CRL over the current one, deleting the rules.
// Each keeps the last good state, and the log says so.
func TestTrustInputsFailClosedInTheRunningProxy(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	for _, n := range []string{"a", "b"} {
		requireOK(t, cli(t, nil, d.flags("issue-client", "--name", n)...))
	}
	rules := filepath.Join(t.TempDir(), "access")
	writeRules(t, rules, "pg-backup-user read\n* none\n")
	_, upURL := upstream(t)
	requireOK(t, cli(t, nil, d.flags("revoke", "--name", "a")...))
	crl := filepath.Join(d.state, "crl.pem")
	older, err := os.ReadFile(crl)
	require.NoError(t, err)
	p := startProxy(t, d, upURL, nil, "--access-file", rules)
	requireOK(t, cli(t, nil, d.flags("revoke", "--name", "b")...))
	status := func(name string) string {
		r := curlClient(t, d, name, "-w", "%{http_code}", "-o", "/dev/null", p.url("/status"))
		return r.stdout
	}
	require.Eventually(t, func() bool { return status("b") == "000" }, 2*time.Second, 50*time.Millisecond, "b revoked")
	require.Equal(t, "200", status("pg-backup-user"))

	// An older CRL (it revokes a but not b) copied over the newer one.
	require.NoError(t, os.WriteFile(crl+".tmp", older, 0o644))
	require.NoError(t, os.Rename(crl+".tmp", crl))
	p.waitLog(t, "older than number")
	assert.Equal(t, "000", status("b"), "a rolled-back CRL un-revokes nothing")
	// The CRL deleted.
	require.NoError(t, os.Remove(crl))
	p.waitLog(t, "is gone; the last one")
	assert.Equal(t, "000", status("a"))
	assert.Equal(t, "000", status("b"))
	// The rules deleted: the last good rules stay (* none).
	require.NoError(t, os.Remove(rules))
	p.waitLog(t, "the last good rules (2 names) stay in force")
	r := curlClient(t, d, "pg-backup-user", "-w", "%{http_code}", "-o", "/dev/null", "-X", "POST", p.url("/operations"))
	assert.Equal(t, "403", r.stdout, "no rules file now does not mean everything allowed")

	// A typo in the rules file named at start stops serve with a clear line.
	r = cli(t, nil, d.flags("serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--access-file", rules+"-typo")...)
	requireOneLineError(t, r, 1, "does not exist (it was named explicitly")
}
