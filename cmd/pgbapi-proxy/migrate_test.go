package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tpaDirs copies a TPA host's /etc/tpa/pg-backup-api into a fresh TPA dir,
// as an operator keeps it when replacing Apache.
func tpaDirs(t *testing.T, f pkitest.TPAFixture) dirs {
	t.Helper()
	d := newDirs(t)
	require.NoError(t, os.MkdirAll(d.tpa, 0o700))
	entries, err := os.ReadDir(f.Dir)
	require.NoError(t, err)
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		data, err := os.ReadFile(filepath.Join(f.Dir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(d.tpa, e.Name()), data, info.Mode().Perm()))
	}
	return d
}

// trustEnv has init install the CA into a scratch trust directory.
func trustEnv(dir string) []string {
	return []string{envPrefix + "NO_SYSTEM_TRUST=false", envPrefix + "SYSTEM_TRUST_DIR=" + dir}
}

func listJSON(t *testing.T, d dirs) []map[string]any {
	t.Helper()
	r := cli(t, nil, d.flags("list", "--json", "--all")...)
	requireOK(t, r)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows))
	return rows
}

func rowNamed(rows []map[string]any, name string) map[string]any {
	for _, r := range rows {
		if r["name"] == name {
			return r
		}
	}
	return nil
}

