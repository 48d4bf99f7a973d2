package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The service stores what it renews in its own directory; root's
// sync-server-cert copies a pair that verifies, and refuses a link planted
// in the store without touching root's files.
func TestSyncServerCert(t *testing.T) {
	d := pkiFor(t)
	l := pki.Layout{TPADir: d.tpa, StateDir: d.state}
	signer, err := pki.LoadServerSigner(l)
	require.NoError(t, err)
	key, err := pki.ECDSAP256.Generate()
	require.NoError(t, err)
	chain, err := signer.Sign(key.Public(), time.Hour, time.Now())
	require.NoError(t, err)
	keyPEM, err := pki.EncodeKey(key)
	require.NoError(t, err)
	require.NoError(t, pki.StoreServedCert(l, pki.EncodeCerts(chain...), keyPEM))

	r := cli(t, nil, d.flags("sync-server-cert")...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "copied ")
	served, err := pki.LoadCert(l.ServerCert())
	require.NoError(t, err)
	assert.Equal(t, pki.SerialHex(chain[0]), pki.SerialHex(served))
	r = cli(t, nil, d.flags("sync-server-cert")...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "already holds")

	secret := filepath.Join(t.TempDir(), "shadow")
	require.NoError(t, os.WriteFile(secret, []byte("root only\n"), 0o600))
	require.NoError(t, os.Remove(l.ServedCert()))
	require.NoError(t, os.Symlink(secret, l.ServedCert()))
	before := tree(t, d.tpa)
	requireOneLineError(t, cli(t, nil, d.flags("sync-server-cert")...), 1, "too many levels of symbolic links")
	assert.Equal(t, before, tree(t, d.tpa))
}
