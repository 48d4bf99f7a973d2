package pki

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Options with a value that cannot be used fail with a FieldError naming
// the options field, so that a command can name its own flag; nothing is
// issued.
func TestFieldErrors(t *testing.T) {
	l := testLayout(t)
	mustInit(t, testInitOptions(l))
	before := snapshot(t, l.TPADir, l.StateDir)
	issue := func(mod func(*IssueOptions)) func() error {
		return func() error {
			o := IssueOptions{Layout: l, Name: "pem", Days: 10}
			mod(&o)
			_, err := IssueClient(o)
			return err
		}
	}
	initWith := func(mod func(*InitOptions)) func() error {
		return func() error {
			o := testInitOptions(testLayout(t))
			mod(&o)
			_, err := Init(o)
			return err
		}
	}
	for field, run := range map[string]func() error{
		"Name":       issue(func(o *IssueOptions) { o.Name = "a/b" }),
		"Days":       issue(func(o *IssueOptions) { o.Days = 0 }),
		"KeyType":    issue(func(o *IssueOptions) { o.KeyType = "dsa" }),
		"Cluster":    initWith(func(o *InitOptions) { o.Cluster = "" }),
		"Hostnames":  initWith(func(o *InitOptions) { o.Hostnames = []string{"a_b"} }),
		"ServerDays": initWith(func(o *InitOptions) { o.ServerDays = 0 }),
		"ClientDays": initWith(func(o *InitOptions) { o.ClientDays = -3 }),
		"CACertFile": initWith(func(o *InitOptions) { o.CACertFile = "x" }),
	} {
		t.Run(field, func(t *testing.T) {
			err := run()
			var fe *FieldError
			require.True(t, errors.As(err, &fe), "%v", err)
			assert.Equal(t, field, fe.Field)
		})
	}
	// A lifetime past the CA's own expiry is refused, with the limit.
	_, err := IssueClient(IssueOptions{Layout: l, Name: "pem", Days: RootDays + 1})
	var fe *FieldError
	require.True(t, errors.As(err, &fe), "%v", err)
	assert.Equal(t, "Days", fe.Field)
	assert.Contains(t, err.Error(), "would outlast the cluster CA")
	assert.Contains(t, err.Error(), "give at most 3649")
	// Huge values do not overflow into a short lifetime.
	_, err = IssueClient(IssueOptions{Layout: l, Name: "pem", Days: 1 << 40})
	require.True(t, errors.As(err, &fe), "%v", err)
	assert.Equal(t, before, snapshot(t, l.TPADir, l.StateDir), "nothing issued")
}
