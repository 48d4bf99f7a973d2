package pki

import (
	"crypto/x509"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tpaLayout is a TPA host's files in a layout, adopted by init with the CA
// key (withKey) or without it.
func tpaLayout(t *testing.T, f pkitest.TPAFixture, withKey bool) Layout {
	t.Helper()
	l := testLayout(t)
	copyDir(t, f.Dir, l.TPADir)
	o := testInitOptions(l)
	o.Cluster, o.Hostnames = f.Cluster, []string{f.Host}
	if withKey {
		o.CACertFile, o.CAKeyFile = f.CACert, f.CAKey
	}
	mustInit(t, o)
	return l
}

// crlCheck runs openssl verify -crl_check against root.crt and the CRL.
func crlCheck(t *testing.T, l Layout, cert string) (string, error) {
	t.Helper()
	return openssl(t, "verify", "-crl_check", "-CAfile", l.RootCert(), "-CRLfile", l.CRL(), cert)
}

func serialOfFile(t *testing.T, path string) string {
	t.Helper()
	c, err := LoadCert(path)
	require.NoError(t, err)
	return SerialHex(c)
}

// issue 12, 1: a CA without keyUsage (TPA's) signs CRLs that openssl
// accepts, and revoke by serial takes every form openssl prints.
func TestRevokeOnTPACAWithoutKeyUsage(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	ca, err := LoadCert(f.CACert)
	require.NoError(t, err)
	require.Equal(t, x509.KeyUsage(0), ca.KeyUsage, "the fixture's CA has no keyUsage")

	forms := map[string]func(hex string) string{
		"as SerialHex":        func(h string) string { return h },
		"lower case":          strings.ToLower,
		"colons, lower case":  func(h string) string { return colons(strings.ToLower(h)) },
		"colons, upper case":  colons,
		"openssl -serial":     func(h string) string { return "serial=" + h },
		"leading zeros":       func(h string) string { return "0000" + h },
		"leading 00: (-text)": func(h string) string { return "00:" + colons(strings.ToLower(h)) },
		"0x prefix":           func(h string) string { return "0x" + h },
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			l := tpaLayout(t, f, true)
			user, pem := filepath.Join(l.TPADir, "pg-backup-user.crt"), filepath.Join(l.TPADir, "pemagent-barman1.crt")
			res, err := Revoke(RevokeOptions{Layout: l, Serial: form(serialOfFile(t, user))})
			require.NoError(t, err)
			require.Len(t, res.Records, 1)
			assert.Equal(t, []string{l.CRL(), l.TPACRL()}, res.CRLPaths)

			out, err := crlCheck(t, l, user)
			require.Error(t, err, out)
			assert.Contains(t, out, "certificate revoked")
			out, err = crlCheck(t, l, pem)
			require.NoError(t, err, out)

			// The record and the CRL agree, number included.
			rec, err := ReadRevocationRecord(l.RevocationRecord())
			require.NoError(t, err)
			assert.Equal(t, res.Number, rec.Number)
			require.Len(t, rec.Revoked, 1)
			assert.Equal(t, serialOfFile(t, user), rec.Revoked[0].Serial)
			assert.Equal(t, "pg-backup-user", rec.Revoked[0].Name)
			assert.Equal(t, res.Number, lastCRLNumber(l))
			revoked, err := LoadCRL(l.CRL(), ca)
			require.NoError(t, err)
			assert.Equal(t, map[string]bool{serialOfFile(t, user): true}, revoked)
		})
	}
}

func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// --cert revokes a certificate the inventory never knew, if the cluster CA
// signed it, and refuses one from another CA without changing anything.
func TestRevokeByCertFile(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	other := pkitest.TPAHost(t, pkitest.Options{Cluster: "other"})
	elsewhere := pkitest.TPAHost(t, pkitest.Options{Clients: []string{"leaked"}})
	for _, withKey := range []bool{true, false} {
		t.Run(map[bool]string{true: "with the CA key", false: "without the CA key"}[withKey], func(t *testing.T) {
			l := tpaLayout(t, f, withKey)
			// Signed by the cluster CA elsewhere, never seen on this host.
			outside := filepath.Join(t.TempDir(), "copy.crt")
			data, err := os.ReadFile(elsewhere.Cert("leaked"))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(outside, data, 0o644))

			before := snapshot(t, l.TPADir, l.StateDir)
			_, err = Revoke(RevokeOptions{Layout: l, CertFile: other.Cert("pemagent-barman1")})
			require.ErrorContains(t, err, "is not signed by the cluster CA")
			_, err = Revoke(RevokeOptions{Layout: l, CertFile: f.CACert})
			require.ErrorContains(t, err, "CA certificate")
			assert.Equal(t, before, snapshot(t, l.TPADir, l.StateDir), "a refused revoke changes nothing")

			res, err := Revoke(RevokeOptions{Layout: l, CertFile: outside})
			require.NoError(t, err)
			require.Len(t, res.Records, 1)
			assert.Equal(t, "leaked", res.Records[0].Name, "recorded by its CN")
			assert.True(t, res.Records[0].Adopted)
			inv, err := ReadInventory(l)
			require.NoError(t, err)
			found := false
			for _, r := range inv {
				if r.Serial == serialOfFile(t, outside) {
					found = true
					assert.NotNil(t, r.RevokedAt)
				}
			}
			assert.True(t, found, "the revoked certificate is recorded")
			rec, err := ReadRevocationRecord(l.RevocationRecord())
			require.NoError(t, err)
			require.Len(t, rec.Revoked, 1)
			assert.Equal(t, serialOfFile(t, outside), rec.Revoked[0].Serial)
			info, err := os.Stat(l.RevocationRecord())
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o644), info.Mode().Perm())
			if withKey {
				out, err := crlCheck(t, l, outside)
				require.Error(t, err, out)
				assert.Contains(t, out, "certificate revoked")
			} else {
				assert.Empty(t, res.CRLPaths)
				assert.NoFileExists(t, l.CRL())
			}

			// Again: harmless, and the number still grows. The record
			// belongs to whoever revokes (root), even if someone else
			// owned the file before.
			if os.Geteuid() == 0 {
				require.NoError(t, os.Chown(l.RevocationRecord(), 65534, 65534))
			}
			res2, err := Revoke(RevokeOptions{Layout: l, CertFile: outside})
			require.NoError(t, err)
			assert.Empty(t, res2.Records)
			assert.Len(t, res2.Already, 1)
			assert.Greater(t, res2.Number, res.Number)
			info, err = os.Stat(l.RevocationRecord())
			require.NoError(t, err)
			assert.Equal(t, uint32(os.Geteuid()), info.Sys().(*syscall.Stat_t).Uid)
		})
	}
}

