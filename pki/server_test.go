package pki

import (
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

// serve's renewal keeps the pair it replaces as .old.
func TestInstallServerCertKeepsTheOldPair(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	l := tpaLayout(t, f, true)
	oldCert, oldKey := mustRead(t, l.ServerCert()), mustRead(t, l.ServerKey())
	// A link planted where the .old copy goes (the service may write the
	// TPA dir) is replaced, never written through.
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("precious\n"), 0o644))
	require.NoError(t, os.Symlink(victim, l.ServerKey()+".old"))
	signer, err := LoadServerSigner(l)
	require.NoError(t, err)
	key, err := ECDSAP256.Generate()
	require.NoError(t, err)
	chain, err := signer.Sign(key.Public(), time.Hour, time.Now())
	require.NoError(t, err)
	keyPEM, err := EncodeKey(key)
	require.NoError(t, err)
	require.NoError(t, InstallServerCert(l, EncodeCerts(chain...), keyPEM, time.Now()))
	assert.Equal(t, oldCert, mustRead(t, l.ServerCert()+".old"))
	assert.Equal(t, oldKey, mustRead(t, l.ServerKey()+".old"))
	info, err := os.Stat(l.ServerKey() + ".old")
	require.NoError(t, err)
	assert.Equal(t, KeyMode, info.Mode().Perm())
	assert.Equal(t, string(keyPEM), mustRead(t, l.ServerKey()))
	assert.Equal(t, "precious\n", mustRead(t, victim))
}
