package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CRLName is the file the certificate revocation list is written to, in
// the state dir and, for other tools, next to root.crt in the TPA dir.
const CRLName = "crl.pem"

// CRL is where the proxy reads the revocation list.
func (l Layout) CRL() string { return filepath.Join(l.StateDir, CRLName) }

// TPACRL is the copy next to root.crt.
func (l Layout) TPACRL() string { return filepath.Join(l.TPADir, CRLName) }

// crlLifetime is how long a CRL says it is current. The proxy enforces the
// newest CRL it has whatever its age; other tools may want a fresh one,
// which any revoke (or `revoke --refresh`) writes.
const crlLifetime = 365 * 24 * time.Hour

// RevokeOptions says which certificates to revoke: every certificate
// issued under Name, or the one with Serial.
type RevokeOptions struct {
	Layout
	Name   string
	Serial string
	Now    func() time.Time
}

// Revoked is what Revoke did.
type Revoked struct {
	Records []Record // newly revoked
	Already []Record // revoked before
	CRLPath string
}

// Revoke marks client certificates revoked in the inventory and writes a
// new CRL signed by the cluster root. Revoking twice is harmless.
func Revoke(o RevokeOptions) (*Revoked, error) {
	if (o.Name == "") == (o.Serial == "") {
		return nil, errors.New("give either --name or --serial")
	}
	serial := strings.ToUpper(strings.TrimLeft(strings.ReplaceAll(o.Serial, ":", ""), "0"))
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	out := &Revoked{CRLPath: o.CRL()}
	err := withLock(o.Layout, func() error {
		if ok, err := exists(o.CAKey()); err != nil || !ok {
			if err != nil {
				return err
			}
			return ErrNoCAKey
		}
		ca, err := LoadAuthority(o.CAStateCert(), o.CAKey())
		if err != nil {
			return err
		}
		inv, err := ReadInventory(o.Layout)
		if err != nil {
			return err
		}
		found := false
		for i := range inv {
			r := &inv[i]
			if r.Kind != KindClient {
				continue
			}
			if o.Name != "" && r.Name != o.Name || o.Serial != "" && strings.TrimLeft(r.Serial, "0") != serial {
				continue
			}
			found = true
			if r.RevokedAt != nil {
				out.Already = append(out.Already, *r)
				continue
			}
			t := now.UTC()
			r.RevokedAt = &t
			out.Records = append(out.Records, *r)
		}
		if !found {
			if o.Name != "" {
				return fmt.Errorf("no client certificate named %q was issued here; see 'pgbapi-proxy list'", o.Name)
			}
			return fmt.Errorf("no client certificate with serial %s was issued here; see 'pgbapi-proxy list'", o.Serial)
		}
		if len(out.Records) > 0 {
			if err := writeInventory(o.Layout, inv); err != nil {
				return err
			}
		}
		return writeCRL(o.Layout, ca, inv, now)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeCRL signs a CRL of every revoked certificate not yet expired and
// writes it to the state dir and next to root.crt.
func writeCRL(l Layout, ca *Authority, inv []Record, now time.Time) error {
	var entries []x509.RevocationListEntry
	for _, r := range inv {
		if r.RevokedAt == nil || !now.Before(r.NotAfter) {
			continue
		}
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return fmt.Errorf("inventory: bad serial %q", r.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: *r.RevokedAt})
	}
	// The CRL number only has to grow: the time in nanoseconds does.
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                now.Add(-backdate),
		NextUpdate:                now.Add(crlLifetime),
		RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		return fmt.Errorf("signing the CRL: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	if err := Replace(l.CRL(), data, CertMode, nil); err != nil {
		return err
	}
	return Replace(l.TPACRL(), data, CertMode, nil)
}

// LoadCRL reads a PEM CRL and checks that root signed it. It returns the
// revoked serials, as SerialHex prints them.
func LoadCRL(path string, root *x509.Certificate) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "X509 CRL" {
		return nil, fmt.Errorf("%q holds no PEM X509 CRL", path)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", path, err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("%q is not signed by the cluster CA: %w", path, err)
	}
	revoked := make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		revoked[SerialHex(&x509.Certificate{SerialNumber: e.SerialNumber})] = true
	}
	return revoked, nil
}
