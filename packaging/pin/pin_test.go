package pin

import (
	"os/exec"
	"regexp"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTranslate(t *testing.T) {
	tests := []struct {
		pin string
		deb []string
		rpm []string
		apt string
	}{
		{"", []string{"pg-backup-api"}, []string{"pg-backup-api"}, ""},
		{"2.0.0-1.el8", []string{"pg-backup-api (= 2.0.0-1.el8)"}, []string{"pg-backup-api = 2.0.0-1.el8"}, "2.0.0-1.el8"},
		{"2:2.0.0-1", []string{"pg-backup-api (= 2:2.0.0-1)"}, []string{"pg-backup-api = 2:2.0.0-1"}, "2:2.0.0-1"},
		{"2.0.0", []string{"pg-backup-api (>= 2.0.0)", "pg-backup-api (<< 2.0.0.~)"}, []string{"pg-backup-api = 2.0.0"}, "2.0.0-*"},
		{"2.0.0*", []string{"pg-backup-api (>= 2.0.0~)", "pg-backup-api (<< 2.0.1~)"}, []string{"pg-backup-api >= 2.0.0~", "pg-backup-api < 2.0.1~"}, "2.0.0*"},
		{"2:2.0.0*", []string{"pg-backup-api (>= 2:2.0.0~)", "pg-backup-api (<< 2:2.0.1~)"}, []string{"pg-backup-api >= 2:2.0.0~", "pg-backup-api < 2:2.0.1~"}, "2:2.0.0*"},
		{"2.0*", []string{"pg-backup-api (>= 2.0~)", "pg-backup-api (<< 2.1~)"}, []string{"pg-backup-api >= 2.0~", "pg-backup-api < 2.1~"}, "2.0*"},
		{"2.0.*", []string{"pg-backup-api (>= 2.0~)", "pg-backup-api (<< 2.1~)"}, []string{"pg-backup-api >= 2.0~", "pg-backup-api < 2.1~"}, "2.0.*"},
		{"2.0.9*", []string{"pg-backup-api (>= 2.0.9~)", "pg-backup-api (<< 2.0.10~)"}, []string{"pg-backup-api >= 2.0.9~", "pg-backup-api < 2.0.10~"}, "2.0.9*"},
		{"2.0.0-1*", []string{"pg-backup-api (>= 2.0.0-1~)", "pg-backup-api (<< 2.0.0-2~)"}, []string{"pg-backup-api >= 2.0.0-1~", "pg-backup-api < 2.0.0-2~"}, "2.0.0-1*"},
	}
	for _, tc := range tests {
		t.Run(tc.pin, func(t *testing.T) {
			got, err := Translate(tc.pin)
			require.NoError(t, err)
			assert.Equal(t, tc.deb, got.DebDepends, "deb Depends")
			assert.Equal(t, tc.rpm, got.RPMRequire, "rpm Requires")
			assert.Equal(t, tc.apt, got.AptVersion, "apt version")
		})
	}
}

func TestTranslateRefuses(t *testing.T) {
	for pin, want := range map[string]string{
		"2.*.0":     "only understood at the end",
		"2.0.?":     "cannot be translated",
		"*:2.0.0":   "epoch",
		"x:2.0.0":   "epoch",
		"2.0.0 ":    "cannot be translated",
		"*":         "not a version",
		"latest":    "not a version",
		"2.0.0-":    "not a version",
		"2.0.0-rc*": "does not end in a number",
		"2.0.[01]":  "cannot be translated",
	} {
		t.Run(pin, func(t *testing.T) {
			_, err := Translate(pin)
			require.Error(t, err)
			assert.Contains(t, err.Error(), want)
			assert.Contains(t, err.Error(), "PG_BACKUP_API_VERSION=")
		})
	}
}

// The deb ranges mean what they say to dpkg itself.
func TestDebRangesWithDpkg(t *testing.T) {
	needs.Command(t, "dpkg", "dpkg")
	tests := []struct {
		pin      string
		match    []string
		mismatch []string
	}{
		{"2.0.0*", []string{"2.0.0-1", "2.0.0-1.el8", "2.0.0", "2.0.0.1-1", "2.0.0~rc1-1"}, []string{"2.0.1-1", "2.1.0-1", "1.9.9-1", "2:2.0.0-1"}},
		{"2:2.0.0*", []string{"2:2.0.0-1", "2:2.0.0.1-3"}, []string{"2.0.0-1", "2:2.0.1-1", "3:2.0.0-1"}},
		{"2.0.0", []string{"2.0.0-1", "2.0.0-17", "2.0.0+dfsg-1"}, []string{"2.0.0.1-1", "2.0.1-1", "2.0.0~rc1-1"}},
		{"2.0.0-1.el8", []string{"2.0.0-1.el8"}, []string{"2.0.0-1", "2.0.0-2.el8"}},
	}
	for _, tc := range tests {
		tr, err := Translate(tc.pin)
		require.NoError(t, err)
		for _, v := range tc.match {
			assert.True(t, satisfies(t, v, tr.DebDepends), "%s should satisfy %v", v, tr.DebDepends)
		}
		for _, v := range tc.mismatch {
			assert.False(t, satisfies(t, v, tr.DebDepends), "%s should not satisfy %v", v, tr.DebDepends)
		}
	}
}

var relation = regexp.MustCompile(`^pg-backup-api \((=|>=|<<) (\S+)\)$`)

func satisfies(t *testing.T, version string, depends []string) bool {
	ops := map[string]string{"=": "eq", ">=": "ge", "<<": "lt"}
	for _, d := range depends {
		m := relation.FindStringSubmatch(d)
		require.NotNil(t, m, d)
		if exec.Command("dpkg", "--compare-versions", version, ops[m[1]], m[2]).Run() != nil {
			return false
		}
	}
	return true
}
