package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
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

// InstallServerCert replaces pg-backup-api.crt/.key in the TPA directory
// with a new pair (each file atomically, the key first) and records the
// certificate in the inventory.
func InstallServerCert(l Layout, certPEM, keyPEM []byte, now time.Time) error {
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return fmt.Errorf("installing server certificate: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("installing server certificate: %w", err)
	}
	if !KeyMatches(certs[0], key) {
		return fmt.Errorf("installing server certificate: the key does not belong to the certificate")
	}
	return withLock(l, func() error {
		if err := Replace(l.ServerKey(), keyPEM, KeyMode, nil); err != nil {
			return err
		}
		if err := Replace(l.ServerCert(), certPEM, CertMode, nil); err != nil {
			return err
		}
		return addRecords(l, NewRecord(ServerName, KindServer, certs[0], l.ServerCert(), now))
	})
}
