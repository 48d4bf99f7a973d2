package pki

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/require"
)

// testLayout is a fresh TPA dir and state dir under t.TempDir().
func testLayout(t *testing.T) Layout {
	t.Helper()
	dir := t.TempDir()
	return Layout{TPADir: filepath.Join(dir, "tpa"), StateDir: filepath.Join(dir, "state")}
}

func testInitOptions(l Layout) InitOptions {
	return InitOptions{
		Layout: l, Cluster: "test", Hostnames: []string{"barman1", "localhost"},
		IPs: nil, KeyType: ECDSAP256, ServerDays: DefaultServerDays, ClientDays: DefaultClientDays,
	}
}

func mustInit(t *testing.T, o InitOptions) []Step {
	t.Helper()
	steps, err := Init(o)
	require.NoError(t, err)
	return steps
}

// openssl runs the real openssl and returns its combined output.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	needs.Command(t, "openssl", "openssl")
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

// snapshot reads every file under dirs, by path.
func snapshot(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			files[path] = string(data)
			return err
		})
		require.NoError(t, err)
	}
	return files
}

// leftovers lists temporary files a write left behind.
func leftovers(t *testing.T, dirs ...string) []string {
	t.Helper()
	var found []string
	for _, path := range keys(snapshot(t, dirs...)) {
		if strings.Contains(filepath.Base(path), ".tmp-") {
			found = append(found, path)
		}
	}
	return found
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// makeReadOnly makes dir unwritable even for root (chattr +i) and undoes it
// when the test ends. Without root, mode 0500 does the same.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		require.NoError(t, os.Chmod(dir, 0o500))
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("as root, a read-only directory needs chattr +i, which failed here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
}

// copyDir copies the regular files of src into dst (created 0700), keeping
// their modes, as an operator copies a TPA directory.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dst, 0o700))
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), data, info.Mode().Perm()))
	}
}
