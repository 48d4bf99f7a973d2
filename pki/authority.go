package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Authority is a CA that can sign: its certificate and key.
type Authority struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Sign issues a certificate from a copy of tmpl for pub. RSA leaves also get
// KeyEncipherment, which older TLS clients expect of an RSA server key.
func (a *Authority) Sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	t := *tmpl
	if _, isRSA := pub.(*rsa.PublicKey); isRSA && !t.IsCA {
		t.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, &t, a.Cert, pub, a.Key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %q: %w", t.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// newRoot makes a self-signed cluster CA.
func newRoot(cluster string, kt KeyType, now time.Time) (*Authority, error) {
	key, err := kt.Generate()
	if err != nil {
		return nil, err
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	tmpl := rootTemplate(cluster, now, serial)
	self := &Authority{Cert: tmpl, Key: key}
	cert, err := self.Sign(tmpl, key.Public())
	if err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// newIntermediate makes the server-only intermediate under root.
func (a *Authority) newIntermediate(cluster string, hosts []string, ips []net.IP, kt KeyType, now time.Time) (*Authority, error) {
	key, err := kt.Generate()
	if err != nil {
		return nil, err
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	cert, err := a.Sign(intermediateTemplate(cluster, hosts, ips, now, serial), key.Public())
	if err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// LoadAuthority reads a CA certificate and its key and checks that the key
// is readable by its owner only, that they belong together and that the
// certificate may sign certificates.
func LoadAuthority(certFile, keyFile string) (*Authority, error) {
	cert, err := LoadCert(certFile)
	if err != nil {
		return nil, err
	}
	// A CA key others can read is not used, as ssh refuses such keys.
	if err := CheckKeyMode(keyFile); err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	key, err := LoadKey(keyFile)
	if err != nil {
		return nil, err
	}
	if !KeyMatches(cert, key) {
		return nil, fmt.Errorf("CA key %q does not belong to CA certificate %q", keyFile, certFile)
	}
	if !cert.IsCA || (cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0) {
		return nil, fmt.Errorf("%q is not a CA certificate (no CA:TRUE or no keyCertSign)", certFile)
	}
	return &Authority{Cert: cert, Key: key}, nil
}

// LoadCert reads the first certificate of a PEM file.
func LoadCert(path string) (*x509.Certificate, error) {
	certs, err := LoadCerts(path)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// LoadCerts reads every certificate of a PEM file, in file order.
func LoadCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	certs, err := ParseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("reading certificate %q: %w", path, err)
	}
	return certs, nil
}

// LoadKey reads a PEM private key file.
func LoadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	key, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("reading key %q: %w", path, err)
	}
	return key, nil
}

// ErrNoCAKey says that this host has the CA certificate but not its key, so
// it can verify but not issue.
var ErrNoCAKey = errors.New("the cluster CA key is not on this host, so certificates cannot be issued here: " +
	"issue them where the CA key is kept, or adopt it with 'pgbapi-proxy init --ca-cert FILE --ca-key FILE'")