// issue 12, from the command line: init adopts what TPA left, list and
// doctor show it, revoke works on it with and without the CA key, never
// on another CA's certificate, and a revocation that cannot be written
// leaves list as it was.
func TestMigrateATPAHost(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{ExtraDNS: []string{"barman1.example.com"}, ExtraIPs: []string{"10.1.2.3"}})
	other := pkitest.TPAHost(t, pkitest.Options{Cluster: "other"})
	f.Client(t, "expired-agent", -1) // signed by the cluster CA, expired yesterday
	for _, withKey := range []bool{true, false} {
		t.Run(map[bool]string{true: "with the CA key", false: "without the CA key"}[withKey], func(t *testing.T) {
			d := tpaDirs(t, f)
			for _, ext := range []string{".crt", ".key"} {
				data, err := os.ReadFile(strings.TrimSuffix(other.Cert("pg-backup-user"), ".crt") + ext)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(d.tpa, "stranger"+ext), data, 0o600))
			}
			require.NoError(t, os.WriteFile(filepath.Join(d.tpa, "junk.crt"), []byte("not a certificate\n"), 0o644))
			trust := t.TempDir()
			args := d.flags("init")
			if withKey {
				args = append(args, "--ca-cert", f.CACert, "--ca-key", f.CAKey)
			}
			r := cli(t, trustEnv(trust), args...)
			requireOK(t, r)
			assert.Regexp(t, `(?m)^adopted\s+certificate pemagent-barman1.crt\s.*with its key`, r.stdout)
			assert.Regexp(t, `(?m)^adopted\s+test client certificate\s`, r.stdout)
			// What it covers is the certificate's names, not every name
			// recorded (the machine's defaults are added to those).
			assert.Regexp(t, `(?m)^adopted\s+server certificate\s.*\(covers \[barman1 barman1.example.com\] \[10.1.2.3\]; .*localhost, 127.0.0.1`, r.stdout)
			if withKey {
				assert.Regexp(t, `(?m)^adopted\s+server certificate\s.*serve will issue one that also covers`, r.stdout)
			} else {
				assert.Regexp(t, `(?m)^adopted\s+server certificate\s.*recorded for later: the CA key is not on this host, so serve uses this one as it is`, r.stdout)
			}
			meta, err := pki.ReadMeta(pki.Layout{TPADir: d.tpa, StateDir: d.state})
			require.NoError(t, err)
			assert.Equal(t, pki.RSA2048, meta.KeyType, "an RSA CA keeps the PKI RSA (serve adds an ECDSA companion)")
			again := cli(t, nil, d.flags("init", "--key-type", "ecdsa-p384")...)
			requireOK(t, again)
			assert.Regexp(t, `(?m)^left alone\s+key type\s.*stays rsa-2048, chosen when this PKI was set up; --key-type ecdsa-p384 is for a new PKI`, again.stdout)
			assert.Len(t, regexp.MustCompile(`(?m)\s`+regexpQuote(filepath.Join(d.tpa, "root.crt"))+`(\s|$)`).FindAllString(r.stdout, -1), 1, "one line for root.crt:\n%s", r.stdout)
			assert.Regexp(t, `(?m)^left alone\s+certificate stranger.crt\s.*signed by another CA \(CN=other.CA\)`, r.stdout)
			assert.Regexp(t, `(?m)^created\s+CA in the system trust store\s+`+regexpQuote(filepath.Join(trust, "tpa.crt")), r.stdout, "the cluster name comes from CN=tpa.CA")
			assert.Contains(t, r.stdout, "Test it: curl --capath "+trust+" --cert ", "no --cacert once the CA is trusted; --capath for a directory no update command reads")
			assert.Contains(t, r.stdout, "https://barman1/diagnose", "by the inventory host name")

			r = cli(t, nil, d.flags("list")...)
			requireOK(t, r)
			assert.Regexp(t, `(?m)^pemagent-barman1\s+client\s+[0-9A-F]+\s+\S+ \S+\s+valid \(adopted\)`, r.stdout)
			assert.NotContains(t, r.stdout, "stranger")
			row := rowNamed(listJSON(t, d), "pemagent-barman1")
			require.NotNil(t, row)
			assert.Equal(t, true, row["adopted"])

			// doctor checks the adopted certificates like issued ones.
			r = cli(t, nil, d.flags("doctor", "--json", "--listen", "127.0.0.1:1", "--admin-listen", "127.0.0.1:1",
				"--upstream", "http://127.0.0.1:1", "--hostname", "barman1.example.com", "--settings-file", "/dev/null")...)
			assert.Contains(t, r.stdout, "client pemagent-barman1 verifies against the cluster CA")
			assert.Contains(t, r.stdout, "client pemagent-barman1 expires")
			assert.NotContains(t, r.stdout, "does not cover barman1.example.com")
			var lines []doctorLine
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &lines))
			for _, l := range lines {
				if strings.Contains(l.Detail, "junk.crt") {
					assert.Equal(t, "warn", l.Status, "a file init left alone is not a failure: %+v", l)
					assert.NotContains(t, l.Fix, "issue-client")
				}
				if l.Area == "end-to-end" {
					want := map[bool]string{true: "a 10-minute certificate", false: filepath.Join(d.tpa, "pg-backup-user.crt")}[withKey]
					assert.Contains(t, l.Detail, want, "without the CA key, the test client is used")
				}
			}

			// An expired certificate of the cluster CA, revoked by file:
			// said to be refused anyway and left out of the record.
			r = cli(t, nil, d.flags("revoke", "--cert", filepath.Join(d.tpa, "expired-agent.crt"))...)
			requireOK(t, r)
			assert.Regexp(t, `revoked expired-agent \(serial [0-9A-F]+; it expired on \d{4}-\d{2}-\d{2}, so it is refused anyway and is not listed in the revocation record or the CRL\)`, r.stdout)

			// Revoke another CA's certificate: refused, nothing changes.
			before := tree(t, filepath.Dir(d.tpa))
			requireOneLineError(t, cli(t, nil, d.flags("revoke", "--cert", filepath.Join(d.tpa, "stranger.crt"))...), 1, "is not signed by the cluster CA")
			assert.Equal(t, before, tree(t, filepath.Dir(d.tpa)))

			// A revocation that cannot be written: nothing changes, and
			// the error says so.
			listBefore := cli(t, nil, d.flags("list", "--all")...).stdout
			makeReadOnly(t, d.state)
			requireOneLineError(t, cli(t, nil, d.flags("revoke", "--name", "pemagent-barman1")...), 1, "nothing was revoked")
			assert.Equal(t, listBefore, cli(t, nil, d.flags("list", "--all")...).stdout)
			undoReadOnly(t, d.state)

			// By serial as openssl x509 -text prints it (lower case, colons).
			serial := strings.TrimSpace(strings.TrimPrefix(openssl(t, "x509", "-noout", "-serial", "-in", filepath.Join(d.tpa, "pemagent-barman1.crt")), "serial="))
			r = cli(t, nil, d.flags("revoke", "--serial", colonsLower(serial))...)
			requireOK(t, r)
			assert.Contains(t, r.stdout, "revoked pemagent-barman1 (serial "+serial+")")
			assert.Contains(t, r.stdout, "revocation record")
			assert.Regexp(t, `(?m)^pemagent-barman1\s.*revoked \(adopted\)`, cli(t, nil, d.flags("list")...).stdout)
			if withKey {
				assert.Contains(t, r.stdout, "CRL ")
				crl := filepath.Join(d.tpa, "crl.pem")
				out, err := exec.Command("openssl", "verify", "-crl_check", "-CAfile", filepath.Join(d.tpa, "root.crt"), "-CRLfile", crl, filepath.Join(d.tpa, "pemagent-barman1.crt")).CombinedOutput()
				require.Error(t, err)
				assert.Contains(t, string(out), "certificate revoked")
				out, err = exec.Command("openssl", "verify", "-crl_check", "-CAfile", filepath.Join(d.tpa, "root.crt"), "-CRLfile", crl, filepath.Join(d.tpa, "pg-backup-user.crt")).CombinedOutput()
				require.NoError(t, err, "%s", out)
			} else {
				assert.Contains(t, r.stdout, "no CRL signed: the cluster CA key is not on this host")
			}
			assert.FileExists(t, filepath.Join(d.state, "revoked.json"))
			r = cli(t, nil, d.flags("doctor", "--listen", "127.0.0.1:1", "--admin-listen", "127.0.0.1:1",
				"--upstream", "http://127.0.0.1:1", "--settings-file", "/dev/null")...)
			assert.Regexp(t, `(?m)^ok\s+revocation\s+1 certificate\(s\) revoked, revocation record #\d+`, r.stdout)
			assert.NotContains(t, r.stdout, "pemagent-barman1 verifies", "a revoked certificate is not checked as a client")
		})
	}
}

