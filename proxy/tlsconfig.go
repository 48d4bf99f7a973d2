package proxy

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"

	"github.com/pgbapi/pgbapi-proxy/pki"
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

// tlsConfigs hands every handshake the current TLS settings; reload swaps
// them (new client CA pool, new session ticket key) without a restart.
type tlsConfigs struct {
	layout  pki.Layout
	certs   certSource
	policy  *policy
	current atomic.Pointer[tls.Config]
}

func newTLSConfigs(l pki.Layout, certs certSource, p *policy) (*tlsConfigs, error) {
	t := &tlsConfigs{layout: l, certs: certs, policy: p}
	return t, t.reload()
}

// reload reads the cluster root again. On error the last good
// configuration stays in use.
func (t *tlsConfigs) reload() error {
	root, err := pki.LoadCert(t.layout.RootCert())
	if err != nil {
		return fmt.Errorf("loading the client CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	// A fresh ticket key, so that no session resumed after a reload skips
	// checks made against the new settings.
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   cipherSuites,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      pool,
		GetCertificate: t.certs.GetCertificate,
		NextProtos:     []string{"http/1.1"},
		// Runs after the chain verified: a revoked certificate fails the
		// handshake.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && t.policy.isRevoked(cs.PeerCertificates[0]) {
				return errRevoked
			}
			return nil
		},
	}
	cfg.SetSessionTicketKeys([][32]byte{key})
	t.current.Store(cfg)
	return nil
}

// serverConfig is what the listener uses: every handshake asks for the
// current settings.
func (t *tlsConfigs) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.current.Load(), nil
		},
	}
}

// clientName is the CN of a verified client certificate.
func clientName(state *tls.ConnectionState) string {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return ""
	}
	return state.VerifiedChains[0][0].Subject.CommonName
}
