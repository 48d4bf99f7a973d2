package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// assertShape checks that a JSON object has every required key and no key
// outside required and optional: the documented shape, exactly.
func assertShape(t *testing.T, what string, raw json.RawMessage, required []string, optional ...string) {
	t.Helper()
	var obj map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &obj), "%s: %s", what, raw)
	allowed := map[string]bool{}
	for _, k := range append(append([]string{}, required...), optional...) {
		allowed[k] = true
	}
	var got []string
	for k := range obj {
		got = append(got, k)
		assert.True(t, allowed[k], "%s: undocumented key %q", what, k)
	}
	for _, k := range required {
		_, ok := obj[k]
		assert.True(t, ok, "%s: missing key %q (has %v)", what, k, sort.StringSlice(got))
	}
}

// jsonOut runs a command that must succeed and returns its stdout.
func jsonOut(t *testing.T, args ...string) json.RawMessage {
	t.Helper()
	r := cli(t, nil, args...)
	requireOK(t, r)
	return json.RawMessage(r.stdout)
}

func elements(t *testing.T, raw json.RawMessage) []json.RawMessage {
	t.Helper()
	var list []json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &list), "%s", raw)
	require.NotEmpty(t, list)
	return list
}

var (
	recordKeys = []string{"name", "kind", "serial", "subject", "not_before", "not_after", "sha256", "path", "issued_at", "state"}
	recordOpt  = []string{"revoked_at", "replaced"}
)

// Every reporting command's --json has the shape README documents
// ("Machine-readable output").
func TestJSONShapes(t *testing.T) {
	t.Parallel()
	fresh := newDirs(t)
	initOut := jsonOut(t, fresh.flags("init", "--json", "--cluster-name", "c", "--hostname", "localhost")...)
	assertShape(t, "init", initOut, []string{"steps", "test"})
	var io struct {
		Steps []json.RawMessage `json:"steps"`
		Test  string            `json:"test"`
	}
	require.NoError(t, json.Unmarshal(initOut, &io))
	assert.Contains(t, io.Test, "curl --cacert "+fresh.tpa+"/root.crt")
	for _, s := range io.Steps {
		assertShape(t, "init step", s, []string{"action", "what", "path", "note"})
	}

	d := fresh
	bundle := filepath.Join(t.TempDir(), "pem.tar.gz")
	issued := jsonOut(t, d.flags("issue-client", "--name", "pem", "--json", "--bundle", bundle)...)
	assertShape(t, "issue-client", issued, []string{"name", "serial", "not_before", "not_after", "renewed", "certificate", "key", "bundle", "bundle_dir"})
	var is struct{ Name, Serial, Key, Bundle string }
	require.NoError(t, json.Unmarshal(issued, &is))
	assert.Equal(t, "pem", is.Name)
	assert.Equal(t, filepath.Join(d.tpa, "pem.key"), is.Key)
	assert.Equal(t, bundle, is.Bundle)

	for _, row := range elements(t, jsonOut(t, d.flags("list", "--json")...)) {
		assertShape(t, "list", row, recordKeys, recordOpt...)
	}
	showKeys := append(append([]string{}, recordKeys...), "recorded", "issuer", "sans", "key_type", "files")
	for _, args := range [][]string{{"pem"}, {"--serial", is.Serial}, {"--cert", filepath.Join(d.tpa, "root.crt")}} {
		shown := jsonOut(t, d.flags(append([]string{"show", "--json"}, args...)...)...)
		assertShape(t, "show", shown, showKeys, recordOpt...)
		var files struct {
			Files json.RawMessage `json:"files"`
		}
		require.NoError(t, json.Unmarshal(shown, &files))
		assertShape(t, "show files", files.Files, []string{"certificate", "key"})
	}

	rules := filepath.Join(t.TempDir(), "access")
	require.NoError(t, os.WriteFile(rules, []byte("pem read\n"), 0o644))
	access := jsonOut(t, "check-access", "--json", "--access-file", rules, "--name", "pem", "GET", "/servers/pg-main/operations?limit=5")
	assertShape(t, "check-access", access, []string{"client", "method", "path", "allowed", "rule"})
	var ac struct {
		Path    string
		Allowed bool
	}
	require.NoError(t, json.Unmarshal(access, &ac))
	assert.Equal(t, "/servers/pg-main/operations", ac.Path, "the query string is not part of the path")
	assert.True(t, ac.Allowed)
	denied := cli(t, nil, "check-access", "--json", "--access-file", rules, "--name", "pem", "POST", "/operations")
	assert.Equal(t, 1, denied.code, "denied still exits 1")
	assertShape(t, "check-access denied", json.RawMessage(denied.stdout), []string{"client", "method", "path", "allowed", "rule"})

	_, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil)
	assertShape(t, "status", jsonOut(t, "status", "--json", "--admin-listen", p.admin), []string{"admin", "ready", "reason"})
	down := cli(t, nil, "status", "--json", "--admin-listen", closedAddr(t), "--timeout", "2s")
	assert.Equal(t, 1, down.code)
	assertShape(t, "status down", json.RawMessage(down.stdout), []string{"admin", "ready", "reason"})

	// The shape, whatever the checks found (a loaded machine may fail one).
	r := cli(t, nil, d.flags("doctor", "--json", "--listen", p.addr, "--admin-listen", p.admin, "--upstream", upURL, "--hostname", "localhost", "--settings-file", "/dev/null", "--service-user", "")...)
	require.Contains(t, []int{0, 1}, r.code, "stderr: %s", r.stderr)
	for _, line := range elements(t, json.RawMessage(r.stdout)) {
		assertShape(t, "doctor", line, []string{"area", "status", "detail"}, "fix")
	}

	revoked := jsonOut(t, d.flags("revoke", "--json", "--name", "pem")...)
	assertShape(t, "revoke", revoked, []string{"revoked", "already_revoked", "number", "record", "crls"})
	var rv struct {
		Revoked []json.RawMessage `json:"revoked"`
	}
	require.NoError(t, json.Unmarshal(revoked, &rv))
	require.Len(t, rv.Revoked, 1)
	assertShape(t, "revoked entry", rv.Revoked[0], []string{"name", "serial"})
	for _, row := range elements(t, jsonOut(t, d.flags("list", "--json", "--all")...)) {
		assertShape(t, "list --all", row, recordKeys, recordOpt...)
	}
}