func regexpQuote(s string) string {
	return strings.NewReplacer(".", `\.`, "+", `\+`, "(", `\(`, ")", `\)`).Replace(s)
}

func colonsLower(h string) string {
	h = strings.ToLower(h)
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// undoReadOnly ends makeReadOnly before the test does.
func undoReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		require.NoError(t, os.Chmod(dir, 0o700))
		return
	}
	out, err := exec.Command("chattr", "-i", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// issue 12: the documented curl, without --cacert, works by the host's
// inventory name once init put the CA into the trust store (a scratch
// one here, read through --capath as update-ca-certificates' hash links
// are), for the old pg-backup-user and PEM agent certificates alike.
func TestDocumentedCurlWithoutCACert(t *testing.T) {
	needs.Command(t, "curl", "curl")
	// A cluster of its own (see TestReplacingApacheWalkthrough).
	f := pkitest.TPAHost(t, pkitest.Options{Cluster: "docurl"})
	d := tpaDirs(t, f) // no CA key: the TPA default
	trust := t.TempDir()
	requireOK(t, cli(t, trustEnv(trust), d.flags("init")...))
	openssl(t, "rehash", trust)

	_, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil)
	for _, client := range []string{"pg-backup-user", "pemagent-barman1"} {
		r := runCmd(t, exec.Command("curl", "-sS", "--max-time", "30", "--capath", trust, "--resolve", "barman1:"+p.port()+":127.0.0.1",
			"--cert", filepath.Join(d.tpa, client+".crt"), "--key", filepath.Join(d.tpa, client+".key"),
			"-X", "GET", "https://barman1:"+p.port()+"/diagnose"))
		require.Equal(t, 0, r.code, "%s: %s", client, r.stderr)
		assert.True(t, strings.HasPrefix(r.stdout, `{"global"`), "%s: %s", client, r.stdout)
	}
	// Without the trust store entry curl refuses the server: the scratch
	// directory is what made the difference.
	r := runCmd(t, exec.Command("curl", "-sS", "--max-time", "30", "--capath", t.TempDir(), "--cacert", "/dev/null", "--resolve", "barman1:"+p.port()+":127.0.0.1",
		"--cert", filepath.Join(d.tpa, "pg-backup-user.crt"), "--key", filepath.Join(d.tpa, "pg-backup-user.key"), "https://barman1:"+p.port()+"/diagnose"))
	assert.NotEqual(t, 0, r.code)
}

