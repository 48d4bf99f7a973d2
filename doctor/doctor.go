// Package doctor answers "is this host's API access healthy, and if not,
// why?": it checks the PKI files, the certificate chains and expiry, the
// running proxy, pg-backup-api, and makes a real mTLS request end to end.
// Each check gives one result: ok, warn or FAIL, with what to do.
package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/proxy"
)

// Status of one check.
type Status string

// Statuses, from best to worst.
const (
	OK   Status = "ok"
	Skip Status = "skip"
	Warn Status = "warn"
	Fail Status = "FAIL"
)

// Result is one line of the report.
type Result struct {
	Area   string `json:"area"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Options say where things are.
type Options struct {
	Layout      pki.Layout
	Listen      string   // the proxy's TLS address
	AdminListen string   // its admin address
	Upstream    *url.URL // pg-backup-api
	Hostnames   []string // names this host is reached by, to find on the server certificate
	ServiceUser string   // the packaged service's user, if it exists
	CertFile    string   // a client certificate for the end-to-end check
	KeyFile     string
	Now         time.Time
	// StateDirDefault says the state directory was not given (the
	// default is used): with a TPA directory of its own, a missing PKI
	// then most likely means --state-dir was left out.
	StateDirDefault bool
}

// Thresholds for expiry.
const (
	warnWithin = 30 * 24 * time.Hour
	failWithin = 7 * 24 * time.Hour
)

type run struct {
	o    Options
	out  []Result
	root *x509.Certificate
	meta *pki.Meta
}

func (r *run) add(area string, s Status, detail, fix string) {
	r.out = append(r.out, Result{Area: area, Status: s, Detail: detail, Fix: fix})
}

// Run makes every check and returns the results in order.
func Run(ctx context.Context, o Options) []Result {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	r := &run{o: o}
	r.settings()
	r.files()
	r.chains()
	r.revocations()
	r.expiry()
	r.proxyRunning(ctx)
	r.upstream(ctx)
	r.endToEnd(ctx)
	return r.out
}

// Failed counts the FAIL results.
func Failed(results []Result) int {
	n := 0
	for _, res := range results {
		if res.Status == Fail {
			n++
		}
	}
	return n
}

func (r *run) settings() {
	meta, err := pki.ReadMeta(r.o.Layout)
	if err != nil {
		fix := r.command("init")
		if r.o.Layout.TPADir != pki.DefaultTPADir && r.o.StateDirDefault {
			// A TPA directory of its own with the default state
			// directory: most likely --state-dir was left out.
			fix = "give the --state-dir this PKI was set up with; to set one up, pgbapi-proxy init --tpa-dir " + shellQuote(r.o.Layout.TPADir) + " --state-dir DIR"
		}
		r.add("pki", Fail, err.Error(), fix)
		return
	}
	r.meta = meta
	root, err := pki.LoadCert(r.o.Layout.RootCert())
	if err != nil {
		r.add("pki", Fail, err.Error(), "restore root.crt from the CA's host, or run "+r.command("init"))
		return
	}
	r.root = root
	r.add("pki", OK, fmt.Sprintf("cluster %s, CA %s", meta.Cluster, root.Subject), "")
}

// files: every key private, the CA key root's, then every pair matching.
func (r *run) files() {
	l := r.o.Layout
	svc := r.serviceUser()
	if info, err := os.Stat(l.CAKey()); err == nil {
		st := info.Sys().(*syscall.Stat_t)
		if info.Mode().Perm() != pki.KeyMode || st.Uid != 0 && os.Geteuid() == 0 {
			r.add("files", Fail, fmt.Sprintf("the cluster CA key %s is mode %04o, owner uid %d", l.CAKey(), info.Mode().Perm(), st.Uid),
				fmt.Sprintf("chown root:root %s && chmod 600 %s", l.CAKey(), l.CAKey()))
		} else {
			r.add("files", OK, "the cluster CA key is root's only ("+l.CAKey()+")", "")
		}
		if dir, err := os.Stat(l.CADir()); err == nil && dir.Mode().Perm()&0o077 != 0 {
			r.add("files", Fail, fmt.Sprintf("%s is mode %04o: others can list the CA directory", l.CADir(), dir.Mode().Perm()), "chmod 700 "+l.CADir())
		}
	}
	keys, _ := filepath.Glob(filepath.Join(l.TPADir, "*.key"))
	if ik := l.IntermediateKey(); fileExists(ik) {
		keys = append(keys, ik)
	}
	sort.Strings(keys)
	for _, key := range keys {
		info, err := os.Stat(key)
		if err != nil {
			r.add("files", Fail, err.Error(), "")
			continue
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			r.add("files", Fail, fmt.Sprintf("%s is mode %04o: others can read a private key", key, perm), "chmod 600 "+key)
			continue
		}
		st := info.Sys().(*syscall.Stat_t)
		needsService := key == l.ServerKey() || key == l.IntermediateKey()
		if svc != nil && needsService && fmt.Sprint(st.Uid) != svc.Uid {
			r.add("files", Fail, fmt.Sprintf("%s is not owned by the service user %s, which must read it", key, svc.Username),
				fmt.Sprintf("chown %s:%s %s", svc.Username, svc.Username, key))
			continue
		}
		r.add("files", OK, fmt.Sprintf("%s is private (%04o)", key, info.Mode().Perm()), "")
	}
	r.pairs()
}

// pairs: every certificate in the TPA directory parses and matches the
// key beside it.
func (r *run) pairs() {
	l := r.o.Layout
	certs, _ := filepath.Glob(filepath.Join(l.TPADir, "*.crt"))
	sort.Strings(certs)
	for _, c := range certs {
		chain, err := pki.LoadCerts(c)
		switch {
		case err != nil && !r.pkiFile(c):
			r.add("files", Warn, err.Error(), "not a file of the PKI (init left it alone) and nothing here uses it; move it out of "+l.TPADir+" if nothing else needs it")
			continue
		case err != nil:
			r.add("files", Fail, err.Error(), r.reissue(c))
			continue
		}
		key := strings.TrimSuffix(c, ".crt") + ".key"
		if !fileExists(key) {
			continue // root.crt, CA.crt, or a certificate handed over without its key
		}
		k, err := pki.LoadKey(key)
		switch {
		case err != nil:
			r.add("files", Fail, err.Error(), "restore the key from a backup, or issue a new pair ("+r.renew(c)+")")
		case !pki.KeyMatches(chain[0], k):
			r.add("files", Fail, fmt.Sprintf("%s does not belong to %s", key, c), "put the matching key back, or issue a new pair ("+r.renew(c)+")")
		default:
			r.add("files", OK, fmt.Sprintf("%s matches its key", c), "")
		}
	}
}

func (r *run) serviceUser() *user.User {
	if r.o.ServiceUser == "" {
		return nil
	}
	u, err := user.Lookup(r.o.ServiceUser)
	if err != nil {
		return nil
	}
	return u
}

// chains: the server certificate and every client certificate verify
// against the root; the server certificate names this host.
func (r *run) chains() {
	if r.root == nil {
		return
	}
	l := r.o.Layout
	if server, err := pki.LoadCerts(l.ServerCert()); err == nil {
		if err := pki.VerifyChain(server, r.root, x509.ExtKeyUsageServerAuth, r.o.Now); err != nil {
			r.add("chain", Fail, "server certificate "+err.Error(), "pgbapi-proxy serve renews it; on a host without the CA key, copy a renewed pg-backup-api.crt/.key and reload")
		} else {
			r.add("chain", OK, "the server certificate verifies against the cluster CA", "")
		}
		var missing []string
		for _, h := range r.o.Hostnames {
			if server[0].VerifyHostname(h) != nil {
				missing = append(missing, h)
			}
		}
		if len(missing) > 0 {
			r.add("chain", Warn, fmt.Sprintf("the server certificate does not cover %s (it covers %s)", strings.Join(missing, ", "), strings.Join(append(server[0].DNSNames, ipStrings(server[0])...), ", ")),
				r.uncoveredFix(missing))
		}
	}
	recs, err := pki.ReadInventory(l)
	if err != nil {
		r.add("chain", Fail, err.Error(), "")
		return
	}
	for _, rec := range recs {
		if rec.Kind != pki.KindClient || rec.Replaced || rec.RevokedAt != nil || !fileExists(rec.Path) {
			continue
		}
		chain, err := pki.LoadCerts(rec.Path)
		if err != nil {
			continue // reported under files
		}
		if err := pki.VerifyChain(chain, r.root, x509.ExtKeyUsageClientAuth, r.o.Now); err != nil && !errors.As(err, new(x509.CertificateInvalidError)) {
			r.add("chain", Fail, fmt.Sprintf("client %s: %v", rec.Name, err), r.renew(rec.Path))
		} else if err == nil {
			r.add("chain", OK, fmt.Sprintf("client %s verifies against the cluster CA", rec.Name), "")
		}
	}
}

// revocations: the revocation record the proxy enforces is root's, lists
// every certificate the inventory says is revoked, and the CRL for other
// tools is as recent as the record.
func (r *run) revocations() {
	l := r.o.Layout
	recs, err := pki.ReadInventory(l)
	if err != nil {
		return // reported under chain
	}
	var revoked []pki.Record
	for _, rec := range recs {
		if rec.RevokedAt != nil && r.o.Now.Before(rec.NotAfter) {
			revoked = append(revoked, rec)
		}
	}
	record, err := pki.ReadRevocationRecord(l.RevocationRecord())
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(revoked) == 0:
		r.add("revocation", OK, "no certificate is revoked", "")
		return
	case errors.Is(err, fs.ErrNotExist):
		r.add("revocation", Fail, fmt.Sprintf("%d certificate(s) marked revoked in the inventory (%s first) but no revocation record %s: the proxy does not refuse them", len(revoked), revoked[0].Name, l.RevocationRecord()),
			"pgbapi-proxy revoke --serial "+revoked[0].Serial+" (writes the record with every revoked certificate)")
		return
	case err != nil:
		r.add("revocation", Fail, err.Error(), "move it away, then pgbapi-proxy revoke --serial SERIAL writes it again from the inventory")
		return
	}
	if info, err := os.Lstat(l.RevocationRecord()); err == nil {
		st := info.Sys().(*syscall.Stat_t)
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o022 != 0 || st.Uid != 0 && os.Geteuid() == 0 {
			r.add("revocation", Fail, fmt.Sprintf("%s is mode %04o, owner uid %d: only root may write what the proxy refuses", l.RevocationRecord(), info.Mode().Perm(), st.Uid),
				fmt.Sprintf("chown root:root %s && chmod 644 %s", l.RevocationRecord(), l.RevocationRecord()))
		}
	}
	inRecord := map[string]bool{}
	for _, e := range record.Revoked {
		inRecord[e.Serial] = true
	}
	var missing []string
	for _, rec := range revoked {
		if !inRecord[rec.Serial] {
			missing = append(missing, rec.Name+" ("+rec.Serial+")")
		}
	}
	if len(missing) > 0 {
		r.add("revocation", Fail, "revoked in the inventory but not in the revocation record the proxy enforces: "+strings.Join(missing, ", "),
			"pgbapi-proxy revoke --serial SERIAL for each")
	} else {
		r.add("revocation", OK, fmt.Sprintf("%d certificate(s) revoked, revocation record #%d", len(record.Revoked), record.Number), "")
	}
	if n, err := pki.CRLNumber(l.CRL()); err == nil && n < record.Number {
		r.add("revocation", Warn, fmt.Sprintf("the CRL %s (#%d) is older than the revocation record (#%d): the proxy refuses every revoked certificate, but openssl and other tools reading the CRL do not know of the latest", l.CRL(), n, record.Number),
			"revoke where the CA key is and copy its crl.pem here, or adopt the CA key (init --ca-cert/--ca-key) and revoke again")
	}
}

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// expiry of the root, the intermediate, the server and client certificates.
func (r *run) expiry() {
	l := r.o.Layout
	type item struct{ what, path, fix string }
	items := []item{
		{"the cluster CA", l.RootCert(), "plan a new cluster CA and hand out new client certificates before then"},
		{"the intermediate", l.IntermediateCert(), "move " + l.IntermediateCert() + " and its key away and run " + r.command("init")},
		{"the server certificate", l.ServerCert(), "pgbapi-proxy serve renews it at a third of its lifetime: check its log (journalctl -u pgbapi-proxy)"},
	}
	if recs, err := pki.ReadInventory(l); err == nil {
		for _, rec := range recs {
			if rec.Kind == pki.KindClient && !rec.Replaced && rec.RevokedAt == nil && fileExists(rec.Path) {
				items = append(items, item{"client " + rec.Name, rec.Path, r.renew(rec.Path)})
			}
		}
	}
	for _, it := range items {
		c, err := pki.LoadCert(it.path)
		if err != nil {
			continue // missing or reported under files
		}
		left := c.NotAfter.Sub(r.o.Now)
		detail := fmt.Sprintf("%s expires %s (%s)", it.what, c.NotAfter.UTC().Format("2006-01-02"), describeLeft(left))
		switch {
		case left <= 0:
			r.add("expiry", Fail, strings.Replace(detail, "expires", "expired", 1), it.fix)
		case left < failWithin:
			r.add("expiry", Fail, detail, it.fix)
		case left < warnWithin:
			r.add("expiry", Warn, detail, it.fix)
		default:
			r.add("expiry", OK, detail, "")
		}
	}
}

func describeLeft(d time.Duration) string {
	if d <= 0 {
		return fmt.Sprintf("%d days ago", int(-d.Hours()/24))
	}
	return fmt.Sprintf("in %d days", int(d.Hours()/24))
}

// proxyRunning asks /readyz; when nothing answers, it looks at who holds
// the proxy's port.
func (r *run) proxyRunning(ctx context.Context) {
	ready, err := proxy.CheckReady(ctx, r.o.AdminListen, 5*time.Second)
	if err == nil {
		if ready.Ready {
			r.add("proxy", OK, "pgbapi-proxy is running and ready (admin "+r.o.AdminListen+")", "")
		} else {
			r.add("proxy", Fail, "pgbapi-proxy is running but not ready: "+ready.Reason, "see its log: journalctl -u pgbapi-proxy")
		}
		return
	}
	holder := r.portHolder(ctx)
	switch {
	case holder == "":
		r.add("proxy", Fail, "pgbapi-proxy is not running (nothing answers on "+r.o.AdminListen+" or "+r.o.Listen+")", "systemctl start pgbapi-proxy, then journalctl -u pgbapi-proxy")
	case strings.HasPrefix(holder, "ours"):
		r.add("proxy", Warn, "something serves the cluster's certificate on "+r.o.Listen+" but the admin listener "+r.o.AdminListen+" does not answer", "check --admin-listen; see journalctl -u pgbapi-proxy")
	default:
		r.add("proxy", Fail, "pgbapi-proxy is not running and something else holds "+r.o.Listen+": "+holder,
			"an old Apache site? a2dissite pg-backup-api / systemctl disable --now apache2 (or httpd), then systemctl restart pgbapi-proxy")
	}
}

// portHolder says what answers on the proxy's port: "" for nothing.
func (r *run) portHolder(ctx context.Context) string {
	addr := loopbackAddr(r.o.Listen)
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return ""
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only to see who answers
	tc.SetDeadline(time.Now().Add(3 * time.Second))
	if err := tc.Handshake(); err != nil && len(tc.ConnectionState().PeerCertificates) == 0 {
		return "a program that does not speak TLS the proxy's way (" + err.Error() + ")"
	}
	peer := tc.ConnectionState().PeerCertificates
	if len(peer) == 0 {
		return "a TLS server without a certificate"
	}
	if r.root != nil && pki.VerifyChain(peer, r.root, x509.ExtKeyUsageServerAuth, r.o.Now) == nil {
		return "ours"
	}
	return fmt.Sprintf("a TLS server with a certificate not from this cluster's CA (%s, issued by %s)", peer[0].Subject, peer[0].Issuer)
}

func loopbackAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// upstream: /status answers, and only on loopback.
func (r *run) upstream(ctx context.Context) {
	u := r.o.Upstream
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.JoinPath("/status").String(), nil)
	if err != nil {
		r.add("upstream", Fail, fmt.Sprintf("pg-backup-api's address %q is not usable: %v", u.String(), err), "give --upstream http://HOST:PORT (PGBAPI_PROXY_UPSTREAM in the settings file)")
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		r.add("upstream", Fail, fmt.Sprintf("pg-backup-api at %s does not answer: %v", u, err), "systemctl start pg-backup-api; check it listens on "+u.Host)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.add("upstream", Fail, fmt.Sprintf("pg-backup-api /status answered %s: %s", resp.Status, strings.TrimSpace(string(body))), "see pg-backup-api's log")
		return
	}
	r.add("upstream", OK, "pg-backup-api answers /status at "+u.String(), "")

	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return
	}
	var exposed []string
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLoopback() || ipnet.IP.IsLinkLocalUnicast() {
			continue
		}
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		if c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ipnet.IP.String(), port)); err == nil {
			c.Close()
			exposed = append(exposed, net.JoinHostPort(ipnet.IP.String(), port))
		}
	}
	if len(exposed) > 0 {
		r.add("upstream", Fail, "pg-backup-api also answers on "+strings.Join(exposed, ", ")+": anyone on the network reaches it without a certificate",
			"make pg-backup-api listen on 127.0.0.1 only")
	} else {
		r.add("upstream", OK, "pg-backup-api answers on loopback only", "")
	}
}

// endToEnd makes a real mTLS request to /status through the proxy.
func (r *run) endToEnd(ctx context.Context) {
	if r.root == nil || r.meta == nil {
		return
	}
	cert, how, err := r.clientCert()
	if err != nil {
		r.add("end-to-end", Fail, err.Error(), "")
		return
	}
	if cert == nil {
		r.add("end-to-end", Skip, how, "")
		return
	}
	pool := x509.NewCertPool()
	pool.AddCert(r.root)
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		Proxy: nil, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{*cert}, ServerName: r.meta.Hostnames[0], MinVersion: tls.VersionTLS12},
	}}
	target := "https://" + loopbackAddr(r.o.Listen) + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		r.add("end-to-end", Fail, fmt.Sprintf("the proxy's address %q is not usable: %v", r.o.Listen, err), "give --listen HOST:PORT (PGBAPI_PROXY_LISTEN in the settings file)")
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		r.add("end-to-end", Fail, fmt.Sprintf("GET %s with %s: %v", target, how, err), "see the proxy and upstream lines above")
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		r.add("end-to-end", OK, fmt.Sprintf("GET /status through the proxy with %s: %s %s", how, resp.Status, strings.TrimSpace(string(body))), "")
	case resp.StatusCode == http.StatusForbidden:
		r.add("end-to-end", Warn, fmt.Sprintf("GET /status with %s was denied: %s", how, strings.TrimSpace(string(body))), "the access rules deny it; pass --cert/--key of a client allowed to read")
	default:
		r.add("end-to-end", Fail, fmt.Sprintf("GET /status through the proxy with %s: %s %s", how, resp.Status, strings.TrimSpace(string(body))), "see the proxy's log")
	}
}

// clientCert is --cert/--key, or a short-lived certificate made for the
// check from the CA key (never written to disk), or nil with why not.
func (r *run) clientCert() (*tls.Certificate, string, error) {
	if r.o.CertFile != "" {
		c, err := tls.LoadX509KeyPair(r.o.CertFile, r.o.KeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("--cert/--key: %w", err)
		}
		return &c, r.o.CertFile, nil
	}
	ca, err := pki.LoadAuthority(r.o.Layout.CAStateCert(), r.o.Layout.CAKey())
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		// Without the CA key: the test client, as the documented curl uses.
		l := r.o.Layout
		certPath := l.CertIn(l.TPADir, pki.TestClientName)
		if c, err := tls.LoadX509KeyPair(certPath, l.KeyIn(l.TPADir, pki.TestClientName)); err == nil {
			return &c, certPath, nil
		}
		return nil, "no client certificate to test with: run as root where the CA key is or " + certPath + "'s key is readable, or pass --cert/--key", nil
	}
	if err != nil {
		return nil, "", err
	}
	key, err := pki.ECDSAP256.Generate()
	if err != nil {
		return nil, "", err
	}
	serial, err := pki.NewSerial()
	if err != nil {
		return nil, "", err
	}
	leaf, err := ca.Sign(&x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "pgbapi-proxy-doctor"},
		NotBefore: r.o.Now.Add(-time.Minute), NotAfter: r.o.Now.Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}, key.Public())
	if err != nil {
		return nil, "", err
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, "a 10-minute certificate made for the check (CN=pgbapi-proxy-doctor)", nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
