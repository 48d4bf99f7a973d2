// Package pkisource turns the PKI's files into the proxy's trust: the
// cluster root (root.crt), the revoked serials (the CRL the CA signs and
// the revocation record that revoke writes on every host), and the access
// rules. It is the one place that reads them for serve.
//
// It fails closed. At start, a broken input is an error. Root's
// inventory's revocations count too, so that a CRL or record deleted or
// rolled back while the proxy was stopped un-revokes nothing the
// inventory lists. Later, an input
// that goes missing, cannot be read, does not verify or is older than
// one already seen (a lower CRL or record number) never widens access:
// its last good state stays in force, and Load says so in its error.
package pkisource

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/proxy"
)

// Options says where the trust inputs are.
type Options struct {
	Layout pki.Layout
	// AccessFile is the access rules file; "" for none.
	AccessFile string
	// AccessFileRequired makes a missing AccessFile an error at start
	// (the operator named it); otherwise a missing file means no rules.
	AccessFileRequired bool
	Log                *slog.Logger
}

// Validate checks the options; the error names the field.
func (o *Options) Validate() error {
	switch {
	case o.Layout.TPADir == "" || o.Layout.StateDir == "":
		return &proxy.FieldError{Field: "Layout", Msg: "both the TPA and the state directory are needed"}
	case o.AccessFileRequired && o.AccessFile == "":
		return &proxy.FieldError{Field: "AccessFile", Msg: "required but not given"}
	case o.Log == nil:
		return &proxy.FieldError{Field: "Log", Msg: "no logger"}
	}
	return nil
}

// Loader reads the trust inputs and remembers the last good state of
// each, so that a later Load can keep it.
type Loader struct {
	o  Options
	mu sync.Mutex
	// last good state of each input; nil before the first Load
	root   *x509.Certificate
	crl    *crlState
	record *recordState
	rules  *proxy.Rules
	// inventory is what root's inventory says is revoked: a CRL or
	// record that goes missing or is rolled back between two starts
	// still un-revokes nothing it lists.
	inventory map[string]bool
	started   bool
	// seen is what the inputs looked like when the last Load began:
	// Watch loads again when they look different.
	seen string
}

type crlState struct {
	number  *big.Int
	revoked map[string]bool
}

type recordState struct {
	number  int64
	revoked map[string]bool
}

// New checks the options.
func New(o Options) (*Loader, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Loader{o: o}, nil
}

// Load reads every input and returns a complete Trust. On the first call
// any broken input is an error and no Trust is returned. On later calls
// the Trust is always complete: what failed kept its last good state, and
// the error (for the log) says what and why.
func (l *Loader) Load() (*proxy.Trust, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := !l.started
	l.seen = l.stamps()
	var errs []error
	for _, step := range []func(bool) error{l.loadRoot, l.loadCRL, l.loadRecord, l.loadInventory, l.loadRules} {
		if err := step(first); err != nil {
			if first {
				return nil, err
			}
			errs = append(errs, err)
		}
	}
	l.started = true
	return l.trust(), errors.Join(errs...)
}

// trust assembles the snapshot from the last good state of each input.
func (l *Loader) trust() *proxy.Trust {
	revoked := map[string]bool{}
	for _, set := range []map[string]bool{l.crlRevoked(), l.recordRevoked(), l.inventory} {
		for s := range set {
			revoked[s] = true
		}
	}
	return &proxy.Trust{Roots: []*x509.Certificate{l.root}, Revoked: revoked, Rules: l.rules, Describe: l.describe(len(revoked))}
}

func (l *Loader) crlRevoked() map[string]bool {
	if l.crl == nil {
		return nil
	}
	return l.crl.revoked
}

func (l *Loader) recordRevoked() map[string]bool {
	if l.record == nil {
		return nil
	}
	return l.record.revoked
}

func (l *Loader) describe(revoked int) string {
	parts := []string{fmt.Sprintf("root %q", l.root.Subject.CommonName), fmt.Sprintf("%d revoked", revoked)}
	if l.crl != nil {
		parts = append(parts, fmt.Sprintf("CRL %s number %s", l.o.Layout.CRL(), l.crl.number))
	}
	if l.record != nil {
		parts = append(parts, fmt.Sprintf("revocation record %s number %d", l.o.Layout.RevocationRecord(), l.record.number))
	}
	if l.rules != nil {
		parts = append(parts, fmt.Sprintf("access rules %s (%d names)", l.rules.Path(), l.rules.Len()))
	} else {
		parts = append(parts, "no access rules: every valid certificate may do everything")
	}
	return strings.Join(parts, "; ")
}

