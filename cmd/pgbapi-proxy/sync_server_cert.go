package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/spf13/pflag"
)

var syncServerCertCommand = command{
	name:    "sync-server-cert",
	summary: "copy the certificate serve renewed into the TPA directory (root)",
	about: `serve runs as the service account, which may write only its own store
(<state-dir>/server/): it puts each server certificate it obtains there. This
command, run as root (the packaged pgbapi-proxy-server-cert.path unit
starts it when the stored certificate changes), copies that pair to
pg-backup-api.crt/.key in the TPA directory, keeping the pair it replaces
as .old, and records it in the inventory.

It reads the store without following links and copies only a certificate
the server-only intermediate issued and that verifies against the cluster
CA; anything else is refused and nothing changes. A pair already in place
is left alone.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("sync-server-cert", args); err != nil {
				return err
			}
			copied, err := pki.ExportServedCert(*layout, time.Now())
			if err != nil {
				return err
			}
			if copied {
				fmt.Fprintf(sio.out, "copied %s to %s\n", layout.ServedCert(), layout.ServerCert())
			} else {
				fmt.Fprintf(sio.out, "%s already holds the served certificate\n", layout.ServerCert())
			}
			return nil
		}
	},
}
