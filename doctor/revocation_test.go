package doctor

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func revocationResults(t *testing.T, l pki.Layout) []Result {
	t.Helper()
	up, err := url.Parse("http://127.0.0.1:1")
	require.NoError(t, err)
	var out []Result
	for _, res := range Run(context.Background(), Options{Layout: l, Listen: "127.0.0.1:1", AdminListen: "127.0.0.1:1", Upstream: up}) {
		if res.Area == "revocation" {
			out = append(out, res)
		}
	}
	return out
}

// doctor says when the record the proxy enforces and the inventory or the
// CRL disagree.
func TestDoctorRevocations(t *testing.T) {
	dir := t.TempDir()
	l := pki.Layout{TPADir: filepath.Join(dir, "tpa"), StateDir: filepath.Join(dir, "state")}
	_, err := pki.Init(pki.InitOptions{Layout: l, Cluster: "test", Hostnames: []string{"localhost"}, KeyType: pki.ECDSAP256,
		ServerDays: 90, ClientDays: 30})
	require.NoError(t, err)
	for _, n := range []string{"a", "b"} {
		_, err := pki.IssueClient(pki.IssueOptions{Layout: l, Name: n, Days: 30})
		require.NoError(t, err)
	}
	res := revocationResults(t, l)
	require.Len(t, res, 1)
	assert.Equal(t, OK, res[0].Status)
	assert.Contains(t, res[0].Detail, "no certificate is revoked")

	_, err = pki.Revoke(pki.RevokeOptions{Layout: l, Name: "a"})
	require.NoError(t, err)
	res = revocationResults(t, l)
	require.Len(t, res, 1)
	assert.Equal(t, OK, res[0].Status, res[0].Detail)

	// Without the CA key, the record moves on and the CRL stays behind.
	require.NoError(t, os.Rename(l.CAKey(), l.CAKey()+".away"))
	_, err = pki.Revoke(pki.RevokeOptions{Layout: l, Name: "b"})
	require.NoError(t, err)
	res = revocationResults(t, l)
	require.Len(t, res, 2)
	assert.Equal(t, OK, res[0].Status)
	assert.Equal(t, Warn, res[1].Status)
	assert.Contains(t, res[1].Detail, "older than the revocation record")

	// The record gone: the proxy would not refuse what list says is revoked.
	require.NoError(t, os.Remove(l.RevocationRecord()))
	res = revocationResults(t, l)
	require.Len(t, res, 1)
	assert.Equal(t, Fail, res[0].Status)
	assert.Contains(t, res[0].Fix, "pgbapi-proxy revoke --serial")

	// A record others may write.
	_, err = pki.Revoke(pki.RevokeOptions{Layout: l, Name: "b"})
	require.NoError(t, err)
	require.NoError(t, os.Chmod(l.RevocationRecord(), 0o666))
	res = revocationResults(t, l)
	assert.Equal(t, Fail, res[0].Status)
	assert.Contains(t, res[0].Detail, "only root may write")
}
