package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/pgbapi/pgbapi-proxy/doctor"
	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/spf13/pflag"
)

// settingsFiles are where the packages keep the service's settings; doctor
// reads them so that it checks what the service runs with.
var settingsFiles = []string{"/etc/default/pgbapi-proxy", "/etc/sysconfig/pgbapi-proxy"}

var doctorCommand = command{
	name:    "doctor",
	summary: "check this host's API access end to end and say what to fix",
	about: `Checks, one line each (ok, warn or FAIL, with what to do):
  files       key modes and owners (the CA key root's only), certificates
              parse, keys match their certificates
  chain       the server and client certificates verify against the
              cluster CA; the server certificate names this host
  expiry      root, intermediate, server and client certificates (warn
              under 30 days, FAIL under 7 or expired)
  proxy       running and ready, or what else holds its port
  upstream    pg-backup-api answers /status, on loopback only
  end-to-end  a real mTLS GET /status through the proxy, with --cert/--key
              or, as root where the CA key is, a 10-minute certificate made
              for the check (never written to disk)
Exits 0 when nothing FAILs. Reads the service's settings file
(/etc/default/pgbapi-proxy or /etc/sysconfig/pgbapi-proxy) for flags not
given.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		listen := fs.String("listen", proxy.DefaultListen, "the proxy's TLS address")
		admin := fs.String("admin-listen", proxy.DefaultAdminListen, "the proxy's admin address")
		upstream := fs.String("upstream", proxy.DefaultUpstream, "pg-backup-api's address")
		hosts := fs.StringSlice("hostname", nil, "names clients use for this host, to find on the server certificate (default: host name and FQDN)")
		svcUser := fs.String("service-user", "pgbapi-proxy", "the service's user, which must read the server key")
		cert := fs.String("cert", "", "client certificate for the end-to-end check")
		key := fs.String("key", "", "its key")
		asJSON := fs.Bool("json", false, "print JSON")
		settings := fs.String("settings-file", "", "settings file to read flags from (default: the packaged one, if any)")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("doctor", args); err != nil {
				return err
			}
			if err := applySettingsFile(fs, *settings); err != nil {
				return err
			}
			if (*cert == "") != (*key == "") {
				return usagef("--cert and --key go together")
			}
			up, err := url.Parse(*upstream)
			if err != nil || up.Host == "" {
				return usagef("--upstream %q is not a URL", *upstream)
			}
			if len(*hosts) == 0 {
				short, fqdn, err := machineNames(ctx)
				if err != nil {
					return err
				}
				*hosts = dedupe([]string{short, fqdn})
			}
			results := doctor.Run(ctx, doctor.Options{
				Layout: *layout, Listen: *listen, AdminListen: *admin, Upstream: up,
				Hostnames: *hosts, ServiceUser: *svcUser, CertFile: *cert, KeyFile: *key,
			})
			if *asJSON {
				enc := json.NewEncoder(sio.out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(sio.out, 0, 4, 2, ' ', 0)
				for _, r := range results {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Area, r.Detail)
					if r.Fix != "" && r.Status != doctor.OK {
						fmt.Fprintf(tw, "\t\t  fix: %s\n", r.Fix)
					}
				}
				tw.Flush()
			}
			if n := doctor.Failed(results); n > 0 {
				return fmt.Errorf("doctor found %d problem(s); see the FAIL lines above", n)
			}
			return nil
		}
	},
}

// applySettingsFile sets flags that neither the command line nor the
// environment gave from a KEY=VALUE file of PGBAPI_PROXY_ settings.
func applySettingsFile(fs *pflag.FlagSet, path string) error {
	if path == "" {
		for _, p := range settingsFiles {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading settings: %w", err)
	}
	defer f.Close()
	values := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok && strings.HasPrefix(k, envPrefix) {
			values[k] = strings.Trim(v, `"'`)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var setErr error
	fs.VisitAll(func(fl *pflag.Flag) {
		if v, ok := values[envName(fl.Name)]; ok && !fl.Changed && setErr == nil {
			if err := fs.Set(fl.Name, v); err != nil {
				setErr = fmt.Errorf("%s: %s=%q: %v", path, envName(fl.Name), v, err)
			}
		}
	})
	return setErr
}