// With the CA key on the host, today's proxy already enforces the CRL that
// revoke signs with TPA's CA (no keyUsage) for an adopted certificate, and
// the server certificate it issues keeps every adopted name, the adopted
// one kept as pg-backup-api.crt.old.
func TestAdoptedCertificatesInTheRunningProxy(t *testing.T) {
	needs.Command(t, "curl", "curl")
	f := pkitest.TPAHost(t, pkitest.Options{ExtraDNS: []string{"barman1.example.com"}, ExtraIPs: []string{"10.1.2.3"}})
	d := tpaDirs(t, f)
	requireOK(t, cli(t, nil, d.flags("init", "--ca-cert", f.CACert, "--ca-key", f.CAKey)...))
	adopted, err := os.ReadFile(filepath.Join(d.tpa, "pg-backup-api.crt"))
	require.NoError(t, err)

	_, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil)
	curlAs := func(client, host string) result {
		return runCmd(t, exec.Command("curl", "-sS", "--max-time", "10", "--cacert", filepath.Join(d.tpa, "root.crt"),
			"--resolve", host+":"+p.port()+":127.0.0.1",
			"--cert", filepath.Join(d.tpa, client+".crt"), "--key", filepath.Join(d.tpa, client+".key"),
			"https://"+host+":"+p.port()+"/diagnose"))
	}
	for _, host := range []string{"barman1", "barman1.example.com"} {
		for _, client := range []string{"pg-backup-user", "pemagent-barman1"} {
			r := curlAs(client, host)
			require.Equal(t, 0, r.code, "%s by %s: %s", client, host, r.stderr)
		}
	}
	require.Eventually(t, func() bool {
		old, err := os.ReadFile(filepath.Join(d.tpa, "pg-backup-api.crt.old"))
		return err == nil && string(old) == string(adopted)
	}, 10*time.Second, 100*time.Millisecond, "the adopted server certificate is kept as .old")
	out := openssl(t, "x509", "-noout", "-ext", "subjectAltName", "-in", filepath.Join(d.tpa, "pg-backup-api.crt"))
	assert.Contains(t, out, "DNS:barman1, DNS:barman1.example.com")
	assert.Contains(t, out, "IP Address:10.1.2.3")

	requireOK(t, cli(t, nil, d.flags("revoke", "--name", "pemagent-barman1")...))
	revokedAt := time.Now()
	require.Eventually(t, func() bool { return curlAs("pemagent-barman1", "barman1").code != 0 }, 2*time.Second, 100*time.Millisecond,
		"the PEM agent's adopted certificate is refused within 2s")
	assert.Less(t, time.Since(revokedAt), 2*time.Second)
	r := curlAs("pg-backup-user", "barman1")
	assert.Equal(t, 0, r.code, r.stderr)
}

// issue 12: a name is one command away, and init says what it replaced.
func TestInitAddsANameLater(t *testing.T) {
	d := newDirs(t)
	requireOK(t, cli(t, nil, d.flags("init", "--hostname", "barman1", "--ip", "127.0.0.1")...))
	r := cli(t, nil, d.flags("init", "--hostname", "barman1.example.com")...)
	requireOK(t, r)
	assert.Regexp(t, `(?m)^replaced\s+server intermediate CA\s.*left out barman1\.example\.com`, r.stdout)
	assert.Regexp(t, `(?m)^replaced\s+server certificate\s.*does not cover barman1\.example\.com.*\(old pair kept as \.old\)`, r.stdout)
	assert.Regexp(t, `(?m)^updated\s+PKI settings\s`, r.stdout)
	out := openssl(t, "x509", "-noout", "-ext", "subjectAltName", "-in", filepath.Join(d.tpa, "pg-backup-api.crt"))
	assert.Contains(t, out, "DNS:barman1, DNS:barman1.example.com, IP Address:127.0.0.1")
	assert.FileExists(t, filepath.Join(d.tpa, "pg-backup-api.crt.old"))
	assert.FileExists(t, filepath.Join(d.state, "intermediate.crt.old"))
	assert.Regexp(t, `(?m)^intermediate\s.*valid \(replaced\)`, cli(t, nil, d.flags("list", "--all")...).stdout)

	// Asked again: nothing to do. Defaults (no --hostname) never add.
	before := tree(t, filepath.Dir(d.tpa))
	requireOK(t, cli(t, nil, d.flags("init", "--hostname", "barman1.example.com")...))
	requireOK(t, cli(t, nil, d.flags("init")...))
	assert.Equal(t, before, tree(t, filepath.Dir(d.tpa)))
}
