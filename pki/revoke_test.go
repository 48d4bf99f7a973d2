package pki

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRevoke(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	a, err := IssueClient(IssueOptions{Layout: l, Name: "a", Days: 30})
	require.NoError(t, err)
	b, err := IssueClient(IssueOptions{Layout: l, Name: "b", Days: 30})
	require.NoError(t, err)

	res, err := Revoke(RevokeOptions{Layout: l, Name: "a"})
	require.NoError(t, err)
	require.Len(t, res.Records, 1)
	assert.Equal(t, SerialHex(a.Cert), res.Records[0].Serial)

	root, err := LoadCert(l.RootCert())
	require.NoError(t, err)
	revoked, err := LoadCRL(l.CRL(), root)
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{SerialHex(a.Cert): true}, revoked)
	assert.Equal(t, mustRead(t, l.CRL()), mustRead(t, l.TPACRL()), "a copy next to root.crt")

	// openssl agrees: a is revoked, b is not.
	out, err := openssl(t, "verify", "-crl_check", "-CAfile", l.RootCert(), "-CRLfile", l.CRL(), a.CertPath)
	require.Error(t, err, out)
	assert.Contains(t, out, "certificate revoked")
	out, err = openssl(t, "verify", "-crl_check", "-CAfile", l.RootCert(), "-CRLfile", l.CRL(), b.CertPath)
	require.NoError(t, err, out)

	inv, err := ReadInventory(l)
	require.NoError(t, err)
	for _, r := range inv {
		if r.Name == "a" {
			assert.Equal(t, StateRevoked, r.State(time.Now()))
		}
	}

	// Twice is harmless; by serial (as openssl prints it) works; unknown is an error.
	res, err = Revoke(RevokeOptions{Layout: l, Name: "a"})
	require.NoError(t, err)
	assert.Empty(t, res.Records)
	assert.Len(t, res.Already, 1)
	_, err = Revoke(RevokeOptions{Layout: l, Serial: SerialHex(b.Cert)})
	require.NoError(t, err)
	revoked, err = LoadCRL(l.CRL(), root)
	require.NoError(t, err)
	assert.Len(t, revoked, 2)
	_, err = Revoke(RevokeOptions{Layout: l, Name: "nobody"})
	require.ErrorContains(t, err, `no client certificate named "nobody"`)
	_, err = Revoke(RevokeOptions{Layout: l, Serial: "ABCDEF"})
	require.ErrorContains(t, err, "no client certificate with serial ABCDEF")
	_, err = Revoke(RevokeOptions{Layout: l, Name: "pg-backup-api"})
	require.Error(t, err, "only client certificates are revoked by name")

	// A CRL signed by another CA is refused.
	other := testLayout(t)
	mustInit(t, testInitOptions(other))
	_, err = IssueClient(IssueOptions{Layout: other, Name: "x", Days: 1})
	require.NoError(t, err)
	_, err = Revoke(RevokeOptions{Layout: other, Name: "x"})
	require.NoError(t, err)
	_, err = LoadCRL(other.CRL(), root)
	require.ErrorContains(t, err, "not signed by the cluster CA")
	require.NoError(t, os.WriteFile(other.CRL(), []byte("garbage"), 0o644))
	_, err = LoadCRL(other.CRL(), root)
	require.ErrorContains(t, err, "no PEM X509 CRL")
}
