package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The issue's "Done when": init and issue-client make files openssl accepts.
func TestInitAndIssueClientVerifyWithOpenSSL(t *testing.T) {
	d := newDirs(t)
	r := cli(t, nil, d.flags("init", "--hostname", "barman1")...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "created  cluster CA")
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem")...))

	root := filepath.Join(d.tpa, "root.crt")
	for _, name := range []string{"pem", "pg-backup-user"} {
		out := openssl(t, "verify", "-CAfile", root, "-purpose", "sslclient", filepath.Join(d.tpa, name+".crt"))
		assert.Contains(t, out, ": OK")
	}
	server := filepath.Join(d.tpa, "pg-backup-api.crt")
	out := openssl(t, "verify", "-CAfile", root, "-untrusted", server, "-purpose", "sslserver", server)
	assert.Contains(t, out, ": OK")
	out = openssl(t, "x509", "-noout", "-subject", "-ext", "subjectAltName,extendedKeyUsage", "-in", server)
	assert.Contains(t, out, "subject=CN = barman1")
	assert.Contains(t, out, "DNS:barman1, IP Address:127.0.0.1")
	assert.Contains(t, out, "TLS Web Server Authentication")

	// A second init keeps everything, byte for byte, and says so.
	before := tree(t, filepath.Dir(d.tpa))
	r = cli(t, nil, d.flags("init", "--hostname", "barman1")...)
	requireOK(t, r)
	assert.NotContains(t, r.stdout, "created")
	assert.Contains(t, r.stdout, "kept  cluster CA")
	assert.Equal(t, before, tree(t, filepath.Dir(d.tpa)))

	// list shows what was issued, as a table and as JSON.
	r = cli(t, nil, d.flags("list")...)
	requireOK(t, r)
	assert.Regexp(t, `(?m)^pem\s+client\s+[0-9A-F]+\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+valid\s`, r.stdout)
	r = cli(t, nil, d.flags("list", "--json")...)
	requireOK(t, r)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows))
	kinds := map[string]string{}
	for _, row := range rows {
		kinds[row["name"].(string)] = row["kind"].(string)
		assert.Equal(t, "valid", row["state"])
	}
	assert.Equal(t, map[string]string{
		"root": "root", "intermediate": "intermediate", "pg-backup-api": "server",
		"pg-backup-user": "client", "pem": "client",
	}, kinds)
}

func TestIssueClientRenewAndOwner(t *testing.T) {
	d := newDirs(t)
	requireOK(t, cli(t, nil, d.flags("init", "--hostname", "barman1")...))
	out := t.TempDir()
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem", "--out", out, "--days", "10")...))
	key := tree(t, out)["pem.key"]

	r := cli(t, nil, d.flags("issue-client", "--name", "pem", "--out", out)...)
	requireOneLineError(t, r, 1, "--renew")
	assert.Equal(t, key, tree(t, out)["pem.key"])

	r = cli(t, nil, d.flags("issue-client", "--name", "pem", "--out", out, "--renew")...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "renewed pem")
	assert.NotEqual(t, key, tree(t, out)["pem.key"])
	openssl(t, "verify", "-CAfile", filepath.Join(d.tpa, "root.crt"), filepath.Join(out, "pem.crt"))

	needs.Root(t, "--owner chowns")
	// The test's directories are root's 0700: the owner could not reach
	// its key there, so nothing is issued until they are opened.
	r = cli(t, nil, d.flags("issue-client", "--name", "agent", "--out", out, "--owner", "65534:65534")...)
	requireOneLineError(t, r, 1, "--owner 65534:65534: the owner could not read its key there: uid 65534 cannot reach files in")
	assert.NoFileExists(t, filepath.Join(out, "agent.key"))
	openPath(t, out)
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "agent", "--out", out, "--owner", "65534:65534")...))
	for _, f := range []string{"agent.crt", "agent.key"} {
		info, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err)
		st := info.Sys().(*syscall.Stat_t)
		assert.Equal(t, uint32(65534), st.Uid, f)
		assert.Equal(t, uint32(65534), st.Gid, f)
	}
}

