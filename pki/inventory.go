package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Kind says what a certificate is for.
type Kind string

// Kinds of certificates in the inventory.
const (
	KindRoot         Kind = "root"
	KindIntermediate Kind = "intermediate"
	KindServer       Kind = "server"
	KindClient       Kind = "client"
)

// State of a certificate at a given time, as list shows it.
type State string

// States, from best to worst.
const (
	StateValid    State = "valid"
	StateExpiring State = "expiring" // less than ExpiringWithin left
	StateExpired  State = "expired"
	StateRevoked  State = "revoked"
)

// ExpiringWithin is how close to NotAfter a certificate counts as expiring.
const ExpiringWithin = 30 * 24 * time.Hour

// Record is one issued certificate in the inventory.
type Record struct {
	Name      string     `json:"name"`
	Kind      Kind       `json:"kind"`
	Serial    string     `json:"serial"` // upper-case hex, as openssl prints it
	Subject   string     `json:"subject"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	SHA256    string     `json:"sha256"`
	Path      string     `json:"path"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Replaced  bool       `json:"replaced,omitempty"` // a newer certificate of the same name was issued
	// Adopted: not issued here but found signed by the cluster CA (in the
	// TPA directory by init, or given to revoke --cert); IssuedAt is when
	// it was recorded.
	Adopted bool `json:"adopted,omitempty"`
}

// State tells whether the certificate is valid, expiring, expired or revoked at now.
func (r Record) State(now time.Time) State {
	switch {
	case r.RevokedAt != nil:
		return StateRevoked
	case !now.Before(r.NotAfter):
		return StateExpired
	case r.NotAfter.Sub(now) < ExpiringWithin:
		return StateExpiring
	}
	return StateValid
}

// SerialHex formats a serial the way openssl x509 -serial does: upper-case
// hex, an even number of digits.
func SerialHex(c *x509.Certificate) string {
	s := strings.ToUpper(c.SerialNumber.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

// NewRecord describes cert, issued now and written to path.
func NewRecord(name string, kind Kind, cert *x509.Certificate, path string, now time.Time) Record {
	sum := sha256.Sum256(cert.Raw)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return Record{
		Name:      name,
		Kind:      kind,
		Serial:    SerialHex(cert),
		Subject:   cert.Subject.String(),
		NotBefore: cert.NotBefore.UTC(),
		NotAfter:  cert.NotAfter.UTC(),
		SHA256:    hex.EncodeToString(sum[:]),
		Path:      path,
		IssuedAt:  now.UTC(),
	}
}

type inventoryFile struct {
	Version int      `json:"version"`
	Records []Record `json:"certificates"`
}

// ReadInventory returns every recorded certificate, oldest first. A state
// directory without an inventory yet has none.
func ReadInventory(l Layout) ([]Record, error) {
	data, err := os.ReadFile(l.Inventory())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading inventory: %w", err)
	}
	return ParseInventory(l.Inventory(), data)
}

// ParseInventory is ReadInventory on data already read from path (named
// in errors).
func ParseInventory(path string, data []byte) ([]Record, error) {
	var inv inventoryFile
	if err := json.Unmarshal(data, &inv); err != nil {
		return nil, fmt.Errorf("reading inventory %q: %w (restore it from a backup; the certificates themselves are unaffected)", path, err)
	}
	sort.SliceStable(inv.Records, func(i, j int) bool { return inv.Records[i].IssuedAt.Before(inv.Records[j].IssuedAt) })
	return inv.Records, nil
}

// addRecords appends records to the inventory, marking older records of the
// same name and kind as replaced. The caller holds the lock.
func addRecords(l Layout, recs ...Record) error {
	old, err := ReadInventory(l)
	if err != nil {
		return err
	}
	for _, r := range recs {
		for i := range old {
			if old[i].Name == r.Name && old[i].Kind == r.Kind {
				old[i].Replaced = true
			}
		}
		old = append(old, r)
	}
	return writeInventory(l, old)
}

func writeInventory(l Layout, recs []Record) error {
	data, err := json.MarshalIndent(inventoryFile{Version: 1, Records: recs}, "", "  ")
	if err != nil {
		return err
	}
	return Replace(l.Inventory(), append(data, '\n'), CertMode, nil)
}

// withLock runs fn while holding an exclusive lock on the state directory,
// so that two commands changing the PKI at once do not lose each other's
// records. The lock is released when fn returns or the process dies.
func withLock(l Layout, fn func() error) error {
	// O_NOFOLLOW: the state directory is the service's; a link it planted
	// at the lock's name must not make root create or open another file.
	f, err := os.OpenFile(l.Lock(), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, KeyMode)
	if errors.Is(err, fs.ErrPermission) {
		// flock works on a read-only descriptor too: a lock file another
		// user created still serves.
		f, err = os.OpenFile(l.Lock(), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("locking the state directory: %q is a symbolic link; remove it (nothing in the PKI follows links there)", l.Lock())
	}
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(l.StateDir); errors.Is(serr, fs.ErrNotExist) {
			return fmt.Errorf("no PKI here: the state directory %q does not exist; run 'pgbapi-proxy init' first, or give the --state-dir where it was set up", l.StateDir)
		}
	}
	if err != nil {
		return needsRoot(fmt.Errorf("locking the state directory: %w", err))
	}
	defer f.Close()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("locking %q: %w", l.Lock(), err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
	return fn()
}
