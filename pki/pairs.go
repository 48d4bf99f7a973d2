package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"io/fs"
	"time"
)

// pairKind says which halves of a certificate/key pair are on disk.
type pairKind int

const (
	pairNone     pairKind = iota // neither: create both
	pairBoth                     // both: keep them
	pairKeyOnly                  // an interrupted run wrote the key: reuse it
	pairCertOnly                 // a certificate without its key: refuse
)

func pairState(certPath, keyPath string) (pairKind, error) {
	haveCert, err := exists(certPath)
	if err != nil {
		return pairNone, err
	}
	haveKey, err := exists(keyPath)
	if err != nil {
		return pairNone, err
	}
	switch {
	case haveCert && haveKey:
		return pairBoth, nil
	case haveKey:
		return pairKeyOnly, nil
	case haveCert:
		return pairCertOnly, nil
	}
	return pairNone, nil
}

func incompletePair(certPath, keyPath string) error {
	return fmt.Errorf("%q exists but its key %q does not; restore the key from a backup or move the certificate away (nothing was changed)", certPath, keyPath)
}

// writePair writes a new key (0600) and then its certificate, neither
// replacing an existing file. The key goes first so that an interrupted run
// leaves a key without a certificate, which the next run completes.
func writePair(certPath, keyPath string, certPEM []byte, key crypto.Signer, owner *Owner) error {
	return writeBoth(certPath, keyPath, certPEM, key, owner, WriteNew)
}

// replacePair atomically replaces an existing key and certificate.
func replacePair(certPath, keyPath string, certPEM []byte, key crypto.Signer, owner *Owner) error {
	return writeBoth(certPath, keyPath, certPEM, key, owner, Replace)
}

func writeBoth(certPath, keyPath string, certPEM []byte, key crypto.Signer, owner *Owner,
	write func(string, []byte, fs.FileMode, *Owner) error) error {
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return err
	}
	if err := write(keyPath, keyPEM, KeyMode, owner); err != nil {
		return err
	}
	return write(certPath, certPEM, CertMode, owner)
}

// signClient issues a client certificate CN=name from ca for key.
func signClient(ca *Authority, name string, days int, key crypto.Signer, now time.Time) (*x509.Certificate, error) {
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	return ca.Sign(clientTemplate(name, days, now, serial), key.Public())
}

// signRequest issues a client certificate CN=name from ca for the public
// key of a checked request, with the DNS names checkCSR kept.
func signRequest(ca *Authority, name string, days int, pub crypto.PublicKey, dns []string, now time.Time) (*x509.Certificate, error) {
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	tmpl := clientTemplate(name, days, now, serial)
	tmpl.DNSNames = dns
	return ca.Sign(tmpl, pub)
}
