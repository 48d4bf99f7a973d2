package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxExposure is systemd-analyze security's exposure score of the unit
// (systemd 252, Debian 12): 2.0 before ProtectProc=, PrivateMounts= and
// RemoveIPC= were added, 1.6 since. It may only go down.
const maxExposure = 1.6

// unitCopy writes the packaged unit to a scratch directory with ExecStart
// pointing at an executable that exists here (verify checks it), plus
// the drop-ins given, and returns the unit's path.
func unitCopy(t *testing.T, dropins map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(repoRoot, "packaging", "pgbapi-proxy.service"))
	require.NoError(t, err)
	unit := filepath.Join(dir, "pgbapi-proxy.service")
	require.NoError(t, os.WriteFile(unit, []byte(strings.ReplaceAll(string(data), "/usr/bin/pgbapi-proxy", "/bin/true")), 0o644))
	for name, text := range dropins {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "pgbapi-proxy.service.d"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "pgbapi-proxy.service.d", name), []byte(text), 0o644))
	}
	return unit
}

func TestUnitVerifies(t *testing.T) {
	analyze := needs.Command(t, "systemd-analyze", "systemd")
	out, err := exec.Command(analyze, "verify", unitCopy(t, nil)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warns")
	data, err := os.ReadFile(filepath.Join(repoRoot, "packaging", "pgbapi-proxy.service"))
	require.NoError(t, err)
	assert.Contains(t, string(data), "\nType=notify\n", "serve says when it is ready (sd_notify)")
}

var exposure = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

func TestUnitExposure(t *testing.T) {
	analyze := needs.Command(t, "systemd-analyze", "systemd")
	out, err := exec.Command(analyze, "security", "--offline=true", unitCopy(t, nil)).CombinedOutput()
	m := exposure.FindStringSubmatch(string(out))
	require.NotNil(t, m, "%v: %s", err, out)
	score, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	t.Logf("systemd-analyze security exposure: %.1f (at most %.1f)", score, maxExposure)
	assert.LessOrEqual(t, score, maxExposure, "the unit's exposure went up:\n%s", out)
}

// The path unit and the root service it starts (sync-server-cert) verify.
func TestServerCertPathUnitVerifies(t *testing.T) {
	analyze := needs.Command(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	for _, name := range []string{"pgbapi-proxy-server-cert.path", "pgbapi-proxy-server-cert.service"} {
		data, err := os.ReadFile(filepath.Join(repoRoot, "packaging", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(string(data), "/usr/bin/pgbapi-proxy", "/bin/true")), 0o644))
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "pgbapi-proxy-server-cert.path"), filepath.Join(dir, "pgbapi-proxy-server-cert.service")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warns")
	data, err := os.ReadFile(filepath.Join(repoRoot, "packaging", "pgbapi-proxy-server-cert.path"))
	require.NoError(t, err)
	assert.Contains(t, string(data), "PathChanged=/var/lib/pgbapi-proxy/server/pg-backup-api.crt")
}
