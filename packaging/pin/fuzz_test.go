package pin

import (
	"regexp"
	"strings"
	"testing"
)

var debEntry = regexp.MustCompile(`^pg-backup-api( \((=|>=|<<) [0-9:][A-Za-z0-9.+~_:-]*\))?$`)
var rpmEntry = regexp.MustCompile(`^pg-backup-api( (=|>=|<) [0-9:][A-Za-z0-9.+~_:-]*)?$`)

// FuzzTranslate: no pin crashes the translator, and whatever it accepts
// becomes well-formed deb and rpm entries (no wildcard, no blank).
func FuzzTranslate(f *testing.F) {
	for _, s := range []string{"", "2.0.0-1.el8", "2:2.0.0-1", "2.0.0", "2.0.0*", "2:2.0.0*", "2.*.0", "*:1", "9999999999999999999999*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pinSpec string) {
		tr, err := Translate(pinSpec)
		if err != nil {
			if !strings.Contains(err.Error(), "PG_BACKUP_API_VERSION=") {
				t.Fatalf("error without the variable's name: %v", err)
			}
			return
		}
		for _, d := range tr.DebDepends {
			if !debEntry.MatchString(d) {
				t.Fatalf("pin %q: bad deb entry %q", pinSpec, d)
			}
		}
		for _, r := range tr.RPMRequire {
			if !rpmEntry.MatchString(r) {
				t.Fatalf("pin %q: bad rpm entry %q", pinSpec, r)
			}
		}
	})
}
