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