// check-access matches a path with a query string as serve does: without it.
func TestCheckAccessIgnoresQuery(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "access")
	require.NoError(t, os.WriteFile(rules, []byte("pem read\n"), 0o644))
	r := cli(t, nil, "check-access", "--access-file", rules, "--name", "pem", "GET", "/servers/pg-main/operations?limit=5#x")
	requireOK(t, r)
	assert.Contains(t, r.stdout, "allowed: "+rules+":1: pem read")
	requireOneLineError(t, cli(t, nil, "check-access", "--access-file", rules, "--name", "pem", "GET", "diagnose"), 2, "not a request serve would accept")
}

// show: one certificate with what list says plus subject, SANs, issuer,
// fingerprint and files; by name, serial or file.
func TestShow(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem")...))
	r := cli(t, nil, d.flags("show", "pg-backup-api")...)
	requireOK(t, r)
	fp := openssl(t, "x509", "-noout", "-fingerprint", "-sha256", "-in", filepath.Join(d.tpa, "pg-backup-api.crt"))
	for _, want := range []string{
		"name         pg-backup-api\n", "kind         server\n", "state        valid\n",
		"subject      CN=localhost\n", "issuer       CN=test.server-CA\n", "SANs         DNS:localhost, IP:127.0.0.1\n",
		"SHA-256      " + fp[len("sha256 Fingerprint="):],
		"certificate  " + filepath.Join(d.tpa, "pg-backup-api.crt") + "\n",
		"key          " + filepath.Join(d.tpa, "pg-backup-api.key") + "\n",
	} {
		assert.Contains(t, r.stdout, want)
	}
	assert.Equal(t, r.stdout, cli(t, nil, d.flags("show", "--name", "pg-backup-api")...).stdout, "--name NAME is NAME")

	// A renewal replaces the file: the old serial is shown from the
	// inventory, and says its file now holds another certificate.
	var old struct{ Serial string }
	require.NoError(t, json.Unmarshal(jsonOut(t, d.flags("show", "pem", "--json")...), &old))
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem", "--renew")...))
	r = cli(t, nil, d.flags("show", "--serial", old.Serial)...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "state        valid (replaced)\n")
	assert.Contains(t, r.stdout, "holds another certificate")
	var cur struct{ Serial string }
	require.NoError(t, json.Unmarshal(jsonOut(t, d.flags("show", "pem", "--json")...), &cur))
	assert.NotEqual(t, old.Serial, cur.Serial, "NAME shows the current certificate")

	// A file from elsewhere is shown, and said not to be in the inventory.
	other := pkiFor(t)
	r = cli(t, nil, d.flags("show", "--cert", filepath.Join(other.tpa, "pg-backup-user.crt"))...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "kind         (not in this host's inventory)\n")
	assert.Contains(t, r.stdout, "key          "+filepath.Join(other.tpa, "pg-backup-user.key")+"\n")
}
