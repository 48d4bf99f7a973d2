package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki/pkitest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stepFor is the step about path, failing the test if there is none.
func stepFor(t *testing.T, steps []Step, path string) Step {
	t.Helper()
	for _, s := range steps {
		if s.Path == path {
			return s
		}
	}
	t.Fatalf("no step about %s in %+v", path, steps)
	return Step{}
}

func recordByName(inv []Record, name string) *Record {
	for i := range inv {
		if inv[i].Name == name && !inv[i].Replaced {
			return &inv[i]
		}
	}
	return nil
}

// issue 12, adoption that loses nothing: every certificate the cluster CA
// signed is recorded, with or without its key; everything else is left
// alone with the reason; no file in the TPA directory changes.
func TestInitAdoptsATPAHost(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{ExtraDNS: []string{"barman1.example.com"}, ExtraIPs: []string{"10.1.2.3"}})
	f.Client(t, "expired-agent", -1)
	other := pkitest.TPAHost(t, pkitest.Options{Cluster: "other"})
	elsewhere := pkitest.TPAHost(t, pkitest.Options{Clients: []string{"handed-out", "mismatched"}})

	for _, withKey := range []bool{true, false} {
		t.Run(map[bool]string{true: "with the CA key", false: "without the CA key"}[withKey], func(t *testing.T) {
			l := testLayout(t)
			copyDir(t, f.Dir, l.TPADir)
			put := func(name, from string) {
				data, err := os.ReadFile(from)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(l.TPADir, name), data, 0o600))
			}
			put("other-client.crt", other.Cert("pg-backup-user"))
			put("other-client.key", other.Key("pg-backup-user"))
			put("other-CA.crt", other.CACert)
			put("other-CA.key", other.CAKey)
			if !withKey {
				// A CA key of another cluster where TPA's would be.
				put("CA.key", other.CAKey)
			}
			put("handed-out.crt", elsewhere.Cert("handed-out")) // its key is with the service
			put("mismatched.crt", elsewhere.Cert("mismatched"))
			put("mismatched.key", f.Key("pg-backup-user"))
			require.NoError(t, os.WriteFile(filepath.Join(l.TPADir, "junk.crt"), []byte("not PEM\n"), 0o644))
			put("lonely.key", f.Key("pg-backup-user"))
			require.NoError(t, os.Symlink(f.Cert("pemagent-barman1"), filepath.Join(l.TPADir, "link.crt")))
			put("evil\nname.crt", elsewhere.Cert("handed-out")) // signed by the cluster CA, a newline in its name
			require.NoError(t, os.WriteFile(filepath.Join(l.TPADir, "huge.crt"), make([]byte, 2<<20), 0o644))
			before := snapshot(t, l.TPADir)

			o := testInitOptions(l)
			o.Cluster, o.Hostnames, o.DefaultHostnames, o.DefaultIPs = "tpa", []string{"barman1", "localhost"}, true, true
			o.IPs = []net.IP{net.ParseIP("127.0.0.1")}
			if withKey {
				o.CACertFile, o.CAKeyFile = f.CACert, f.CAKey
			}
			steps := mustInit(t, o)
			in := func(name string) string { return filepath.Join(l.TPADir, name) }
			tests := []struct {
				file   string
				action Action
				note   string
			}{
				{"pemagent-barman1.crt", Adopted, "with its key"},
				{"pg-backup-user.crt", Adopted, "CN=pg-backup-user"},
				{"pg-backup-api.crt", Adopted, "barman1.example.com"},
				{"handed-out.crt", Adopted, "without its key"},
				{"mismatched.crt", Adopted, "mismatched.key is not its key"},
				{"other-client.crt", LeftAlone, "signed by another CA (CN=other.CA)"},
				{"other-CA.crt", LeftAlone, "the certificate of another CA (CN=other.CA)"},
				{"expired-agent.crt", LeftAlone, "expired on"},
				{"junk.crt", LeftAlone, "not a certificate"},
				{"link.crt", LeftAlone, "symbolic link is not followed"},
				{"lonely.key", LeftAlone, "a key without a certificate"},
				{"huge.crt", LeftAlone, "over 1024 KiB"},
			}
			if !withKey {
				tests = append(tests, struct {
					file   string
					action Action
					note   string
				}{"CA.key", LeftAlone, "not the key of the cluster CA CN=tpa.CA"})
			}
			for _, tc := range tests {
				s := stepFor(t, steps, in(tc.file))
				assert.Equal(t, tc.action, s.Action, tc.file)
				assert.Contains(t, s.Note, tc.note, tc.file)
			}
			// A newline in a name: left alone, and said on one line.
			evil := stepFor(t, steps, strconv.QuoteToGraphic(in("evil\nname.crt")))
			assert.Equal(t, LeftAlone, evil.Action)
			assert.Contains(t, evil.Note, "control characters")
			assert.NotContains(t, evil.What+evil.Path, "\n")
			assert.Empty(t, changed(before, snapshot(t, l.TPADir)), "adoption changes no file in the TPA directory")

			inv, err := ReadInventory(l)
			require.NoError(t, err)
			for name, kind := range map[string]Kind{"pemagent-barman1": KindClient, "pg-backup-user": KindClient, "handed-out": KindClient, "pg-backup-api": KindServer} {
				rec := recordByName(inv, name)
				if assert.NotNil(t, rec, name) {
					assert.True(t, rec.Adopted, name)
					assert.Equal(t, kind, rec.Kind, name)
				}
			}
			for _, name := range []string{"other-client", "other-CA", "expired-agent", "junk", "link"} {
				assert.Nil(t, recordByName(inv, name), name)
			}

			// Names are never dropped: the adopted certificate's come first.
			meta, err := ReadMeta(l)
			require.NoError(t, err)
			assert.Equal(t, []string{"barman1", "barman1.example.com", "localhost"}, meta.Hostnames)
			assert.Equal(t, []string{"10.1.2.3", "127.0.0.1"}, meta.IPs)
			if withKey {
				// What the proxy renews covers every one of them.
				chain, _ := renewedChain(t, l)
				root, err := LoadCert(l.RootCert())
				require.NoError(t, err)
				require.NoError(t, VerifyChain(chain, root, x509.ExtKeyUsageServerAuth, time.Now()))
				for _, n := range []string{"barman1", "barman1.example.com", "localhost", "10.1.2.3", "127.0.0.1"} {
					assert.NoError(t, chain[0].VerifyHostname(n), n)
				}
			} else {
				_, err := LoadServerSigner(l)
				require.ErrorIs(t, err, ErrNoCAKey)
			}

			// Revocable by name now, like an issued certificate.
			_, err = Revoke(RevokeOptions{Layout: l, Name: "pemagent-barman1"})
			require.NoError(t, err)

			// A second init adopts nothing twice and changes nothing.
			state := snapshot(t, l.TPADir, l.StateDir)
			again := mustInit(t, o)
			for _, s := range again {
				assert.NotEqual(t, Adopted, s.Action, s.Path)
			}
			assert.Empty(t, changed(state, snapshot(t, l.TPADir, l.StateDir)))
			if withKey {
				return
			}

			// The CA key comes later: init imports it, makes the
			// intermediate for every recorded name, and signs the CRL for
			// the revocation recorded without it.
			assert.NoFileExists(t, l.CRL())
			o.CACertFile, o.CAKeyFile = f.CACert, f.CAKey
			steps = mustInit(t, o)
			assert.Equal(t, Imported, steps[0].Action)
			assert.Equal(t, Created, stepFor(t, steps, l.IntermediateCert()).Action)
			assert.Equal(t, Created, stepFor(t, steps, l.TPACRL()).Action)
			out, err := openssl(t, "verify", "-crl_check", "-CAfile", l.RootCert(), "-CRLfile", l.TPACRL(), in("pemagent-barman1.crt"))
			require.Error(t, err, out)
			assert.Contains(t, out, "certificate revoked")
			rec, err := ReadRevocationRecord(l.RevocationRecord())
			require.NoError(t, err)
			n, err := CRLNumber(l.CRL())
			require.NoError(t, err)
			assert.Equal(t, rec.Number, n)
			signer, err := LoadServerSigner(l)
			require.NoError(t, err)
			assert.True(t, signer.Allows("barman1.example.com") && signer.Allows("10.1.2.3"))
			state = snapshot(t, l.TPADir, l.StateDir)
			mustInit(t, o)
			assert.Empty(t, changed(state, snapshot(t, l.TPADir, l.StateDir)))
		})
	}
}

