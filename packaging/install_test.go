package packaging

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	tpaDir   = "/etc/tpa/pg-backup-api"
	stateDir = "/var/lib/pgbapi-proxy"
	svcUser  = "pgbapi-proxy"
)

// dummyPackages builds stand-in pg-backup-api packages (2.0.0-1 and
// 2.1.0-1) of the given packager with the same nfpm the Makefile pins.
func dummyPackages(t *testing.T, packager, dir string) {
	t.Helper()
	nfpm, err := filepath.Glob(filepath.Join(repoRoot, "bin", "tools", "nfpm-*"))
	require.NoError(t, err)
	require.NotEmpty(t, nfpm, "make packages installs nfpm")
	readme := filepath.Join(dir, "README")
	require.NoError(t, os.WriteFile(readme, []byte("stand-in for pg-backup-api in pgbapi-proxy's tests\n"), 0o644))
	for _, v := range []string{"2.0.0", "2.1.0"} {
		cfg := filepath.Join(dir, "pg-backup-api-"+v+".yaml")
		require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`name: pg-backup-api
arch: amd64
platform: linux
version: %s
release: "1"
maintainer: tests <tests@pgbapi-proxy.invalid>
description: stand-in for pg-backup-api
license: Proprietary
contents:
  - src: %s
    dst: /usr/share/doc/pg-backup-api-standin/README
`, v, readme)), 0o644))
		out, err := exec.Command(nfpm[0], "package", "--config", cfg, "--packager", packager, "--target", dir+"/").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.NoError(t, os.Remove(cfg))
	}
	require.NoError(t, os.Remove(readme))
}

// installable says why the real install test cannot run here, if it cannot.
func installable() string {
	if os.Geteuid() != 0 {
		return "installing packages needs root (CI runs as root)"
	}
	for _, tool := range []string{"apt-get", "dpkg-scanpackages", "runuser", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed"
		}
	}
	for _, p := range []string{tpaDir, stateDir} {
		if _, err := os.Stat(p); err == nil {
			return p + " exists: this machine has a real setup that the test must not touch"
		}
	}
	for _, pkg := range []string{"pgbapi-proxy", "pg-backup-api"} {
		if exec.Command("dpkg-query", "-W", pkg).Run() == nil {
			return pkg + " is installed: this machine has a real setup that the test must not touch"
		}
	}
	return ""
}

// apt runs apt-get with only the test repository as a source.
type apt struct {
	t    *testing.T
	opts []string
}

