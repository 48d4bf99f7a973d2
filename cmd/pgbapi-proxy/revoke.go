package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/pkisource"
	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/spf13/pflag"
)

var revokeCommand = command{
	name:    "revoke",
	summary: "revoke a client certificate; the running proxy refuses it within seconds",
	about: `Marks certificates revoked in the inventory and writes the revocation
record (revoked.json in the state dir, root's), which the running proxy
enforces within a second: new handshakes with the certificate fail, and
requests on connections already open get 403. Where the cluster CA key is,
it also writes a CRL signed by the CA, with the same number, to the state
dir (crl.pem) and next to root.crt, for openssl and other tools. Without
the CA key (a TPA host keeps it on the controller) the record alone
revokes: the proxy needs nothing else.

--name revokes every client certificate recorded under that name (renewed
and adopted ones too); --serial revokes one (in any form openssl prints:
3A9F01, 3a:9f:01, serial=3A9F01, leading zeros); --cert revokes the
certificate in FILE, which need not be recorded but must be signed by the
cluster CA. Revoking twice is harmless. Either every file is written or
none is: a revocation that could not be written is not reported.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		name := fs.String("name", "", "revoke every certificate recorded under this client name")
		serial := fs.String("serial", "", "revoke the certificate with this serial (hex, as openssl prints it)")
		cert := fs.String("cert", "", "revoke the certificate in this PEM file (signed by the cluster CA)")
		asJSON := fs.Bool("json", false, "print JSON (see README, Machine-readable output)")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("revoke", args); err != nil {
				return err
			}
			given := 0
			for _, s := range []string{*name, *serial, *cert} {
				if s != "" {
					given++
				}
			}
			switch {
			case given == 0:
				return usagef("revoke needs one of --name NAME, --serial SERIAL or --cert FILE")
			case given > 1:
				return usagef("revoke takes only one of --name NAME, --serial SERIAL or --cert FILE")
			}
			res, err := pki.Revoke(pki.RevokeOptions{Layout: *layout, Name: *name, Serial: *serial, CertFile: *cert})
			if err != nil {
				return err
			}
			if *asJSON {
				return printRevokeJSON(sio, res)
			}
			now := time.Now()
			for _, r := range res.Records {
				if !r.NotAfter.IsZero() && !now.Before(r.NotAfter) {
					// Expired: refused in the handshake anyway, and left out
					// of the record and the CRL as expired entries are.
					fmt.Fprintf(sio.out, "revoked %s (serial %s; it expired on %s, so it is refused anyway and is not listed in the revocation record or the CRL)\n",
						r.Name, r.Serial, r.NotAfter.UTC().Format("2006-01-02"))
					continue
				}
				fmt.Fprintf(sio.out, "revoked %s (serial %s)\n", r.Name, r.Serial)
			}
			for _, r := range res.Already {
				fmt.Fprintf(sio.out, "already revoked %s (serial %s)\n", r.Name, r.Serial)
			}
			fmt.Fprintf(sio.out, "revocation record %d written to %s\n", res.Number, res.RecordPath)
			if len(res.CRLPaths) > 0 {
				fmt.Fprintf(sio.out, "CRL %d written to %s\n", res.Number, strings.Join(res.CRLPaths, " and "))
			} else {
				fmt.Fprintf(sio.out, "no CRL signed: the cluster CA key is not on this host (the proxy enforces the record; for other tools, revoke the same serial where the CA key is and copy its crl.pem here)\n")
			}
			return nil
		}
	},
}

var checkAccessCommand = command{
	name:    "check-access",
	summary: "say whether the access rules let a client send METHOD PATH",
	args:    " METHOD PATH",
	about: `Reads the access rules file and prints whether client NAME may send
METHOD PATH, and the rule that decides; exits 0 when allowed, 1 when
denied. Test a rules file with it before reloading the proxy. A query
string (?limit=5) is ignored, as serve ignores it.

Rules file grammar (one rule per line, # starts a comment):

  NAME  GRANT[, GRANT]...

NAME is a client certificate name, or * for every client without its own
line. GRANT is: read (GET/HEAD on /status, /diagnose and operation lists
and statuses), operations (POST to /servers/{server}/operations and
/operations), operations:SERVER (POST to /servers/SERVER/operations only),
all (everything), none. Example:

  pem               read
  barman-operator   read, operations:pg-main
  *                 none`,
	setup: func(fs *pflag.FlagSet) runFunc {
		file := fs.String("access-file", proxy.DefaultAccessFile, "the access rules file")
		name := fs.String("name", "", "the client certificate's name (CN)")
		asJSON := fs.Bool("json", false, "print JSON (see README, Machine-readable output)")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if len(args) != 2 {
				return usagef("check-access needs METHOD PATH, e.g. check-access --name pem GET /diagnose")
			}
			if *name == "" {
				return usagef("check-access needs --name NAME")
			}
			rules, err := pkisource.LoadRules(*file)
			if errors.Is(err, os.ErrNotExist) {
				rules, err = nil, nil
				if !*asJSON {
					fmt.Fprintf(sio.out, "no access rules file at %s\n", *file)
				}
			}
			if err != nil {
				return err
			}
			d, err := proxy.CheckAccess(rules, *name, args[0], args[1])
			if err != nil {
				return usageError{err.Error()}
			}
			return printAccess(sio, *asJSON, accessOutput{Client: *name, Method: args[0], Path: matchedPath(args[1]), Allowed: d.Allowed, Rule: d.Rule})
		}
	},
}
