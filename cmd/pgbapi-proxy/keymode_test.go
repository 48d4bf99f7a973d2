package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A CA key others can read is refused with the chmod that fixes it, and
// nothing is written; an adopted client key others can read is adopted
// with a warning that names the chmod.
func TestReadableKeysAreNamed(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	d := tpaDirs(t, f)
	caKey := filepath.Join(t.TempDir(), "CA.key")
	data, err := os.ReadFile(f.CAKey)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(caKey, data, 0o644))
	require.NoError(t, os.Chmod(caKey, 0o644))
	before := tree(t, filepath.Dir(d.tpa))
	requireOneLineError(t, cli(t, nil, d.flags("init", "--ca-cert", f.CACert, "--ca-key", caKey)...), 1, "run: chmod 600 "+caKey)
	assert.Equal(t, before, tree(t, filepath.Dir(d.tpa)), "nothing written")

	require.NoError(t, os.Chmod(filepath.Join(d.tpa, "pemagent-barman1.key"), 0o644))
	r := cli(t, nil, d.flags("init")...)
	requireOK(t, r)
	assert.Regexp(t, `(?m)^adopted\s+certificate pemagent-barman1\.crt\s.*WARNING: others can read .*pemagent-barman1\.key \(mode 0644\); run: chmod 600`, r.stdout)
}

// A root.crt swapped for another CA's after the first init (as an account
// that could write the TPA directory might) never becomes the cluster CA:
// init refuses it and changes nothing, trust store included.
func TestInitRefusesASwappedRoot(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	other := pkitest.TPAHost(t, pkitest.Options{Cluster: "evil"})
	d := tpaDirs(t, f)
	trust := t.TempDir()
	requireOK(t, cli(t, trustEnv(trust), d.flags("init")...))
	for _, name := range []string{"root.crt", "CA.crt"} {
		data, err := os.ReadFile(other.RootCert())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(d.tpa, name), data, 0o644))
	}
	beforeTrust := tree(t, trust)
	beforeState := tree(t, d.state)
	requireOneLineError(t, cli(t, trustEnv(trust), d.flags("init")...), 1, "is not the cluster CA this host recorded")
	assert.Equal(t, beforeTrust, tree(t, trust), "nothing new in the trust store")
	assert.Equal(t, beforeState, tree(t, d.state))
}
