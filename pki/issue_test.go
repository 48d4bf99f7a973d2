package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIssueClient(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))

	issued, err := IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 60})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(l.TPADir, "pem.crt"), issued.CertPath)
	assert.Equal(t, "pem", issued.Cert.Subject.CommonName)
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, issued.Cert.ExtKeyUsage)
	assert.InDelta(t, 60*24+1.0/12, issued.Cert.NotAfter.Sub(issued.Cert.NotBefore).Hours(), 0.01)
	info, err := os.Stat(issued.KeyPath)
	require.NoError(t, err)
	assert.Equal(t, KeyMode, info.Mode().Perm())

	out, err := openssl(t, "verify", "-CAfile", l.RootCert(), "-purpose", "sslclient", issued.CertPath)
	require.NoError(t, err, out)
	out, err = openssl(t, "x509", "-noout", "-subject", "-serial", "-in", issued.CertPath)
	require.NoError(t, err, out)
	assert.Contains(t, out, "subject=CN = pem")
	assert.Contains(t, out, "serial="+SerialHex(issued.Cert), "list shows serials as openssl does")

	inv, err := ReadInventory(l)
	require.NoError(t, err)
	last := inv[len(inv)-1]
	assert.Equal(t, "pem", last.Name)
	assert.Equal(t, KindClient, last.Kind)
	assert.Equal(t, StateValid, last.State(time.Now()))
	assert.Equal(t, StateExpiring, last.State(time.Now().Add(31*24*time.Hour)), "29 days left is within 30")
	assert.Equal(t, StateExpired, last.State(time.Now().Add(61*24*time.Hour)))
}

func TestIssueClientRefusesExistingUnlessRenew(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	first, err := IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30})
	require.NoError(t, err)
	before := snapshot(t, l.TPADir)

	_, err = IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30})
	require.ErrorContains(t, err, "--renew")
	assert.Equal(t, before, snapshot(t, l.TPADir), "a refused issue changes nothing")

	renewed, err := IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30, Renew: true})
	require.NoError(t, err)
	assert.True(t, renewed.Renewed)
	assert.NotEqual(t, before[first.KeyPath], mustRead(t, renewed.KeyPath), "renew makes a new key")
	cert, err := LoadCert(renewed.CertPath)
	require.NoError(t, err)
	key, err := LoadKey(renewed.KeyPath)
	require.NoError(t, err)
	assert.True(t, KeyMatches(cert, key))
	assert.Empty(t, leftovers(t, l.TPADir))

	inv, err := ReadInventory(l)
	require.NoError(t, err)
	var pems []Record
	for _, r := range inv {
		if r.Name == "pem" {
			pems = append(pems, r)
		}
	}
	require.Len(t, pems, 2)
	assert.True(t, pems[0].Replaced)
	assert.False(t, pems[1].Replaced)
}

func TestIssueClientBadInput(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	tests := []struct {
		name string
		opts IssueOptions
		want string
	}{
		{"path in name", IssueOptions{Name: "../etc/passwd", Days: 1}, "invalid client name"},
		{"slash", IssueOptions{Name: "a/b", Days: 1}, "invalid client name"},
		{"leading dot", IssueOptions{Name: ".hidden", Days: 1}, "invalid client name"},
		{"empty", IssueOptions{Name: "", Days: 1}, "invalid client name"},
		{"server's name", IssueOptions{Name: "pg-backup-api", Days: 1}, "file init manages"},
		{"root", IssueOptions{Name: "ROOT", Days: 1}, "file init manages"},
		{"zero days", IssueOptions{Name: "pem", Days: 0}, "at least 1"},
		{"unknown key type", IssueOptions{Name: "pem", Days: 1, KeyType: "dsa"}, "unknown key type"},
		{"missing out dir", IssueOptions{Name: "pem", Days: 1, OutDir: "/nonexistent/dir"}, "does not exist"},
	}
	before := snapshot(t, l.TPADir, l.StateDir)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Layout = l
			_, err := IssueClient(tc.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	assert.Equal(t, before, snapshot(t, l.TPADir, l.StateDir))

	_, err := IssueClient(IssueOptions{Layout: testLayout(t), Name: "pem", Days: 1})
	require.ErrorContains(t, err, "run 'pgbapi-proxy init' first")
}

func TestIssueClientConcurrentKeepsEveryRecord(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = IssueClient(IssueOptions{Layout: l, Name: "svc" + string(rune('a'+i)), Days: 1})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	inv, err := ReadInventory(l)
	require.NoError(t, err)
	serials := map[string]bool{}
	for _, r := range inv {
		serials[r.Serial] = true
	}
	assert.Len(t, inv, 4+n, "root, intermediate, server, test client and every issued client")
	assert.Len(t, serials, 4+n, "serials are distinct")
}
