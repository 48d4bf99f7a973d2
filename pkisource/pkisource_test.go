package pkisource

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/pgbapi/pgbapi-proxy/proxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixture is a TPA and state directory holding a pkitest CA's root.
type fixture struct {
	layout pki.Layout
	ca     *pkitest.CA
	access string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{layout: pki.Layout{TPADir: filepath.Join(dir, "tpa"), StateDir: filepath.Join(dir, "state")},
		ca: pkitest.NewCA(t, "test"), access: filepath.Join(dir, "access")}
	require.NoError(t, os.MkdirAll(f.layout.TPADir, 0o755))
	require.NoError(t, os.MkdirAll(f.layout.StateDir, 0o700))
	f.write(t, f.layout.RootCert(), f.ca.CertPEM())
	return f
}

func (f *fixture) write(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path+".tmp", data, 0o644))
	require.NoError(t, os.Rename(path+".tmp", path))
}

func (f *fixture) loader(t *testing.T, required bool) *Loader {
	t.Helper()
	l, err := New(Options{Layout: f.layout, AccessFile: f.access, AccessFileRequired: required,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	return l
}

func (f *fixture) record(t *testing.T, number int64, serials ...string) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`{"number":` + itoa(number) + `,"revoked":[`)
	for i, s := range serials {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"serial":"` + s + `"}`)
	}
	b.WriteString("]}")
	f.write(t, f.layout.RevocationRecord(), b.Bytes())
}

// Every trust input fails closed: once loaded, an input that goes missing,
// breaks, or is replaced by an older one keeps its last good state, and
// the error says so. Nothing ever widens access.
func TestTrustInputsFailClosed(t *testing.T) {
	f := newFixture(t)
	pem := f.ca.Client(t, "pem")
	old := f.ca.Client(t, "old")
	pemSerial, oldSerial := pki.SerialHex(pem.Leaf), pki.SerialHex(old.Leaf)
	f.write(t, f.layout.CRL(), f.ca.CRL(t, 5, pem.Leaf.SerialNumber))
	f.record(t, 7, pemSerial)
	f.write(t, f.access, []byte("pem read\n* none\n"))
	l := f.loader(t, true)
	trust, err := l.Load()
	require.NoError(t, err)
	require.True(t, trust.IsRevoked(pemSerial))
	require.False(t, trust.Rules.Check("other", "GET", "/status", nil).Allowed)

	attacks := []struct {
		name   string
		do     func(t *testing.T)
		undo   func(t *testing.T)
		errHas string
	}{
		{"CRL deleted", func(t *testing.T) { require.NoError(t, os.Remove(f.layout.CRL())) },
			func(t *testing.T) { f.write(t, f.layout.CRL(), f.ca.CRL(t, 5, pem.Leaf.SerialNumber)) }, "is gone"},
		{"older CRL copied over", func(t *testing.T) { f.write(t, f.layout.CRL(), f.ca.CRL(t, 4)) },
			func(t *testing.T) { f.write(t, f.layout.CRL(), f.ca.CRL(t, 5, pem.Leaf.SerialNumber)) }, "older than number 5"},
		{"CRL of another CA", func(t *testing.T) { f.write(t, f.layout.CRL(), pkitest.NewCA(t, "x").CRL(t, 9)) },
			func(t *testing.T) { f.write(t, f.layout.CRL(), f.ca.CRL(t, 5, pem.Leaf.SerialNumber)) }, "not signed by the cluster root"},
		{"CRL garbage", func(t *testing.T) { f.write(t, f.layout.CRL(), []byte("garbage")) },
			func(t *testing.T) { f.write(t, f.layout.CRL(), f.ca.CRL(t, 5, pem.Leaf.SerialNumber)) }, "no PEM X509 CRL"},
		{"record deleted", func(t *testing.T) { require.NoError(t, os.Remove(f.layout.RevocationRecord())) },
			func(t *testing.T) { f.record(t, 7, pemSerial) }, "is gone"},
		{"older record", func(t *testing.T) { f.record(t, 6) }, func(t *testing.T) { f.record(t, 7, pemSerial) }, "older than number 7"},
		{"rules deleted", func(t *testing.T) { require.NoError(t, os.Remove(f.access)) },
			func(t *testing.T) { f.write(t, f.access, []byte("pem read\n* none\n")) }, "last good rules"},
		{"rules unreadable", func(t *testing.T) {
			require.NoError(t, os.Remove(f.access))
			require.NoError(t, os.Mkdir(f.access, 0o700))
		},
			func(t *testing.T) {
				require.NoError(t, os.Remove(f.access))
				f.write(t, f.access, []byte("pem read\n* none\n"))
			}, "last good rules"},
		{"rules broken", func(t *testing.T) { f.write(t, f.access, []byte("* al\n")) },
			func(t *testing.T) { f.write(t, f.access, []byte("pem read\n* none\n")) }, "unknown grant"},
		{"CRL writable by others", func(t *testing.T) { require.NoError(t, os.Chmod(f.layout.CRL(), 0o666)) },
			func(t *testing.T) { require.NoError(t, os.Chmod(f.layout.CRL(), 0o644)) }, "may be written by group or others"},
		{"record writable by group", func(t *testing.T) { require.NoError(t, os.Chmod(f.layout.RevocationRecord(), 0o664)) },
			func(t *testing.T) { require.NoError(t, os.Chmod(f.layout.RevocationRecord(), 0o644)) }, "may be written by group or others"},
		{"rules writable by others", func(t *testing.T) { require.NoError(t, os.Chmod(f.access, 0o646)) },
			func(t *testing.T) { require.NoError(t, os.Chmod(f.access, 0o644)) }, "may be written by group or others"},
		{"root gone", func(t *testing.T) { require.NoError(t, os.Remove(f.layout.RootCert())) },
			func(t *testing.T) { f.write(t, f.layout.RootCert(), f.ca.CertPEM()) }, "last good root"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			a.do(t)
			got, err := l.Load()
			require.Error(t, err)
			assert.Contains(t, err.Error(), a.errHas)
			assert.True(t, got.IsRevoked(pemSerial), "pem stays revoked")
			assert.False(t, got.Rules.Check("other", "GET", "/status", nil).Allowed, "the rules stay")
			require.Len(t, got.Roots, 1)
			assert.Equal(t, f.ca.Cert.Raw, got.Roots[0].Raw)
			a.undo(t)
			_, err = l.Load()
			require.NoError(t, err)
		})
	}

	// Newer inputs are taken: revocations grow, rules change.
	f.write(t, f.layout.CRL(), f.ca.CRL(t, 8, pem.Leaf.SerialNumber, old.Leaf.SerialNumber))
	f.write(t, f.access, []byte("pem read\nother read\n"))
	got, err := l.Load()
	require.NoError(t, err)
	assert.True(t, got.IsRevoked(oldSerial))
	assert.True(t, got.Rules.Check("other", "GET", "/status", nil).Allowed)
	assert.Contains(t, got.Describe, "number 8")
}

// At start a broken input is an error, and a rules file the operator
// named must exist; the default one may be absent (no rules, as Apache).
func TestFirstLoadRefusesBrokenInputs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, f *fixture)
		required bool
		errHas   string
	}{
		{"named rules file missing", func(*testing.T, *fixture) {}, true, "does not exist (it was named explicitly"},
		{"rules broken", func(t *testing.T, f *fixture) { f.write(t, f.access, []byte("pem reed\n")) }, false, `unknown grant "reed"`},
		{"CRL garbage", func(t *testing.T, f *fixture) { f.write(t, f.layout.CRL(), []byte("x")) }, false, "no PEM X509 CRL"},
		{"record garbage", func(t *testing.T, f *fixture) { f.write(t, f.layout.RevocationRecord(), []byte("{")) }, false, "revocation record"},
		{"no root", func(t *testing.T, f *fixture) { require.NoError(t, os.Remove(f.layout.RootCert())) }, false, "root.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(t, f)
			trust, err := f.loader(t, tc.required).Load()
			require.Error(t, err)
			assert.Nil(t, trust)
			assert.Contains(t, err.Error(), tc.errHas)
		})
	}
	f := newFixture(t)
	trust, err := f.loader(t, false).Load()
	require.NoError(t, err)
	assert.Nil(t, trust.Rules, "a default rules file that does not exist: no rules")
	assert.Contains(t, trust.Describe, "no access rules")
	var _ *proxy.Trust = trust
}

// Watch publishes a change within its interval, and a broken change
// publishes the last good state.
func TestWatchPublishesChanges(t *testing.T) {
	f := newFixture(t)
	f.write(t, f.access, []byte("pem read\n"))
	l := f.loader(t, true)
	_, err := l.Load()
	require.NoError(t, err)
	got := make(chan *proxy.Trust, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Watch(ctx, 20*time.Millisecond, func(tr *proxy.Trust) error { got <- tr; return nil })
	f.write(t, f.access, []byte("pem read\nops all\n"))
	select {
	case tr := <-got:
		assert.True(t, tr.Rules.Check("ops", "POST", "/operations", nil).Allowed)
	case <-time.After(5 * time.Second):
		t.Fatal("no change published")
	}
	require.NoError(t, os.Remove(f.access))
	select {
	case tr := <-got:
		assert.True(t, tr.Rules.Check("ops", "POST", "/operations", nil).Allowed, "a deleted file keeps the last good rules")
	case <-time.After(5 * time.Second):
		t.Fatal("no change published")
	}
}

// What root's inventory says is revoked stays revoked when the CRL and
// the record are deleted or rolled back while the proxy is stopped.
func TestInventoryRevocationsSurviveARestart(t *testing.T) {
	f := newFixture(t)
	pem := f.ca.Client(t, "pem")
	serial := pki.SerialHex(pem.Leaf)
	inv := `{"version":1,"certificates":[{"name":"pem","kind":"client","serial":"` + serial +
		`","not_after":"` + pem.Leaf.NotAfter.UTC().Format(time.RFC3339) + `","revoked_at":"` + time.Now().UTC().Format(time.RFC3339) + `"}]}`
	f.write(t, f.layout.Inventory(), []byte(inv))
	trust, err := f.loader(t, false).Load() // no CRL, no record: a fresh start
	require.NoError(t, err)
	assert.True(t, trust.IsRevoked(serial))

	// A trust input owned by another account is not trusted.
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chown(f.layout.Inventory(), 65534, 65534))
		_, err := f.loader(t, false).Load()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "neither root nor this process")
	}
}

