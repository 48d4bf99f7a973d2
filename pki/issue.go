package pki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// IssueOptions says which client certificate to issue.
type IssueOptions struct {
	Layout
	Name    string  // CN and file name
	Days    int     // lifetime
	OutDir  string  // where NAME.crt/.key go; empty: the TPA dir
	Owner   *Owner  // chown the pair to this owner; nil: keep the process's
	Renew   bool    // replace an existing pair
	KeyType KeyType // empty: the key type init used
	// CSR is a PKCS#10 request (PEM or DER) to sign instead of making a
	// key here: only NAME.crt is written. See csr.go for what it may ask.
	CSR []byte
	Now func() time.Time
}

// Issued is what IssueClient wrote.
type Issued struct {
	Cert     *x509.Certificate
	CertPath string
	KeyPath  string // empty when signed from a request: the key is the client's
	Renewed  bool
}

// reservedNames are the files init manages in the TPA directory.
var reservedNames = []string{ServerName, "root", "CA"}

// IssueClient issues a client certificate signed by the cluster root and
// records it in the inventory. An existing pair is only replaced with Renew,
// and then atomically: a reader sees the old pair or the new one.
func IssueClient(o IssueOptions) (*Issued, error) {
	csr, csrDNS, err := o.check()
	if err != nil {
		return nil, err
	}
	if err := o.checkOutput(); err != nil {
		return nil, err
	}
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}

	var out *Issued
	err = withLock(o.Layout, func() error {
		var err error
		out, err = o.issueLocked(csr, csrDNS, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// issueLocked does IssueClient's work under the store lock: it loads the
// CA, checks what exists under the name, signs, writes and records.
func (o *IssueOptions) issueLocked(csr *x509.CertificateRequest, csrDNS []string, now time.Time) (*Issued, error) {
	ca, err := o.loadCA(now)
	if err != nil {
		return nil, err
	}
	p := clientPair{certPath: o.CertIn(o.OutDir, o.Name), keyPath: o.KeyIn(o.OutDir, o.Name), owner: o.Owner}
	kind, err := o.existing(p, csr != nil)
	if err != nil {
		return nil, err
	}
	if p.key, p.cert, err = o.sign(ca, csr, csrDNS, now); err != nil {
		return nil, err
	}
	rec := NewRecord(o.Name, KindClient, p.cert, p.certPath, now)
	out := &Issued{Cert: p.cert, CertPath: p.certPath, KeyPath: p.keyPath, Renewed: kind != pairNone}
	if p.key == nil {
		out.KeyPath = ""
	}
	if kind == pairNone {
		err = p.create(o.Layout, rec)
	} else {
		err = p.renew(o.Layout, rec)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// loadCA loads the cluster CA with its key and checks that the lifetime
// asked for does not outlast it.
func (o *IssueOptions) loadCA(now time.Time) (*Authority, error) {
	haveKey, err := exists(o.CAKey())
	if err != nil {
		return nil, needsRoot(err)
	}
	if !haveKey {
		return nil, ErrNoCAKey
	}
	ca, err := LoadAuthority(o.CAStateCert(), o.CAKey())
	if err != nil {
		return nil, needsRoot(err)
	}
	if err := checkDays(ca.Cert, o.Days, now); err != nil {
		return nil, err
	}
	return ca, nil
}

// existing says what is already on disk under the name, and refuses to
// replace it without Renew, or a key that a signed request would not match.
func (o *IssueOptions) existing(p clientPair, fromCSR bool) (pairKind, error) {
	kind, err := pairState(p.certPath, p.keyPath)
	if err != nil {
		return kind, err
	}
	if fromCSR && (kind == pairBoth || kind == pairKeyOnly) {
		return kind, fmt.Errorf("%q exists, and a certificate signed from a request would not match it: move it away, or write the certificate elsewhere", p.keyPath)
	}
	if kind != pairNone && !o.Renew {
		return kind, fmt.Errorf("a certificate or key named %q already exists in %q; use --renew to replace it", o.Name, o.OutDir)
	}
	return kind, nil
}

// sign signs the request's key, or a key made here (returned; nil for a
// request), into a client certificate.
func (o *IssueOptions) sign(ca *Authority, csr *x509.CertificateRequest, csrDNS []string, now time.Time) (crypto.Signer, *x509.Certificate, error) {
	if csr != nil {
		cert, err := signRequest(ca, o.Name, o.Days, csr.PublicKey, csrDNS, now)
		return nil, cert, err
	}
	key, err := o.KeyType.Generate()
	if err != nil {
		return nil, nil, err
	}
	cert, err := signClient(ca, o.Name, o.Days, key, now)
	return key, cert, err
}

// clientPair is an issued client certificate and where it goes; key is nil
// when it was signed from a request, and then only the certificate is
// written.
type clientPair struct {
	certPath, keyPath string
	cert              *x509.Certificate
	key               crypto.Signer
	owner             *Owner
}

// write writes the pair: as new files, or replacing the old ones atomically.
func (p clientPair) write(replace bool) error {
	if p.key == nil {
		w := WriteNew
		if replace {
			w = Replace
		}
		return w(p.certPath, EncodeCerts(p.cert), CertMode, p.owner)
	}
	if replace {
		return replacePair(p.certPath, p.keyPath, EncodeCerts(p.cert), p.key, p.owner)
	}
	return writePair(p.certPath, p.keyPath, EncodeCerts(p.cert), p.key, p.owner)
}

// create writes a new pair first, then the record; if recording fails (a
// full disk), the new files go again: nothing changed.
func (p clientPair) create(l Layout, rec Record) error {
	if err := p.write(false); err != nil {
		return err
	}
	if err := addRecords(l, rec); err != nil {
		os.Remove(p.certPath)
		os.Remove(p.keyPath)
		return fmt.Errorf("recording the certificate failed, so it was not issued: %w", err)
	}
	return nil
}

// renew writes the record first (if that fails, the old pair stays in use
// untouched), then replaces the pair atomically.
func (p clientPair) renew(l Layout, rec Record) error {
	if err := addRecords(l, rec); err != nil {
		return fmt.Errorf("recording the certificate failed, so nothing was renewed: %w", err)
	}
	return p.write(true)
}

// check validates the options that need no file: the name, the lifetime
// and the request, which it parses and checks against the client profile.
func (o *IssueOptions) check() (*x509.CertificateRequest, []string, error) {
	if err := CheckName("client name", o.Name); err != nil {
		return nil, nil, fieldError("Name", err)
	}
	for _, r := range reservedNames {
		if strings.EqualFold(o.Name, r) {
			return nil, nil, fieldErrorf("Name", "%q is the name of a file init manages; choose another client name", o.Name)
		}
	}
	if o.Days < 1 {
		return nil, nil, fieldErrorf("Days", "a lifetime of %d days: it must be at least 1", o.Days)
	}
	if o.CSR == nil {
		return nil, nil, nil
	}
	if o.KeyType != "" {
		return nil, nil, fieldErrorf("KeyType", "a key type goes with a key made here, not with a request: its key is the requester's")
	}
	csr, err := ParseCSR(o.CSR)
	if err != nil {
		return nil, nil, fieldError("CSR", err)
	}
	dns, err := checkCSR(csr, o.Name)
	if err != nil {
		return nil, nil, fieldError("CSR", err)
	}
	return csr, dns, nil
}

// checkOutput fills in the defaults init recorded (key type, directory)
// and checks, before anything is issued, that the pair can be written and
// that its owner can reach it.
func (o *IssueOptions) checkOutput() error {
	meta, err := ReadMeta(o.Layout)
	if err != nil {
		return err
	}
	if o.KeyType == "" {
		o.KeyType = meta.KeyType
	}
	if _, err := ParseKeyType(string(o.KeyType)); err != nil {
		return fieldError("KeyType", err)
	}
	if o.OutDir == "" {
		o.OutDir = o.TPADir
	}
	if err := checkOutDir(o.OutDir); err != nil {
		return err
	}
	if err := probeWrite(o.OutDir); err != nil {
		return err
	}
	if o.Owner != nil {
		return CheckReach(o.OutDir, *o.Owner)
	}
	return nil
}

func checkOutDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("output directory %q does not exist: create it first (or run 'pgbapi-proxy init' for the TPA directory)", dir)
		}
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%q is not a directory", dir)
	}
	return nil
}

// checkDays refuses a lifetime that would outlast the CA that signs it: a
// certificate is not valid past its issuer, whatever it says.
func checkDays(ca *x509.Certificate, days int, now time.Time) error {
	left := int(ca.NotAfter.Sub(now) / (24 * time.Hour))
	if days > left {
		return fieldErrorf("Days", "%d days would outlast the cluster CA, which expires on %s: give at most %d",
			days, ca.NotAfter.UTC().Format("2006-01-02"), max(left, 0))
	}
	return nil
}
