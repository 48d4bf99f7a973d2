package packaging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/pgbapi/pgbapi-proxy/packaging/pin"
	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recapLine is ansible-playbook's PLAY RECAP line for the test's host.
var recapLine = regexp.MustCompile(`(?m)^barman1\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+).*$`)

// The Ansible role (packaging/ansible/roles/pgbapi_proxy), run by Debian's
// ansible-core against this machine as TPA's post-deploy hook would run it
// (the shipped hooks/post-deploy.yml, on a host in the barman role):
// it installs the locally built deb with the pinned stand-in pg-backup-api
// from a local apt repository, adopts a TPA-shaped PKI copied into
// /etc/tpa/pg-backup-api (with the CA key from the "controller", and
// without it; there, over a newer pg-backup-api, which it downgrades to
// the pinned one), issues a client certificate, and a second run reports
// changed=0.
//
// systemd is not PID 1 here, so the role skips the service (it says so)
// and the check the first time; the test then starts `pgbapi-proxy serve`
// itself, as the service user with the settings file's values (as the
// unit's EnvironmentFile would), and the second run includes the role's
// check (pgbapi_proxy_check=true): the documented curl by the inventory
// name, which --resolve points at 127.0.0.1 and the port the test chose.
// Apache is not installed, so the role's a2dissite step is skipped; the
// RHEL tasks are not run at all.
func TestAnsibleRole(t *testing.T) {
	requirePackages(t)
	needs.Root(t, "the role installs packages and writes /etc/tpa")
	playbook := needs.Command(t, "ansible-playbook", "ansible-core")
	if why := installable(); why != "" {
		needs.Skip(t, "%s", why)
	}
	for _, tc := range []struct {
		name    string
		withKey bool
		client  string // the client certificate the test curls with
	}{
		{"with the CA key", true, "pem"},
		{"without the CA key", false, "pemagent-barman1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testRepo(t)
			if !tc.withKey {
				// A newer pg-backup-api is there already: the role goes
				// back to the pinned one (apt-get --allow-downgrades).
				a.run("install", "pg-backup-api")
				require.Equal(t, "ii 2.1.0-1", debVersion(t, "pg-backup-api"))
			}
			// Its own cluster name: this CA lands in the machine's
			// trust store while other tests run.
			f := pkitest.TPAHost(t, pkitest.Options{Cluster: "ansibletest"})
			require.NoError(t, os.MkdirAll(tpaDir, 0o755))
			entries, err := os.ReadDir(f.Dir)
			require.NoError(t, err)
			for _, e := range entries {
				data, err := os.ReadFile(filepath.Join(f.Dir, e.Name()))
				require.NoError(t, err)
				mode := os.FileMode(0o644)
				if strings.HasSuffix(e.Name(), ".key") {
					mode = 0o600
				}
				require.NoError(t, os.WriteFile(filepath.Join(tpaDir, e.Name()), data, mode))
			}

			var up proxytest.Upstream
			upURL, stopUp, err := up.Start("")
			require.NoError(t, err)
			t.Cleanup(stopUp)
			listen, admin := freePort(t), freePort(t)
			keyTmp := t.TempDir()
			vars := map[string]any{
				"pg_backup_api_package_version": testPin,
				"pgbapi_proxy_package":          debPath("1.0.0"),
				"pgbapi_proxy_apt_options":      a.opts,
				"pgbapi_proxy_settings": map[string]string{
					"LISTEN": "127.0.0.1:" + listen, "ADMIN_LISTEN": "127.0.0.1:" + admin, "UPSTREAM": upURL,
				},
				"pgbapi_proxy_clients":       []string{tc.client},
				"pgbapi_proxy_ca_key_tmpdir": keyTmp,
				"pgbapi_proxy_check_port":    listen,
				"pgbapi_proxy_check_resolve": "127.0.0.1",
			}
			if tc.withKey {
				vars["pgbapi_proxy_ca_key_src"] = f.CAKey
			}
			dir := t.TempDir()
			varsFile := filepath.Join(dir, "vars.json")
			data, err := json.Marshal(vars)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(varsFile, data, 0o600))
			inventory := filepath.Join(dir, "inventory")
			require.NoError(t, os.WriteFile(inventory, []byte(
				"barman1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3 role='[\"barman\"]'\n"), 0o644))
			// TPA's deploy play includes hooks/post-deploy.yml on every host.
			play := filepath.Join(dir, "deploy.yml")
			require.NoError(t, os.WriteFile(play, []byte(`- hosts: all
  tasks:
    - ansible.builtin.include_tasks: `+filepath.Join(repoRoot, "packaging/ansible/hooks/post-deploy.yml")+`
`), 0o644))
			try := func(extra ...string) (string, error) {
				args := append([]string{"-i", inventory, play, "-e", "@" + varsFile}, extra...)
				cmd := exec.Command(playbook, args...)
				home := t.TempDir()
				cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_HOME="+home,
					"ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"), "ANSIBLE_REMOTE_TEMP="+filepath.Join(home, "tmp"),
					"ANSIBLE_ROLES_PATH="+filepath.Join(repoRoot, "packaging/ansible/roles"),
					"ANSIBLE_RETRY_FILES_ENABLED=0")
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			ansible := func(extra ...string) string {
				t.Helper()
				out, err := try(extra...)
				require.NoError(t, err, "ansible-playbook:\n%s", out)
				m := recapLine.FindStringSubmatch(out)
				require.NotNil(t, m, "no recap line:\n%s", out)
				t.Logf("recap: %s", m[0])
				if c := changedTasks(out); len(c) > 0 {
					t.Logf("changed: %s", strings.Join(c, "; "))
				}
				return out
			}

			// First run: installs, adopts, issues; no systemd, so no
			// service and no check, and it says so.
			out := ansible()
			m := recapLine.FindStringSubmatch(out)
			assert.NotEqual(t, "0", m[2], "the first run changes things")
			assert.Equal(t, "0", m[4])
			assert.Contains(t, out, "systemd is not running on this host")
			assert.Equal(t, "ii 1.0.0-1", debVersion(t, "pgbapi-proxy"))
			assert.Equal(t, "ii 2.0.0-1", debVersion(t, "pg-backup-api"), "the pinned pg-backup-api, not the newest")
			settings, err := os.ReadFile("/etc/default/pgbapi-proxy")
			require.NoError(t, err)
			assert.Contains(t, string(settings), "\nPGBAPI_PROXY_LISTEN=127.0.0.1:"+listen+"\n")
			assert.Contains(t, string(settings), "\nPGBAPI_PROXY_UPSTREAM="+upURL+"\n")
			left, err := os.ReadDir(keyTmp)
			require.NoError(t, err)
			assert.Empty(t, left, "the copy of the CA key is gone")
			if tc.withKey {
				assert.FileExists(t, stateDir+"/ca/root.key", "the controller's CA key was imported")
				who, mode := owner(t, stateDir+"/intermediate.key")
				assert.Equal(t, "pgbapi-proxy:pgbapi-proxy 600", fmt.Sprintf("%s %o", who, mode), "the service signs its server certificates with it")
				out, err := exec.Command("openssl", "verify", "-CAfile", f.CACert, tpaDir+"/"+tc.client+".crt").CombinedOutput()
				assert.NoError(t, err, "the issued client certificate is the TPA CA's: %s", out)
			} else {
				assert.NoFileExists(t, stateDir+"/ca/root.key", "adopted without the key")
			}

			// The service, as systemd would start it: the service user,
			// the settings file's values.
			stop := serveWithSettings(t)
			t.Cleanup(stop)

			// Second run, with the check: nothing changes, the
			// documented curl passes.
			out = ansible("-e", "pgbapi_proxy_check=true")
			m = recapLine.FindStringSubmatch(out)
			assert.Equal(t, "0", m[2], "the second run changes nothing:\n%s", out)
			assert.Equal(t, "0", m[4])
			assert.Contains(t, out, "TASK [pgbapi_proxy : pgbapi-proxy | curl https://barman1/diagnose")
			assert.Contains(t, out, `"barman_ver": "3.10.0"`, "the check printed /diagnose")

			// The client certificate the role issued (or, without the CA
			// key, the adopted one it left alone) gets /diagnose.
			body, err := exec.Command("curl", "-sS", "--resolve", "barman1:"+listen+":127.0.0.1",
				"--cert", tpaDir+"/"+tc.client+".crt", "--key", tpaDir+"/"+tc.client+".key",
				"https://barman1:"+listen+"/diagnose").CombinedOutput()
			require.NoError(t, err, "%s", body)
			assert.Equal(t, proxytest.Diagnose+"\n", string(body))

			if !tc.withKey {
				// A client certificate to issue where there is no CA key:
				// the role stops with what to do, and issues nothing.
				out, err := try("-e", `{"pgbapi_proxy_clients": ["pem"]}`)
				require.Error(t, err, "%s", out)
				assert.Contains(t, out, "pgbapi_proxy_clients asks for pem, but this host has no CA key")
				assert.NoFileExists(t, tpaDir+"/pem.crt")
			}
		})
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	require.NoError(t, err)
	return port
}

