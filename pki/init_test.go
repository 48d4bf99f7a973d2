package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInitIssuesChainsThatVerify(t *testing.T) {
	for _, kt := range KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			l := testLayout(t)
			o := testInitOptions(l)
			o.KeyType = kt
			o.IPs = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
			mustInit(t, o)

			root, err := LoadCert(l.RootCert())
			require.NoError(t, err)
			assert.Equal(t, "test.CA", root.Subject.CommonName)
			assert.True(t, root.IsCA)
			assert.InDelta(t, RootDays*24, root.NotAfter.Sub(root.NotBefore).Hours(), 1)
			assert.Equal(t, kt, KeyType(KeyTypeOf(root.PublicKey)))

			// Go's verifier.
			server, err := LoadCerts(l.ServerCert())
			require.NoError(t, err)
			require.Len(t, server, 2, "server file holds the leaf and the intermediate")
			require.NoError(t, VerifyChain(server, root, x509.ExtKeyUsageServerAuth, time.Now()))
			require.NoError(t, server[0].VerifyHostname("barman1"))
			require.NoError(t, server[0].VerifyHostname("::1"))
			client, err := LoadCerts(l.CertIn(l.TPADir, TestClientName))
			require.NoError(t, err)
			require.NoError(t, VerifyChain(client, root, x509.ExtKeyUsageClientAuth, time.Now()))

			// OpenSSL's verifier and what it shows an operator.
			out, err := openssl(t, "verify", "-CAfile", l.RootCert(), "-untrusted", l.ServerCert(), "-purpose", "sslserver", l.ServerCert())
			require.NoError(t, err, out)
			out, err = openssl(t, "verify", "-CAfile", l.RootCert(), "-purpose", "sslclient", l.CertIn(l.TPADir, TestClientName))
			require.NoError(t, err, out)
			out, err = openssl(t, "x509", "-noout", "-text", "-in", l.ServerCert())
			require.NoError(t, err, out)
			assert.Contains(t, out, "Subject: CN = barman1")
			assert.Contains(t, out, "DNS:barman1, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1")
			assert.Contains(t, out, "TLS Web Server Authentication")
			assert.NotContains(t, out, "TLS Web Client Authentication")
			out, err = openssl(t, "x509", "-noout", "-text", "-in", l.CertIn(l.TPADir, TestClientName))
			require.NoError(t, err, out)
			assert.Contains(t, out, "Subject: CN = pg-backup-user")
			assert.Contains(t, out, "TLS Web Client Authentication")
			assert.Contains(t, out, "Issuer: CN = test.CA")
		})
	}
}

func TestInitFileModes(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	for path, want := range map[string]os.FileMode{
		l.StateDir:                         DirMode,
		l.TPADir:                           DirMode,
		l.CADir():                          DirMode,
		l.CAKey():                          KeyMode,
		l.IntermediateKey():                KeyMode,
		l.ServerKey():                      KeyMode,
		l.KeyIn(l.TPADir, TestClientName):  KeyMode,
		l.RootCert():                       CertMode,
		l.CACert():                         CertMode,
		l.ServerCert():                     CertMode,
		l.CertIn(l.TPADir, TestClientName): CertMode,
	} {
		info, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, want, info.Mode().Perm(), path)
	}
	assert.Equal(t, mustRead(t, l.RootCert()), mustRead(t, l.CACert()), "root.crt and CA.crt are the same certificate")
}

func TestIntermediateCannotIssueClientCerts(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	inter, err := LoadAuthority(l.IntermediateCert(), l.IntermediateKey())
	require.NoError(t, err)
	root, err := LoadCert(l.RootCert())
	require.NoError(t, err)

	// Someone with the intermediate key forges a client certificate.
	key, err := ECDSAP256.Generate()
	require.NoError(t, err)
	serial, err := NewSerial()
	require.NoError(t, err)
	forged, err := inter.Sign(clientTemplate("intruder", 30, time.Now(), serial), key.Public())
	require.NoError(t, err)
	forgedPath := filepath.Join(t.TempDir(), "forged.crt")
	require.NoError(t, WriteNew(forgedPath, EncodeCerts(forged, inter.Cert), CertMode, nil))

	err = VerifyChain([]*x509.Certificate{forged, inter.Cert}, root, x509.ExtKeyUsageClientAuth, time.Now())
	require.Error(t, err, "Go must refuse a client cert from the server-only intermediate")
	out, err := openssl(t, "verify", "-CAfile", l.RootCert(), "-untrusted", forgedPath, "-purpose", "sslclient", forgedPath)
	require.Error(t, err, "openssl must refuse it too: %s", out)

	// And it cannot issue a server certificate for another host either.
	serial, err = NewSerial()
	require.NoError(t, err)
	other, err := inter.Sign(ServerTemplate([]string{"evil.example"}, nil, Days(30), time.Now(), serial), key.Public())
	require.NoError(t, err)
	err = VerifyChain([]*x509.Certificate{other, inter.Cert}, root, x509.ExtKeyUsageServerAuth, time.Now())
	require.Error(t, err, "name constraints must refuse a host the intermediate was not made for")
}

func TestReinitChangesNothing(t *testing.T) {
	l := testLayout(t)
	o := testInitOptions(l)
	first := mustInit(t, o)
	for _, s := range first {
		assert.Equal(t, Created, s.Action, s.What)
	}
	before := snapshot(t, l.TPADir, l.StateDir)

	again := mustInit(t, o)
	require.Len(t, again, len(first))
	for _, s := range again {
		assert.Equal(t, Kept, s.Action, s.What)
	}
	assert.Equal(t, before, snapshot(t, l.TPADir, l.StateDir), "a second init must leave every file byte-identical")
}

