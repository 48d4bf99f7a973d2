package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// backdate is how far NotBefore is set in the past, so that a host whose
// clock is a little behind still accepts a certificate made just now.
const backdate = 5 * time.Minute

// Lifetimes of what init creates.
const (
	RootDays          = 3650 // ten years, as the old TPA CA
	IntermediateDays  = 1825 // five years; it only signs short-lived server certs
	DefaultServerDays = 90   // renewed by the proxy at a third of its lifetime
	DefaultClientDays = 365
)

// NewSerial returns a random positive 128-bit serial number (CA/B forum
// baseline asks for at least 64 bits of randomness).
func NewSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("making a serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func validity(now time.Time, days int) (time.Time, time.Time) {
	return now.Add(-backdate), now.Add(Days(days))
}

// Days is a lifetime of n days.
func Days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// rootTemplate is the cluster CA: CN=<cluster>.CA as TPA names it. It may
// sign one level of intermediates (MaxPathLen 1) plus leaves, certificates
// and CRLs.
func rootTemplate(cluster string, now time.Time, serial *big.Int) *x509.Certificate {
	notBefore, notAfter := validity(now, RootDays)
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cluster + ".CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// intermediateTemplate can only issue server certificates for this host:
//   - MaxPathLenZero: it signs leaves only, never another CA;
//   - ExtKeyUsage serverAuth: verifiers (Go, OpenSSL) refuse any client
//     certificate that chains through it, so a compromised daemon holding
//     this key cannot mint client certificates;
//   - name constraints, critical: only this host's names and addresses.
func intermediateTemplate(cluster string, hosts []string, ips []net.IP, now time.Time, serial *big.Int) *x509.Certificate {
	notBefore, notAfter := validity(now, IntermediateDays)
	ranges := make([]*net.IPNet, 0, len(ips))
	for _, ip := range ips {
		bits := 8 * len(ip)
		if v4 := ip.To4(); v4 != nil {
			ip, bits = v4, 32
		}
		ranges = append(ranges, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
	}
	tmpl := &x509.Certificate{
		SerialNumber:                serial,
		Subject:                     pkix.Name{CommonName: cluster + ".server-CA"},
		NotBefore:                   notBefore,
		NotAfter:                    notAfter,
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         hosts,
		PermittedIPRanges:           ranges,
	}
	if len(ranges) == 0 {
		// An empty permitted list means "any address": exclude them all.
		tmpl.ExcludedIPRanges = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
	}
	return tmpl
}

// ServerTemplate is a TLS server certificate: CN is the first host name
// (what the old setup used), the SANs every name and address clients use.
func ServerTemplate(hosts []string, ips []net.IP, lifetime time.Duration, now time.Time, serial *big.Int) *x509.Certificate {
	// Backdate for clock skew, but not by more than a tenth of a short
	// lifetime, or the certificate would be due for renewal at once.
	notBefore, notAfter := now.Add(-min(backdate, lifetime/10)), now.Add(lifetime)
	cn := ""
	if len(hosts) > 0 {
		cn = hosts[0]
	} else if len(ips) > 0 {
		cn = ips[0].String()
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		// DigitalSignature covers ECDHE with either key kind;
		// KeyEncipherment is only meaningful for RSA keys and is added
		// by Authority.Sign for them.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              hosts,
		IPAddresses:           ips,
	}
}

// clientTemplate is a TLS client certificate for the service called name:
// the proxy identifies clients by CN.
func clientTemplate(name string, days int, now time.Time, serial *big.Int) *x509.Certificate {
	notBefore, notAfter := validity(now, days)
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
}
