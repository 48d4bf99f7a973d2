// Package servercert gives the proxy its own server certificate: issued
// from the cluster's server-only intermediate and kept renewed by
// certmagic (Managed), or, on a host without the CA key, the files
// pg-backup-api.crt/.key served as they are (Static).
package servercert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Interface guards: what each source can do.
var (
	_ proxy.CertSource = (*Static)(nil)
	_ proxy.Reloader   = (*Static)(nil)
	_ proxy.CertSource = (*Managed)(nil)
	_ proxy.Stopper    = (*Managed)(nil)
	_ proxy.Reloader   = (*Managed)(nil)
)

// MinLifetime is the shortest server certificate lifetime: enough for a
// renewal check to see it and renew it in time (tests use it).
const MinLifetime = 5 * time.Second

// Options says where the PKI is and how server certificates are made.
type Options struct {
	Layout     pki.Layout
	Lifetime   time.Duration // of each certificate issued here; at least a minute
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Validate checks the options; the error names the field.
func (o *Options) Validate() error {
	switch {
	case o.Lifetime < MinLifetime:
		return &proxy.FieldError{Field: "Lifetime", Msg: fmt.Sprintf("%s is too short: at least %s", o.Lifetime, MinLifetime)}
	case o.Registerer == nil:
		return &proxy.FieldError{Field: "Registerer", Msg: "no metrics registry"}
	case o.Log == nil:
		return &proxy.FieldError{Field: "Log", Msg: "no logger"}
	}
	return nil
}

// Open returns the server certificate source for the PKI in o.Layout:
// Managed where the intermediate's key is on this host, else Static.
// A private key that others can read is refused, as ssh does.
func Open(ctx context.Context, o Options) (proxy.CertSource, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	for _, key := range []string{o.Layout.ServerKey(), o.Layout.IntermediateKey()} {
		if err := pki.CheckKeyMode(key); err != nil {
			return nil, err
		}
	}
	signer, err := pki.LoadServerSigner(o.Layout)
	switch {
	case err == nil:
		return newManaged(ctx, o, signer)
	case errors.Is(err, pki.ErrNoCAKey):
		s, err := NewStatic(o.Layout)
		if err == nil {
			o.Log.Info("no CA key on this host: serving pg-backup-api.crt as it is; renew it where the CA is and send SIGHUP", "cert", o.Layout.ServerCert())
		}
		return s, err
	}
	return nil, err
}

// Static serves pg-backup-api.crt/.key as they are, for a host whose
// PKI was adopted without the CA key. SIGHUP reloads them.
type Static struct {
	layout pki.Layout
	cert   atomic.Pointer[tls.Certificate]
}

// NewStatic loads pg-backup-api.crt/.key and checks that they chain to
// root.crt for server use.
func NewStatic(l pki.Layout) (*Static, error) {
	s := &Static{layout: l}
	return s, s.Reload()
}

// Reload reads the pair again; on error the one served stays.
func (s *Static) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.layout.ServerCert(), s.layout.ServerKey())
	if err != nil {
		return fmt.Errorf("loading the server certificate: %w", err)
	}
	// Clients need the whole chain: a cut file that still holds the leaf
	// would be served and fail every client.
	chain := make([]*x509.Certificate, 0, len(cert.Certificate))
	for _, der := range cert.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("loading the server certificate: %w", err)
		}
		chain = append(chain, c)
	}
	root, err := pki.LoadCert(s.layout.RootCert())
	if err != nil {
		return err
	}
	if err := pki.VerifyChain(chain, root, x509.ExtKeyUsageServerAuth, time.Now()); err != nil {
		return fmt.Errorf("loading the server certificate %s: %w", s.layout.ServerCert(), err)
	}
	s.cert.Store(&cert)
	return nil
}

// GetCertificate serves the pair.
func (s *Static) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

// Leaf is the certificate served.
func (s *Static) Leaf() (*x509.Certificate, error) { return s.cert.Load().Leaf, nil }

// Managed has certmagic obtain and renew the server certificate from
// the intermediate (through intermediateIssuer), keep it in the service's
// store, and hand each new one on (see pki.StoreServedCert). Reload picks
// up a new intermediate or new names that init recorded (SIGHUP): the
// certificate for them is obtained before it replaces the served one.
//
// When the PKI's key type is RSA, each renewer also keeps an ECDSA P-256
// companion certificate (same names, same intermediate, same lifetime,
// renewed the same way, stored apart in certmagic-ecdsa/ and never handed
// on to the TPA directory) and serves it to clients that support it, as
// nginx and HAProxy do with two certificates: an ECDSA handshake costs
// the server several times less than an RSA one. Clients that support
// only RSA get the RSA certificate; so does everyone when the companion
// is missing or not valid now.
type Managed struct {
	o        Options
	renewals *prometheus.CounterVec
	mu       sync.Mutex // one Reload at a time
	cur      atomic.Pointer[renewer]
}

