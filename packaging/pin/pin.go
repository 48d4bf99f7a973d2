// Package pin translates the operator's pg-backup-api version pin, as
// written for the old deployment tool (2.0.0-1.el8, 2:2.0.0-1, 2.0.0,
// 2.0.0*, 2:2.0.0*), into what each packager takes: deb Depends and rpm
// Requires accept neither wildcards nor an implied epoch, so a trailing
// wildcard becomes a range.
package pin

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Package is the name of the package the pin is for.
const Package = "pg-backup-api"

// Translation is one pin for each packager.
type Translation struct {
	Pin        string
	DebDepends []string // each a Depends entry, e.g. "pg-backup-api (>= 2.0.0~)"
	RPMRequire []string // each a Requires entry, e.g. "pg-backup-api >= 2.0.0~"
	// AptVersion is what `apt-get install pg-backup-api=VERSION` and an
	// apt preferences "Pin: version" take (apt accepts the wildcard).
	AptVersion string
	// DNFSpec is what `dnf install` and `dnf versionlock add` take.
	DNFSpec string
}

var (
	epochRe   = regexp.MustCompile(`^[0-9]+$`)
	versionRe = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~_]*(-[A-Za-z0-9.+~_]+)?$`)
)

// Translate turns a pin into dependencies. An empty pin depends on any
// version.
func Translate(pin string) (Translation, error) {
	t := Translation{Pin: pin}
	if pin == "" {
		t.DebDepends = []string{Package}
		t.RPMRequire = []string{Package}
		t.DNFSpec = Package
		return t, nil
	}
	bad := func(why string) (Translation, error) {
		return Translation{}, fmt.Errorf("PG_BACKUP_API_VERSION=%q: %s; use a version such as 2.0.0-1.el8, 2:2.0.0-1 or 2.0.0, optionally ending in * (2.0.0*, 2:2.0.0*)", pin, why)
	}
	if strings.ContainsAny(pin, " \t?[]") {
		return bad("spaces, ? and [ ] cannot be translated")
	}
	epoch, version, hasEpoch := strings.Cut(pin, ":")
	if !hasEpoch {
		epoch, version = "", pin
	} else if !epochRe.MatchString(epoch) {
		return bad("the epoch before ':' must be a number")
	}
	wildcard := strings.HasSuffix(version, "*")
	base := strings.TrimSuffix(version, "*")
	if strings.Contains(base, "*") {
		return bad("a '*' is only understood at the end")
	}
	if wildcard {
		base = strings.TrimRight(base, ".-")
	}
	if !versionRe.MatchString(base) {
		return bad("not a version")
	}
	prefix := ""
	if hasEpoch {
		prefix = epoch + ":"
	}
	hasRelease := strings.Contains(base, "-")
	t.AptVersion = pin
	t.DNFSpec = Package + "-" + pin
	switch {
	case wildcard:
		upper, err := increment(base)
		if err != nil {
			return bad(err.Error())
		}
		lo, hi := prefix+base+"~", prefix+upper+"~"
		t.DebDepends = []string{fmt.Sprintf("%s (>= %s)", Package, lo), fmt.Sprintf("%s (<< %s)", Package, hi)}
		t.RPMRequire = []string{fmt.Sprintf("%s >= %s", Package, lo), fmt.Sprintf("%s < %s", Package, hi)}
	case hasRelease:
		t.DebDepends = []string{fmt.Sprintf("%s (= %s%s)", Package, prefix, base)}
		t.RPMRequire = []string{fmt.Sprintf("%s = %s%s", Package, prefix, base)}
	default:
		// A version without a release means any release of it, as yum
		// reads it. rpm compares no release when the requirement has
		// none; deb needs a range: every revision of 2.0.0 sorts at or
		// after 2.0.0 and before 2.0.0.~ (2.0.0.1 sorts after).
		t.DebDepends = []string{fmt.Sprintf("%s (>= %s%s)", Package, prefix, base), fmt.Sprintf("%s (<< %s%s.~)", Package, prefix, base)}
		t.RPMRequire = []string{fmt.Sprintf("%s = %s%s", Package, prefix, base)}
		t.AptVersion = pin + "-*"
		t.DNFSpec = Package + "-" + pin
	}
	return t, nil
}

// increment returns the smallest version prefix after every version that
// starts with v: the last number in v plus one (2.0.0 -> 2.0.1,
// 2.0.0-1 -> 2.0.0-2).
func increment(v string) (string, error) {
	end := len(v)
	start := end
	for start > 0 && v[start-1] >= '0' && v[start-1] <= '9' {
		start--
	}
	if start == end {
		return "", fmt.Errorf("%q does not end in a number before the '*'", v)
	}
	n, err := strconv.ParseUint(v[start:end], 10, 64)
	if err != nil {
		return "", err
	}
	return v[:start] + strconv.FormatUint(n+1, 10), nil
}
