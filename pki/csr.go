package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Signing a client's PKCS#10 certificate request, so that its key never
// leaves its host. The request gives only the public key; everything else
// is the client profile, as for a key made here:
//
//   - subject: CN=NAME only. A CN in the request must be NAME (an empty
//     one is set to it); other subject fields (O, OU, ...) are not copied.
//   - SANs: a client certificate has none, but a request may carry
//     DNS:NAME (tools often copy the CN there), which is kept. Any other
//     DNS name, and every IP address, URI or e-mail address, is refused:
//     the proxy identifies clients by CN, and a name a CA did not mean to
//     vouch for must not appear in what it signs.
//   - basicConstraints CA:TRUE is refused: a client may not become a CA.
//     Key usages and other requested extensions are ignored; the
//     certificate gets digitalSignature and clientAuth.
//   - keys: RSA of at least 2048 bits, or ECDSA P-256, P-384 or P-521.

// oidBasicConstraints is the basicConstraints extension (RFC 5280 4.2.1.9).
var oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}

// ParseCSR reads a PKCS#10 request, PEM ("CERTIFICATE REQUEST" or the
// older "NEW CERTIFICATE REQUEST") or DER, and checks its signature.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("the file holds a PEM %q, not a CERTIFICATE REQUEST (make one with openssl req -new)", block.Type)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#10 certificate request (make one with openssl req -new): %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the request's signature does not verify (%v): it was altered, or not signed with the key it names", err)
	}
	return csr, nil
}

// checkCSR applies the client profile to a parsed request for name and
// returns the DNS names to keep.
func checkCSR(csr *x509.CertificateRequest, name string) ([]string, error) {
	if cn := csr.Subject.CommonName; cn != "" && cn != name {
		return nil, fmt.Errorf("the request is for CN=%s, not %s: give the name it was made for, or make it again with -subj /CN=%s", cn, name, name)
	}
	var dns []string
	for _, d := range csr.DNSNames {
		if !strings.EqualFold(d, name) {
			return nil, fmt.Errorf("the request asks for the DNS name %q: a client certificate carries at most DNS:%s", d, name)
		}
		if len(dns) == 0 {
			dns = append(dns, name)
		}
	}
	var other []string
	for _, ip := range csr.IPAddresses {
		other = append(other, "IP:"+ip.String())
	}
	for _, u := range csr.URIs {
		other = append(other, "URI:"+u.String())
	}
	for _, e := range csr.EmailAddresses {
		other = append(other, "email:"+e)
	}
	if len(other) > 0 {
		return nil, fmt.Errorf("the request asks for %s: a client certificate carries no IP address, URI or e-mail address", strings.Join(other, ", "))
	}
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidBasicConstraints) {
			continue
		}
		var bc struct {
			IsCA       bool `asn1:"optional"`
			MaxPathLen int  `asn1:"optional,default:-1"`
		}
		if rest, err := asn1.Unmarshal(ext.Value, &bc); err != nil || len(rest) > 0 {
			return nil, errors.New("the request's basicConstraints extension does not parse")
		}
		if bc.IsCA {
			return nil, errors.New("the request asks for CA:TRUE: a client certificate cannot be a CA")
		}
	}
	return dns, checkCSRKey(csr.PublicKey)
}

func checkCSRKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch {
		case k.N.BitLen() < 2048:
			return fmt.Errorf("the request's key is RSA %d: use at least 2048 bits", k.N.BitLen())
		case k.N.BitLen() > 8192:
			// Go's TLS refuses client keys above 8192 bits: such a
			// certificate could never connect.
			return fmt.Errorf("the request's key is RSA %d: TLS servers (this one too) refuse client keys over 8192 bits; use 2048 to 4096", k.N.BitLen())
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
	}
	return fmt.Errorf("the request's key is %s: use RSA (2048 bits or more) or ECDSA P-256, P-384 or P-521", KeyTypeOf(pub))
}
