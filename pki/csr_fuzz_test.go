package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

// FuzzParseCSR: no request, however made, crashes ParseCSR or the client
// profile's checks; what passes them asks for nothing the profile refuses.
func FuzzParseCSR(f *testing.F) {
	key, _ := ECDSAP256.Generate()
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "svc"}, DNSNames: []string{"svc"}}, key)
	f.Add(der)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err != nil {
			return
		}
		dns, err := checkCSR(csr, "svc")
		if err != nil {
			return
		}
		if csr.Subject.CommonName != "" && csr.Subject.CommonName != "svc" {
			t.Fatalf("accepted CN=%s", csr.Subject.CommonName)
		}
		if len(dns) > 1 || (len(dns) == 1 && dns[0] != "svc") || len(csr.IPAddresses)+len(csr.URIs)+len(csr.EmailAddresses) > 0 {
			t.Fatalf("accepted SANs %v %v %v %v", dns, csr.IPAddresses, csr.URIs, csr.EmailAddresses)
		}
	})
}
