package doctor

import (
	"path/filepath"
	"strings"

	"github.com/pgbapi/pgbapi-proxy/pki"
)

// Fix lines are commands an operator can paste: they name the directories
// doctor looked at when they are not the defaults.

// command is a pgbapi-proxy command line for a fix, with --tpa-dir and
// --state-dir when they are not the defaults, so that it can be pasted.
func (r *run) command(args string) string {
	cmd := "pgbapi-proxy " + args
	if r.o.Layout.TPADir != pki.DefaultTPADir {
		cmd += " --tpa-dir " + shellQuote(r.o.Layout.TPADir)
	}
	if r.o.Layout.StateDir != pki.DefaultStateDir {
		cmd += " --state-dir " + shellQuote(r.o.Layout.StateDir)
	}
	return cmd
}

// renew is the command that issues the client certificate at certPath
// (NAME.crt) again, in the same directory.
func (r *run) renew(certPath string) string {
	name := strings.TrimSuffix(filepath.Base(certPath), ".crt")
	args := "issue-client --renew --name " + shellQuote(name)
	if dir := filepath.Dir(certPath); dir != filepath.Clean(r.o.Layout.TPADir) {
		args += " --out " + shellQuote(dir)
	}
	return r.command(args)
}

// reissue says how to get a certificate file back that does not parse.
func (r *run) reissue(certPath string) string {
	l := r.o.Layout
	switch filepath.Clean(certPath) {
	case filepath.Clean(l.RootCert()), filepath.Clean(l.CACert()):
		return "restore it from the CA's copy: cp " + shellQuote(l.CAStateCert()) + " " + shellQuote(certPath) + " (or from the CA's host)"
	case filepath.Clean(l.ServerCert()):
		return "systemctl restart pgbapi-proxy, which issues a new one where the intermediate is; elsewhere copy a renewed pg-backup-api.crt/.key"
	}
	return "restore it from a backup or issue it again: " + r.renew(certPath)
}

// shellQuote quotes s for a shell when it holds anything but plain
// path characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:,=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
