// Package needs lets a test say what it cannot run without. Outside CI a
// test that lacks a component (root, a tool, a package) skips with the
// reason; under CI=true the same call fails the test, so that nothing CI
// is meant to cover is skipped in silence.
package needs

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where every
// component must be present.
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips t with the reason, or fails it under CI=true.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI=true, so this cannot be skipped: %s", msg)
	}
	t.Skip(msg)
}

// Root skips (or fails under CI) unless the test runs as root.
func Root(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (%s); CI runs as root", why)
	}
}

// Command skips (or fails under CI) unless name is on PATH, and returns
// its path. pkg is the Debian package that provides it.
func Command(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Skip(t, "%s is not installed (apt-get install %s)", name, pkg)
	}
	return path
}
