package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// RevocationRecordName is the file in the state directory that lists every
// revoked certificate. revoke writes it on every host, with or without the
// CA key (root-owned, 0644), and the proxy enforces it; with the CA key,
// revoke also signs a CRL with the same content and number.
const RevocationRecordName = "revoked.json"

// RevocationRecord is the revocation record in the state directory.
func (l Layout) RevocationRecord() string { return filepath.Join(l.StateDir, RevocationRecordName) }

// RevocationRecord lists the revoked certificates that have not expired.
type RevocationRecord struct {
	// Number strictly increases with every write; the proxy never accepts
	// a lower one. The CRL written alongside has the same CRL Number.
	Number  int64          `json:"number"`
	Revoked []RevokedEntry `json:"revoked"`
}

// RevokedEntry is one revoked certificate.
type RevokedEntry struct {
	Serial    string    `json:"serial"` // as SerialHex prints it: upper-case hex, even number of digits
	Name      string    `json:"name,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
	NotAfter  time.Time `json:"not_after,omitempty"`
}

var serialHex = regexp.MustCompile(`^([0-9A-F]{2})+$`)

// ReadRevocationRecord reads path; a missing file returns an error wrapping
// fs.ErrNotExist. A record that does not parse, has a number below 1 or a
// serial not written as SerialHex writes it is an error: the caller keeps
// what it had.
func ReadRevocationRecord(path string) (*RevocationRecord, error) {
	data, err := readNoFollow(path)
	if err != nil {
		return nil, fmt.Errorf("reading the revocation record: %w", err)
	}
	return ParseRevocationRecord(path, data)
}

// ParseRevocationRecord is ReadRevocationRecord on data already read from
// path (named in errors).
func ParseRevocationRecord(path string, data []byte) (*RevocationRecord, error) {
	// Fields a later version may add are ignored; what is read is checked.
	var rec RevocationRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("reading the revocation record %q: %w", path, err)
	}
	if rec.Number < 1 || rec.Number > maxRecordNumber {
		return nil, fmt.Errorf("revocation record %q: number %d is out of range (1 to %d); it was not written by revoke", path, rec.Number, int64(maxRecordNumber))
	}
	for _, e := range rec.Revoked {
		if !serialHex.MatchString(e.Serial) {
			return nil, fmt.Errorf("revocation record %q: serial %q is not upper-case hex with an even number of digits", path, e.Serial)
		}
	}
	return &rec, nil
}

// NormalizeSerial turns a serial as any tool prints it (openssl x509
// -serial "serial=3A9F01", -text "3a:9f:01", with leading zeros, "0x3a9f01",
// spaces) into SerialHex's form. It fails on anything that is not hex.
func NormalizeSerial(s string) (string, error) {
	orig := s
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "serial="), "Serial=")
	s = strings.NewReplacer(":", "", " ", "", "\t", "").Replace(s)
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || s == "" || strings.ContainsAny(s, "+-_") || n.Sign() <= 0 {
		return "", fmt.Errorf("%q is not a certificate serial (hex, as 'openssl x509 -noout -serial' prints it)", orig)
	}
	return serialOf(n), nil
}

// serialOf formats n as SerialHex does.
func serialOf(n *big.Int) string {
	s := strings.ToUpper(n.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

// maxRecordNumber bounds a record's number far below the int64 limit, so
// that the next number always fits and grows (a forged record with a
// huge number would otherwise make every later revocation look older).
const maxRecordNumber = 1 << 62

// nextRevocationRecord builds the record that follows old (nil: none yet)
// from the inventory: every revoked certificate not expired at now, and
// every entry of old not expired (a restored inventory never un-revokes).
// Its number is above old's and above every CRL number revoke used before,
// which were nanosecond times.
func nextRevocationRecord(old *RevocationRecord, inv []Record, now time.Time) *RevocationRecord {
	next := &RevocationRecord{Number: now.UnixNano()}
	seen := map[string]bool{}
	add := func(e RevokedEntry) {
		if seen[e.Serial] || (!e.NotAfter.IsZero() && !now.Before(e.NotAfter)) {
			return
		}
		seen[e.Serial] = true
		next.Revoked = append(next.Revoked, e)
	}
	for _, r := range inv {
		if r.RevokedAt != nil {
			add(RevokedEntry{Serial: r.Serial, Name: r.Name, RevokedAt: r.RevokedAt.UTC(), NotAfter: r.NotAfter.UTC()})
		}
	}
	if old != nil {
		if next.Number <= old.Number {
			next.Number = old.Number + 1
		}
		for _, e := range old.Revoked {
			add(e)
		}
	}
	sort.SliceStable(next.Revoked, func(i, j int) bool { return next.Revoked[i].RevokedAt.Before(next.Revoked[j].RevokedAt) })
	return next
}

// readOldRecord reads the current record; none yet is not an error.
func readOldRecord(l Layout) (*RevocationRecord, error) {
	old, err := ReadRevocationRecord(l.RevocationRecord())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w (move it away to start a new one from the inventory; nothing was changed)", err)
	}
	return old, nil
}