func TestConcurrentIssueClientKeepsEveryRecord(t *testing.T) {
	d := newDirs(t)
	requireOK(t, cli(t, nil, d.flags("init", "--hostname", "barman1")...))
	const n = 8
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = cli(t, nil, d.flags("issue-client", "--name", "svc"+strconv.Itoa(i))...)
		}()
	}
	wg.Wait()
	for _, r := range results {
		requireOK(t, r)
	}
	r := cli(t, nil, d.flags("list", "--json")...)
	requireOK(t, r)
	var rows []struct{ Name, Serial string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows))
	names, serials := map[string]bool{}, map[string]bool{}
	for _, row := range rows {
		names[row.Name], serials[row.Serial] = true, true
	}
	for i := range n {
		assert.True(t, names["svc"+strconv.Itoa(i)], "record of svc%d", i)
	}
	assert.Len(t, serials, len(rows), "every serial distinct")
}

func TestAdoptOpenSSLCAFromCommandLine(t *testing.T) {
	old := t.TempDir()
	caKey, caCert := filepath.Join(old, "CA.key"), filepath.Join(old, "CA.crt")
	openssl(t, "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-days", "3650",
		"-subj", "/CN=old.CA", "-keyout", caKey, "-out", caCert)
	d := newDirs(t)
	r := cli(t, nil, d.flags("init", "--hostname", "barman1", "--ca-cert", caCert, "--ca-key", caKey)...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "imported")
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem")...))
	openssl(t, "verify", "-CAfile", caCert, "-purpose", "sslclient", filepath.Join(d.tpa, "pem.crt"))
}

func TestNoCAKeyOnThisHost(t *testing.T) {
	src := newDirs(t)
	requireOK(t, cli(t, nil, src.flags("init", "--hostname", "barman1")...))
	d := newDirs(t)
	require.NoError(t, os.MkdirAll(d.tpa, 0o700))
	for _, f := range []string{"root.crt", "pg-backup-api.crt", "pg-backup-api.key"} {
		data, err := os.ReadFile(filepath.Join(src.tpa, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(d.tpa, f), data, 0o600))
	}
	r := cli(t, nil, d.flags("init", "--hostname", "barman1")...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "not issue certificates")
	requireOneLineError(t, cli(t, nil, d.flags("issue-client", "--name", "pem")...), 1, "CA key is not on this host")
}

// Bad input: one line, a non-zero exit, and nothing written or half-written.
func TestBadInputLosesNothing(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.key")
	require.NoError(t, os.WriteFile(garbage, []byte("-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n"), 0o600))
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))

	tests := []struct {
		name  string
		setup func(t *testing.T, d dirs) []string // returns the args
		code  int
		want  string
	}{
		{"bad client name", func(t *testing.T, d dirs) []string {
			return d.flags("issue-client", "--name", "../../etc/shadow")
		}, 2, "invalid client name"},
		{"bad cluster name", func(t *testing.T, d dirs) []string {
			return d.flags("init", "--cluster-name", "a b", "--hostname", "h")
		}, 2, "invalid cluster name"},
		{"garbage CA key", func(t *testing.T, d dirs) []string {
			ca := newDirs(t)
			requireOK(t, cli(t, nil, ca.flags("init", "--hostname", "x")...))
			return d.flags("init", "--hostname", "h", "--ca-cert", filepath.Join(ca.tpa, "root.crt"), "--ca-key", garbage)
		}, 1, "reading key"},
		{"unreadable CA key", func(t *testing.T, d dirs) []string {
			ca := newDirs(t)
			requireOK(t, cli(t, nil, ca.flags("init", "--hostname", "x")...))
			return d.flags("init", "--hostname", "h", "--ca-cert", filepath.Join(ca.tpa, "root.crt"), "--ca-key", t.TempDir())
		}, 1, "reading key"},
		{"missing out dir", func(t *testing.T, d dirs) []string {
			return d.flags("issue-client", "--name", "pem", "--out", filepath.Join(d.tpa, "nope"))
		}, 1, "does not exist"},
		{"state dir under a file", func(t *testing.T, d dirs) []string {
			return []string{"init", "--hostname", "h", "--tpa-dir", d.tpa, "--state-dir", filepath.Join(notDir, "state")}
		}, 1, "not a directory"},
		{"unknown key type", func(t *testing.T, d dirs) []string {
			return d.flags("issue-client", "--name", "pem", "--key-type", "ed448")
		}, 2, "unknown key type"},
		{"truncated certificate", func(t *testing.T, d dirs) []string {
			crt := filepath.Join(d.tpa, "pg-backup-user.crt")
			data, err := os.ReadFile(crt)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(crt, data[:len(data)/2], 0o644))
			return d.flags("init", "--hostname", "barman1")
		}, 1, "pg-backup-user.crt"},
		{"truncated server certificate at serve", func(t *testing.T, d dirs) []string {
			// Without the CA key, serve uses the files as they are.
			require.NoError(t, os.Rename(filepath.Join(d.state, "intermediate.key"), filepath.Join(d.state, "intermediate.key.away")))
			crt := filepath.Join(d.tpa, "pg-backup-api.crt")
			data, err := os.ReadFile(crt)
			require.NoError(t, err)
			// Cut inside the intermediate: the leaf alone would fail clients.
			require.NoError(t, os.WriteFile(crt, data[:len(data)*3/4], 0o644))
			return d.flags("serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--access-file=")
		}, 1, "loading the server certificate"},
		{"read-only TPA dir", func(t *testing.T, d dirs) []string {
			makeReadOnly(t, d.tpa)
			return d.flags("issue-client", "--name", "pem")
		}, 1, "cannot write into"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDirs(t)
			requireOK(t, cli(t, nil, d.flags("init", "--hostname", "barman1")...))
			args := tc.setup(t, d)
			before := tree(t, filepath.Dir(d.tpa))
			requireOneLineError(t, cli(t, nil, args...), tc.code, tc.want)
			after := tree(t, filepath.Dir(d.tpa))
			assert.Equal(t, keysOf(before), keysOf(after), "no file appeared or vanished")
			assert.Equal(t, before, after, "no file changed")
		})
	}
}