// renewer is certmagic set up for one signer (intermediate and names).
type renewer struct {
	cache   *certmagic.Cache
	magic   *certmagic.Config
	subject string
	signer  string // what the signer signs with and for, to see a change

	ecdsaCache *certmagic.Cache  // nil without the companion
	ecdsa      *certmagic.Config // nil without the companion
}

// stop ends the renewer's background renewals, the companion's too.
func (r *renewer) stop() {
	r.cache.Stop()
	if r.ecdsaCache != nil {
		r.ecdsaCache.Stop()
	}
}

// newManaged obtains a certificate if none is stored yet; renewals then
// happen in the background at a third of the lifetime left.
func newManaged(ctx context.Context, o Options, signer *pki.ServerSigner) (*Managed, error) {
	m := &Managed{o: o, renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgbapi_proxy_server_cert_renewals_total",
		Help: "Server certificates obtained from the intermediate, by result (ok, failed).",
	}, []string{"result"})}
	if err := o.Registerer.Register(m.renewals); err != nil {
		return nil, fmt.Errorf("registering the renewal metric: %w", err)
	}
	m.renewals.WithLabelValues("ok")
	m.renewals.WithLabelValues("failed")
	r, err := m.start(ctx, signer)
	if err != nil {
		return nil, err
	}
	m.cur.Store(r)
	return m, nil
}

// start sets certmagic up for signer and has it obtain (or adopt) the
// certificate.
func (m *Managed) start(ctx context.Context, signer *pki.ServerSigner) (*renewer, error) {
	l, lifetime, log := m.o.Layout, m.o.Lifetime, m.o.Log
	meta, err := pki.ReadMeta(l)
	if err != nil {
		return nil, err
	}
	r := &renewer{subject: primaryName(signer), signer: signerID(signer)}
	zlog := zap.New(newSlogCore(log.With("component", "certmagic")))
	r.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return r.magic, nil },
		// Check often enough to renew in time even for short test lifetimes.
		RenewCheckInterval: min(certmagic.DefaultRenewCheckInterval, max(lifetime/12, time.Second)),
		OCSPCheckInterval:  24 * time.Hour,
		Logger:             zlog,
	})
	issuer := &intermediateIssuer{signer: signer, lifetime: lifetime}
	r.magic = certmagic.New(r.cache, certmagic.Config{
		RenewalWindowRatio: 1.0 / 3,
		Issuers:            []certmagic.Issuer{issuer},
		KeySource:          certmagic.StandardKeyGenerator{KeyType: magicKeyType(meta.KeyType)},
		Storage:            &certmagic.FileStorage{Path: filepath.Join(l.ServerStore(), "certmagic")},
		OCSP:               certmagic.OCSPConfig{DisableStapling: true},
		DisableARI:         true,
		DefaultServerName:  r.subject,
		FallbackServerName: r.subject,
		Logger:             zlog,
		OnEvent: func(ctx context.Context, event string, data map[string]any) error {
			m.onEvent(ctx, r, event, data)
			return nil
		},
	})
	if err := r.adoptInstalled(ctx, l, issuer, log); err != nil {
		r.cache.Stop()
		return nil, err
	}
	if err := r.magic.ManageSync(ctx, []string{r.subject}); err != nil {
		r.cache.Stop()
		return nil, fmt.Errorf("obtaining the server certificate from the intermediate: %w", err)
	}
	if meta.KeyType == pki.RSA2048 || meta.KeyType == pki.RSA4096 {
		m.startCompanion(ctx, r, issuer, zlog)
	}
	return r, nil
}

