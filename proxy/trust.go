package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
)

// Trust is everything that decides who may call what: the roots client
// certificates must chain to, the revoked serials and the access rules.
// A Trust is built whole by its loader and never changed afterwards; the
// server swaps in a new one with SetTrust, so that every handshake and
// every request reads one consistent snapshot.
type Trust struct {
	// Roots are the CA certificates a client certificate must chain to
	// (the cluster root). At least one.
	Roots []*x509.Certificate
	// Revoked holds revoked serials, as SerialHex prints them.
	Revoked map[string]bool
	// Rules are the access rules; nil lets every valid client do
	// everything, as the Apache setup did.
	Rules *Rules
	// Describe says where the snapshot came from, for the log at start
	// and on each swap (files, CRL number, rule count).
	Describe string
}

// Validate checks that a Trust can be served.
func (t *Trust) Validate() error {
	if t == nil || len(t.Roots) == 0 {
		return errors.New("trust: Roots: at least one root certificate is needed")
	}
	return nil
}

// IsRevoked reports whether the certificate with serial (SerialHex) is revoked.
func (t *Trust) IsRevoked(serial string) bool { return t.Revoked[serial] }

// Identity is who a client is, as its verified certificate says: made
// once per connection, at the handshake, and used by the rules, the
// revocation and expiry checks, the audit trail, the logs and the metrics.
type Identity struct {
	Name     string // the certificate's one CN
	Serial   string // SerialHex of the certificate
	NotAfter time.Time
	Chain    []*x509.Certificate // the verified chain, leaf first
}

// oidCommonName is the X.520 commonName attribute.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// identityOf builds the Identity of a verified connection. A certificate
// whose subject has no CN or several is refused: tools disagree on which
// of several CNs counts (Go takes the last, openssl shows the first).
func identityOf(cs tls.ConnectionState) (*Identity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil, errors.New("no verified client certificate")
	}
	leaf := cs.VerifiedChains[0][0]
	cns := 0
	for _, n := range leaf.Subject.Names {
		if n.Type.Equal(oidCommonName) {
			cns++
		}
	}
	if cns != 1 || leaf.Subject.CommonName == "" {
		return nil, fmt.Errorf("%w: the subject has %d common names; exactly one is required", errBadIdentity, cns)
	}
	return &Identity{
		Name:     leaf.Subject.CommonName,
		Serial:   pki.SerialHex(leaf),
		NotAfter: leaf.NotAfter,
		Chain:    cs.VerifiedChains[0],
	}, nil
}

// errBadIdentity fails the handshake of a certificate that names its
// holder ambiguously.
var errBadIdentity = errors.New("ambiguous client certificate")

// CertSource serves the proxy's own server certificate.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Leaf is the certificate served now, for /readyz and the metrics.
	Leaf() (*x509.Certificate, error)
}

// Reloader is a CertSource that reads its files again on SIGHUP.
type Reloader interface{ Reload() error }

// Stopper is a CertSource with background work to stop at shutdown.
type Stopper interface{ Stop() }
