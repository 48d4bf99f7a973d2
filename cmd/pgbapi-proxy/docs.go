package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// The manual page and the shell completions (completion.go) are generated
// from the same command table and flag sets as --help, so they never
// disagree.

var manpageCommand = command{
	name:    "manpage",
	summary: "print the manual page (roff), generated from the commands' --help",
	about:   "Prints pgbapi-proxy(1) in roff. The packages install it; view it with: pgbapi-proxy manpage | man -l -",
	setup: func(fs *pflag.FlagSet) runFunc {
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("manpage", args); err != nil {
				return err
			}
			fmt.Fprint(sio.out, manPage())
			return nil
		}
	},
}

// roff escapes text for a man page.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func manPage() string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH PGBAPI-PROXY 1 %q \"pgbapi-proxy %s\" \"User Commands\"\n", time.Now().UTC().Format("2006-01-02"), versionString())
	b.WriteString(".SH NAME\npgbapi\\-proxy \\- TLS with client certificates in front of pg\\-backup\\-api, and its PKI\n")
	b.WriteString(".SH SYNOPSIS\n.B pgbapi\\-proxy\n.I COMMAND\n[\\fIflags\\fR]\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(roff("pgbapi-proxy replaces the Apache httpd proxy in front of pg-backup-api, the REST API for Barman. It issues the cluster PKI in /etc/tpa/pg-backup-api, terminates TLS with mandatory client certificates and forwards requests to pg-backup-api byte for byte."))
	b.WriteString(".SH COMMANDS\n")
	for _, c := range commands() {
		fs, _ := newFlagSet(c)
		fmt.Fprintf(&b, ".SS \"%s\"\n", roff(strings.TrimSpace(c.name + " [flags]" + c.args))[:len(roff(strings.TrimSpace(c.name+" [flags]"+c.args)))-1])
		b.WriteString(".nf\n" + roff(strings.TrimSpace(c.about)) + ".fi\n")
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			if f.Deprecated != "" {
				fmt.Fprintf(&b, ".TP\n.B \\-\\-%s\n%s", roff(f.Name)[:len(roff(f.Name))-1], roff("Deprecated: "+f.Deprecated+"."))
				return
			}
			name, usage := pflag.UnquoteUsage(f)
			head := "\\-\\-" + roff(f.Name)[:len(roff(f.Name))-1]
			if name != "" {
				head += " \\fI" + name + "\\fR"
			}
			fmt.Fprintf(&b, ".TP\n.B %s\n%s", head, roff(usage))
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && f.DefValue != "0" {
				fmt.Fprintf(&b, ".br\nDefault: %s\n", roff(f.DefValue)[:len(roff(f.DefValue))-1])
			}
		})
	}
	b.WriteString(".SH ENVIRONMENT\n")
	b.WriteString(roff("Every flag can also be set as PGBAPI_PROXY_<FLAG>, upper case, dashes as underscores: --state-dir is PGBAPI_PROXY_STATE_DIR. A flag on the command line wins. The packaged service reads them from /etc/default/pgbapi-proxy or /etc/sysconfig/pgbapi-proxy."))
	b.WriteString(".SH FILES\n")
	for _, f := range [][2]string{
		{"/etc/tpa/pg-backup-api/", "root.crt, CA.crt, pg-backup-api.crt/.key, pg-backup-user.crt/.key and the client pairs"},
		{"/var/lib/pgbapi-proxy/", "the cluster CA key (ca/, root only), the intermediate, the inventory, the CRL"},
		{"/etc/pgbapi-proxy/access", "access rules by client name (see check-access)"},
	} {
		fmt.Fprintf(&b, ".TP\n.I %s\n%s", roff(f[0])[:len(roff(f[0]))-1], roff(f[1]))
	}
	b.WriteString(".SH EXIT STATUS\n0 on success, 1 on failure, 2 on a usage error (a bad value, a missing flag, an invalid name, \\-\\-days 0). Errors are one line on standard error.\n")
	return b.String()
}
