package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/spf13/pflag"
)

var initCommand = command{
	name:    "init",
	summary: "create the cluster CA, server and test client certificates (keeps what exists)",
	about: `Creates whatever is missing of the cluster PKI and keeps everything that
exists; no key or certificate is ever overwritten. Running it again is safe
and reports what it kept.

Creates: the cluster root CA (CN=<cluster>.CA, 10 years; its key stays in
the state dir), root.crt and CA.crt in the TPA dir, an intermediate CA that
can only issue server certificates for this host's names, the server
certificate pg-backup-api.crt/.key and the test client certificate
pg-backup-user.crt/.key.

Without --hostname, the server certificate covers this machine's host name
and FQDN plus localhost; without --ip, 127.0.0.1.

To adopt a CA an older setup made (e.g. with openssl), give --ca-cert and
--ca-key. With only root.crt and the server pair present and no CA key,
init keeps them: this host can then verify clients but not issue.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		cluster := fs.String("cluster-name", "", "cluster name; the CA is CN=<cluster>.CA (default: this machine's short host name)")
		hosts := fs.StringSlice("hostname", nil, "host name for the server certificate; repeat or comma-separate (default: host name, FQDN, localhost)")
		ips := fs.StringSlice("ip", nil, "IP address for the server certificate; repeat or comma-separate (default: 127.0.0.1)")
		keyType := fs.String("key-type", string(pki.DefaultKeyType), keyTypeUsage())
		caCert := fs.String("ca-cert", "", "adopt this existing CA certificate (PEM) instead of creating one")
		caKey := fs.String("ca-key", "", "the key of --ca-cert (PEM, unencrypted)")
		serverDays := fs.Int("server-cert-days", pki.DefaultServerDays, "lifetime of the server certificate, in days; the same setting as serve's (PGBAPI_PROXY_SERVER_CERT_DAYS sets both)")
		deprecatedAlias(fs, "server-days", "server-cert-days")
		clientDays := fs.Int("client-days", pki.DefaultClientDays, "lifetime of the test client certificate, in days")
		asJSON := fs.Bool("json", false, "print JSON (see README, Machine-readable output)")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if err := noArgs("init", args); err != nil {
				return err
			}
			kt, err := pki.ParseKeyType(*keyType)
			if err != nil {
				return usageError{err.Error()}
			}
			opts := pki.InitOptions{
				Layout: *layout, Cluster: *cluster, KeyType: kt,
				CACertFile: *caCert, CAKeyFile: *caKey,
				ServerDays: *serverDays, ClientDays: *clientDays,
			}
			if opts.Cluster == "" || len(*hosts) == 0 {
				short, fqdn, err := machineNames(ctx)
				if err != nil {
					return err
				}
				if opts.Cluster == "" {
					opts.Cluster = short
				}
				if len(*hosts) == 0 {
					*hosts = []string{short, fqdn, "localhost"}
				}
			}
			opts.Hostnames = dedupe(lower(*hosts))
			if len(*ips) == 0 {
				*ips = []string{"127.0.0.1"}
			}
			for _, s := range dedupe(*ips) {
				ip := net.ParseIP(s)
				if ip == nil {
					return usagef("--ip %q is not an IP address", s)
				}
				opts.IPs = append(opts.IPs, ip)
			}
			steps, err := pki.Init(opts)
			test := fmt.Sprintf("curl --cacert %s --cert %s --key %s https://%s/diagnose",
				layout.RootCert(), layout.CertIn(layout.TPADir, pki.TestClientName), layout.KeyIn(layout.TPADir, pki.TestClientName), opts.Hostnames[0])
			if *asJSON {
				return printInitJSON(sio, steps, test, pkiFlagError(err, initFields))
			}
			printSteps(sio, steps)
			if err != nil {
				return pkiFlagError(err, initFields)
			}
			fmt.Fprintf(sio.out, "\nTest it: %s\n", test)
			return nil
		}
	},
}

func printSteps(sio *stdio, steps []pki.Step) {
	tw := tabwriter.NewWriter(sio.out, 0, 4, 2, ' ', 0)
	for _, s := range steps {
		line := fmt.Sprintf("%s\t%s\t%s", s.Action, s.What, s.Path)
		if s.Note != "" {
			line += "\t(" + s.Note + ")"
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

// machineNames returns this host's short name and its fully qualified name
// (the short name again when DNS does not know better).
func machineNames(ctx context.Context) (short, fqdn string, err error) {
	host, err := os.Hostname()
	if err != nil {
		return "", "", fmt.Errorf("finding this machine's host name (give --cluster-name and --hostname): %w", err)
	}
	host = strings.ToLower(host)
	short, _, _ = strings.Cut(host, ".")
	fqdn = host
	if !strings.Contains(host, ".") {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if cname, err := net.DefaultResolver.LookupCNAME(ctx, host); err == nil {
			if c := strings.ToLower(strings.TrimSuffix(cname, ".")); c != "" {
				fqdn = c
			}
		}
	}
	return short, fqdn, nil
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(strings.TrimSpace(s))
	}
	return out
}

// dedupe drops repeated values, keeping the first of each.
func dedupe(ss []string) []string {
	seen := make(map[string]bool, len(ss))
	out := ss[:0:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