// serveWithSettings starts the installed serve as the service user with
// the values of /etc/default/pgbapi-proxy in its environment, as the
// unit's EnvironmentFile gives them, and returns a function that stops it.
func serveWithSettings(t *testing.T) func() {
	t.Helper()
	cmd := exec.Command("runuser", "-u", svcUser, "--", "sh", "-c",
		"set -a && . /etc/default/pgbapi-proxy && set +a && exec /usr/bin/pgbapi-proxy serve")
	var logs bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(&logs, pw)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	found := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if servingLine.MatchString(sc.Text()) {
				found <- struct{}{}
			}
		}
	}()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
		}
	}
	select {
	case <-found:
		return stop
	case err := <-exited:
		t.Fatalf("serve as %s exited: %v\n%s", svcUser, err, logs.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("serve as %s did not start:\n%s", svcUser, logs.String())
	}
	return nil
}

// changedTasks lists the tasks that ansible-playbook reported as changed.
func changedTasks(out string) []string {
	var tasks []string
	task := ""
	for _, line := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(line, "TASK ["); ok {
			task, _, _ = strings.Cut(name, "] *")
		} else if strings.HasPrefix(line, "changed: [barman1]") && (len(tasks) == 0 || tasks[len(tasks)-1] != task) {
			tasks = append(tasks, task)
		}
	}
	return tasks
}

