package main

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// makeCSR runs openssl req -new for a new key of newkey ("rsa:2048",
// "ec") with subj and any extra arguments; it returns the request and key
// paths.
func makeCSR(t *testing.T, newkey, subj string, extra ...string) (csr, key string) {
	t.Helper()
	dir := t.TempDir()
	csr, key = filepath.Join(dir, "req.csr"), filepath.Join(dir, "req.key")
	args := []string{"req", "-new", "-newkey", newkey, "-nodes", "-keyout", key, "-out", csr, "-subj", subj}
	if newkey == "ec" {
		args = append(args, "-pkeyopt", "ec_paramgen_curve:P-256")
	}
	openssl(t, append(args, extra...)...)
	return csr, key
}

// A certificate signed from a request made by openssl req -new (RSA and
// ECDSA) works with that key through the real proxy; only the
// certificate is written, recorded and bundled.
func TestIssueClientFromCSR(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	_, upURL := upstream(t)
	p := startProxy(t, d, upURL, nil)

	for _, tc := range []struct{ name, newkey, subj string }{
		{"svc-rsa", "rsa:2048", "/CN=svc-rsa"},
		{"svc-ec", "ec", "/CN=svc-ec"},
		{"svc-nocn", "ec", "/O=Acme"}, // an empty CN is set from --name
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr, key := makeCSR(t, tc.newkey, tc.subj)
			bundleDir := filepath.Join(t.TempDir(), "bundle")
			r := cli(t, nil, d.flags("issue-client", "--name", tc.name, "--csr", csr, "--bundle-dir", bundleDir)...)
			requireOK(t, r)
			assert.Contains(t, r.stdout, "the key stays where the request was made")
			crt := filepath.Join(d.tpa, tc.name+".crt")
			assert.FileExists(t, crt)
			assert.NoFileExists(t, filepath.Join(d.tpa, tc.name+".key"))
			out := openssl(t, "x509", "-noout", "-subject", "-ext", "basicConstraints,extendedKeyUsage", "-in", crt)
			assert.Contains(t, out, "subject=CN = "+tc.name+"\n", "CN=NAME only")
			assert.Contains(t, out, "CA:FALSE")
			assert.Contains(t, out, "TLS Web Client Authentication")
			openssl(t, "verify", "-CAfile", filepath.Join(d.tpa, "root.crt"), "-purpose", "sslclient", crt)

			files := tree(t, bundleDir)
			assert.Equal(t, []string{"README.txt", "root.crt", tc.name + ".crt"}, sortStrings(fileNames(files)), "no key in the bundle")
			assert.Contains(t, files["README.txt"], "never left its host")

			var rows []struct{ Name, Serial, Path string }
			r = cli(t, nil, d.flags("list", "--json")...)
			requireOK(t, r)
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rows))
			found := false
			for _, row := range rows {
				found = found || (row.Name == tc.name && row.Path == crt)
			}
			assert.True(t, found, "recorded in the inventory: %s", r.stdout)

			c := curlWith(t, d, crt, key, p.url("/diagnose"))
			require.Equal(t, 0, c.code, "curl: %s", c.stderr)
			assert.True(t, strings.HasPrefix(c.stdout, `{"global"`), c.stdout)
		})
	}

	// --out DIR gets the certificate and root.crt, no key.
	outDir := t.TempDir()
	csrOut, keyOut := makeCSR(t, "ec", "/CN=svc-out")
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "svc-out", "--csr", csrOut, "--out", outDir)...))
	files := tree(t, outDir)
	assert.Equal(t, []string{"root.crt", "svc-out.crt"}, sortStrings(fileNames(files)))
	assert.Equal(t, tree(t, d.tpa)["root.crt"], files["root.crt"])
	assert.Equal(t, 0, curlWith(t, d, filepath.Join(outDir, "svc-out.crt"), keyOut, p.url("/diagnose")).code)
	// A root.crt of another CA there is refused before anything is issued.
	otherOut := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(otherOut, "root.crt"), []byte("another CA\n"), 0o644))
	before := tree(t, filepath.Dir(d.tpa))
	requireOneLineError(t, cli(t, nil, d.flags("issue-client", "--name", "svc-out", "--csr", csrOut, "--out", otherOut)...), 1, "holds another certificate than the cluster's")
	assert.Equal(t, before, tree(t, filepath.Dir(d.tpa)))

	// DNS:NAME in the request is kept; renewing from a new request works.
	csr, key := makeCSR(t, "ec", "/CN=svc-san", "-addext", "subjectAltName=DNS:svc-san")
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "svc-san", "--csr", csr)...))
	assert.Contains(t, openssl(t, "x509", "-noout", "-ext", "subjectAltName", "-in", filepath.Join(d.tpa, "svc-san.crt")), "DNS:svc-san")
	requireOneLineError(t, cli(t, nil, d.flags("issue-client", "--name", "svc-san", "--csr", csr)...), 1, "use --renew")
	csr2, key2 := makeCSR(t, "ec", "/CN=svc-san")
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "svc-san", "--csr", csr2, "--renew")...))
	assert.Equal(t, 0, curlWith(t, d, filepath.Join(d.tpa, "svc-san.crt"), key2, p.url("/diagnose")).code)
	assert.NotEqual(t, 0, curlWith(t, d, filepath.Join(d.tpa, "svc-san.crt"), key, p.url("/diagnose")).code, "the old key no longer matches")
}

