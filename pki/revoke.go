package pki

import (
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 5280 key identifier method 1, not a security use
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
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

// RevokeOptions says which certificates to revoke: every client
// certificate recorded under Name, the one with Serial, or the one in
// CertFile (which need not be recorded, but must be signed by the cluster
// CA). Exactly one of them.
type RevokeOptions struct {
	Layout
	Name     string
	Serial   string // any form openssl prints: see NormalizeSerial
	CertFile string
	Now      func() time.Time
}

// Revoked is what Revoke did. Nothing is reported unless every file was
// written.
type Revoked struct {
	Records    []Record // newly revoked
	Already    []Record // revoked before
	Number     int64    // of the revocation record and the CRL
	RecordPath string   // the revocation record the proxy enforces
	CRLPaths   []string // the signed CRLs; none without the CA key
}

// Revoke marks certificates revoked in the inventory and writes the
// revocation record, and, where the CA key is, a CRL signed by the cluster
// CA with the same number, to the state dir and next to root.crt. It is all
// or nothing: if any file cannot be written, none changes. Revoking twice
// is harmless.
func Revoke(o RevokeOptions) (*Revoked, error) {
	serial, err := o.check()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	out := &Revoked{RecordPath: o.RevocationRecord()}
	err = withLock(o.Layout, func() error {
		return out.revokeLocked(o, serial, now)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// check insists on exactly one of Name, Serial and CertFile, and returns
// Serial in its normal form.
func (o RevokeOptions) check() (string, error) {
	given := 0
	for _, s := range []string{o.Name, o.Serial, o.CertFile} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return "", errors.New("give one of --name, --serial or --cert")
	}
	if o.Serial == "" {
		return "", nil
	}
	return NormalizeSerial(o.Serial)
}

// revokeLocked does Revoke's work under the store lock: it marks the
// matching records revoked and writes every file.
func (out *Revoked) revokeLocked(o RevokeOptions, serial string, now time.Time) error {
	root, ca, err := clusterCA(o.Layout)
	if err != nil {
		return err
	}
	inv, err := ReadInventory(o.Layout)
	if err != nil {
		return err
	}
	match, inv, err := o.matcher(inv, root, serial, now)
	if err != nil {
		return err
	}
	found := out.mark(inv, match, now)
	switch {
	case !found && o.Name != "":
		return fmt.Errorf("no client certificate named %q is recorded here; see 'pgbapi-proxy list' (a certificate the cluster CA signed elsewhere: revoke --cert FILE)", o.Name)
	case !found:
		return fmt.Errorf("no client certificate with serial %s is recorded here; see 'pgbapi-proxy list --all' (a certificate the cluster CA signed elsewhere: revoke --cert FILE)", serial)
	}
	number, err := out.write(o.Layout, inv, root, ca, now)
	out.Number = number
	return err
}

// matcher returns which records to revoke. For CertFile it adds the
// certificate to the inventory (adopted) when it is not recorded, so that
// one always matches.
func (o RevokeOptions) matcher(inv []Record, root *x509.Certificate, serial string, now time.Time) (func(Record) bool, []Record, error) {
	switch {
	case o.Name != "":
		return func(r Record) bool { return r.Kind == KindClient && r.Name == o.Name }, inv, nil
	case serial != "":
		return func(r Record) bool { return r.Kind == KindClient && r.Serial == serial }, inv, nil
	}
	cert, err := certSignedBy(o.CertFile, root)
	if err != nil {
		return nil, nil, err
	}
	s := SerialHex(cert)
	match := func(r Record) bool { return r.Kind != KindRoot && r.Kind != KindIntermediate && r.Serial == s }
	if !slices.ContainsFunc(inv, match) {
		rec := NewRecord(recordName(cert, o.CertFile), KindClient, cert, o.CertFile, now)
		rec.Adopted = true
		inv = append(inv, rec)
	}
	return match, inv, nil
}

// mark marks the matching records revoked now, noting in out which were
// newly revoked and which already were. It says whether any matched.
func (out *Revoked) mark(inv []Record, match func(Record) bool, now time.Time) bool {
	found := false
	for i := range inv {
		r := &inv[i]
		if !match(*r) {
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
	return found
}

// write stages the inventory, the revocation record and (with the CA key)
// both CRLs, and commits them together.
func (out *Revoked) write(l Layout, inv []Record, root *x509.Certificate, ca *Authority, now time.Time) (int64, error) {
	old, err := readOldRecord(l)
	if err != nil {
		return 0, err
	}
	rec := nextRevocationRecord(old, inv, now)
	if n := lastCRLNumber(l); n >= rec.Number && n < maxRecordNumber {
		rec.Number = n + 1
	} else if n >= maxRecordNumber {
		return 0, fmt.Errorf("the CRL %s has number %d, beyond what revoke writes: it was not written by revoke; move it away and revoke again", l.CRL(), n)
	}
	if old != nil && rec.Number <= old.Number {
		return 0, fmt.Errorf("the revocation record's number would not grow (%d after %d); move %s away and revoke again", rec.Number, old.Number, l.RevocationRecord())
	}
	recJSON, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return 0, err
	}
	invJSON, err := json.MarshalIndent(inventoryFile{Version: 1, Records: inv}, "", "  ")
	if err != nil {
		return 0, err
	}
	var crl []byte
	if ca != nil {
		if crl, err = signCRL(ca, rec, now); err != nil {
			return 0, err
		}
	}
	var set fileSet
	defer set.abort()
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("%w: nothing was revoked (the inventory, the revocation record and the CRL are unchanged)", err)
	}
	me := processOwner()
	if err := set.stage(l.RevocationRecord(), append(recJSON, '\n'), CertMode, me); err != nil {
		return fail(err)
	}
	if crl != nil {
		for _, p := range []string{l.CRL(), l.TPACRL()} {
			if err := set.stage(p, crl, CertMode, me); err != nil {
				return fail(err)
			}
		}
	}
	if err := set.stage(l.Inventory(), append(invJSON, '\n'), CertMode, me); err != nil {
		return fail(err)
	}
	if err := set.commit(); err != nil {
		return fail(err)
	}
	if crl != nil {
		out.CRLPaths = []string{l.CRL(), l.TPACRL()}
	}
	return rec.Number, nil
}

// catchUpCRL signs a CRL for the revocation record when the CRL is
// missing or older, as on a host that revoked without the CA key and has
// it now. It returns the paths written, none when the CRL was current. The
// caller holds the lock.
func catchUpCRL(l Layout, ca *Authority, now time.Time) ([]string, error) {
	rec, err := readOldRecord(l)
	if err != nil || rec == nil {
		return nil, err
	}
	if n, err := CRLNumber(l.CRL()); err == nil && n >= rec.Number {
		return nil, nil
	}
	crl, err := signCRL(ca, rec, now)
	if err != nil {
		return nil, err
	}
	var set fileSet
	defer set.abort()
	paths := []string{l.CRL(), l.TPACRL()}
	for _, p := range paths {
		if err := set.stage(p, crl, CertMode, processOwner()); err != nil {
			return nil, err
		}
	}
	return paths, set.commit()
}

// clusterCA is the cluster CA certificate and, where its key is on this
// host, the CA itself (else nil).
func clusterCA(l Layout) (*x509.Certificate, *Authority, error) {
	haveKey, err := exists(l.CAKey())
	if err != nil {
		return nil, nil, err
	}
	if haveKey {
		ca, err := LoadAuthority(l.CAStateCert(), l.CAKey())
		if err != nil {
			return nil, nil, err
		}
		return ca.Cert, ca, nil
	}
	root, err := LoadCert(l.RootCert())
	if err != nil {
		return nil, nil, fmt.Errorf("no cluster CA on this host (%w): run 'pgbapi-proxy init' first", err)
	}
	return root, nil, nil
}

// certSignedBy reads a leaf certificate and checks that root signed it.
func certSignedBy(path string, root *x509.Certificate) (*x509.Certificate, error) {
	cert, err := LoadCert(path)
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("%q (%s, issued by %s) is not signed by the cluster CA %s, so it cannot be revoked here: %w", path, cert.Subject, cert.Issuer, root.Subject, err)
	}
	if cert.IsCA {
		return nil, fmt.Errorf("%q is a CA certificate (%s); only leaf certificates are revoked here", path, cert.Subject)
	}
	return cert, nil
}

// signCRL signs a CRL of rec's entries, numbered as rec.
func signCRL(ca *Authority, rec *RevocationRecord, now time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(rec.Revoked))
	for _, e := range rec.Revoked {
		n, ok := new(big.Int).SetString(e.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("revocation record: bad serial %q", e.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: e.RevokedAt})
	}
	issuer, err := crlIssuer(ca.Cert)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(rec.Number),
		ThisUpdate:                now.Add(-backdate),
		NextUpdate:                now.Add(crlLifetime),
		RevokedCertificateEntries: entries,
	}, issuer, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing the CRL: %w (nothing was revoked)", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// crlIssuer is the CA certificate as CreateRevocationList needs it. A CA
// without a keyUsage extension (as TPA's, made by Ansible) may sign CRLs
// under RFC 5280 and for OpenSSL, but Go refuses an issuer without the
// cRLSign bit: the copy given to it has the bit set. The copy only lends
// its subject and key identifier to the CRL; the signature is made with
// the CA's key. A CA whose keyUsage leaves cRLSign out really may not sign
// CRLs, and is refused. A CA without a subject key identifier gets one
// computed as RFC 5280 method 1.
func crlIssuer(c *x509.Certificate) (*x509.Certificate, error) {
	issuer := *c
	if issuer.KeyUsage == 0 {
		issuer.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, fmt.Errorf("the cluster CA %s has a keyUsage without cRLSign, so no verifier accepts a CRL it signs; revoke on this host needs a CA that may sign CRLs", c.Subject)
	}
	if len(issuer.SubjectKeyId) == 0 {
		var spki struct {
			Algorithm pkix.AlgorithmIdentifier
			PublicKey asn1.BitString
		}
		if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
			return nil, fmt.Errorf("the cluster CA's public key: %w", err)
		}
		sum := sha1.Sum(spki.PublicKey.Bytes) //nolint:gosec // key identifier, RFC 5280 4.2.1.2
		issuer.SubjectKeyId = sum[:]
	}
	return &issuer, nil
}

