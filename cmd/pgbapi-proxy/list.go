package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/spf13/pflag"
)

var listCommand = command{
	name:    "list",
	summary: "list the certificates issued here and their state",
	about: `Lists every certificate issued on this host, from the inventory in the
state dir: name, kind, serial, expiry and state (valid, expiring within 30
days, expired, revoked). Certificates init found signed by the cluster CA
(from an older setup) are marked adopted. Certificates since replaced by a renewal are shown
with --all.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		asJSON := fs.Bool("json", false, "print JSON instead of a table")
		all := fs.Bool("all", false, "include certificates replaced by a renewal")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("list", args); err != nil {
				return err
			}
			if _, err := pki.ReadMeta(*layout); err != nil {
				return err
			}
			recs, err := pki.ReadInventory(*layout)
			if err != nil {
				return err
			}
			now := time.Now()
			rows := make([]listRow, 0, len(recs))
			for _, r := range recs {
				if r.Replaced && !*all {
					continue
				}
				rows = append(rows, listRow{Record: r, State: r.State(now)})
			}
			if *asJSON {
				enc := json.NewEncoder(sio.out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(sio.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tSERIAL\tNOT AFTER\tSTATE\tPATH")
			for _, r := range rows {
				state := string(r.State)
				if r.Replaced {
					state += " (replaced)"
				}
				if r.Adopted {
					state += " (adopted)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, r.Serial, r.NotAfter.Format("2006-01-02 15:04"), state, r.Path)
			}
			return tw.Flush()
		}
	},
}

// listRow is an inventory record with its state now.
type listRow struct {
	pki.Record
	State pki.State `json:"state"`
}