// startCompanion obtains and keeps renewed the ECDSA P-256 companion of
// r's RSA certificate. Failing to is not fatal: the RSA certificate is
// served to everyone, and the log says why.
func (m *Managed) startCompanion(ctx context.Context, r *renewer, issuer *intermediateIssuer, zlog *zap.Logger) {
	l, lifetime, log := m.o.Layout, m.o.Lifetime, m.o.Log
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: min(certmagic.DefaultRenewCheckInterval, max(lifetime/12, time.Second)),
		OCSPCheckInterval:  24 * time.Hour,
		Logger:             zlog,
	})
	magic = certmagic.New(cache, certmagic.Config{
		RenewalWindowRatio: 1.0 / 3,
		Issuers:            []certmagic.Issuer{issuer},
		KeySource:          certmagic.StandardKeyGenerator{KeyType: certmagic.P256},
		Storage:            &certmagic.FileStorage{Path: filepath.Join(l.ServerStore(), "certmagic-ecdsa")},
		OCSP:               certmagic.OCSPConfig{DisableStapling: true},
		DisableARI:         true,
		DefaultServerName:  r.subject,
		FallbackServerName: r.subject,
		Logger:             zlog,
		OnEvent: func(_ context.Context, event string, data map[string]any) error {
			switch event {
			case "cert_obtained":
				m.renewals.WithLabelValues("ok").Inc()
				log.Info("ECDSA companion server certificate obtained (served to clients that support ECDSA)")
			case "cert_failed":
				m.renewals.WithLabelValues("failed").Inc()
				log.Error("obtaining the ECDSA companion server certificate failed; RSA-only until it works", "err", data["error"])
			}
			return nil
		},
	})
	if err := magic.ManageSync(ctx, []string{r.subject}); err != nil {
		cache.Stop()
		log.Warn("no ECDSA companion server certificate; every client gets the RSA one", "err", err)
		return
	}
	r.ecdsaCache, r.ecdsa = cache, magic
}

// signerID names what a signer signs with and for.
func signerID(s *pki.ServerSigner) string {
	id := pki.SerialHex(s.Inter.Cert) + " " + strings.Join(s.Hostnames, ",")
	for _, ip := range s.IPs {
		id += "," + ip.String()
	}
	return id
}

// Reload loads the signer again (SIGHUP). When init gave it a new
// intermediate or new names, a certificate for them is obtained and then
// served; on error the current one stays.
func (m *Managed) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	signer, err := pki.LoadServerSigner(m.o.Layout)
	if err != nil {
		return fmt.Errorf("the server intermediate: %w", err)
	}
	if signerID(signer) == m.cur.Load().signer {
		return nil
	}
	r, err := m.start(context.Background(), signer)
	if err != nil {
		return err
	}
	old := m.cur.Swap(r)
	old.stop()
	m.o.Log.Info("serving a certificate for the names init recorded", "names", strings.Join(signer.Hostnames, ","), "ips", fmt.Sprint(signer.IPs))
	return nil
}

// adoptInstalled hands certmagic the pair init installed in
// pg-backup-api.crt/.key when its store has none yet and the pair is one
// the intermediate would issue now, so that init and the first serve do
// not issue two certificates. certmagic then renews it in time.
func (mc *renewer) adoptInstalled(ctx context.Context, l pki.Layout, issuer *intermediateIssuer, log *slog.Logger) error {
	key := issuer.IssuerKey()
	if mc.magic.Storage.Exists(ctx, certmagic.StorageKeys.SiteCert(key, mc.subject)) {
		return nil
	}
	certPEM, keyPEM, why := issuer.signer.Reusable(l, 1.0/3, time.Now())
	if why == "" {
		if leaf, err := pki.ParseCerts(certPEM); err == nil && leaf[0].NotAfter.Sub(leaf[0].NotBefore) > issuer.lifetime+time.Hour {
			why = "its lifetime is longer than the configured one"
		}
	}
	if why != "" {
		log.Info("obtaining a new server certificate", "why_not_the_installed_one", why)
		return nil
	}
	leaf, err := pki.ParseCerts(certPEM)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(certmagic.CertificateResource{SANs: certNames(leaf[0])})
	if err != nil {
		return err
	}
	for k, v := range map[string][]byte{
		certmagic.StorageKeys.SiteCert(key, mc.subject):       certPEM,
		certmagic.StorageKeys.SitePrivateKey(key, mc.subject): keyPEM,
		certmagic.StorageKeys.SiteMeta(key, mc.subject):       meta,
	} {
		if err := mc.magic.Storage.Store(ctx, k, v); err != nil {
			return fmt.Errorf("handing the installed server certificate to the renewal store: %w", err)
		}
	}
	log.Info("serving the server certificate init installed; it is renewed at a third of its lifetime left", "serial", pki.SerialHex(leaf[0]))
	return pki.StoreServedCert(l, certPEM, keyPEM)
}

// certNames are the DNS and IP names of a certificate.
func certNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// onEvent logs obtained and failed certificates, counts them, and hands
// each new one on: into the service's store, and from there to the TPA
// directory where the service may write it (a packaged service may not:
// root's sync-server-cert copies it).
func (m *Managed) onEvent(ctx context.Context, r *renewer, event string, data map[string]any) {
	l, log, mc := m.o.Layout, m.o.Log, m
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtained":
		certPath, _ := data["certificate_path"].(string)
		keyPath, _ := data["private_key_path"].(string)
		err := r.store(ctx, l, certPath, keyPath)
		if err != nil {
			log.Error("server certificate obtained but not stored", "store", l.ServerStore(), "err", err)
		}
		mc.renewals.WithLabelValues(resultLabel(err)).Inc()
		log.Info("server certificate obtained", "renewal", renewal, "stored_in", l.ServerStore())
		exportServed(l, log)
	case "cert_failed":
		mc.renewals.WithLabelValues("failed").Inc()
		log.Error("obtaining the server certificate failed; the current one stays in use", "renewal", renewal, "err", data["error"])
	}
}