// README shows the hook file as the packages ship it.
func TestREADMEShowsTheAnsibleHook(t *testing.T) {
	hook, err := os.ReadFile(filepath.Join(repoRoot, "packaging/ansible/hooks/post-deploy.yml"))
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(readme), "```yaml\n"+string(hook)+"```\n")
}

// The role gives apt the pin as packaging/pin (and so the deb's apt
// preferences) translates it, for every form the package build takes.
func TestAnsibleRoleAptVersion(t *testing.T) {
	playbook := needs.Command(t, "ansible-playbook", "ansible-core")
	pins := []string{"", "2.0.0-1.el8", "2:2.0.0-1", "2.0.0", "2:2.0.0", "2.0.0*", "2:2.0.0*", "2.0*"}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	pinsJSON, err := json.Marshal(pins)
	require.NoError(t, err)
	play := filepath.Join(dir, "play.yml")
	require.NoError(t, os.WriteFile(play, []byte(`- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.lineinfile:
        path: `+out+`
        create: true
        line: "{{ item }}|{{ lookup('ansible.builtin.template', '`+filepath.Join(repoRoot, "packaging/ansible/roles/pgbapi_proxy/templates/apt-version.j2")+`') | trim }}"
      vars:
        pg_backup_api_package_version: "{{ item }}"
      loop: `+string(pinsJSON)+`
`), 0o644))
	home := t.TempDir()
	cmd := exec.Command(playbook, "-i", "localhost,", play)
	cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_HOME="+home, "ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"),
		"ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3", "ANSIBLE_LOCALHOST_WARNING=0", "ANSIBLE_INVENTORY_UNPARSED_WARNING=0")
	output, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", output)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		p, v, _ := strings.Cut(line, "|")
		got[p] = v
	}
	for _, p := range pins {
		tr, err := pin.Translate(p)
		require.NoError(t, err)
		assert.Equal(t, tr.AptVersion, got[p], "pin %q", p)
	}
}