// recordName is the name a certificate found on disk is recorded under:
// its CN, the name the proxy knows a client by, or when that cannot be a
// name here, its file name without .crt.
func recordName(cert *x509.Certificate, path string) string {
	if cn := cert.Subject.CommonName; CheckName("client name", cn) == nil {
		return cn
	}
	return strings.TrimSuffix(filepath.Base(path), ".crt")
}

// lastCRLNumber is the number of the CRL in the state dir, 0 if none reads.
func lastCRLNumber(l Layout) int64 {
	n, err := CRLNumber(l.CRL())
	if err != nil {
		return 0
	}
	return n
}

// CRLNumber reads the CRL Number of a PEM CRL (not its signature).
func CRLNumber(path string) (int64, error) {
	data, err := readNoFollow(path)
	if err != nil {
		return 0, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "X509 CRL" {
		return 0, fmt.Errorf("%q holds no PEM X509 CRL", path)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", path, err)
	}
	if crl.Number == nil || !crl.Number.IsInt64() {
		return 0, fmt.Errorf("%q has no CRL number that fits 64 bits", path)
	}
	return crl.Number.Int64(), nil
}

// LoadCRL reads a PEM CRL and checks that root signed it. It returns the
// revoked serials, as SerialHex prints them.
func LoadCRL(path string, root *x509.Certificate) (map[string]bool, error) {
	_, revoked, err := ReadCRL(path, root)
	return revoked, err
}

// ErrCRLNotSigned is a CRL that the cluster root did not sign.
var ErrCRLNotSigned = errors.New("not signed by the cluster CA")

// ReadCRL reads a PEM CRL (without following a link, bounded) and checks
// that root signed it. It returns its CRL Number (0 when it has none) and
// the revoked serials, as SerialHex prints them.
func ReadCRL(path string, root *x509.Certificate) (*big.Int, map[string]bool, error) {
	data, err := readNoFollow(path)
	if err != nil {
		return nil, nil, err
	}
	return ParseCRL(path, data, root)
}

// ParseCRL is ReadCRL on data already read from path (named in errors).
func ParseCRL(path string, data []byte, root *x509.Certificate) (*big.Int, map[string]bool, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "X509 CRL" {
		return nil, nil, fmt.Errorf("%q holds no PEM X509 CRL", path)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%q: %w", path, err)
	}
	if err := crl.CheckSignatureFrom(root); err != nil {
		return nil, nil, fmt.Errorf("%q is %w: %w", path, ErrCRLNotSigned, err)
	}
	number := crl.Number
	if number == nil {
		number = new(big.Int)
	}
	revoked := make(map[string]bool, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		revoked[SerialHex(&x509.Certificate{SerialNumber: e.SerialNumber})] = true
	}
	return number, revoked, nil
}
