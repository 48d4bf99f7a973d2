package needs

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSkipFailsUnderCI runs a child test that lacks a command, once with
// CI=true (it must fail) and once without (it must skip).
func TestSkipFailsUnderCI(t *testing.T) {
	if os.Getenv("NEEDS_CHILD") == "1" {
		Command(t, "no-such-command-pgbapi", "nothing")
		return
	}
	for _, tc := range []struct {
		ci   string
		fail bool
		want string
	}{
		{"true", true, "CI=true, so this cannot be skipped"},
		{"", false, "SKIP"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestSkipFailsUnderCI$", "-test.v")
		cmd.Env = append(os.Environ(), "NEEDS_CHILD=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		require.Equal(t, tc.fail, err != nil, "CI=%q: %s", tc.ci, out)
		require.True(t, strings.Contains(string(out), tc.want), "CI=%q: %s", tc.ci, out)
	}
}
