package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SystemTrust is where the cluster CA goes so that the host's own TLS
// clients (curl, Python) trust it without --cacert, as TPA installs it.
type SystemTrust struct {
	Dir    string   // the anchors directory
	Update []string // the command that rebuilds the system bundle; nil: none
}

// The system trust stores TPA installs the CA into.
var (
	// DebianTrust is Debian's and Ubuntu's (package ca-certificates).
	DebianTrust = SystemTrust{Dir: "/usr/local/share/ca-certificates", Update: []string{"update-ca-certificates"}}
	// RHELTrust is the RHEL family's (package ca-certificates, p11-kit).
	RHELTrust = SystemTrust{Dir: "/etc/pki/ca-trust/source/anchors", Update: []string{"update-ca-trust", "extract"}}
)

// DetectSystemTrust returns the system trust store whose update command is
// installed, or nil when there is none (a minimal container).
func DetectSystemTrust() *SystemTrust {
	for _, st := range []SystemTrust{DebianTrust, RHELTrust} {
		if _, err := lookPathSbin(st.Update[0]); err == nil {
			st := st
			return &st
		}
	}
	return nil
}

// lookPathSbin finds a command on PATH or in the sbin directories, which a
// non-login root shell may lack.
func lookPathSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// SystemTrustFile is the name the cluster CA is installed under: the
// cluster's name, with the .crt Debian's update-ca-certificates requires.
func SystemTrustFile(cluster string) string { return cluster + ".crt" }

// InstallSystemTrust puts root into st.Dir as <cluster>.crt (0644) and runs
// st.Update when it changed something. A file that is already there with
// the same certificate is kept; one with another certificate, or a
// symbolic link, is left alone (and named), never replaced or followed.
func InstallSystemTrust(st SystemTrust, cluster string, root *x509.Certificate) (Step, error) {
	const what = "CA in the system trust store"
	path := filepath.Join(st.Dir, SystemTrustFile(cluster))
	info, err := os.Lstat(path)
	switch {
	case err == nil && !info.Mode().IsRegular():
		return Step{LeftAlone, what, path, "not a regular file (a symbolic link is not followed); curl needs --cacert root.crt"}, nil
	case err == nil:
		certs, err := LoadCerts(path)
		if err == nil && bytes.Equal(certs[0].Raw, root.Raw) {
			return Step{Kept, what, path, ""}, nil
		}
		return Step{LeftAlone, what, path, "holds another certificate: move it away and run init again, or keep using curl --cacert root.crt"}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return Step{}, err
	}
	if err := os.MkdirAll(st.Dir, 0o755); err != nil {
		return Step{}, fmt.Errorf("installing the cluster CA in the system trust store: %w (skip it with --no-system-trust)", err)
	}
	if err := WriteNew(path, EncodeCerts(root), CertMode, nil); err != nil {
		return Step{}, fmt.Errorf("installing the cluster CA in the system trust store: %w (skip it with --no-system-trust)", err)
	}
	note := "clients on this host trust it without --cacert"
	if len(st.Update) == 0 {
		note = "no update command runs for a directory given here: only clients that read it (curl --capath " + st.Dir + ") trust it"
	}
	if len(st.Update) > 0 {
		cmd, err := lookPathSbin(st.Update[0])
		if err == nil {
			var out []byte
			out, err = exec.Command(cmd, st.Update[1:]...).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
			}
		}
		if err != nil {
			os.Remove(path)
			return Step{}, fmt.Errorf("installing the cluster CA in the system trust store: %s failed: %w (nothing was installed; skip it with --no-system-trust)", strings.Join(st.Update, " "), err)
		}
		note = strings.Join(st.Update, " ") + " ran; " + note
	}
	return Step{Created, what, path, note}, nil
}
