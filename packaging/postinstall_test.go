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

// Issue 13 items 11 and 13: the service account writes only its own
// store. Everything that decides trust is root's, directories included,
// so it can neither replace nor delete a file there; links it plants in
// its store are followed by nothing root runs.
func TestPostinstallFollowsNoLink(t *testing.T) {
	scratchSetup(t)
	bin := buildBinary(t)
	base, err := os.MkdirTemp("", "pgbapi-postinst-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	tpa, state, dropin, pathDropin := filepath.Join(base, "tpa"), filepath.Join(base, "state"), filepath.Join(base, "dropin"), filepath.Join(base, "pathdropin")
	env := []string{"PGBAPI_PROXY_TPA_DIR=" + tpa, "PGBAPI_PROXY_STATE_DIR=" + state, "PGBAPI_PROXY_DROPIN_DIR=" + dropin,
		"PGBAPI_PROXY_PATH_DROPIN_DIR=" + pathDropin, "PGBAPI_PROXY_CLUSTER_NAME=test", "PGBAPI_PROXY_HOSTNAME=localhost",
		"PGBAPI_PROXY_NO_SYSTEM_TRUST=true"}
	postinstall(t, bin, env, "configure")
	for path, want := range map[string]string{
		state:                                    "root:pgbapi-proxy 750",
		filepath.Join(state, "ca"):               "root:root 700",
		filepath.Join(state, "server"):           "pgbapi-proxy:pgbapi-proxy 700",
		tpa:                                      "root:pgbapi-proxy 750",
		filepath.Join(tpa, "root.crt"):           "root:root 644",
		filepath.Join(tpa, "pg-backup-api.key"):  "pgbapi-proxy:pgbapi-proxy 600",
		filepath.Join(state, "intermediate.key"): "pgbapi-proxy:pgbapi-proxy 600",
		filepath.Join(state, "inventory.json"):   "root:root 644",
	} {
		assert.Equal(t, want, ownerMode(t, path), path)
	}

	// Root's trust inputs as a running host has them: a revocation
	// (record and CRL) and an access rules file.
	rootEnv := append(os.Environ(), env...)
	for _, args := range [][]string{{"issue-client", "--name", "victim"}, {"revoke", "--name", "victim"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = rootEnv
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: %s", args, out)
	}
	access := filepath.Join(base, "access")
	require.NoError(t, os.WriteFile(access, []byte("pem read\n"), 0o644))

	// The compromised service account tries to change what decides trust.
	asService := func(script string) error {
		return exec.Command("runuser", "-u", svcUser, "--", "sh", "-c", script).Run()
	}
	for _, attack := range []string{
		"echo x >> " + tpa + "/root.crt",
		"echo x > " + state + "/revoked.json",
		"rm -f " + state + "/revoked.json",
		"mv " + state + "/crl.pem " + state + "/crl.old",
		"mv " + state + "/inventory.json " + state + "/inv.old",
		"echo '{}' > " + state + "/inventory.json",
		"touch " + state + "/pki.json.new",
		"touch " + tpa + "/evil.crt",
		"echo x > " + tpa + "/crl.pem",
		"cat " + state + "/ca/root.key",
		"cat " + tpa + "/victim.key",
		"echo '* all' > " + access,
	} {
		assert.Error(t, asService(attack), "the service account could: %s", attack)
	}
	require.NoError(t, asService("echo ok > "+state+"/server/its-own"), "its own store stays writable")

	// Links it plants in its store, pointing at root's files.
	secrets := filepath.Join(base, "root-only")
	require.NoError(t, os.Mkdir(secrets, 0o755))
	secret := filepath.Join(secrets, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("root's\n"), 0o640))
	plant := fmt.Sprintf("set -e; cd %s/server; ln -s %s pg-backup-api.crt; ln -s %s pg-backup-api.key; ln -s %s evil; ln -s %s dir-link",
		state, secret, secret, secret, secrets)
	out, err := exec.Command("runuser", "-u", svcUser, "--", "sh", "-c", plant).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// The upgrade's postinstall, and root's copy of the served certificate.
	postinstall(t, bin, env, "configure", "1.0.0")
	cmd := exec.Command(bin, "sync-server-cert")
	cmd.Env = rootEnv
	out, err = cmd.CombinedOutput()
	assert.Error(t, err, "a link in the store is refused: %s", out)
	assert.Equal(t, "root:root 640", ownerMode(t, secret))
	assert.Equal(t, "root:root 755", ownerMode(t, secrets))
	assert.Equal(t, "root's\n", string(must(os.ReadFile(secret))))

	// The unit may write exactly the service's store under the settings'
	// state directory; the path unit watches it there.
	conf, err := os.ReadFile(filepath.Join(dropin, "paths.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(conf), "[Service]\nReadWritePaths=\nReadWritePaths=-"+state+"/server\n")
	pathConf, err := os.ReadFile(filepath.Join(pathDropin, "paths.conf"))
	require.NoError(t, err)
	assert.Contains(t, string(pathConf), "[Path]\nPathChanged=\nPathChanged="+state+"/server/pg-backup-api.crt\n")
	analyze := needs.Command(t, "systemd-analyze", "systemd")
	out, err = exec.Command(analyze, "verify", unitCopy(t, map[string]string{"paths.conf": string(conf)})).CombinedOutput()
	assert.NoError(t, err, "%s", out)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