// curlWith runs real curl with the given certificate and key.
func curlWith(t *testing.T, d dirs, crt, key, url string) result {
	t.Helper()
	needs.Command(t, "curl", "curl")
	return runCmd(t, exec.Command("curl", "-sS", "--max-time", "30", "--cacert", filepath.Join(d.tpa, "root.crt"), "--cert", crt, "--key", key, url))
}

func fileNames(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// A request that is altered, asks to be a CA, names another client or
// asks for names a client certificate does not carry is refused with one
// line, and nothing is issued.
func TestIssueClientRefusesBadCSR(t *testing.T) {
	t.Parallel()
	d := pkiFor(t)
	good, _ := makeCSR(t, "ec", "/CN=svc")

	// Flip a byte of the signature (the end of the DER).
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	require.NotNil(t, block)
	block.Bytes[len(block.Bytes)-1] ^= 0x01
	altered := filepath.Join(t.TempDir(), "altered.csr")
	require.NoError(t, os.WriteFile(altered, pem.EncodeToMemory(block), 0o644))
	garbage := filepath.Join(t.TempDir(), "garbage.csr")
	require.NoError(t, os.WriteFile(garbage, []byte("not a request\n"), 0o644))

	tests := []struct {
		name string
		csr  func(t *testing.T) string
		args []string
		code int
		want string
	}{
		{"bad signature", func(*testing.T) string { return altered }, nil, 2, "--csr: the request's signature does not verify"},
		{"CA:TRUE", func(t *testing.T) string {
			c, _ := makeCSR(t, "ec", "/CN=svc", "-addext", "basicConstraints=critical,CA:TRUE")
			return c
		}, nil, 2, "--csr: the request asks for CA:TRUE"},
		{"different CN", func(t *testing.T) string {
			c, _ := makeCSR(t, "ec", "/CN=admin")
			return c
		}, nil, 2, "--csr: the request is for CN=admin, not svc"},
		{"other DNS name", func(t *testing.T) string {
			c, _ := makeCSR(t, "ec", "/CN=svc", "-addext", "subjectAltName=DNS:evil.example")
			return c
		}, nil, 2, `asks for the DNS name "evil.example"`},
		{"IP address", func(t *testing.T) string {
			c, _ := makeCSR(t, "ec", "/CN=svc", "-addext", "subjectAltName=IP:10.0.0.1,email:a@b.example")
			return c
		}, nil, 2, "asks for IP:10.0.0.1, email:a@b.example"},
		{"small RSA key", func(t *testing.T) string {
			c, _ := makeCSR(t, "rsa:1024", "/CN=svc")
			return c
		}, nil, 2, "RSA 1024: use at least 2048 bits"},
		{"not a request", func(*testing.T) string { return garbage }, nil, 2, "--csr: not a PKCS#10 certificate request"},
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.csr") }, nil, 1, "--csr: open"},
		{"with --key-type", func(*testing.T) string { return good }, []string{"--key-type", "rsa-2048"}, 2, "--key-type and --csr do not go together"},
		{"a FIFO, which would block", func(t *testing.T) string {
			fifo := filepath.Join(t.TempDir(), "fifo.csr")
			require.NoError(t, syscall.Mkfifo(fifo, 0o600))
			return fifo
		}, nil, 2, "not a regular file"},
		{"a device without end", func(*testing.T) string { return "/dev/zero" }, nil, 2, "not a regular file"},
		{"a huge file", func(t *testing.T) string {
			huge := filepath.Join(t.TempDir(), "huge.csr")
			require.NoError(t, os.WriteFile(huge, make([]byte, 1<<20), 0o644))
			return huge
		}, nil, 2, "over 64 KiB, which no certificate request is"},
		{"a key of that name exists", func(t *testing.T) string {
			require.NoError(t, os.WriteFile(filepath.Join(d.tpa, "svc.key"), []byte("old key"), 0o600))
			t.Cleanup(func() { os.Remove(filepath.Join(d.tpa, "svc.key")) })
			return good
		}, nil, 1, "would not match it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			csr := tc.csr(t)
			before := tree(t, filepath.Dir(d.tpa))
			args := append([]string{"issue-client", "--name", "svc", "--csr", csr, "--bundle-dir", filepath.Join(t.TempDir(), "b")}, tc.args...)
			requireOneLineError(t, cli(t, nil, d.flags(args...)...), tc.code, tc.want)
			assert.Equal(t, before, tree(t, filepath.Dir(d.tpa)), "nothing issued, the inventory unchanged")
		})
	}
}