// The process's uid and a file's owner; tests replace them to play root
// and the service account without chown.
var (
	processUID = os.Geteuid
	ownerOf    = func(info fs.FileInfo) (int, bool) {
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, false
		}
		return int(st.Uid), true
	}
)

// Bounds on what is read of one input: the inventory and the rules grow
// with the cluster, the others are one certificate or list.
const (
	maxTrustFile = 1 << 20
	maxListFile  = 64 << 20
)

// readTrusted opens path once and, on that descriptor, refuses what is
// not a regular file, may be written by group or others, or may be
// changed by someone who does not already decide trust (see trustedBy);
// then reads at most limit bytes from it. Nothing can be swapped in
// between the check and the read. follow says whether a link at path is
// followed (an operator's link in root's TPA directory); the checks apply
// to what was opened.
func readTrusted(path string, follow bool, limit int64) ([]byte, error) {
	return pki.ReadBounded(path, follow, limit, func(info fs.FileInfo) error { return trustedBy(path, info) })
}

// trustedBy refuses a trust input (info: the opened file) that group or
// others may write, or whose owner is neither root nor this process, or
// is this process in a directory it does not own: whoever can write it
// decides who gets in. In the packaged layout the directories are root's,
// so a file owned by the service account is refused (the account must not
// change what decides trust); a personal setup where the process owns the
// directory could replace the file anyway.
func trustedBy(path string, info fs.FileInfo) error {
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s may be written by group or others (mode %04o), so it is not trusted; run: chmod go-w %s", path, info.Mode().Perm(), path)
	}
	owner, ok := ownerOf(info)
	if !ok || owner == 0 {
		return nil
	}
	me := processUID()
	if owner != me {
		return fmt.Errorf("%s belongs to uid %d, neither root nor this process, so it is not trusted; run: chown root:root %s", path, owner, path)
	}
	dir := filepath.Dir(path)
	dinfo, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s belongs to this process (uid %d) and its directory cannot be checked, so it is not trusted: %w", path, owner, err)
	}
	if downer, ok := ownerOf(dinfo); !ok || downer != me {
		return fmt.Errorf("%s belongs to this process (uid %d) but its directory %s does not, so the service account could change what decides trust: not trusted; run: chown root:root %s", path, owner, dir, path)
	}
	return nil
}

func (l *Loader) loadRoot(bool) error {
	path := l.o.Layout.RootCert()
	data, err := readTrusted(path, true, maxTrustFile)
	var certs []*x509.Certificate
	if err == nil {
		if certs, err = pki.ParseCerts(data); err != nil {
			err = fmt.Errorf("reading certificate %q: %w", path, err)
		}
	}
	if err != nil {
		return fmt.Errorf("the cluster root: %w (the last good root stays in force)", err)
	}
	root := certs[0]
	if !root.IsCA {
		return fmt.Errorf("the cluster root %s is not a CA certificate (the last good root stays in force)", l.o.Layout.RootCert())
	}
	l.root = root
	return nil
}

// loadCRL reads the CRL in the state directory. Missing at start: nothing
// revoked by it. Missing later, broken, not signed by the root or older
// than the newest seen: the last good one stays.
func (l *Loader) loadCRL(first bool) error {
	path := l.o.Layout.CRL()
	number, revoked, err := readCRL(path, l.root)
	switch {
	case errors.Is(err, fs.ErrNotExist) && l.crl == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the CRL %s is gone; the last one (number %s, %d revoked) stays in force", path, l.crl.number, len(l.crl.revoked))
	case err != nil && first:
		return fmt.Errorf("the CRL: %w", err)
	case err != nil:
		return fmt.Errorf("the CRL: %w; the last good one stays in force", err)
	case l.crl != nil && number.Cmp(l.crl.number) < 0:
		return fmt.Errorf("the CRL %s has number %s, older than number %s already in force: refused (a CRL is never rolled back)", path, number, l.crl.number)
	}
	l.crl = &crlState{number: number, revoked: revoked}
	return nil
}

