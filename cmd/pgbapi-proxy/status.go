package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/spf13/pflag"
)

// statusCommand asks the running proxy whether it is ready.
var statusCommand = command{
	name:    "status",
	summary: "print OK when the proxy is ready, or why it is not",
	about: `Asks the running proxy's admin listener (/readyz). Prints OK and exits 0
when pg-backup-api answers /status and the server certificate is not near
expiry; otherwise prints the reason and exits 1. With --json, prints
{"admin", "ready", "reason"} either way (and still exits 1 when not ready).`,
	setup: func(fs *pflag.FlagSet) runFunc {
		admin := fs.String("admin-listen", proxy.DefaultAdminListen, "the proxy's admin address")
		timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for an answer")
		asJSON := fs.Bool("json", false, "print JSON (see README, Machine-readable output)")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("status", args); err != nil {
				return err
			}
			if *timeout <= 0 {
				return usagef("--timeout must be more than 0")
			}
			if err := checkAddr("admin-listen", *admin); err != nil {
				return err
			}
			ready, err := proxy.CheckReady(ctx, *admin, *timeout)
			if err != nil {
				ready = proxy.Readiness{Reason: err.Error()}
			} else if !ready.Ready {
				err = fmt.Errorf("not ready: %s", ready.Reason)
			}
			if *asJSON {
				if jerr := writeJSON(sio.out, statusOutput{Admin: *admin, Ready: ready.Ready, Reason: oneLine(ready.Reason)}); jerr != nil {
					return jerr
				}
			} else if err == nil {
				fmt.Fprintln(sio.out, "OK")
			}
			return err
		}
	},
}

// checkAddr refuses a --flag value that is not HOST:PORT (HOST may be
// empty, as in :443): a usage error, before anything is tried.
func checkAddr(flag, addr string) error {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return usagef("--%s %q: give HOST:PORT, e.g. 127.0.0.1:7481", flag, addr)
	}
	return nil
}
