package pki

import (
	"crypto"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What init issued may be served by the first serve as it is; what does
// not fit is named.
func TestServerSignerReusable(t *testing.T) {
	l := testLayout(t)
	o := testInitOptions(l)
	o.IPs = []net.IP{net.ParseIP("127.0.0.1")}
	mustInit(t, o)
	signer, err := LoadServerSigner(l)
	require.NoError(t, err)
	cert, key, why := signer.Reusable(l, 1.0/3, time.Now())
	require.Empty(t, why)
	assert.Equal(t, mustRead(t, l.ServerCert()), string(cert))
	assert.Equal(t, mustRead(t, l.ServerKey()), string(key))

	_, _, why = signer.Reusable(l, 1.0/3, time.Now().Add(Days(DefaultServerDays)*3/4))
	assert.Contains(t, why, "due for renewal")
	more := *signer
	more.Hostnames = append([]string{"new.example.com"}, signer.Hostnames...)
	_, _, why = more.Reusable(l, 1.0/3, time.Now())
	assert.Contains(t, why, "does not cover new.example.com")

	// An adopted TPA certificate is the root's, not the intermediate's.
	f := pkitest.TPAHost(t, pkitest.Options{})
	tl := tpaLayout(t, f, true)
	ts, err := LoadServerSigner(tl)
	require.NoError(t, err)
	_, _, why = ts.Reusable(tl, 1.0/3, time.Now())
	assert.Contains(t, why, "not issued by the current intermediate")
}

// serve's renewal is stored in the service's store; root's export copies
// it to the TPA directory, keeping the pair it replaces as .old.
func TestServedCertIsExportedKeepingTheOldPair(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	l := tpaLayout(t, f, true)
	oldCert, oldKey := mustRead(t, l.ServerCert()), mustRead(t, l.ServerKey())
	// A link planted where the .old copy goes is replaced, never
	// written through.
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("precious\n"), 0o644))
	require.NoError(t, os.Symlink(victim, l.ServerKey()+".old"))
	certPEM, keyPEM := signedPair(t, l)
	require.NoError(t, StoreServedCert(l, certPEM, keyPEM))
	assert.Equal(t, oldCert, mustRead(t, l.ServerCert()), "storing touches nothing of root's")
	copied, err := ExportServedCert(l, time.Now())
	require.NoError(t, err)
	assert.True(t, copied)
	assert.Equal(t, oldCert, mustRead(t, l.ServerCert()+".old"))
	assert.Equal(t, oldKey, mustRead(t, l.ServerKey()+".old"))
	info, err := os.Stat(l.ServerKey() + ".old")
	require.NoError(t, err)
	assert.Equal(t, KeyMode, info.Mode().Perm())
	assert.Equal(t, string(keyPEM), mustRead(t, l.ServerKey()))
	assert.Equal(t, "precious\n", mustRead(t, victim))
	copied, err = ExportServedCert(l, time.Now())
	require.NoError(t, err)
	assert.False(t, copied, "a pair in place already is left as it is")
}

// renewedChain signs a one-hour server certificate for a new key with the
// intermediate in l, as the proxy renews one.
func renewedChain(t *testing.T, l Layout) ([]*x509.Certificate, crypto.Signer) {
	t.Helper()
	signer, err := LoadServerSigner(l)
	require.NoError(t, err)
	key, err := ECDSAP256.Generate()
	require.NoError(t, err)
	chain, err := signer.Sign(key.Public(), time.Hour, time.Now())
	require.NoError(t, err)
	return chain, key
}

func signedPair(t *testing.T, l Layout) (certPEM, keyPEM []byte) {
	t.Helper()
	chain, key := renewedChain(t, l)
	keyPEM, err := EncodeKey(key)
	require.NoError(t, err)
	return EncodeCerts(chain...), keyPEM
}

// What a compromised service puts in its store never reaches root's
// files: a link to a file it cannot read, a certificate of its own CA, a
// client certificate, a key that does not match.
func TestExportRefusesWhatTheStoreMustNotHold(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	l := tpaLayout(t, f, true)
	good, goodKey := signedPair(t, l)
	other := pkitest.NewCA(t, "evil")
	evil := other.Server(t)
	evilKey, err := EncodeKey(evil.PrivateKey.(crypto.Signer))
	require.NoError(t, err)
	client, err := os.ReadFile(f.Cert("pemagent-barman1"))
	require.NoError(t, err)
	clientKey, err := os.ReadFile(f.Key("pemagent-barman1"))
	require.NoError(t, err)
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("root only"), 0o600))
	before := mustRead(t, l.ServerCert())
	for _, tc := range []struct {
		name      string
		plant     func(t *testing.T)
		errSubstr string
	}{
		{"a link", func(t *testing.T) {
			require.NoError(t, os.Remove(l.ServedCert()))
			require.NoError(t, os.Symlink(secret, l.ServedCert()))
		}, "too many levels of symbolic links"},
		{"another CA", func(t *testing.T) {
			require.NoError(t, StoreServedCert(l, EncodeCerts(evil.Leaf), evilKey))
		}, "not a server certificate of this PKI"},
		{"a client certificate", func(t *testing.T) { require.NoError(t, StoreServedCert(l, client, clientKey)) }, "not a server certificate of this PKI"},
		{"a key that does not match", func(t *testing.T) {
			require.NoError(t, os.WriteFile(l.ServedKey(), clientKey, 0o600))
			require.NoError(t, os.WriteFile(l.ServedCert(), good, 0o644))
		}, "does not belong"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, StoreServedCert(l, good, goodKey))
			tc.plant(t)
			_, err := ExportServedCert(l, time.Now())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.errSubstr)
			assert.Equal(t, before, mustRead(t, l.ServerCert()))
		})
	}
}

// A good leaf the service appended to (another CA, text, a key): only
// the leaf and the intermediate are copied, the key re-encoded, so that
// nothing else the service wrote reaches the TPA directory or clients.
func TestExportCopiesOnlyWhatItChecked(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	l := tpaLayout(t, f, true)
	chain, key := renewedChain(t, l)
	keyPEM, err := EncodeKey(key)
	require.NoError(t, err)
	rogue := pkitest.NewCA(t, "rogue")
	padded := append(EncodeCerts(chain...), EncodeCerts(rogue.Cert)...)
	padded = append(padded, []byte("arbitrary bytes chosen by the service\n")...)
	padded = append(padded, keyPEM...)
	paddedKey := append(append([]byte{}, keyPEM...), []byte("# and more\n")...)
	paddedKey = append(paddedKey, EncodeCerts(rogue.Cert)...)
	require.NoError(t, StoreServedCert(l, padded, paddedKey))

	copied, err := ExportServedCert(l, time.Now())
	require.NoError(t, err)
	require.True(t, copied)
	inter, err := LoadCert(l.IntermediateCert())
	require.NoError(t, err)
	assert.Equal(t, string(EncodeCerts(chain[0], inter)), mustRead(t, l.ServerCert()), "the leaf and the intermediate, nothing more")
	assert.Equal(t, string(keyPEM), mustRead(t, l.ServerKey()), "the key, re-encoded")
	assert.NotContains(t, mustRead(t, l.ServerCert()), "PRIVATE KEY")
}