// issue 12: init --hostname NEW on an existing PKI adds the name; with the
// CA key, a new intermediate and server certificate cover it (the old ones
// kept as .old); without it, init says what to do.
func TestInitAddsAHostName(t *testing.T) {
	t.Run("with the CA key", func(t *testing.T) {
		l := testLayout(t)
		mustInit(t, testInitOptions(l))
		oldServer, oldInter := mustRead(t, l.ServerCert()), mustRead(t, l.IntermediateCert())

		o := testInitOptions(l)
		o.Hostnames, o.IPs = []string{"barman1.example.com"}, []net.IP{net.ParseIP("10.1.2.3")}
		steps := mustInit(t, o)
		assert.Equal(t, Replaced, stepFor(t, steps, l.IntermediateCert()).Action)
		assert.Contains(t, stepFor(t, steps, l.IntermediateCert()).Note, "left out barman1.example.com, 10.1.2.3")
		assert.Equal(t, Replaced, stepFor(t, steps, l.ServerCert()).Action)
		assert.Equal(t, Updated, stepFor(t, steps, l.Meta()).Action)
		assert.Equal(t, oldServer, mustRead(t, l.ServerCert()+".old"))
		assert.Equal(t, oldInter, mustRead(t, l.IntermediateCert()+".old"))
		assert.FileExists(t, l.ServerKey()+".old")

		meta, err := ReadMeta(l)
		require.NoError(t, err)
		assert.Equal(t, []string{"barman1", "localhost", "barman1.example.com"}, meta.Hostnames)
		assert.Equal(t, []string{"10.1.2.3"}, meta.IPs)
		certs, err := LoadCerts(l.ServerCert())
		require.NoError(t, err)
		root, err := LoadCert(l.RootCert())
		require.NoError(t, err)
		require.NoError(t, VerifyChain(certs, root, x509.ExtKeyUsageServerAuth, time.Now()))
		for _, n := range []string{"barman1", "localhost", "barman1.example.com", "10.1.2.3"} {
			assert.NoError(t, certs[0].VerifyHostname(n), n)
		}
		out, err := openssl(t, "verify", "-CAfile", l.RootCert(), "-untrusted", l.ServerCert(), "-purpose", "sslserver", l.ServerCert())
		require.NoError(t, err, out)
		inv, err := ReadInventory(l)
		require.NoError(t, err)
		assert.Equal(t, 2, len(slices.DeleteFunc(inv, func(r Record) bool { return r.Kind != KindServer })), "both server certificates recorded")

		// Once is enough.
		state := snapshot(t, l.TPADir, l.StateDir)
		mustInit(t, o)
		assert.Empty(t, changed(state, snapshot(t, l.TPADir, l.StateDir)))
	})
	t.Run("without the CA key", func(t *testing.T) {
		f := pkitest.TPAHost(t, pkitest.Options{})
		l := tpaLayout(t, f, false)
		before := snapshot(t, l.TPADir)
		o := testInitOptions(l)
		o.Hostnames = []string{"barman1.example.com"}
		steps := mustInit(t, o)
		s := stepFor(t, steps, l.ServerCert())
		assert.Contains(t, s.Note, "does not cover barman1.example.com")
		assert.Contains(t, s.Note, "CA key is not on this host")
		assert.Empty(t, changed(before, snapshot(t, l.TPADir)), "nothing replaced without the CA key")
		meta, err := ReadMeta(l)
		require.NoError(t, err)
		assert.Contains(t, meta.Hostnames, "barman1.example.com")
	})
}

