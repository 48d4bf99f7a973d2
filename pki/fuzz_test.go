package pki

import "testing"

// FuzzParsePEM: no input crashes key or certificate loading; what parses
// is usable.
func FuzzParsePEM(f *testing.F) {
	key, _ := ECDSAP256.Generate()
	keyPEM, _ := EncodeKey(key)
	f.Add(keyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := ParseKey(data); err == nil && k.Public() == nil {
			t.Fatal("a parsed key without a public key")
		}
		if certs, err := ParseCerts(data); err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}
