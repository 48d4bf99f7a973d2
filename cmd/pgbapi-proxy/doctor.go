package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/pgbapi/pgbapi-proxy/doctor"
	"github.com/pgbapi/pgbapi-proxy/internal/envfile"
	"github.com/pgbapi/pgbapi-proxy/pki"
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
  settings    the service's settings file (/etc/default/pgbapi-proxy or
              /etc/sysconfig/pgbapi-proxy), read as systemd reads it: lines
              it ignores (export, no '=', bad names) and values serve
              refuses; its values are used for flags not given
Exits 0 when nothing FAILs.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		return declareDoctorFlags(fs).run
	},
}

// doctorFlags are doctor's flags, and the set they are in: the settings
// file fills in those not given.
type doctorFlags struct {
	fs                      *pflag.FlagSet
	layout                  *pki.Layout
	listen, admin, upstream string
	hosts                   []string
	svcUser, cert, key      string
	asJSON                  bool
	settings                string
}

func declareDoctorFlags(fs *pflag.FlagSet) *doctorFlags {
	f := &doctorFlags{fs: fs, layout: layoutFlags(fs)}
	fs.StringVar(&f.listen, "listen", proxy.DefaultListen, "the proxy's TLS address")
	fs.StringVar(&f.admin, "admin-listen", proxy.DefaultAdminListen, "the proxy's admin address")
	fs.StringVar(&f.upstream, "upstream", proxy.DefaultUpstream, "pg-backup-api's address")
	fs.StringSliceVar(&f.hosts, "hostname", nil, "names clients use for this host, to find on the server certificate (default: host name and FQDN)")
	fs.StringVar(&f.svcUser, "service-user", "pgbapi-proxy", "the service's user, which must read the server key")
	fs.StringVar(&f.cert, "cert", "", "client certificate for the end-to-end check")
	fs.StringVar(&f.key, "key", "", "its key")
	fs.BoolVar(&f.asJSON, "json", false, "print JSON")
	fs.StringVar(&f.settings, "settings-file", "", "settings file to read flags from (default: the packaged one, if any)")
	return f
}

func (f *doctorFlags) run(ctx context.Context, sio *stdio, args []string) error {
	if err := noArgs("doctor", args); err != nil {
		return err
	}
	settingsResults, err := applySettingsFile(f.fs, f.settings)
	if err != nil {
		return err
	}
	settingsResults = append(settingsResults, f.fromRunningProxy(ctx)...)
	opts, err := f.options(ctx)
	if err != nil {
		return err
	}
	results := append(settingsResults, doctor.Run(ctx, opts)...)
	if err := printDoctor(sio, f.asJSON, results); err != nil {
		return err
	}
	if n := doctor.Failed(results); n > 0 {
		return fmt.Errorf("doctor found %d problem(s); see the FAIL lines above", n)
	}
	return nil
}

// fromRunningProxy takes --listen and --upstream, where neither the
// command line, the environment nor the settings file gave them, from the
// running proxy's admin listener: doctor checks what really runs.
func (f *doctorFlags) fromRunningProxy(ctx context.Context) []doctor.Result {
	if f.fs.Changed("listen") && f.fs.Changed("upstream") {
		return nil
	}
	st, err := proxy.FetchSettings(ctx, f.admin, 2*time.Second)
	if err != nil {
		return nil // the proxy check says it is not running
	}
	if !f.fs.Changed("listen") {
		f.listen = st.Listen
	}
	if !f.fs.Changed("upstream") {
		f.upstream = st.Upstream
	}
	return []doctor.Result{{Area: "settings", Status: doctor.OK,
		Detail: fmt.Sprintf("from the running proxy (admin %s): listens on %s, upstream %s, at most %d at once", f.admin, st.Listen, st.Upstream, st.MaxInflight)}}
}

// options checks the flags (after the settings file) and turns them into
// doctor.Options; the host names default to this machine's.
func (f *doctorFlags) options(ctx context.Context) (doctor.Options, error) {
	if (f.cert == "") != (f.key == "") {
		return doctor.Options{}, usagef("--cert and --key go together")
	}
	for flag, addr := range map[string]string{"listen": f.listen, "admin-listen": f.admin} {
		if err := checkAddr(flag, addr); err != nil {
			return doctor.Options{}, err
		}
	}
	up, err := parseUpstream(f.upstream) // as serve reads it
	if err != nil {
		return doctor.Options{}, err
	}
	if len(f.hosts) == 0 {
		short, fqdn, err := machineNames(ctx)
		if err != nil {
			return doctor.Options{}, err
		}
		f.hosts = dedupe([]string{short, fqdn})
	}
	return doctor.Options{
		Layout: *f.layout, StateDirDefault: f.layout.StateDir == pki.DefaultStateDir, Listen: f.listen, AdminListen: f.admin, Upstream: up,
		Hostnames: f.hosts, ServiceUser: f.svcUser, CertFile: f.cert, KeyFile: f.key,
	}, nil
}

// printDoctor prints the results as JSON, or one line each with the fix
// under what is not ok.
func printDoctor(sio *stdio, asJSON bool, results []doctor.Result) error {
	if asJSON {
		enc := json.NewEncoder(sio.out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(sio.out, 0, 4, 2, ' ', 0)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Area, r.Detail)
		if r.Fix != "" && r.Status != doctor.OK {
			fmt.Fprintf(tw, "\t\t  fix: %s\n", r.Fix)
		}
	}
	tw.Flush()
	return nil
}

// applySettingsFile sets flags that neither the command line nor the
// environment gave from the service's settings file, read as systemd reads
// an EnvironmentFile=. What the service would not get as meant (lines
// systemd ignores, values a flag refuses) comes back as results to report;
// a refused value leaves the flag at its default.
func applySettingsFile(fs *pflag.FlagSet, path string) ([]doctor.Result, error) {
	if path == "" {
		for _, p := range settingsFiles {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return nil, nil
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading settings: %w", err)
	}
	assignments, problems := envfile.Parse(string(data))
	var out []doctor.Result
	for _, p := range problems {
		out = append(out, doctor.Result{Area: "settings", Status: doctor.Warn,
			Detail: fmt.Sprintf("%s:%d: %s", path, p.Line, p.Msg), Fix: fmt.Sprintf("edit line %d of %s", p.Line, path)})
	}
	byEnv := map[string]*pflag.Flag{}
	fs.VisitAll(func(fl *pflag.Flag) { byEnv[envName(fl.Name)] = fl })
	given := map[string]bool{}
	fs.Visit(func(fl *pflag.Flag) { given[fl.Name] = true })
	for _, a := range assignments {
		fl, ok := byEnv[a.Key]
		if !ok || given[fl.Name] {
			continue
		}
		err := fs.Set(fl.Name, a.Value)
		switch {
		case err != nil:
		case fl.Name == "upstream":
			_, err = parseUpstream(a.Value)
		case fl.Name == "listen" || fl.Name == "admin-listen":
			err = checkAddr(fl.Name, a.Value)
		}
		if err != nil {
			out = append(out, doctor.Result{Area: "settings", Status: doctor.Fail,
				Detail: fmt.Sprintf("%s:%d: %s=%q: %v (checked with the default, %s, instead)", path, a.Line, a.Key, a.Value, oneLine(err.Error()), fl.DefValue),
				Fix:    fmt.Sprintf("correct line %d of %s; the service does not start with this value", a.Line, path)})
			_ = fl.Value.Set(fl.DefValue)
		}
	}
	return out, nil
}