// changed lists the files that differ between two snapshots: changed,
// added or gone.
func changed(before, after map[string]string) []string {
	var out []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			out = append(out, "gone: "+p)
		} else if a != b {
			out = append(out, "changed: "+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "new: "+p)
		}
	}
	slices.Sort(out)
	return out
}

// An expired server certificate is replaced where the CA key is (the old
// one kept), and named without it.
func TestInitReplacesAnExpiredServerCertificate(t *testing.T) {
	f := pkitest.TPAHost(t, pkitest.Options{})
	f.Leaf(t, "pg-backup-api", "barman1", []string{"DNS:barman1", "DNS:barman1.example.com"}, -1)
	for _, withKey := range []bool{true, false} {
		t.Run(map[bool]string{true: "with the CA key", false: "without the CA key"}[withKey], func(t *testing.T) {
			l := testLayout(t)
			copyDir(t, f.Dir, l.TPADir)
			old := mustRead(t, l.ServerCert())
			o := testInitOptions(l)
			o.Cluster, o.Hostnames, o.DefaultHostnames = "tpa", []string{"localhost"}, true
			if withKey {
				o.CACertFile, o.CAKeyFile = f.CACert, f.CAKey
			}
			s := stepFor(t, mustInit(t, o), l.ServerCert())
			assert.Contains(t, s.Note, "it expired on")
			if !withKey {
				assert.Contains(t, s.Note, "CA key is not on this host")
				assert.Equal(t, old, mustRead(t, l.ServerCert()))
				return
			}
			assert.Equal(t, Replaced, s.Action)
			assert.Equal(t, old, mustRead(t, l.ServerCert()+".old"))
			certs, err := LoadCerts(l.ServerCert())
			require.NoError(t, err)
			root, err := LoadCert(l.RootCert())
			require.NoError(t, err)
			require.NoError(t, VerifyChain(certs, root, x509.ExtKeyUsageServerAuth, time.Now()))
			for _, n := range []string{"barman1", "barman1.example.com", "localhost"} {
				assert.NoError(t, certs[0].VerifyHostname(n), "the expired certificate's names are kept: %s", n)
			}
		})
	}
}
