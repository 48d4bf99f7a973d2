package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// binary is the real pgbapi-proxy, built once for every test here.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pgbapi-proxy-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "pgbapi-proxy")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("building pgbapi-proxy: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the binary with args and extra environment variables.
func cli(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	return runCmd(t, cmd)
}

// runCmd runs cmd and says how it ended; a failure to start fails the test.
func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// cleanEnv is the test's environment without any PGBAPI_PROXY_ setting
// that could leak in from the shell. init never touches this machine's
// system trust store from a test: a test that wants it installed passes
// PGBAPI_PROXY_NO_SYSTEM_TRUST=false and a scratch
// PGBAPI_PROXY_SYSTEM_TRUST_DIR (the last setting wins).
func cleanEnv() []string {
	env := []string{envPrefix + "NO_SYSTEM_TRUST=true"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// dirs is a TPA dir and a state dir for one test, as flags.
type dirs struct{ tpa, state string }

func newDirs(t *testing.T) dirs {
	base := t.TempDir()
	return dirs{tpa: filepath.Join(base, "tpa"), state: filepath.Join(base, "state")}
}

func (d dirs) flags(args ...string) []string {
	return append(args, "--tpa-dir", d.tpa, "--state-dir", d.state)
}

// requireOK fails the test with the command's stderr unless it succeeded.
func requireOK(t *testing.T, r result) {
	t.Helper()
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
}

// requireOneLineError checks how a failure looks to an operator: a non-zero
// exit status and one line on stderr, naming the program.
func requireOneLineError(t *testing.T, r result, code int, want string) {
	t.Helper()
	assert.Equal(t, code, r.code, "exit status; stderr: %s", r.stderr)
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	require.Len(t, lines, 1, "one error line, got: %q", r.stderr)
	assert.True(t, strings.HasPrefix(lines[0], "pgbapi-proxy: "), lines[0])
	assert.Contains(t, lines[0], want)
}

func openssl(t *testing.T, args ...string) string {
	t.Helper()
	needs.Command(t, "openssl", "openssl")
	out, err := exec.Command("openssl", args...).CombinedOutput()
	require.NoError(t, err, "openssl %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// tree reads every file under root, by path relative to root.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(root, path)
		files[rel] = string(data)
		return err
	})
	require.NoError(t, err)
	return files
}
