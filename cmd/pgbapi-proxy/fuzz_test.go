package main

import (
	"errors"
	"testing"
)

// FuzzEnvFlags: no value in a PGBAPI_PROXY_ variable crashes flag parsing;
// a bad one is a usage error naming the variable.
func FuzzEnvFlags(f *testing.F) {
	for _, s := range []string{"", "1", "ninety", "a,b,,c", "\"quoted\"", "-1", "1h", "true", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		for _, c := range commands() {
			fs, _ := newFlagSet(c)
			err := applyEnv(fs, func(string) (string, bool) { return value, true })
			var ue usageError
			if err != nil && !errors.As(err, &ue) {
				t.Fatalf("%s: not a usage error: %v", c.name, err)
			}
		}
	})
}