// readCRL reads a PEM CRL that root signed (without following a link, as
// pki.ReadCRL), refusing one that is not trusted (readTrusted).
func readCRL(path string, root *x509.Certificate) (*big.Int, map[string]bool, error) {
	data, err := readTrusted(path, false, maxTrustFile)
	if err != nil {
		return nil, nil, err
	}
	number, revoked, err := pki.ParseCRL(path, data, root)
	if errors.Is(err, pki.ErrCRLNotSigned) {
		return nil, nil, fmt.Errorf("%s is not signed by the cluster root: %w", path, err)
	}
	return number, revoked, err
}

// loadRecord reads the revocation record revoke writes (with or without
// the CA key on the host), with the same rules as the CRL.
func (l *Loader) loadRecord(first bool) error {
	path := l.o.Layout.RevocationRecord()
	data, err := readTrusted(path, false, maxTrustFile) // no link followed, as pki.ReadRevocationRecord
	var rec *pki.RevocationRecord
	if err == nil {
		rec, err = pki.ParseRevocationRecord(path, data)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist) && l.record == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the revocation record %s is gone; the last one (number %d, %d revoked) stays in force", path, l.record.number, len(l.record.revoked))
	case err != nil && first:
		return fmt.Errorf("the revocation record: %w", err)
	case err != nil:
		return fmt.Errorf("the revocation record: %w; the last good one stays in force", err)
	case l.record != nil && rec.Number < l.record.number:
		return fmt.Errorf("the revocation record %s has number %d, older than number %d already in force: refused", path, rec.Number, l.record.number)
	}
	revoked := make(map[string]bool, len(rec.Revoked))
	for _, e := range rec.Revoked {
		revoked[e.Serial] = true // ReadRevocationRecord checked the form
	}
	l.record = &recordState{number: rec.Number, revoked: revoked}
	return nil
}

// loadInventory reads the revoked certificates of root's inventory (not
// yet expired). A missing inventory at start revokes nothing; later, a
// missing or broken one keeps the last good list.
func (l *Loader) loadInventory(first bool) error {
	path := l.o.Layout.Inventory()
	data, err := readTrusted(path, true, maxListFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if l.inventory != nil {
				return fmt.Errorf("the inventory %s is gone; the revocations it listed stay in force", path)
			}
			return nil
		}
		if first {
			return fmt.Errorf("the inventory: %w", err)
		}
		return fmt.Errorf("the inventory: %w; the revocations it listed stay in force", err)
	}
	recs, err := pki.ParseInventory(path, data)
	if err != nil {
		if first {
			return err
		}
		return fmt.Errorf("%w; the revocations it listed stay in force", err)
	}
	revoked := map[string]bool{}
	now := time.Now()
	for _, r := range recs {
		if r.RevokedAt != nil && now.Before(r.NotAfter) {
			revoked[r.Serial] = true
		}
	}
	for s := range l.inventory {
		revoked[s] = true // a restored older inventory un-revokes nothing
	}
	l.inventory = revoked
	return nil
}

// loadRules reads the access rules. A file the operator named must exist
// at start; a file that existed and goes missing or breaks later keeps
// the last good rules.
func (l *Loader) loadRules(first bool) error {
	if l.o.AccessFile == "" {
		return nil
	}
	rules, err := LoadRules(l.o.AccessFile)
	switch {
	case errors.Is(err, fs.ErrNotExist) && first && l.o.AccessFileRequired:
		return fmt.Errorf("the access rules file %s does not exist (it was named explicitly; create it, or leave the setting out to allow every valid certificate everything)", l.o.AccessFile)
	case errors.Is(err, fs.ErrNotExist) && l.rules == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the access rules file %s is gone; the last good rules (%d names) stay in force", l.o.AccessFile, l.rules.Len())
	case err != nil && first:
		return err
	case err != nil:
		return fmt.Errorf("%w; the last good rules stay in force", err)
	}
	l.rules = rules
	return nil
}

// LoadRules reads the rules file at path; a missing file is an error
// wrapping fs.ErrNotExist.
func LoadRules(path string) (*proxy.Rules, error) {
	data, err := readTrusted(path, true, maxListFile)
	if err != nil {
		return nil, fmt.Errorf("access rules: %w", err)
	}
	return proxy.ParseRules(path, bytes.NewReader(data))
}

// files are the inputs Watch looks at.
func (l *Loader) files() []string {
	fs := []string{l.o.Layout.RootCert(), l.o.Layout.CRL(), l.o.Layout.RevocationRecord(), l.o.Layout.Inventory()}
	if l.o.AccessFile != "" {
		fs = append(fs, l.o.AccessFile)
	}
	sort.Strings(fs)
	return fs
}
