package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scratchRoot mounts an overlay of this machine's root file system whose
// writes go to a tmpfs: rpm --root installs there and runs the scriptlets
// chrooted into it, with this system's real sh, useradd and getent,
// while the host's /etc, /usr and /var stay untouched.
func scratchRoot(t *testing.T) string {
	t.Helper()
	needs.Root(t, "mounting an overlay for rpm --root")
	base := t.TempDir()
	layer, root := filepath.Join(base, "layer"), filepath.Join(base, "root")
	require.NoError(t, os.Mkdir(layer, 0o755))
	require.NoError(t, os.Mkdir(root, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", layer).CombinedOutput(); err != nil {
		needs.Skip(t, "cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", layer).Run() })
	for _, d := range []string{"upper", "work"} {
		require.NoError(t, os.Mkdir(filepath.Join(layer, d), 0o755))
	}
	opts := "lowerdir=/,upperdir=" + layer + "/upper,workdir=" + layer + "/work"
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", opts, root).CombinedOutput(); err != nil {
		needs.Skip(t, "cannot mount an overlay here (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", root).Run() })
	return root
}

// rpm -i into a scratch root runs the real scriptlets: %pre makes the
// service user, %post runs init and sets owners and modes; rpm -e runs
// %preun and %postun, and keeps the PKI.
func TestRPMScriptletsInScratchRoot(t *testing.T) {
	requirePackages(t)
	rpm := needs.Command(t, "rpm", "rpm")
	root := scratchRoot(t)
	for _, p := range []string{"/etc/tpa", "/var/lib/pgbapi-proxy", "/usr/bin/pgbapi-proxy"} {
		if _, err := os.Stat(p); err == nil {
			needs.Skip(t, "%s exists on this machine; the overlay would start from it", p)
		}
	}
	if exec.Command("getent", "passwd", svcUser).Run() == nil {
		needs.Skip(t, "the user %s exists on this machine; the overlay would start from it", svcUser)
	}
	// --nodeps: no pg-backup-api rpm in this Debian scratch root (the
	// dependency is tested by TestRPMResolvesPinnedPgBackupAPI).
	out, err := exec.Command(rpm, "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--nodeps", rpmPath("1.0.0")).CombinedOutput()
	require.NoError(t, err, "rpm -i: %s", out)
	t.Logf("rpm -i:\n%s", out)

	chroot := func(args ...string) string {
		out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
		require.NoError(t, err, "%s: %s", strings.Join(args, " "), out)
		return strings.TrimSpace(string(out))
	}
	assert.Contains(t, chroot("getent", "passwd", svcUser), svcUser+":x:", "%pre made the service user")
	assert.Error(t, exec.Command("getent", "passwd", svcUser).Run(), "... in the scratch root only")
	for path, want := range map[string]string{
		"/usr/bin/pgbapi-proxy":                        "root:root 755",
		stateDir:                                       "root:pgbapi-proxy 750",
		stateDir + "/server":                           "pgbapi-proxy:pgbapi-proxy 700",
		stateDir + "/ca/root.key":                      "root:root 600",
		tpaDir:                                         "root:pgbapi-proxy 750",
		tpaDir + "/pg-backup-api.key":                  "pgbapi-proxy:pgbapi-proxy 600",
		tpaDir + "/pg-backup-user.crt":                 "root:root 644",
		"/etc/sysconfig/pgbapi-proxy":                  "root:root 644",
		"/usr/share/licenses/pgbapi-proxy":             "root:root 755",
		"/usr/lib/systemd/system/pgbapi-proxy.service": "root:root 644",
	} {
		assert.Equal(t, want, chroot("stat", "-c", "%U:%G %a", path), path)
	}
	out, err = exec.Command(rpm, "--root", root, "--dbpath", "/var/lib/rpm", "-q", "pgbapi-proxy").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, "pgbapi-proxy-1.0.0-1.x86_64\n", string(out))

	// rpm -e: the program goes, the PKI stays (README).
	out, err = exec.Command(rpm, "--root", root, "--dbpath", "/var/lib/rpm", "-e", "pgbapi-proxy").CombinedOutput()
	require.NoError(t, err, "rpm -e: %s", out)
	assert.Contains(t, string(out), "the cluster CA and keys were kept", "%postun")
	assert.NoFileExists(t, filepath.Join(root, "usr/bin/pgbapi-proxy"))
	assert.FileExists(t, filepath.Join(root, stateDir, "ca/root.key"))
	assert.NoDirExists(t, "/var/lib/pgbapi-proxy", "the host is untouched")
}