func (a apt) run(args ...string) string {
	a.t.Helper()
	cmd := exec.Command("apt-get", append(append([]string{"-y", "-q"}, a.opts...), args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	require.NoError(a.t, err, "apt-get %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// try runs apt-get and returns its output and error, for commands that
// are meant to fail.
func (a apt) try(args ...string) (string, error) {
	cmd := exec.Command("apt-get", append(append([]string{"-y", "-q"}, a.opts...), args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func debVersion(t *testing.T, pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// keys hashes every key and certificate the PKI holds.
func keys(t *testing.T) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, dir := range []string{tpaDir, stateDir + "/ca", stateDir} {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			if e.IsDir() || !(strings.HasSuffix(e.Name(), ".key") || strings.HasSuffix(e.Name(), ".crt")) {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			sum := sha256.Sum256(data)
			sums[filepath.Join(dir, e.Name())] = hex.EncodeToString(sum[:])
		}
	}
	return sums
}

func owner(t *testing.T, path string) (string, os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	st := info.Sys().(*syscall.Stat_t)
	out, err := exec.Command("stat", "-c", "%U:%G", path).Output()
	require.NoError(t, err)
	_ = st
	return strings.TrimSpace(string(out)), info.Mode().Perm()
}

// testRepo makes a local apt repository of the stand-in pg-backup-api
// 2.0.0-1 and 2.1.0-1, and an apt that sees only it. Cleanup purges what
// the test installed, each package on its own, and removes what install
// left behind (the PKI, the service user).
func testRepo(t *testing.T) apt {
	t.Helper()
	repo := t.TempDir()
	require.NoError(t, os.Chmod(repo, 0o755)) // apt's sandbox user reads it
	dummyPackages(t, "deb", repo)
	out, err := exec.Command("sh", "-c", "cd "+repo+" && dpkg-scanpackages --multiversion . /dev/null > Packages").CombinedOutput()
	require.NoError(t, err, "%s", out)
	list := filepath.Join(t.TempDir(), "pgbapi-proxy-test.list")
	require.NoError(t, os.WriteFile(list, []byte("deb [trusted=yes] file:"+repo+" ./\n"), 0o644))
	_, statErr := os.Stat(filepath.Dir(tpaDir))
	hadParent := statErr == nil
	trusted := systemTrust()
	a := apt{t: t, opts: []string{"-o", "Dir::Etc::sourcelist=" + list, "-o", "Dir::Etc::sourceparts=-", "-o", "APT::Get::List-Cleanup=0", "-o", "APT::Sandbox::User=root"}}
	t.Cleanup(func() {
		// Each package on its own, and checked: a package left installed
		// makes every later run skip (or, under CI, fail) this test.
		purgeAll(t, a.opts)
		os.RemoveAll(tpaDir)
		if !hadParent {
			os.Remove(filepath.Dir(tpaDir))
		}
		os.RemoveAll(stateDir)
		// init put the cluster CA into the system trust store: take out
		// what was not there before, and check.
		for f := range systemTrust() {
			if !trusted[f] {
				os.Remove(f)
			}
		}
		if out, err := exec.Command("update-ca-certificates", "--fresh").CombinedOutput(); err != nil {
			t.Errorf("update-ca-certificates: %v: %s", err, out)
		}
		assert.Equal(t, trusted, systemTrust(), "the trust store is as it was")
		exec.Command("userdel", svcUser).Run()
		exec.Command("groupdel", svcUser).Run()
		lists, _ := filepath.Glob("/var/lib/apt/lists/*" + strings.ReplaceAll(strings.TrimPrefix(repo, "/"), "/", "_") + "*")
		for _, l := range lists {
			os.Remove(l)
		}
	})
	a.run("update")
	return a
}

// systemTrust lists the local CA certificates of the system trust store.
func systemTrust() map[string]bool {
	files, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	set := map[string]bool{}
	for _, f := range files {
		set[f] = true
	}
	return set
}

// The README's install on a real Debian: pinned pg-backup-api, init, the
// service user serving, upgrade, remove and purge.
func TestDebInstall(t *testing.T) {
	requirePackages(t)
	if why := installable(); why != "" {
		needs.Skip(t, "%s", why)
	}
	a := testRepo(t)

	// The README's install command, with the build's pin.
	a.run("install", debPath("1.0.0"), "pg-backup-api="+testPin)
	assert.Equal(t, "ii 1.0.0-1", debVersion(t, "pgbapi-proxy"))
	assert.Equal(t, "ii 2.0.0-1", debVersion(t, "pg-backup-api"), "the pinned pg-backup-api, not the newest")

	// full-upgrade keeps both: the package's apt pin holds pg-backup-api.
	a.run("full-upgrade")
	assert.Equal(t, "ii 1.0.0-1", debVersion(t, "pgbapi-proxy"))
	assert.Equal(t, "ii 2.0.0-1", debVersion(t, "pg-backup-api"))

	// init ran: files, owners, modes as designed.
	for path, want := range map[string]string{
		stateDir:                                   "root:pgbapi-proxy 750",
		stateDir + "/server":                       "pgbapi-proxy:pgbapi-proxy 700",
		stateDir + "/ca":                           "root:root 700",
		stateDir + "/ca/root.key":                  "root:root 600",
		stateDir + "/intermediate.key":             "pgbapi-proxy:pgbapi-proxy 600",
		stateDir + "/inventory.json":               "root:root 644",
		stateDir + "/pki.json":                     "root:root 644",
		tpaDir:                                     "root:pgbapi-proxy 750",
		tpaDir + "/root.crt":                       "root:root 644",
		tpaDir + "/CA.crt":                         "root:root 644",
		tpaDir + "/pg-backup-api.crt":              "root:root 644",
		tpaDir + "/pg-backup-api.key":              "pgbapi-proxy:pgbapi-proxy 600",
		tpaDir + "/pg-backup-user.crt":             "root:root 644",
		tpaDir + "/pg-backup-user.key":             "root:root 600",
		"/etc/apt/preferences.d/pgbapi-proxy.pref": "root:root 644",
	} {
		who, mode := owner(t, path)
		assert.Equal(t, want, fmt.Sprintf("%s %o", who, mode), path)
	}
	assert.Error(t, exec.Command("runuser", "-u", svcUser, "--", "cat", stateDir+"/ca/root.key").Run(), "the service user cannot read the CA key")
	out, err := exec.Command("openssl", "verify", "-CAfile", tpaDir+"/root.crt", tpaDir+"/pg-backup-user.crt").CombinedOutput()
	require.NoError(t, err, "%s", out)
	analyze := needs.Command(t, "systemd-analyze", "systemd")
	out, err = exec.Command(analyze, "verify", "/usr/lib/systemd/system/pgbapi-proxy.service").CombinedOutput()
	assert.NoError(t, err, "systemd-analyze verify: %s", out)

	// The service user serves on a non-privileged port (no systemd here)
	// and the README's curl passes through to a stand-in upstream.
	var up proxytest.Upstream
	upURL, stopUp, err := up.Start("")
	require.NoError(t, err)
	defer stopUp()
	addr, stop := runuserServe(t, upURL)
	port := addr[strings.LastIndex(addr, ":")+1:]
	// The README's curl as documented: no --cacert, since init put the
	// cluster CA into this host's trust store (the cleanup takes it out).
	out, err = exec.Command("curl", "-sS", "--cert", tpaDir+"/pg-backup-user.crt",
		"--key", tpaDir+"/pg-backup-user.key", "https://localhost:"+port+"/diagnose").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, proxytest.Diagnose+"\n", string(out))
	stop()
	// What serve obtains goes into its own store; root's sync-server-cert
	// (the path unit's job; no systemd here) copies it on.
	out, err = exec.Command("/usr/bin/pgbapi-proxy", "sync-server-cert").CombinedOutput()
	require.NoError(t, err, "%s", out)

	// An upgrade keeps every key and certificate byte for byte.
	before := keys(t)
	a.run("install", debPath("1.0.1"))
	assert.Equal(t, "ii 1.0.1-1", debVersion(t, "pgbapi-proxy"))
	assert.Equal(t, before, keys(t))

	// remove: the program goes, settings and the PKI stay.
	a.run("remove", "pgbapi-proxy")
	assert.NoFileExists(t, "/usr/bin/pgbapi-proxy")
	assert.FileExists(t, "/etc/default/pgbapi-proxy")
	assert.NoFileExists(t, "/etc/apt/preferences.d/pgbapi-proxy.pref", "nothing holds pg-backup-api back once pgbapi-proxy is removed")
	assert.Equal(t, before, keys(t))
	// purge: the settings go; the CA and keys stay until the operator
	// deletes them (README).
	a.run("purge", "pgbapi-proxy")
	assert.Empty(t, debVersion(t, "pgbapi-proxy"))
	assert.NoFileExists(t, "/etc/default/pgbapi-proxy")
	assert.NoFileExists(t, "/etc/apt/preferences.d/pgbapi-proxy.pref")
	assert.Equal(t, before, keys(t))
}

// purgeAll purges, one at a time, every package the install tests may
// have installed, and fails the test if one is still there.
func purgeAll(t *testing.T, opts []string) {
	t.Helper()
	for _, pkg := range []string{"pgbapi-proxy", "pg-backup-api"} {
		if debVersion(t, pkg) == "" {
			continue
		}
		cmd := exec.Command("apt-get", append(append([]string{"-y", "-q"}, opts...), "purge", pkg)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil || debVersion(t, pkg) != "" {
			t.Errorf("cleanup: apt-get purge %s: %v (left: %q)\n%s", pkg, err, debVersion(t, pkg), out)
		}
	}
}

// The situations apt meets, with the README's commands: a newer
// pg-backup-api already installed; apt remove, which must not leave
// pg-backup-api held back; an upgrade to a pgbapi-proxy built for a newer
// pg-backup-api; purge.
func TestDebPackageSituations(t *testing.T) {
	requirePackages(t)
	if why := installable(); why != "" {
		needs.Skip(t, "%s", why)
	}
	a := testRepo(t)
	a.run("install", "pg-backup-api")
	require.Equal(t, "ii 2.1.0-1", debVersion(t, "pg-backup-api"))

	// A newer pg-backup-api is installed: the plain command fails with
	// apt's message, which names the option...
	out, err := a.try("install", debPath("1.0.0"), "pg-backup-api="+testPin)
	require.Error(t, err, "%s", out)
	assert.Contains(t, out, "Packages were downgraded and -y was used without --allow-downgrades")
	assert.Empty(t, debVersion(t, "pgbapi-proxy"))
	// ... and the README's command for this case works.
	a.run("install", "--allow-downgrades", debPath("1.0.0"), "pg-backup-api="+testPin)
	assert.Equal(t, "ii 1.0.0-1", debVersion(t, "pgbapi-proxy"))
	assert.Equal(t, "ii 2.0.0-1", debVersion(t, "pg-backup-api"))
	pref, err := os.ReadFile("/etc/apt/preferences.d/pgbapi-proxy.pref")
	require.NoError(t, err)
	assert.Contains(t, string(pref), "Pin: version 2.0.0*\nPin-Priority: 990\n")

	// apt remove: the pin goes with the program, so full-upgrade moves
	// pg-backup-api on.
	a.run("remove", "pgbapi-proxy")
	assert.NoFileExists(t, "/etc/apt/preferences.d/pgbapi-proxy.pref")
	a.run("full-upgrade")
	assert.Equal(t, "ii 2.1.0-1", debVersion(t, "pg-backup-api"), "nothing holds pg-backup-api back after remove")

	// Reinstalled (from the removed state), the pin is back.
	a.run("install", "--allow-downgrades", debPath("1.0.0"), "pg-backup-api="+testPin)
	assert.Equal(t, "ii 1.0.0-1", debVersion(t, "pgbapi-proxy"))
	assert.FileExists(t, "/etc/apt/preferences.d/pgbapi-proxy.pref")

	// An upgrade to a package built for a newer pg-backup-api: the
	// README's command names the new version; the pin follows.
	before := keys(t)
	a.run("install", debPath1_1(), "pg-backup-api="+newPin)
	assert.Equal(t, "ii 1.1.0-1", debVersion(t, "pgbapi-proxy"))
	assert.Equal(t, "ii 2.1.0-1", debVersion(t, "pg-backup-api"))
	pref, err = os.ReadFile("/etc/apt/preferences.d/pgbapi-proxy.pref")
	require.NoError(t, err)
	assert.Contains(t, string(pref), "Pin: version 2.1.0*\n")
	a.run("full-upgrade")
	assert.Equal(t, "ii 1.1.0-1", debVersion(t, "pgbapi-proxy"))
	assert.Equal(t, before, keys(t), "the upgrade keeps every key")

	// purge: program, settings and pin go; the PKI stays (README).
	a.run("purge", "pgbapi-proxy")
	assert.Empty(t, debVersion(t, "pgbapi-proxy"))
	assert.NoFileExists(t, "/etc/apt/preferences.d/pgbapi-proxy.pref")
	assert.NoFileExists(t, "/etc/default/pgbapi-proxy")
	assert.Equal(t, before, keys(t))
}

func debPath1_1() string { return filepath.Join(dist, "1.1.0", "pgbapi-proxy_1.1.0-1_amd64.deb") }

var servingLine = regexp.MustCompile(`msg=serving listen=(\S+) admin=(\S+)`)

// runuserServe starts the installed binary as the service user and
// returns its TLS address and a function that stops it.
func runuserServe(t *testing.T, upstream string) (string, func()) {
	t.Helper()
	cmd := exec.Command("runuser", "-u", svcUser, "--", "/usr/bin/pgbapi-proxy", "serve",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--upstream", upstream)
	var logs bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(&logs, pw)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case addr := <-found:
		return addr, func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(40 * time.Second):
				cmd.Process.Kill()
			}
		}
	case err := <-exited:
		t.Fatalf("serve as %s exited: %v\n%s", svcUser, err, logs.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve as %s did not start:\n%s", svcUser, logs.String())
	}
	return "", nil
}

// dnf, against a repository with both stand-in versions, picks the
// pg-backup-api the rpm was built for. Scriptlets cannot run in an empty
// install root, so the transaction is resolved, not run; TestRPMContents
// checks the scriptlets.
func TestRPMResolvesPinnedPgBackupAPI(t *testing.T) {
	requirePackages(t)
	needs.Root(t, "dnf --installroot")
	needs.Command(t, "dnf", "dnf")
	needs.Command(t, "createrepo_c", "createrepo-c")
	repo, root, cache := t.TempDir(), t.TempDir(), t.TempDir()
	dummyPackages(t, "rpm", repo)
	out, err := exec.Command("createrepo_c", "-q", repo).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, _ = exec.Command("dnf", "-y", "--installroot", root, "--releasever", "8",
		"--setopt=reposdir=/dev/null", "--setopt=cachedir="+cache, "--setopt=install_weak_deps=0",
		"--repofrompath=local,file://"+repo, "--repo=local", "--setopt=local.gpgcheck=0",
		"install", "--assumeno", rpmPath("1.0.0")).CombinedOutput()
	// --assumeno ends with "Operation aborted." and a non-zero status.
	require.Contains(t, string(out), "Dependencies resolved.", "%s", out)
	assert.Regexp(t, `(?m)^ pgbapi-proxy\s+x86_64\s+1\.0\.0-1\s`, string(out))
	assert.Regexp(t, `(?m)^ pg-backup-api\s+x86_64\s+2\.0\.0-1\s`, string(out), "the pinned version, not 2.1.0")
}
