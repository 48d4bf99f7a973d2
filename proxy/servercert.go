package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/pgbapi/pgbapi-proxy/pki"
	"go.uber.org/zap"
)

// certSource serves the proxy's own certificate.
type certSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Leaf is the certificate served now.
	Leaf() (*x509.Certificate, error)
	// Lifetime is how long each certificate is valid, for /readyz.
	Lifetime() time.Duration
	Reload() error
	Stop()
}

// staticCerts serves pg-backup-api.crt/.key as they are, for a host whose
// PKI was adopted without the CA key. SIGHUP reloads them.
type staticCerts struct {
	layout pki.Layout
	cert   atomic.Pointer[tls.Certificate]
}

func newStaticCerts(l pki.Layout) (*staticCerts, error) {
	s := &staticCerts{layout: l}
	return s, s.Reload()
}

func (s *staticCerts) Reload() error {
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

func (s *staticCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

func (s *staticCerts) Leaf() (*x509.Certificate, error) { return s.cert.Load().Leaf, nil }

func (s *staticCerts) Lifetime() time.Duration {
	leaf := s.cert.Load().Leaf
	return leaf.NotAfter.Sub(leaf.NotBefore)
}

func (s *staticCerts) Stop() {}

// managedCerts has certmagic obtain and renew the server certificate from
// the intermediate (through intermediateIssuer), keep it in the state
// directory, and copy each new one to pg-backup-api.crt/.key.
type managedCerts struct {
	cache    *certmagic.Cache
	magic    *certmagic.Config
	subject  string
	lifetime time.Duration
}

// newManagedCerts obtains a certificate if none is stored yet; renewals
// then happen in the background at a third of the lifetime left.
func newManagedCerts(ctx context.Context, l pki.Layout, signer *pki.ServerSigner, lifetime time.Duration, keyType pki.KeyType, m *metrics, log *slog.Logger) (*managedCerts, error) {
	mc := &managedCerts{subject: primaryName(signer), lifetime: lifetime}
	zlog := zap.New(newSlogCore(log.With("component", "certmagic")))
	mc.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return mc.magic, nil },
		// Check often enough to renew in time even for short test lifetimes.
		RenewCheckInterval: min(certmagic.DefaultRenewCheckInterval, max(lifetime/12, time.Second)),
		OCSPCheckInterval:  24 * time.Hour,
		Logger:             zlog,
	})
	issuer := &intermediateIssuer{signer: signer, lifetime: lifetime}
	mc.magic = certmagic.New(mc.cache, certmagic.Config{
		RenewalWindowRatio: 1.0 / 3,
		Issuers:            []certmagic.Issuer{issuer},
		KeySource:          certmagic.StandardKeyGenerator{KeyType: magicKeyType(keyType)},
		Storage:            &certmagic.FileStorage{Path: filepath.Join(l.StateDir, "certmagic")},
		OCSP:               certmagic.OCSPConfig{DisableStapling: true},
		DisableARI:         true,
		DefaultServerName:  mc.subject,
		FallbackServerName: mc.subject,
		Logger:             zlog,
		OnEvent: func(ctx context.Context, event string, data map[string]any) error {
			mc.onEvent(ctx, l, event, data, m, log)
			return nil
		},
	})
	if err := mc.magic.ManageSync(ctx, []string{mc.subject}); err != nil {
		mc.cache.Stop()
		return nil, fmt.Errorf("obtaining the server certificate from the intermediate: %w", err)
	}
	return mc, nil
}

// onEvent logs obtained and failed certificates, counts them, and copies
// each new certificate to the TPA directory.
func (mc *managedCerts) onEvent(ctx context.Context, l pki.Layout, event string, data map[string]any, m *metrics, log *slog.Logger) {
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtained":
		certPath, _ := data["certificate_path"].(string)
		keyPath, _ := data["private_key_path"].(string)
		err := mc.install(ctx, l, certPath, keyPath)
		if err != nil {
			log.Error("server certificate obtained but not copied to the TPA directory", "err", err)
		}
		m.renewals.WithLabelValues(resultLabel(err)).Inc()
		log.Info("server certificate obtained", "renewal", renewal, "copied_to", l.ServerCert())
	case "cert_failed":
		m.renewals.WithLabelValues("failed").Inc()
		log.Error("obtaining the server certificate failed; the current one stays in use", "renewal", renewal, "err", data["error"])
	}
}

func (mc *managedCerts) install(ctx context.Context, l pki.Layout, certPath, keyPath string) error {
	certPEM, err := mc.magic.Storage.Load(ctx, certPath)
	if err != nil {
		return err
	}
	keyPEM, err := mc.magic.Storage.Load(ctx, keyPath)
	if err != nil {
		return err
	}
	return pki.InstallServerCert(l, certPEM, keyPEM, time.Now())
}

func (mc *managedCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return mc.magic.GetCertificate(hello)
}

// Leaf is the newest certificate certmagic holds for the host.
func (mc *managedCerts) Leaf() (*x509.Certificate, error) {
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

func (mc *managedCerts) Lifetime() time.Duration { return mc.lifetime }

// Reload is a no-op: certmagic keeps the certificate current on its own.
func (mc *managedCerts) Reload() error { return nil }

func (mc *managedCerts) Stop() { mc.cache.Stop() }

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
	var out []byte
	for _, c := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return &certmagic.IssuedCertificate{Certificate: out}, nil
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
