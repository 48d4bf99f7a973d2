// Package packaging holds the files the deb and rpm packages are built
// from (see nfpm.yaml at the root) and the tests that build, inspect and
// install them for real.
package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPin is the operator's pin the packages under test are built with.
const testPin = "2.0.0*"

// newPin is the pin of the 1.1.0 deb, the upgrade to a newer pg-backup-api.
const newPin = "2.1.0*"

var (
	repoRoot string
	dist     string // packages built once for every test here
	buildErr error
)

func TestMain(m *testing.M) {
	root, err := filepath.Abs("..")
	if err != nil {
		panic(err)
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "pgbapi-proxy-dist-")
	if err != nil {
		panic(err)
	}
	dist = dir
	if _, err := exec.LookPath("make"); err != nil {
		buildErr = fmt.Errorf("make is not installed")
	} else {
		for _, v := range []string{"1.0.0", "1.0.1"} {
			if buildErr = makePackages("packages", v, testPin, filepath.Join(dist, v)); buildErr != nil {
				break
			}
		}
		// The next release, built for a newer pg-backup-api.
		if buildErr == nil {
			buildErr = makePackages("deb", "1.1.0", newPin, filepath.Join(dist, "1.1.0"))
		}
	}
	binBefore := binListing()
	code := m.Run()
	os.RemoveAll(dist)
	if after := binListing(); after != binBefore {
		fmt.Fprintf(os.Stderr, "FAIL: the tests changed the developer's bin/:\nbefore:\n%s\nafter:\n%s\n", binBefore, after)
		code = 1
	}
	os.Exit(code)
}

// binListing describes the developer's bin/ (but bin/tools, where make
// keeps the pinned nfpm): what `make build` left there, which the tests
// must not overwrite (they build into directories of their own).
func binListing() string {
	var b strings.Builder
	entries, _ := os.ReadDir(filepath.Join(repoRoot, "bin"))
	for _, e := range entries {
		if info, err := e.Info(); err == nil && e.Name() != "tools" {
			fmt.Fprintf(&b, "%s %d %s\n", e.Name(), info.Size(), info.ModTime())
		}
	}
	return b.String()
}

func makePackages(target, version, pin, out string) error {
	cmd := exec.Command("make", "-C", repoRoot, target, "VERSION="+version, "DIST="+out, "BUILD="+filepath.Join(out, "build"), "PG_BACKUP_API_VERSION="+pin)
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make %s VERSION=%s: %v\n%s", target, version, err, output)
	}
	return nil
}

func requirePackages(t *testing.T) {
	t.Helper()
	require.NoError(t, buildErr, "building the packages")
}

func debPath(version string) string {
	return filepath.Join(dist, version, "pgbapi-proxy_"+version+"-1_amd64.deb")
}

func rpmPath(version string) string {
	return filepath.Join(dist, version, "pgbapi-proxy-"+version+"-1.x86_64.rpm")
}

