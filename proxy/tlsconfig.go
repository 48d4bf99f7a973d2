package proxy

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

// cipherSuites are the TLS 1.2 suites offered: forward secrecy and AEAD
// only. TLS 1.3 suites are not configurable and all modern.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// errRevoked fails the handshake of a revoked client certificate.
var errRevoked = errors.New("the client certificate is revoked")

// snapshot is one Trust with the TLS settings built from it. The server
// keeps the current one behind a single atomic pointer: a handshake or a
// request never sees roots of one snapshot with revocations of another.
type snapshot struct {
	trust *Trust
	// tls is for clients that offer http/1.1 in ALPN (or no ALPN);
	// noALPN for clients that offer only other protocols (h2): they
	// get no ALPN answer and go on in HTTP/1.1, instead of a failed
	// handshake.
	tls, noALPN *tls.Config
	ticketKeys  [][32]byte
}

// newSnapshot builds the TLS settings for t. keep are ticket keys of the
// previous snapshot that may still decrypt tickets (on a timed rotation
// with the same trust; never across a trust change).
func newSnapshot(t *Trust, certs CertSource, keep [][32]byte) (*snapshot, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, r := range t.Roots {
		pool.AddCert(r)
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("making a session ticket key: %w", err)
	}
	s := &snapshot{trust: t, ticketKeys: append([][32]byte{key}, keep...)}
	s.tls = &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     cipherSuites,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        pool,
		GetCertificate:   certs.GetCertificate,
		NextProtos:       []string{"http/1.1"},
		VerifyConnection: s.verifyConnection,
	}
	s.tls.SetSessionTicketKeys(s.ticketKeys)
	s.noALPN = s.tls.Clone()
	s.noALPN.NextProtos = nil
	s.noALPN.SetSessionTicketKeys(s.ticketKeys)
	return s, nil
}

// verifyConnection runs after the chain verified, on full handshakes and
// on resumed sessions alike: a revoked or ambiguous certificate fails.
func (s *snapshot) verifyConnection(cs tls.ConnectionState) error {
	id, err := identityOf(cs)
	if err != nil {
		return err
	}
	if s.trust.IsRevoked(id.Serial) {
		return errRevoked
	}
	return nil
}

// configFor picks the settings for one ClientHello.
func (s *snapshot) configFor(hello *tls.ClientHelloInfo) *tls.Config {
	if len(hello.SupportedProtos) > 0 && !slices.Contains(hello.SupportedProtos, "http/1.1") {
		return s.noALPN
	}
	return s.tls
}

// listenerConfig is what the TLS listener uses: every handshake asks the
// server for the current snapshot's settings.
func (srv *Server) listenerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return srv.current.Load().configFor(hello), nil
		},
	}
}