// store writes the pair certmagic keeps at certPath/keyPath into the
// service's store.
func (mc *renewer) store(ctx context.Context, l pki.Layout, certPath, keyPath string) error {
	certPEM, err := mc.magic.Storage.Load(ctx, certPath)
	if err != nil {
		return err
	}
	keyPEM, err := mc.magic.Storage.Load(ctx, keyPath)
	if err != nil {
		return err
	}
	return pki.StoreServedCert(l, certPEM, keyPEM)
}

// exportServed copies the stored pair to pg-backup-api.crt/.key where
// this account may write the TPA directory (a demo, a test, a
// hand-run serve); the packaged service may not, and root's
// sync-server-cert does it.
func exportServed(l pki.Layout, log *slog.Logger) {
	copied, err := pki.ExportServedCert(l, time.Now())
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		// The packaged service: root's directory, read-only to the unit.
		log.Debug("the TPA directory is root's: pgbapi-proxy sync-server-cert copies the new certificate there", "err", err)
	case err != nil:
		log.Error("the new server certificate was not copied to the TPA directory", "err", err)
	case copied:
		log.Info("server certificate copied to the TPA directory", "cert", l.ServerCert())
	}
}

// GetCertificate serves certmagic's current certificate: the ECDSA
// companion to a client that supports it, while it is valid; else the
// main one.
func (m *Managed) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	r := m.cur.Load()
	if r.ecdsa != nil {
		if c, err := r.ecdsa.GetCertificate(hello); err == nil && c != nil && validNow(c) && hello.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	return r.magic.GetCertificate(hello)
}

// validNow reports whether a certificate's leaf is within its validity.
func validNow(c *tls.Certificate) bool {
	leaf := c.Leaf
	if leaf == nil {
		if len(c.Certificate) == 0 {
			return false
		}
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return false
		}
	}
	now := time.Now()
	return now.After(leaf.NotBefore) && now.Before(leaf.NotAfter)
}

// Leaf is the newest certificate certmagic holds for the host.
func (m *Managed) Leaf() (*x509.Certificate, error) {
	mc := m.cur.Load()
	var newest *x509.Certificate
	for _, c := range mc.cache.AllMatchingCertificates(mc.subject) {
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate.Certificate) > 0 {
			var err error
			if leaf, err = x509.ParseCertificate(c.Certificate.Certificate[0]); err != nil {
				continue
			}
		}
		if leaf != nil && (newest == nil || leaf.NotAfter.After(newest.NotAfter)) {
			newest = leaf
		}
	}
	if newest == nil {
		return nil, errors.New("no server certificate in the cache")
	}
	return newest, nil
}

// Stop ends the background renewals.
func (m *Managed) Stop() { m.cur.Load().stop() }

// intermediateIssuer is the certmagic Issuer that signs with the cluster's
// server-only intermediate. It never talks to the network.
type intermediateIssuer struct {
	signer   *pki.ServerSigner
	lifetime time.Duration
}

func (i *intermediateIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	for _, name := range csr.DNSNames {
		if !i.signer.Allows(name) {
			return nil, fmt.Errorf("%q is not one of the names init set up for this host", name)
		}
	}
	for _, ip := range csr.IPAddresses {
		if !i.signer.Allows(ip.String()) {
			return nil, fmt.Errorf("%s is not one of the addresses init set up for this host", ip)
		}
	}
	chain, err := i.signer.Sign(csr.PublicKey, i.lifetime, time.Now())
	if err != nil {
		return nil, err
	}
	return &certmagic.IssuedCertificate{Certificate: pki.EncodeCerts(chain...)}, nil
}

// IssuerKey names the storage folder; a new intermediate gets a new one.
func (i *intermediateIssuer) IssuerKey() string {
	return "pgbapi-proxy-" + pki.SerialHex(i.signer.Inter.Cert)
}

func primaryName(s *pki.ServerSigner) string {
	if len(s.Hostnames) > 0 {
		return s.Hostnames[0]
	}
	return s.IPs[0].String()
}

func magicKeyType(k pki.KeyType) certmagic.KeyType {
	switch k {
	case pki.ECDSAP384:
		return certmagic.P384
	case pki.RSA2048:
		return certmagic.RSA2048
	case pki.RSA4096:
		return certmagic.RSA4096
	}
	return certmagic.P256
}

func resultLabel(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}
