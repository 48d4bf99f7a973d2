package pki

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The service account owns the state directory. A link it plants at the
// inventory lock's name must not make root's issue-client create (or open)
// the file the link points to.
func TestLockRefusesPlantedSymlink(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	target := filepath.Join(t.TempDir(), "created-by-root")
	require.NoError(t, os.Remove(l.Lock()))
	require.NoError(t, os.Symlink(target, l.Lock()))

	_, err := IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30})
	require.ErrorContains(t, err, "is a symbolic link")
	assert.NoFileExists(t, target, "the link's target was not created")
	assert.NoFileExists(t, filepath.Join(l.TPADir, "pem.key"), "nothing issued")

	// A link to an existing file is refused too, and the file untouched.
	require.NoError(t, os.WriteFile(target, []byte("root's\n"), 0o600))
	_, err = IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30})
	require.ErrorContains(t, err, "is a symbolic link")
	data, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "root's\n", string(data))
}

// Key theft on renewal: the service user puts a file at pem.key's path;
// root's issue-client --renew must leave the new key root's (0600), not
// the service user's. The inventory, which the service rewrites, keeps
// its owner (TestReplaceKeepsOwner).
func TestRenewedKeyBelongsToRootNotThePathsOwner(t *testing.T) {
	needs.Root(t, "chown to another user")
	runuser := needs.Command(t, "runuser", "util-linux")
	const nobody = 65534
	base, err := os.MkdirTemp("", "pgbapi-renew-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	l := Layout{TPADir: filepath.Join(base, "tpa"), StateDir: filepath.Join(base, "state")}
	mustInit(t, testInitOptions(l))
	_, err = IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30})
	require.NoError(t, err)
	// As the packaged TPA directory: root:service 0770, so the service
	// user can replace names in it.
	require.NoError(t, os.Chown(l.TPADir, 0, nobody))
	require.NoError(t, os.Chmod(l.TPADir, 0o770))
	key := filepath.Join(l.TPADir, "pem.key")
	out, err := exec.Command(runuser, "-u", "nobody", "--", "sh", "-c", "rm -f "+key+" && : > "+key+" && chmod 0666 "+key).CombinedOutput()
	require.NoError(t, err, "the service user plants pem.key: %s", out)
	st := stat(t, key)
	require.Equal(t, uint32(nobody), st.Uid)

	_, err = IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30, Renew: true})
	require.NoError(t, err)
	st = stat(t, key)
	assert.Equal(t, uint32(0), st.Uid, "the new key is root's")
	assert.Equal(t, uint32(0), st.Gid)
	assert.Equal(t, uint32(KeyMode), st.Mode&0o7777)
	assert.Error(t, exec.Command(runuser, "-u", "nobody", "--", "cat", key).Run(), "the service user cannot read the new key")

	// An explicit --owner still gets the key.
	_, err = IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 30, Renew: true, Owner: &Owner{UID: nobody, GID: nobody}})
	require.NoError(t, err)
	assert.Equal(t, uint32(nobody), stat(t, key).Uid)
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	info, err := os.Lstat(path)
	require.NoError(t, err)
	return info.Sys().(*syscall.Stat_t)
}
