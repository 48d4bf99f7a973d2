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
		return declareInitFlags(fs).run
	},
}

// initFlags are init's flags.
type initFlags struct {
	layout                 *pki.Layout
	cluster, keyType       string
	hosts, ips             []string
	caCert, caKey          string
	serverDays, clientDays int
	noTrust                bool
	trustDir               string
	asJSON                 bool
}

func declareInitFlags(fs *pflag.FlagSet) *initFlags {
	f := &initFlags{layout: layoutFlags(fs)}
	fs.StringVar(&f.cluster, "cluster-name", "", "cluster name; the CA is CN=<cluster>.CA (default: this machine's short host name)")
	fs.StringSliceVar(&f.hosts, "hostname", nil, "host name for the server certificate; repeat or comma-separate (default: host name, FQDN, localhost)")
	fs.StringSliceVar(&f.ips, "ip", nil, "IP address for the server certificate; repeat or comma-separate (default: 127.0.0.1)")
	fs.StringVar(&f.keyType, "key-type", "", keyTypeUsage()+" (default: on a first init, RSA 2048 when adopting an RSA CA such as TPA's, else "+string(pki.DefaultKeyType)+"; later, the one chosen then)")
	fs.StringVar(&f.caCert, "ca-cert", "", "adopt this existing CA certificate (PEM) instead of creating one")
	fs.StringVar(&f.caKey, "ca-key", "", "the key of --ca-cert (PEM, unencrypted)")
	fs.IntVar(&f.serverDays, "server-cert-days", pki.DefaultServerDays, "lifetime of the server certificate, in days; the same setting as serve's (PGBAPI_PROXY_SERVER_CERT_DAYS sets both)")
	deprecatedAlias(fs, "server-days", "server-cert-days")
	fs.IntVar(&f.clientDays, "client-days", pki.DefaultClientDays, "lifetime of the test client certificate, in days")
	fs.BoolVar(&f.noTrust, "no-system-trust", false, "do not install the cluster CA into the system trust store")
	fs.StringVar(&f.trustDir, "system-trust-dir", "", "install the cluster CA into this directory instead of the system's anchors (no update command is run; for tests and staging)")
	fs.BoolVar(&f.asJSON, "json", false, "print JSON (see README, Machine-readable output)")
	return f
}

func (f *initFlags) run(ctx context.Context, sio *stdio, args []string) error {
	if err := noArgs("init", args); err != nil {
		return err
	}
	opts, err := f.options(ctx)
	if err != nil {
		return err
	}
	steps, err := pki.Init(opts)
	if err != nil {
		return reportInit(sio, f.asJSON, steps, "", pkiFlagError(err, initFields))
	}
	meta, err := pki.ReadMeta(*f.layout)
	if err != nil {
		return reportInit(sio, f.asJSON, steps, "", err)
	}
	trusted := false
	if !f.noTrust {
		var step pki.Step
		step, trusted, err = installSystemTrust(*f.layout, meta.Cluster, f.trustDir)
		steps = append(steps, step)
		if err != nil {
			return reportInit(sio, f.asJSON, steps, "", err)
		}
	}
	return reportInit(sio, f.asJSON, steps, f.testCommand(trusted, f.trustDir, meta.Hostnames[0]), nil)
}

// options turns the flags into pki.InitOptions, filling in the cluster
// name and the server certificate's names where they were not given.
func (f *initFlags) options(ctx context.Context) (pki.InitOptions, error) {
	var kt pki.KeyType
	if f.keyType != "" {
		var err error
		if kt, err = pki.ParseKeyType(f.keyType); err != nil {
			return pki.InitOptions{}, usagef("--key-type: %v", err)
		}
	}
	opts := pki.InitOptions{
		Layout: *f.layout, Cluster: f.cluster, KeyType: kt,
		CACertFile: f.caCert, CAKeyFile: f.caKey,
		ServerDays: f.serverDays, ClientDays: f.clientDays,
		DefaultHostnames: len(f.hosts) == 0, DefaultIPs: len(f.ips) == 0,
	}
	if opts.Cluster == "" {
		opts.Cluster = clusterOfCA(f.caCert, f.layout.RootCert())
	}
	if err := f.machineDefaults(ctx, &opts); err != nil {
		return pki.InitOptions{}, err
	}
	opts.Hostnames = dedupe(lower(f.hosts))
	if len(f.ips) == 0 {
		f.ips = []string{"127.0.0.1"}
	}
	for _, s := range dedupe(f.ips) {
		ip := net.ParseIP(s)
		if ip == nil {
			return pki.InitOptions{}, usagef("--ip %q is not an IP address", s)
		}
		opts.IPs = append(opts.IPs, ip)
	}
	return opts, nil
}

// machineDefaults takes the cluster name and the host names not given
// from this machine's names.
func (f *initFlags) machineDefaults(ctx context.Context, opts *pki.InitOptions) error {
	if opts.Cluster != "" && len(f.hosts) != 0 {
		return nil
	}
	short, fqdn, err := machineNames(ctx)
	if err != nil {
		return err
	}
	if opts.Cluster == "" {
		opts.Cluster = short
	}
	if len(f.hosts) == 0 {
		f.hosts = []string{short, fqdn, "localhost"}
	}
	return nil
}

// testCommand is the curl command that tries the test client certificate;
// it needs --cacert unless the cluster CA is in the system trust store,
// and --capath for a trust directory given with --system-trust-dir.
func (f *initFlags) testCommand(trusted bool, trustDir, host string) string {
	l := f.layout
	cacert := ""
	switch {
	case !trusted:
		cacert = "--cacert " + l.RootCert() + " "
	case trustDir != "":
		cacert = "--capath " + trustDir + " "
	}
	return fmt.Sprintf("curl %s--cert %s --key %s https://%s/diagnose",
		cacert, l.CertIn(l.TPADir, pki.TestClientName), l.KeyIn(l.TPADir, pki.TestClientName), host)
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
