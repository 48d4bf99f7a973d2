package pkitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func text(t *testing.T, cert string) string {
	t.Helper()
	out, err := exec.Command("openssl", "x509", "-noout", "-text", "-in", cert).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

// The fixture has the shape the issue describes, as openssl sees it.
func TestTPAHostShape(t *testing.T) {
	f := TPAHost(t, Options{ExtraDNS: []string{"barman1.example.com"}, ExtraIPs: []string{"10.1.2.3"}})

	ca := text(t, f.CACert)
	assert.Contains(t, ca, "Subject: CN = tpa.CA")
	assert.Contains(t, ca, "Public-Key: (4096 bit)")
	assert.Regexp(t, `X509v3 Basic Constraints: critical\s+CA:TRUE`, ca)
	assert.Contains(t, ca, "DNS:tpa.CA")
	assert.NotContains(t, ca, "Key Usage", "no keyUsage and no extendedKeyUsage")

	server := text(t, f.ServerCert())
	assert.Contains(t, server, "Subject: CN = barman1")
	assert.Contains(t, server, "DNS:barman1, DNS:barman1.example.com, IP Address:10.1.2.3")
	assert.Contains(t, server, "CA:FALSE")
	assert.NotContains(t, server, "Key Usage")
	for _, c := range []string{"pg-backup-user", "pemagent-barman1"} {
		client := text(t, f.Cert(c))
		assert.Contains(t, client, "Subject: CN = "+c)
		assert.Contains(t, client, "DNS:"+c)
		assert.NotContains(t, client, "Key Usage", c)
		out, err := exec.Command("openssl", "verify", "-CAfile", f.RootCert(), f.Cert(c)).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}

	for _, name := range []string{"pg-backup-api", "pg-backup-user", "pemagent-barman1"} {
		data, err := os.ReadFile(f.Key(name))
		require.NoError(t, err)
		assert.Contains(t, string(data), "-----BEGIN RSA PRIVATE KEY-----", "PKCS#1")
		info, err := os.Stat(f.Key(name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	}
	root, err := os.ReadFile(f.RootCert())
	require.NoError(t, err)
	caCopy, err := os.ReadFile(filepath.Join(f.Dir, "CA.crt"))
	require.NoError(t, err)
	assert.Equal(t, root, caCopy, "root.crt and CA.crt are one certificate")
	assert.NoFileExists(t, filepath.Join(f.Dir, "CA.key"), "the CA key stays on the controller")
	assert.FileExists(t, f.CAKey)

	// A second host of the same cluster: same CA, different serials.
	g := TPAHost(t, Options{})
	assert.Equal(t, root, readFile(t, g.RootCert()))
	serial := func(p string) string {
		out, err := exec.Command("openssl", "x509", "-noout", "-serial", "-in", p).Output()
		require.NoError(t, err)
		return string(out)
	}
	assert.NotEqual(t, serial(f.ServerCert()), serial(g.ServerCert()), "random serials")

	// An expired client.
	f.Client(t, "old", -1)
	out, err := exec.Command("openssl", "verify", "-CAfile", f.RootCert(), f.Cert("old")).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "expired")
}