// makeReadOnly makes dir unwritable even for root (chattr +i) and undoes it
// when the test ends. Without root, mode 0500 does the same.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		require.NoError(t, os.Chmod(dir, 0o500))
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		needs.Skip(t, "as root, a read-only directory needs chattr +i (apt-get install e2fsprogs; a file system that supports it), which failed here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
}

func keysOf(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return fmt.Sprint(sortStrings(ks))
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && strings.Compare(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
	return s
}

// A hand-over bundle unpacks to files that curl and Python requests use
// against the proxy.
func TestBundleWorksWithCurlAndPython(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	bundle := filepath.Join(t.TempDir(), "pem.tar.gz")
	dir := filepath.Join(t.TempDir(), "pem-bundle")
	r := cli(t, nil, d.flags("issue-client", "--name", "pem", "--bundle", bundle, "--bundle-dir", dir)...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "bundle      "+bundle)
	info, err := os.Stat(bundle)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the archive holds a key")

	unpacked := t.TempDir()
	out, err := exec.Command("tar", "-xzf", bundle, "-C", unpacked).CombinedOutput()
	require.NoError(t, err, "%s", out)
	files := tree(t, filepath.Join(unpacked, "pem"))
	assert.Equal(t, tree(t, dir), files, "--bundle-dir holds the same files")
	assert.Contains(t, files["README.txt"], "curl --cacert root.crt --cert pem.crt --key pem.key https://localhost/diagnose")
	keyInfo, err := os.Stat(filepath.Join(unpacked, "pem", "pem.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), keyInfo.Mode().Perm())

	_, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil)
	work := filepath.Join(unpacked, "pem")
	curl := exec.Command("curl", "-sS", "--cacert", "root.crt", "--cert", "pem.crt", "--key", "pem.key", p.url("/diagnose"))
	curl.Dir = work
	out, err = curl.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.True(t, strings.HasPrefix(string(out), `{"global"`), "%s", out)

	if exec.Command("python3", "-c", "import requests").Run() != nil {
		needs.Skip(t, "python3 with requests is not installed (apt-get install python3-requests)")
	}
	py := exec.Command("python3", "-c", `import requests, sys
r = requests.get(sys.argv[1], cert=("pem.crt", "pem.key"), verify="root.crt", timeout=10)
r.raise_for_status()
print(sorted(r.json()["servers"]))`, p.url("/diagnose"))
	py.Dir = work
	out, err = py.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "['pg']\n", string(out))

	// An existing bundle is never overwritten.
	requireOneLineError(t, cli(t, nil, d.flags("issue-client", "--name", "other", "--bundle", bundle)...), 1, "already exists")
}

// mountTiny mounts a small tmpfs on dir (root only) and unmounts it when the
// test ends.
func mountTiny(t *testing.T, dir string) {
	t.Helper()
	needs.Root(t, "a full file system: mounting a small tmpfs")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		needs.Skip(t, "cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// fill leaves only a few bytes free on dir's file system.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	for {
		if _, err := f.Write(buf[:1]); err != nil {
			break
		}
	}
}

// A full state or TPA directory during issue-client: one line, no file
// half-written, nothing issued, the inventory intact.
func TestIssueClientOnAFullDisk(t *testing.T) {
	for _, which := range []string{"state", "tpa"} {
		t.Run(which+" dir full", func(t *testing.T) {
			d := newDirs(t)
			full := map[string]string{"state": d.state, "tpa": d.tpa}[which]
			mountTiny(t, full)
			requireOK(t, cli(t, nil, d.flags("init", "--hostname", "barman1")...))
			inventory := tree(t, d.state)["inventory.json"]
			fill(t, full)
			before := tree(t, filepath.Dir(d.tpa))

			r := cli(t, nil, d.flags("issue-client", "--name", "pem")...)
			requireOneLineError(t, r, 1, "no space left on device")
			after := tree(t, filepath.Dir(d.tpa))
			assert.Equal(t, keysOf(before), keysOf(after), "no file appeared or vanished")
			assert.Equal(t, inventory, after["state/inventory.json"], "inventory intact")
			assert.NoFileExists(t, filepath.Join(d.tpa, "pem.key"))
		})
	}
}

// openPath makes dir and the test's directories above it (up to the
// system's temporary directory) 0755, so that other users reach dir.
func openPath(t *testing.T, dir string) {
	t.Helper()
	for p := dir; p != os.TempDir() && p != filepath.Dir(p); p = filepath.Dir(p) {
		require.NoError(t, os.Chmod(p, 0o755))
	}
}

// issue-client checks every output before it issues: a bundle path or
// directory that cannot be written, an owner that could not reach its key,
// an output directory that does not take files. Then nothing is issued:
// no file appears, the inventory is unchanged.
func TestIssueClientChecksOutputsFirst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, d dirs) []string
		want  string
	}{
		{"bundle-dir under a file", func(t *testing.T, d dirs) []string {
			f := filepath.Join(t.TempDir(), "file")
			require.NoError(t, os.WriteFile(f, nil, 0o600))
			return []string{"--bundle-dir", filepath.Join(f, "pem")}
		}, "--bundle-dir: bundle directory"},
		{"bundle-dir not empty", func(t *testing.T, d dirs) []string {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "x"), nil, 0o600))
			return []string{"--bundle-dir", dir}
		}, "is not empty"},
		{"bundle-dir in a read-only directory", func(t *testing.T, d dirs) []string {
			dir := t.TempDir()
			makeReadOnly(t, dir)
			return []string{"--bundle-dir", filepath.Join(dir, "new", "pem")}
		}, "--bundle-dir: cannot write into"},
		{"bundle in a missing directory", func(t *testing.T, d dirs) []string {
			return []string{"--bundle", filepath.Join(t.TempDir(), "nope", "pem.tar.gz")}
		}, "--bundle: the bundle's directory"},
		{"bundle in a read-only directory", func(t *testing.T, d dirs) []string {
			dir := t.TempDir()
			makeReadOnly(t, dir)
			return []string{"--bundle", filepath.Join(dir, "pem.tar.gz")}
		}, "--bundle: cannot write into"},
		{"bundle exists", func(t *testing.T, d dirs) []string {
			f := filepath.Join(t.TempDir(), "pem.tar.gz")
			require.NoError(t, os.WriteFile(f, nil, 0o600))
			return []string{"--bundle", f}
		}, "already exists"},
		{"renew into a read-only directory", func(t *testing.T, d dirs) []string {
			out := t.TempDir()
			requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "pem", "--out", out)...))
			makeReadOnly(t, out)
			return []string{"--out", out, "--renew"}
		}, "cannot write into"},
		{"owner cannot reach the key", func(t *testing.T, d dirs) []string {
			needs.Root(t, "to give files to another user")
			return []string{"--owner", "65534:65534"} // the TPA dir is root's 0700
		}, "--owner 65534:65534: the owner could not read its key there"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDirs(t)
			requireOK(t, cli(t, nil, d.flags("init", "--hostname", "barman1")...))
			extra := tc.setup(t, d)
			before := tree(t, filepath.Dir(d.tpa))
			r := cli(t, nil, d.flags(append([]string{"issue-client", "--name", "pem"}, extra...)...)...)
			requireOneLineError(t, r, 1, tc.want)
			after := tree(t, filepath.Dir(d.tpa))
			assert.Equal(t, keysOf(before), keysOf(after), "no file appeared or vanished")
			assert.Equal(t, before, after, "nothing issued, the inventory unchanged")
		})
	}
}
