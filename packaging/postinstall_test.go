package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// postinstall runs the real maintainer scripts as root with the settings
// the environment gives (no /etc/default file is read when none exists),
// a pgbapi-proxy built for the test first on PATH.
func postinstall(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	// As the package does: preinstall (the service user) first.
	out, err := exec.Command("sh", filepath.Join(repoRoot, "packaging", "scripts", "preinstall.sh"), "install").CombinedOutput()
	require.NoError(t, err, "preinstall.sh: %s", out)
	cmd := exec.Command("sh", append([]string{filepath.Join(repoRoot, "packaging", "scripts", "postinstall.sh")}, args...)...)
	cmd.Env = append(append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH")), env...)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "postinstall.sh %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// scratchSetup says why the maintainer script cannot run here as the test
// needs: as root, with no real service user and settings file to disturb.
func scratchSetup(t *testing.T) {
	t.Helper()
	needs.Root(t, "the maintainer script creates the service user and chowns")
	needs.Command(t, "runuser", "util-linux")
	for _, f := range []string{"/etc/default/pgbapi-proxy", "/etc/sysconfig/pgbapi-proxy"} {
		if _, err := os.Stat(f); err == nil {
			needs.Skip(t, "%s exists: a real setup the test must not touch", f)
		}
	}
	if exec.Command("getent", "passwd", svcUser).Run() == nil {
		needs.Skip(t, "the user %s exists: a real setup the test must not touch", svcUser)
	}
	t.Cleanup(func() {
		exec.Command("userdel", svcUser).Run()
		exec.Command("groupdel", svcUser).Run()
	})
}

// buildBinary builds pgbapi-proxy into a directory of the test's own.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pgbapi-proxy")
	out, err := exec.Command("go", "build", "-o", bin, filepath.Join(repoRoot, "cmd", "pgbapi-proxy")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

func ownerMode(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%U:%G %a", path).Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// Issue 13 item 11: the service user plants links in the directories it
// can write, pointing at root's files; the next upgrade's maintainer
// script (run for real, as root) must not hand those files over.
func TestPostinstallFollowsNoLink(t *testing.T) {
	scratchSetup(t)
	bin := buildBinary(t)
	base, err := os.MkdirTemp("", "pgbapi-postinst-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	tpa, state, dropin := filepath.Join(base, "tpa"), filepath.Join(base, "state"), filepath.Join(base, "dropin")
	env := []string{"PGBAPI_PROXY_TPA_DIR=" + tpa, "PGBAPI_PROXY_STATE_DIR=" + state, "PGBAPI_PROXY_DROPIN_DIR=" + dropin,
		"PGBAPI_PROXY_CLUSTER_NAME=test", "PGBAPI_PROXY_HOSTNAME=localhost"}
	postinstall(t, bin, env, "configure")
	assert.Equal(t, "pgbapi-proxy:pgbapi-proxy 700", ownerMode(t, state))
	assert.Equal(t, "root:pgbapi-proxy 770", ownerMode(t, tpa))

	// Root's files, which the service user must never come to own: a copy
	// of the intermediate certificate (so that init, which reads through
	// the link, still succeeds and the script reaches its chowns) and a
	// secret.
	secrets := filepath.Join(base, "root-only")
	require.NoError(t, os.Mkdir(secrets, 0o755))
	interCopy, secret := filepath.Join(secrets, "intermediate.crt"), filepath.Join(secrets, "secret")
	data, err := os.ReadFile(filepath.Join(state, "intermediate.crt"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(interCopy, data, 0o640))
	require.NoError(t, os.WriteFile(secret, []byte("root's\n"), 0o640))
	// The attack, as the real service user.
	plant := fmt.Sprintf("set -e; cd %s; rm -f intermediate.crt; ln -s %s intermediate.crt; mkdir -p certmagic; ln -s %s certmagic/evil; ln -s %s certmagic-link",
		state, interCopy, secret, secrets)
	out, err := exec.Command("runuser", "-u", svcUser, "--", "sh", "-c", plant).CombinedOutput()
	require.NoError(t, err, "%s", out)

	// The upgrade's postinstall.
	log := postinstall(t, bin, env, "configure", "1.0.0")
	assert.Contains(t, log, state+"/intermediate.crt is a symbolic link; left alone")
	for _, f := range []string{interCopy, secret} {
		assert.Equal(t, "root:root 640", ownerMode(t, f), "%s after the upgrade", f)
	}
	assert.Equal(t, "root:root 755", ownerMode(t, secrets))

	// The unit may write exactly the directories the settings name.
	conf, err := os.ReadFile(filepath.Join(dropin, "paths.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(conf), "[Service]\nReadWritePaths=\nReadWritePaths=-"+state+" -"+tpa+"\n")
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command(analyze, "verify", unitCopy(t, map[string]string{"paths.conf": string(conf)})).CombinedOutput()
		assert.NoError(t, err, "%s", out)
	} else {
		needs.Skip(t, "systemd-analyze is not installed (apt-get install systemd)")
	}
}
