package pki

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInstallSystemTrust(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	root, err := LoadCert(l.RootCert())
	require.NoError(t, err)
	other := testLayout(t)
	mustInit(t, testInitOptions(other))
	otherRoot, err := LoadCert(other.RootCert())
	require.NoError(t, err)

	dir := filepath.Join(t.TempDir(), "anchors")
	st := SystemTrust{Dir: dir}
	s, err := InstallSystemTrust(st, "test", root)
	require.NoError(t, err)
	assert.Equal(t, Created, s.Action)
	path := filepath.Join(dir, "test.crt")
	assert.Equal(t, mustRead(t, l.RootCert()), mustRead(t, path))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, CertMode, info.Mode().Perm())

	s, err = InstallSystemTrust(st, "test", root)
	require.NoError(t, err)
	assert.Equal(t, Kept, s.Action)

	s, err = InstallSystemTrust(st, "test", otherRoot)
	require.NoError(t, err)
	assert.Equal(t, LeftAlone, s.Action, "another CA under the same name is not replaced")
	assert.Equal(t, mustRead(t, l.RootCert()), mustRead(t, path))

	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("x"), 0o644))
	require.NoError(t, os.Symlink(victim, filepath.Join(dir, "linked.crt")))
	s, err = InstallSystemTrust(st, "linked", root)
	require.NoError(t, err)
	assert.Equal(t, LeftAlone, s.Action)
	assert.Equal(t, "x", mustRead(t, victim))

	// A failing update command installs nothing.
	_, err = InstallSystemTrust(SystemTrust{Dir: dir, Update: []string{"false"}}, "failing", root)
	require.ErrorContains(t, err, "nothing was installed")
	assert.NoFileExists(t, filepath.Join(dir, "failing.crt"))
}

// On a host with Debian's or RHEL's update command, that store is found.
func TestDetectSystemTrust(t *testing.T) {
	st := DetectSystemTrust()
	switch {
	case lookable("update-ca-certificates"):
		require.NotNil(t, st)
		assert.Equal(t, DebianTrust, *st)
	case lookable("update-ca-trust"):
		require.NotNil(t, st)
		assert.Equal(t, RHELTrust, *st)
	default:
		assert.Nil(t, st)
	}
}

func lookable(name string) bool {
	_, err := lookPathSbin(name)
	return err == nil
}
