package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	chain, keyPEM := renewedServerPair(t, l)
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

// serve says at start what it enforces, takes an upstream without a
// scheme, and warns about an admin listener off loopback.
func TestServeSaysWhatItEnforces(t *testing.T) {
	d := pkiFor(t)
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "gone")...))
	requireOK(t, cli(t, nil, d.flags("revoke", "--name", "gone")...))
	rules := filepath.Join(t.TempDir(), "access")
	writeRules(t, rules, "pem read\n* none\n")
	_, upURL := upstream(t)
	p := startProxy(t, d, strings.TrimPrefix(upURL, "http://"), nil, "--access-file", rules, "--admin-listen", "0.0.0.0:0")
	logs := p.waitLog(t, "msg=serving")
	assert.Contains(t, logs, "the admin listener is not on loopback")
	assert.Contains(t, logs, "upstream_max_inflight=1")
	assert.Contains(t, logs, "1 revoked")
	assert.Contains(t, logs, "access rules "+rules+" (2 names)")
	assert.Contains(t, logs, "revocation record")
	requireOK(t, curlClient(t, d, "pg-backup-user", p.url("/status")))
}