func TestInitCompletesAnInterruptedRun(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	// As if the run stopped between writing the key and the certificate.
	require.NoError(t, os.Remove(l.ServerCert()))
	key := mustRead(t, l.ServerKey())

	mustInit(t, testInitOptions(l))
	assert.Equal(t, key, mustRead(t, l.ServerKey()), "the existing key is reused, not replaced")
	certs, err := LoadCerts(l.ServerCert())
	require.NoError(t, err)
	k, err := LoadKey(l.ServerKey())
	require.NoError(t, err)
	assert.True(t, KeyMatches(certs[0], k))
}

func TestInitRefusesWhatItCannotKeep(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, l Layout)
		want   string
	}{
		{"certificate without its key", func(t *testing.T, l Layout) {
			require.NoError(t, os.Remove(l.KeyIn(l.TPADir, TestClientName)))
			require.NoError(t, os.Remove(l.CAKey()))
		}, "incomplete CA"},
		{"server cert without its key", func(t *testing.T, l Layout) {
			require.NoError(t, os.Remove(l.ServerKey()))
		}, "restore the key"},
		{"a foreign root.crt", func(t *testing.T, l Layout) {
			other := testLayout(t)
			mustInit(t, testInitOptions(other))
			require.NoError(t, os.Remove(l.RootCert()))
			require.NoError(t, os.Link(other.RootCert(), l.RootCert()))
		}, "holds a different CA"},
		{"a key that does not match", func(t *testing.T, l Layout) {
			require.NoError(t, os.Remove(l.KeyIn(l.TPADir, TestClientName)))
			require.NoError(t, os.Link(l.ServerKey(), l.KeyIn(l.TPADir, TestClientName)))
		}, "does not belong to"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := testLayout(t)
			mustInit(t, testInitOptions(l))
			tc.break_(t, l)
			before := snapshot(t, l.TPADir, l.StateDir)
			_, err := Init(testInitOptions(l))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before, snapshot(t, l.TPADir, l.StateDir), "a refused init changes nothing")
		})
	}
}

func TestAdoptOpenSSLCA(t *testing.T) {
	// An older deployment made its CA with openssl: RSA 4096, no ExtKeyUsage.
	old := t.TempDir()
	caKey, caCert := filepath.Join(old, "CA.key"), filepath.Join(old, "CA.crt")
	out, err := openssl(t, "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-days", "3650",
		"-subj", "/CN=oldcluster.CA", "-keyout", caKey, "-out", caCert)
	require.NoError(t, err, out)
	// ... and a client certificate without ExtKeyUsage, as it issued them.
	ckey, ccsr, ccrt := filepath.Join(old, "c.key"), filepath.Join(old, "c.csr"), filepath.Join(old, "c.crt")
	out, err = openssl(t, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=oldclient", "-keyout", ckey, "-out", ccsr)
	require.NoError(t, err, out)
	out, err = openssl(t, "x509", "-req", "-in", ccsr, "-CA", caCert, "-CAkey", caKey, "-CAcreateserial", "-days", "30", "-out", ccrt)
	require.NoError(t, err, out)

	l := testLayout(t)
	o := testInitOptions(l)
	o.CACertFile, o.CAKeyFile = caCert, caKey
	steps := mustInit(t, o)
	assert.Equal(t, Imported, steps[0].Action)
	assert.Equal(t, mustRead(t, caCert), mustRead(t, l.RootCert()), "root.crt is the adopted CA")

	issued, err := IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30})
	require.NoError(t, err)
	out, err = openssl(t, "verify", "-CAfile", l.RootCert(), "-purpose", "sslclient", issued.CertPath)
	require.NoError(t, err, out)
	out, err = openssl(t, "verify", "-CAfile", l.RootCert(), "-untrusted", l.ServerCert(), "-purpose", "sslserver", l.ServerCert())
	require.NoError(t, err, out)

	root, err := LoadCert(l.RootCert())
	require.NoError(t, err)
	old_, err := LoadCerts(ccrt)
	require.NoError(t, err)
	require.NoError(t, VerifyChain(old_, root, x509.ExtKeyUsageClientAuth, time.Now()), "old clients without ExtKeyUsage still verify")

	// Adopting again is a no-op; adopting another CA is refused.
	mustInit(t, o)
	o2 := o
	other := testLayout(t)
	mustInit(t, testInitOptions(other))
	o2.CACertFile, o2.CAKeyFile = other.CAStateCert(), other.CAKey()
	_, err = Init(o2)
	require.ErrorContains(t, err, "a different CA")
}

func TestAdoptRootWithoutKey(t *testing.T) {
	// Only root.crt and the server pair were copied over from the old setup.
	src := testLayout(t)
	mustInit(t, testInitOptions(src))
	l := testLayout(t)
	require.NoError(t, os.MkdirAll(l.TPADir, DirMode))
	for _, p := range []string{src.RootCert(), src.ServerCert(), src.ServerKey()} {
		require.NoError(t, os.WriteFile(filepath.Join(l.TPADir, filepath.Base(p)), []byte(mustRead(t, p)), KeyMode))
	}

	steps := mustInit(t, testInitOptions(l))
	assert.Equal(t, Kept, steps[0].Action)
	assert.Contains(t, steps[0].Note, "not issue")
	var skipped int
	for _, s := range steps {
		if s.Action == Skipped {
			skipped++
		}
	}
	assert.Equal(t, 2, skipped, "no intermediate, no test client without the CA key: %v", steps)

	_, err := IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30})
	require.ErrorIs(t, err, ErrNoCAKey)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}
