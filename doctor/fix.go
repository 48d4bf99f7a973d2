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

// pkiFile reports whether path is one of the PKI's certificates: the
// root and its copy, the server certificate, one the inventory records,
// or one with a key beside it.
func (r *run) pkiFile(path string) bool {
	l := r.o.Layout
	path = filepath.Clean(path)
	switch path {
	case filepath.Clean(l.RootCert()), filepath.Clean(l.CACert()), filepath.Clean(l.ServerCert()):
		return true
	}
	if fileExists(strings.TrimSuffix(path, ".crt") + ".key") {
		return true
	}
	recs, err := pki.ReadInventory(l)
	if err != nil {
		return true // cannot tell: treat it as the PKI's
	}
	for _, rec := range recs {
		if filepath.Clean(rec.Path) == path {
			return true
		}
	}
	return false
}

// uncoveredFix says how to get a server certificate that covers the
// recorded names it misses: where the intermediate is, serve issues one
// at its next start or reload; elsewhere it comes from the CA's host.
func (r *run) uncoveredFix(missing []string) string {
	l := r.o.Layout
	if fileExists(l.IntermediateKey()) {
		return "systemctl reload pgbapi-proxy (or restart it): serve issues a certificate for every recorded name"
	}
	return "the CA key is not on this host: issue a server certificate for " + strings.Join(missing, ", ") +
		" (and the names it covers) where it is, copy it to " + l.ServerCert() + "/.key and systemctl reload pgbapi-proxy; clients that use only the covered names are not affected"
}