// issue 12: a revocation that cannot be written in full changes nothing
// and says so.
func TestRevokeAllOrNothing(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	for _, which := range []string{"tpa", "state"} {
		for _, withKey := range []bool{true, false} {
			if which == "tpa" && !withKey {
				continue // without the CA key nothing is written to the TPA dir
			}
			t.Run(which+map[bool]string{true: " with key", false: " without key"}[withKey], func(t *testing.T) {
				l := tpaLayout(t, f, withKey)
				_, err := Revoke(RevokeOptions{Layout: l, Name: "pg-backup-user"})
				require.NoError(t, err)
				before := snapshot(t, l.TPADir, l.StateDir)
				makeReadOnly(t, map[string]string{"tpa": l.TPADir, "state": l.StateDir}[which])

				_, err = Revoke(RevokeOptions{Layout: l, CertFile: f.Cert("pemagent-barman1")})
				require.ErrorContains(t, err, "nothing was revoked")
				assert.Equal(t, before, snapshot(t, l.TPADir, l.StateDir))
				assert.Empty(t, leftovers(t, l.TPADir, l.StateDir))
			})
		}
	}
}

// A symbolic link planted where revoke writes is replaced, never followed.
func TestRevokeDoesNotFollowSymlinks(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	l := tpaLayout(t, f, true)
	victim := filepath.Join(t.TempDir(), "victim")
	require.NoError(t, os.WriteFile(victim, []byte("precious\n"), 0o644))
	require.NoError(t, os.Symlink(victim, l.TPACRL()))

	_, err := Revoke(RevokeOptions{Layout: l, Name: "pg-backup-user"})
	require.NoError(t, err)
	data, err := os.ReadFile(victim)
	require.NoError(t, err)
	assert.Equal(t, "precious\n", string(data))
	info, err := os.Lstat(l.TPACRL())
	require.NoError(t, err)
	assert.True(t, info.Mode().IsRegular(), "crl.pem is a file of its own now")
}

func TestNormalizeSerial(t *testing.T) {
	for in, want := range map[string]string{
		"3A9F01": "3A9F01", "3a9f01": "3A9F01", "3a:9f:01": "3A9F01", "serial=3A9F01": "3A9F01",
		"00:80:ab": "80AB", "0x0ab": "AB", " AB ": "AB", "1": "01",
	} {
		got, err := NormalizeSerial(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "0", "00:00", "xyz", "-1", "3A 9G", "+1"} {
		_, err := NormalizeSerial(bad)
		assert.Error(t, err, bad)
	}
}

func TestReadRevocationRecord(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadRevocationRecord(filepath.Join(dir, "none"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	for name, body := range map[string]string{
		"garbage":      "{",
		"zero number":  `{"number":0,"revoked":[]}`,
		"lower serial": `{"number":1,"revoked":[{"serial":"ab","revoked_at":"2026-01-01T00:00:00Z"}]}`,
		"odd serial":   `{"number":1,"revoked":[{"serial":"ABC","revoked_at":"2026-01-01T00:00:00Z"}]}`,
		"no serial":    `{"number":1,"revoked":[{"revoked_at":"2026-01-01T00:00:00Z"}]}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		_, err := ReadRevocationRecord(p)
		assert.Error(t, err, name)
	}
	p := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(p, []byte(`{"number":7,"revoked":[{"serial":"0ABC","name":"pem","revoked_at":"2026-01-01T00:00:00Z"}],"added_later":true}`), 0o644))
	rec, err := ReadRevocationRecord(p)
	require.NoError(t, err)
	assert.Equal(t, int64(7), rec.Number)
	assert.Equal(t, "0ABC", rec.Revoked[0].Serial)
}

// Without a subject key identifier, the CRL issuer gets the one openssl
// computes (SHA-1 of the public key bits), so the CRL's authority key
// identifier matches what other tools expect.
func TestCRLIssuerKeyIdentifier(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	ca, err := LoadCert(f.CACert)
	require.NoError(t, err)
	require.NotEmpty(t, ca.SubjectKeyId)
	bare := *ca
	bare.SubjectKeyId = nil
	got, err := crlIssuer(&bare)
	require.NoError(t, err)
	assert.Equal(t, ca.SubjectKeyId, got.SubjectKeyId)
	assert.NotZero(t, got.KeyUsage&x509.KeyUsageCRLSign)
	assert.Zero(t, ca.KeyUsage, "the CA itself is not changed")

	noCRL := *ca
	noCRL.KeyUsage = x509.KeyUsageCertSign
	_, err = crlIssuer(&noCRL)
	require.ErrorContains(t, err, "without cRLSign")
}