// debianPackage names the package that provides each tool run() runs.
var debianPackage = map[string]string{
	"dpkg-deb": "dpkg", "rpm": "rpm", "sh": "dash", "systemd-analyze": "systemd", "tar": "tar",
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	needs.Command(t, name, debianPackage[name])
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

func TestDebContents(t *testing.T) {
	requirePackages(t)
	deb := debPath("1.0.0")
	assert.Equal(t, "pg-backup-api (>= 2.0.0~), pg-backup-api (<< 2.0.1~)\n", run(t, "dpkg-deb", "-f", deb, "Depends"))
	assert.Equal(t, "1.0.0-1\n", run(t, "dpkg-deb", "-f", deb, "Version"))
	changelog := run(t, "sh", "-c", "dpkg-deb --fsys-tarfile "+deb+" | tar -xO ./usr/share/doc/pgbapi-proxy/changelog.Debian.gz | gzip -dc")
	assert.True(t, strings.HasPrefix(changelog, "pgbapi-proxy (1.0.0-1) "), "the newest entry is the package's version:\n%s", changelog)
	listing := run(t, "dpkg-deb", "-c", deb)
	for _, want := range []string{
		`-rwxr-xr-x root/root +\d+ \S+ \S+ \./usr/bin/pgbapi-proxy\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./usr/lib/systemd/system/pgbapi-proxy\.service\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./etc/default/pgbapi-proxy\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./usr/share/pgbapi-proxy/apt-preferences\n`,
		`\./usr/share/doc/pgbapi-proxy/changelog\.Debian\.gz\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ ./usr/share/man/man1/pgbapi-proxy\.1\.gz\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./usr/share/bash-completion/completions/pgbapi-proxy\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./usr/share/pgbapi-proxy/grafana-dashboard\.json\n`,
	} {
		assert.Regexp(t, want, listing)
	}
	// The Ansible role and the TPA hook, every file as in the repository.
	files, dirs := ansibleTree(t)
	for _, d := range dirs {
		assert.Regexp(t, `drwxr-xr-x root/root +0 \S+ \S+ \./usr/share/pgbapi-proxy/`+regexp.QuoteMeta(d)+`/\n`, listing)
	}
	for _, f := range files {
		assert.Regexp(t, `-rw-r--r-- root/root +\d+ \S+ \S+ \./usr/share/pgbapi-proxy/`+regexp.QuoteMeta(f)+`\n`, listing)
		want, err := os.ReadFile(filepath.Join(repoRoot, "packaging", f))
		require.NoError(t, err)
		assert.Equal(t, string(want), run(t, "sh", "-c", "dpkg-deb --fsys-tarfile "+deb+" | tar -xO ./usr/share/pgbapi-proxy/"+f), f)
	}
	conffiles := run(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+deb+" | tar -xO ./conffiles")
	assert.Contains(t, conffiles, "/etc/default/pgbapi-proxy\n", "an upgrade never replaces the settings")
	assert.NotContains(t, conffiles, "/etc/apt/", "the apt pin is no conffile: apt remove takes it away")
	pref := run(t, "sh", "-c", "dpkg-deb --fsys-tarfile "+deb+" | tar -xO ./usr/share/pgbapi-proxy/apt-preferences")
	assert.Contains(t, pref, "Package: pg-backup-api\nPin: version 2.0.0*\nPin-Priority: 990\n")
}

func TestRPMContents(t *testing.T) {
	requirePackages(t)
	rpm := rpmPath("1.0.0")
	requires := run(t, "rpm", "-qp", "--requires", rpm)
	assert.Contains(t, requires, "pg-backup-api >= 2.0.0~\n")
	assert.Contains(t, requires, "pg-backup-api < 2.0.1~\n")
	listing := run(t, "rpm", "-qlpv", rpm)
	assert.Regexp(t, `-rwxr-xr-x +1 root +root +\d+ .* /usr/bin/pgbapi-proxy\n`, listing)
	assert.Regexp(t, `-rw-r--r-- +1 root +root +\d+ .* /usr/lib/systemd/system/pgbapi-proxy\.service\n`, listing)
	assert.Regexp(t, `-rw-r--r-- +1 root +root +\d+ .* /etc/sysconfig/pgbapi-proxy\n`, listing)
	assert.NotContains(t, listing, "/etc/apt/")
	assert.Contains(t, run(t, "rpm", "-qp", "--configfiles", rpm), "/etc/sysconfig/pgbapi-proxy")
	assert.Contains(t, run(t, "rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpm), "cn /etc/sysconfig/pgbapi-proxy", "config(noreplace)")
	scripts := run(t, "rpm", "-qp", "--scripts", rpm)
	for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "pgbapi-proxy init", "useradd --system"} {
		assert.Contains(t, scripts, want)
	}
	changelog := run(t, "rpm", "-qp", "--changelog", rpm)
	assert.Contains(t, changelog, "First release.")
	assert.Regexp(t, `^\* .* - 1\.0\.0-1\n`, changelog, "the newest entry is the package's version")
	assert.Regexp(t, `-rw-r--r-- +1 root +root +\d+ .* /usr/share/licenses/pgbapi-proxy/copyright\n`, listing)
	assert.Contains(t, run(t, "rpm", "-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]", rpm), "l /usr/share/licenses/pgbapi-proxy/copyright", "%license")
	assert.Regexp(t, `drwxr-xr-x +\d+ root +root +\d+ .* /usr/share/pgbapi-proxy\n`, listing, "the package owns its directory")
	assert.Regexp(t, `(?s)preinstall scriptlet.*useradd --system`, scripts, "the user is made in %pre")
	// The Ansible role and the TPA hook; rpm owns each directory.
	files, dirs := ansibleTree(t)
	for _, d := range dirs {
		assert.Regexp(t, `drwxr-xr-x +\d+ root +root +0 .* /usr/share/pgbapi-proxy/`+regexp.QuoteMeta(d)+`\n`, listing)
	}
	for _, f := range files {
		assert.Regexp(t, `-rw-r--r-- +1 root +root +\d+ .* /usr/share/pgbapi-proxy/`+regexp.QuoteMeta(f)+`\n`, listing)
	}
}

// ansibleTree lists packaging/ansible: its files and its directories
// (itself included), relative to packaging/ (ansible/roles/...).
func ansibleTree(t *testing.T) (files, dirs []string) {
	t.Helper()
	base := filepath.Join(repoRoot, "packaging")
	require.NoError(t, filepath.WalkDir(filepath.Join(base, "ansible"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(base, path)
		if d.IsDir() {
			dirs = append(dirs, rel)
		} else {
			files = append(files, rel)
		}
		return err
	}))
	require.Contains(t, files, "ansible/roles/pgbapi_proxy/tasks/main.yml")
	require.Contains(t, files, "ansible/hooks/post-deploy.yml")
	return files, dirs
}

func TestUntranslatablePinStopsTheBuild(t *testing.T) {
	tmp := t.TempDir()
	out, err := exec.Command("make", "-C", repoRoot, "deb", "VERSION=1.0.0", "DIST="+tmp, "BUILD="+filepath.Join(tmp, "build"), "PG_BACKUP_API_VERSION=2.*.0").CombinedOutput()
	require.Error(t, err)
	assert.Regexp(t, regexp.MustCompile(`nfpmconfig: PG_BACKUP_API_VERSION="2\.\*\.0": a '\*' is only understood at the end`), string(out))
}

func TestLintian(t *testing.T) {
	requirePackages(t)
	needs.Command(t, "lintian", "lintian")
	out, _ := exec.Command("lintian", "--allow-root", debPath("1.0.0")).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		assert.False(t, strings.HasPrefix(line, "E:"), "lintian error: %s", line)
	}
}

// make install lays the tree out where the packages put things.
func TestMakeInstall(t *testing.T) {
	dest, build := t.TempDir(), "BUILD="+t.TempDir()
	out, err := exec.Command("make", "-C", repoRoot, "install", "DESTDIR="+dest, "PREFIX=/usr/local", build).CombinedOutput()
	require.NoError(t, err, "%s", out)
	want := map[string]os.FileMode{
		"usr/local/bin/pgbapi-proxy":                               0o755,
		"usr/local/share/man/man1/pgbapi-proxy.1.gz":               0o644,
		"usr/local/share/bash-completion/completions/pgbapi-proxy": 0o644,
		"usr/local/share/pgbapi-proxy/grafana-dashboard.json":      0o644,
		"usr/local/lib/systemd/system/pgbapi-proxy.service":        0o644,
		"etc/default/pgbapi-proxy":                                 0o644,
	}
	got := map[string]os.FileMode{}
	require.NoError(t, filepath.WalkDir(dest, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		rel, _ := filepath.Rel(dest, path)
		got[rel] = info.Mode().Perm()
		return err
	}))
	assert.Equal(t, want, got)
	unit, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system/pgbapi-proxy.service"))
	require.NoError(t, err)
	assert.Contains(t, string(unit), "ExecStart=/usr/local/bin/pgbapi-proxy serve\n")
	// ... where systemd looks for units.
	paths := run(t, "systemd-analyze", "unit-paths")
	assert.Contains(t, strings.Split(paths, "\n"), "/usr/local/lib/systemd/system", "systemd's unit paths:\n%s", paths)

	// The operator's settings survive a second install.
	settings := filepath.Join(dest, "etc/default/pgbapi-proxy")
	require.NoError(t, os.WriteFile(settings, []byte("PGBAPI_PROXY_LISTEN=:8443\n"), 0o644))
	out, err = exec.Command("make", "-C", repoRoot, "install", "DESTDIR="+dest, "PREFIX=/usr/local", build).CombinedOutput()
	require.NoError(t, err, "%s", out)
	data, err := os.ReadFile(settings)
	require.NoError(t, err)
	assert.Equal(t, "PGBAPI_PROXY_LISTEN=:8443\n", string(data))
}
