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
	about: `Creates whatever is missing of the cluster PKI and keeps what exists.
Running it again is safe and reports what it kept.

Creates: the cluster root CA (CN=<cluster>.CA, 10 years; its key stays in
the state dir), root.crt and CA.crt in the TPA dir, an intermediate CA that
can only issue server certificates for this host's names, the server
certificate pg-backup-api.crt/.key and the test client certificate
pg-backup-user.crt/.key.

Without --hostname, the server certificate covers this machine's host name
and FQDN plus localhost; without --ip, 127.0.0.1. Names are never dropped:
the names of a server certificate found in the TPA dir are kept, and
--hostname/--ip on an existing PKI add to what it covers. Where the CA key
is, a server certificate (or intermediate) that leaves out a name asked for
is replaced, the old one kept as .old; without the CA key, init says what
to do.

Adopting an older setup (TPA's /etc/tpa/pg-backup-api): every certificate
in the TPA dir that the cluster CA signed is recorded as adopted, with or
without its key, so that list, doctor and revoke cover it; init says per
file what it adopted and what it left alone, and why. Give the old CA with
--ca-cert and --ca-key to issue on this host; with only root.crt (the CA
key stays on the TPA controller), this host verifies clients and revokes
certificates but issues none. The cluster name then comes from the CA's
CN=<cluster>.CA.

The cluster CA is also installed into the system trust store, as TPA did
(Debian: /usr/local/share/ca-certificates/<cluster>.crt and
update-ca-certificates; RHEL: /etc/pki/ca-trust/source/anchors/ and
update-ca-trust), so that curl on this host needs no --cacert.
--no-system-trust skips that.`,
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
		noTrust := fs.Bool("no-system-trust", false, "do not install the cluster CA into the system trust store")
		trustDir := fs.String("system-trust-dir", "", "install the cluster CA into this directory instead of the system's anchors (no update command is run; for tests and staging)")
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
				DefaultHostnames: len(*hosts) == 0, DefaultIPs: len(*ips) == 0,
			}
			if opts.Cluster == "" {
				opts.Cluster = clusterOfCA(*caCert, layout.RootCert())
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
			if err != nil {
				return reportInit(sio, *asJSON, steps, "", pkiFlagError(err, initFields))
			}
			meta, err := pki.ReadMeta(*layout)
			if err != nil {
				return reportInit(sio, *asJSON, steps, "", err)
			}
			trusted := false
			if !*noTrust {
				var step pki.Step
				step, trusted, err = installSystemTrust(*layout, meta.Cluster, *trustDir)
				steps = append(steps, step)
				if err != nil {
					return reportInit(sio, *asJSON, steps, "", err)
				}
			}
			cacert := ""
			if !trusted {
				cacert = "--cacert " + layout.RootCert() + " "
			}
			test := fmt.Sprintf("curl %s--cert %s --key %s https://%s/diagnose",
				cacert, layout.CertIn(layout.TPADir, pki.TestClientName), layout.KeyIn(layout.TPADir, pki.TestClientName), meta.Hostnames[0])
			return reportInit(sio, *asJSON, steps, test, nil)
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

// clusterOfCA is the cluster name an existing CA was made for, from its
// CN=<cluster>.CA (as TPA names it): the CA given to adopt, else root.crt
// in the TPA directory. "" when there is none or it is named otherwise.
func clusterOfCA(paths ...string) string {
	for _, p := range paths {
		if p == "" {
			continue
		}
		c, err := pki.LoadCert(p)
		if err != nil {
			continue
		}
		name, ok := strings.CutSuffix(c.Subject.CommonName, ".CA")
		if ok && pki.CheckName("cluster name", name) == nil {
			return name
		}
		return ""
	}
	return ""
}

// installSystemTrust puts the cluster CA into the system trust store (or
// dir), as TPA did, and reports whether clients here now trust it.
func installSystemTrust(l pki.Layout, cluster, dir string) (pki.Step, bool, error) {
	const what = "CA in the system trust store"
	st := pki.DetectSystemTrust()
	if dir != "" {
		st = &pki.SystemTrust{Dir: dir}
	}
	if st == nil {
		return pki.Step{Action: pki.Skipped, What: what, Note: "neither update-ca-certificates nor update-ca-trust is installed; curl needs --cacert root.crt"}, false, nil
	}
	root, err := pki.LoadCert(l.RootCert())
	if err != nil {
		return pki.Step{}, false, err
	}
	step, err := pki.InstallSystemTrust(*st, cluster, root)
	return step, err == nil && (step.Action == pki.Created || step.Action == pki.Kept), err
}
