package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// ServerSigner issues the proxy's server certificates from the
// intermediate, for the names init recorded and no others.
type ServerSigner struct {
	Inter     *Authority
	Hostnames []string
	IPs       []net.IP
}

// LoadServerSigner loads the intermediate and the names it may sign for.
// It fails with ErrNoCAKey when the PKI was adopted without a CA key.
func LoadServerSigner(l Layout) (*ServerSigner, error) {
	meta, err := ReadMeta(l)
	if err != nil {
		return nil, err
	}
	kind, err := pairState(l.IntermediateCert(), l.IntermediateKey())
	if err != nil {
		return nil, err
	}
	if kind != pairBoth {
		return nil, ErrNoCAKey
	}
	inter, err := LoadAuthority(l.IntermediateCert(), l.IntermediateKey())
	if err != nil {
		return nil, err
	}
	return &ServerSigner{Inter: inter, Hostnames: meta.Hostnames, IPs: meta.ParsedIPs()}, nil
}

// Allows reports whether name (a host name or an IP address) is one the
// server certificate covers.
func (s *ServerSigner) Allows(name string) bool {
	if ip := net.ParseIP(name); ip != nil {
		return slices.ContainsFunc(s.IPs, ip.Equal)
	}
	return slices.Contains(s.Hostnames, name)
}

// Sign issues a server certificate for pub covering every recorded name,
// valid for lifetime from now. It returns the leaf and the intermediate.
func (s *ServerSigner) Sign(pub crypto.PublicKey, lifetime time.Duration, now time.Time) ([]*x509.Certificate, error) {
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	leaf, err := s.Inter.Sign(ServerTemplate(s.Hostnames, s.IPs, lifetime, now, serial), pub)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, s.Inter.Cert}, nil
}

// Reusable returns the pair in pg-backup-api.crt/.key when a proxy that
// renews with s may serve it instead of obtaining a new one, so that init
// and the first serve do not issue two certificates: the leaf was issued
// by s's intermediate, covers every name s signs for, matches its key and
// has more than renewAt of its lifetime left (certmagic renews at a third:
// pass 1.0/3). Otherwise it returns why not, for the log.
func (s *ServerSigner) Reusable(l Layout, renewAt float64, now time.Time) (certPEM, keyPEM []byte, why string) {
	certPEM, err := os.ReadFile(l.ServerCert())
	if err != nil {
		return nil, nil, err.Error()
	}
	keyPEM, err = os.ReadFile(l.ServerKey())
	if err != nil {
		return nil, nil, err.Error()
	}
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, nil, err.Error()
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, nil, err.Error()
	}
	leaf := certs[0]
	switch {
	case !KeyMatches(leaf, key):
		return nil, nil, "the key does not belong to the certificate"
	case leaf.CheckSignatureFrom(s.Inter.Cert) != nil:
		return nil, nil, fmt.Sprintf("not issued by the current intermediate (issuer %s)", leaf.Issuer)
	}
	if missing := missingNames(leaf, s.Hostnames, s.IPs); len(missing) > 0 {
		return nil, nil, "it does not cover " + strings.Join(missing, ", ")
	}
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	if left := leaf.NotAfter.Sub(now); left <= time.Duration(float64(lifetime)*renewAt) {
		return nil, nil, fmt.Sprintf("due for renewal (%s left of %s)", left.Round(time.Second), lifetime.Round(time.Second))
	}
	return certPEM, keyPEM, ""
}