// owners makes this process play the service account (uid service) and
// says who owns what: the file named name is owned by file, every
// directory by dir, everything else by root. It is undone at cleanup.
func owners(t *testing.T, service int, name string, file, dir int) {
	t.Helper()
	oldUID, oldOwner := processUID, ownerOf
	t.Cleanup(func() { processUID, ownerOf = oldUID, oldOwner })
	processUID = func() int { return service }
	ownerOf = func(info fs.FileInfo) (int, bool) {
		switch {
		case info.IsDir():
			return dir, true
		case info.Name() == name:
			return file, true
		}
		return 0, true
	}
}

// A trust input is trusted only if root owns it, or this process owns it
// and its directory (a personal setup, where the process could replace the
// file anyway). In the packaged layout (root's directories) a file the
// service account owns is refused: at start with an error naming the
// file and the chown that fixes it; later the last good state stays.
func TestTrustInputOwnership(t *testing.T) {
	const root, service, other = 0, 4242, 4343
	type input struct {
		name  string
		path  func(f *fixture) string
		widen func(t *testing.T, f *fixture) // a replacement that would widen access
	}
	inputs := []input{
		{"root", func(f *fixture) string { return f.layout.RootCert() },
			func(t *testing.T, f *fixture) {
				f.write(t, f.layout.RootCert(), pkitest.NewCA(t, "self-made").CertPEM())
			}},
		{"CRL", func(f *fixture) string { return f.layout.CRL() },
			func(t *testing.T, f *fixture) { f.write(t, f.layout.CRL(), f.ca.CRL(t, 9)) }},
		{"record", func(f *fixture) string { return f.layout.RevocationRecord() },
			func(t *testing.T, f *fixture) { f.record(t, 9) }},
		{"inventory", func(f *fixture) string { return f.layout.Inventory() },
			func(t *testing.T, f *fixture) {
				f.write(t, f.layout.Inventory(), []byte(`{"version":1,"certificates":[]}`))
			}},
		{"rules", func(f *fixture) string { return f.access },
			func(t *testing.T, f *fixture) { f.write(t, f.access, []byte("* all\n")) }},
	}
	for _, tc := range []struct {
		name      string
		file, dir int
		mode      os.FileMode
		errHas    string // "" when trusted
		fix       bool   // the error names chown root:root FILE
	}{
		{"root's file in root's directory", root, root, 0o644, "", false},
		{"service's file in root's directory", service, root, 0o644, "but its directory", true},
		{"service's file in the service's directory", service, service, 0o644, "", false},
		{"another account's file", other, root, 0o644, "neither root nor this process", true},
		{"root's file writable by others", root, root, 0o646, "may be written by group or others", false},
		{"service's file writable by group in its directory", service, service, 0o664, "may be written by group or others", false},
	} {
		for _, in := range inputs {
			t.Run(tc.name+"/"+in.name, func(t *testing.T) {
				f := newFixture(t)
				pem := f.ca.Client(t, "pem")
				pemSerial := pki.SerialHex(pem.Leaf)
				f.write(t, f.layout.CRL(), f.ca.CRL(t, 5, pem.Leaf.SerialNumber))
				f.record(t, 7, pemSerial)
				f.write(t, f.layout.Inventory(), []byte(`{"version":1,"certificates":[]}`))
				f.write(t, f.access, []byte("pem read\n* none\n"))
				path := in.path(f)
				require.NoError(t, os.Chmod(path, tc.mode))

				// First load: refused, or trusted.
				owners(t, service, filepath.Base(path), tc.file, tc.dir)
				trust, err := f.loader(t, true).Load()
				if tc.errHas == "" {
					require.NoError(t, err)
					require.NotNil(t, trust)
					return
				}
				require.Error(t, err)
				assert.Nil(t, trust)
				assert.Contains(t, err.Error(), tc.errHas)
				assert.Contains(t, err.Error(), path)
				if tc.fix {
					assert.Contains(t, err.Error(), "chown root:root "+path)
				}

				// Later: loaded while root owned it, then replaced by a
				// wider one that is not trusted: the last good state stays.
				owners(t, service, filepath.Base(path), root, root)
				require.NoError(t, os.Chmod(path, 0o644))
				l := f.loader(t, true)
				_, err = l.Load()
				require.NoError(t, err)
				in.widen(t, f)
				require.NoError(t, os.Chmod(path, tc.mode))
				owners(t, service, filepath.Base(path), tc.file, tc.dir)
				got, err := l.Load()
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.errHas)
				assert.Contains(t, err.Error(), path)
				assert.True(t, got.IsRevoked(pemSerial), "pem stays revoked")
				assert.False(t, got.Rules.Check("other", "GET", "/status", nil).Allowed, "the rules stay")
				require.Len(t, got.Roots, 1)
				assert.Equal(t, f.ca.Cert.Raw, got.Roots[0].Raw, "the root stays")
			})
		}
	}
}

