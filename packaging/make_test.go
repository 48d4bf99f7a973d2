package packaging

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A clone without tags: make's version orders commits by time, in dpkg's
// and in rpm's comparison.
func TestVersionSortsWithoutTags(t *testing.T) {
	needs.Command(t, "git", "git")
	dpkg := needs.Command(t, "dpkg", "dpkg")
	clone := filepath.Join(t.TempDir(), "clone")
	gitRun := func(env []string, args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", clone, "-c", "user.name=test", "-c", "user.email=test@pgbapi-proxy.invalid"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	out, err := exec.Command("git", "clone", "-q", "--no-tags", repoRoot, clone).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// The working tree's Makefile, as committed or not.
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	require.NoError(t, err)
	var versions []string
	for i, date := range []string{"2026-01-02T03:04:05Z", "2026-01-02T03:04:06Z", "2026-02-01T00:00:00Z"} {
		require.NoError(t, os.WriteFile(filepath.Join(clone, "Makefile"), mk, 0o644))
		gitRun([]string{"GIT_COMMITTER_DATE=" + date, "GIT_AUTHOR_DATE=" + date}, "commit", "-q", "-a", "--allow-empty", "-m", "commit "+string(rune('a'+i)))
		out, err := exec.Command("make", "-s", "-C", clone, "version").CombinedOutput()
		require.NoError(t, err, "%s", out)
		// nfpmconfig keeps this form as it is (TestPackageVersion).
		v := strings.TrimSpace(string(out))
		assert.Regexp(t, `^0\.0\.0\+git\d{14}\.[0-9a-f]{7,}$`, v)
		versions = append(versions, v)
	}
	for i := 1; i < len(versions); i++ {
		assert.NoError(t, exec.Command(dpkg, "--compare-versions", versions[i-1], "lt", versions[i]).Run(), "dpkg: %s < %s", versions[i-1], versions[i])
		if rpm, err := exec.LookPath("rpm"); err == nil {
			out, err := exec.Command(rpm, "--eval", `%{lua: print(rpm.vercmp("`+versions[i-1]+`", "`+versions[i]+`"))}`).Output()
			require.NoError(t, err)
			assert.Equal(t, "-1", strings.TrimSpace(string(out)), "rpm: %s < %s", versions[i-1], versions[i])
		} else {
			needs.Skip(t, "rpm is not installed (apt-get install rpm)")
		}
	}
}

// make help prints the paths this make would use, not variable names.
func TestMakeHelpPrintsRealPaths(t *testing.T) {
	out, err := exec.Command("make", "-s", "-C", repoRoot, "help", "PREFIX=/usr/local", "DIST=/tmp/d").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.NotContains(t, string(out), "$(", "%s", out)
	assert.Contains(t, string(out), "install into /usr/local:")
	assert.Contains(t, string(out), "the unit into /usr/local/lib/systemd/system")
	assert.Contains(t, string(out), "build /tmp/d/pgbapi-proxy_*.deb")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// make run prints one curl command, and that command works.
func TestMakeRunPrintsOneWorkingCurl(t *testing.T) {
	needs.Command(t, "curl", "curl")
	tmp := t.TempDir()
	port := freeAddr(t)
	port = port[strings.LastIndex(port, ":")+1:]
	vars := []string{"BUILD=" + filepath.Join(tmp, "build"), "DEMO=" + filepath.Join(tmp, "demo"),
		"PORT=" + port, "ADMIN=" + freeAddr(t), "UPSTREAM=" + freeAddr(t)}
	cmd := exec.Command("make", append([]string{"-s", "-C", repoRoot, "run"}, vars...)...)
	cmd.Env = append(os.Environ(), vars...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() //nolint:errcheck // stopped below
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var printed []string
	timeout := time.After(3 * time.Minute)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("make run ended:\n%s\n%s", strings.Join(printed, "\n"), stderr.String())
			}
			printed = append(printed, l)
			if strings.HasPrefix(l, "Press Ctrl-C") {
				break read
			}
		case <-timeout:
			t.Fatalf("make run did not get ready:\n%s\n%s", strings.Join(printed, "\n"), stderr.String())
		}
	}
	var curls []string
	for _, l := range printed {
		if strings.Contains(l, "curl ") {
			curls = append(curls, strings.TrimSpace(l))
		}
	}
	require.Len(t, curls, 1, "one curl command:\n%s", strings.Join(printed, "\n"))
	assert.Contains(t, curls[0], "https://localhost:"+port+"/")
	out, err := exec.Command("sh", "-c", curls[0]+" --silent --show-error --max-time 30").CombinedOutput()
	require.NoError(t, err, "%s: %s", curls[0], out)
	assert.True(t, strings.HasPrefix(string(out), "{"), "the demo's /diagnose: %s", out)
}
