package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/pkisource"
	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/spf13/pflag"
)

var revokeCommand = command{
	name:    "revoke",
	summary: "revoke a client certificate; the running proxy refuses it within seconds",
	about: `Marks client certificates revoked in the inventory and writes a CRL signed
by the cluster root to the state dir (crl.pem) and next to root.crt. The
running proxy picks it up within a second: new handshakes with the
certificate fail, and requests on connections already open get 403.

--name revokes every certificate issued under that name (renewed ones
too); --serial revokes one (serials as 'pgbapi-proxy list --all' or
'openssl x509 -serial' print them). Revoking twice is harmless.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		name := fs.String("name", "", "revoke every certificate issued under this client name")
		serial := fs.String("serial", "", "revoke the certificate with this serial (hex)")
		asJSON := fs.Bool("json", false, "print JSON (see README, Machine-readable output)")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("revoke", args); err != nil {
				return err
			}
			if (*name == "") == (*serial == "") {
				return usagef("revoke needs --name NAME or --serial SERIAL (one of them)")
			}
			res, err := pki.Revoke(pki.RevokeOptions{Layout: *layout, Name: *name, Serial: *serial})
			if err != nil {
				return err
			}
			if *asJSON {
				return printRevokeJSON(sio, res, res.CRLPath, layout.TPACRL())
			}
			for _, r := range res.Records {
				fmt.Fprintf(sio.out, "revoked %s (serial %s)\n", r.Name, r.Serial)
			}
			for _, r := range res.Already {
				fmt.Fprintf(sio.out, "already revoked %s (serial %s)\n", r.Name, r.Serial)
			}
			fmt.Fprintf(sio.out, "CRL written to %s and %s\n", res.CRLPath, layout.TPACRL())
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