// As root (CI), the same with real owners: a rules file chowned to an
// unused uid that this process pretends to be is refused in root's
// directory and trusted once that uid owns the directory too; a link root
// made is followed and the file it leads to is what is checked.
func TestTrustInputOwnershipForReal(t *testing.T) {
	const service = 4242
	f := newFixture(t)
	f.write(t, f.access, []byte("pem read\n"))
	dir := filepath.Dir(f.access)
	_, err := f.loader(t, true).Load()
	require.NoError(t, err, "a file of whoever runs the tests in their own directory")

	t.Run("chowned", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("chown to another uid needs root (CI runs the tests as root)")
		}
		old := processUID
		t.Cleanup(func() { processUID = old })
		processUID = func() int { return service }
		require.NoError(t, os.Chown(f.access, service, service))
		_, err := f.loader(t, true).Load()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "chown root:root "+f.access)

		// A link root made in its directory to the service's file: refused.
		target := filepath.Join(t.TempDir(), "access-target")
		f.write(t, target, []byte("* all\n"))
		require.NoError(t, os.Chown(target, service, service))
		require.NoError(t, os.Remove(f.access))
		require.NoError(t, os.Symlink(target, f.access))
		_, err = f.loader(t, true).Load()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "but its directory")

		// The link to root's file: followed and trusted.
		require.NoError(t, os.Chown(target, 0, 0))
		_, err = f.loader(t, true).Load()
		require.NoError(t, err)

		// The service's own directory (a personal setup): trusted.
		require.NoError(t, os.Remove(f.access))
		f.write(t, f.access, []byte("pem read\n"))
		require.NoError(t, os.Chown(f.access, service, service))
		require.NoError(t, os.Chown(dir, service, service))
		_, err = f.loader(t, true).Load()
		require.NoError(t, err)
	})
}
