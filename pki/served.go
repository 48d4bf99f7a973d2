package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The server certificate changes hands in two steps, so that the service
// that renews it never writes anything root relies on:
//
//  1. serve (the service account) stores each pair it obtains in its own
//     directory, the server store (StoreServedCert);
//  2. root copies the pair from there to pg-backup-api.crt/.key in the TPA
//     directory and records it in the inventory (ExportServedCert, which
//     `pgbapi-proxy sync-server-cert` runs, started by a systemd path unit
//     when the stored certificate changes). Root reads the store without
//     following links and copies only a pair that verifies as a server
//     certificate of this PKI.

// serverStoreName is the service's own directory in the state directory.
const serverStoreName = "server"

// maxServedFile bounds what root reads from the service's store.
const maxServedFile = 1 << 20

// ServerStore is the service's own directory: certmagic's store and the
// pair it serves now. Nothing in it is trusted without a check.
func (l Layout) ServerStore() string { return filepath.Join(l.StateDir, serverStoreName) }

// ServedCert is the certificate the service serves now, in its store.
func (l Layout) ServedCert() string { return l.CertIn(l.ServerStore(), ServerName) }

// ServedKey is the key of ServedCert.
func (l Layout) ServedKey() string { return l.KeyIn(l.ServerStore(), ServerName) }

// StoreServedCert writes the pair the service serves now into its store,
// the key first, each file atomically.
func StoreServedCert(l Layout, certPEM, keyPEM []byte) error {
	if _, _, err := matchingPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("storing the served certificate: %w", err)
	}
	if err := EnsureDir(l.ServerStore()); err != nil {
		return err
	}
	if err := Replace(l.ServedKey(), keyPEM, KeyMode, nil); err != nil {
		return err
	}
	return Replace(l.ServedCert(), certPEM, CertMode, nil)
}

// ExportServedCert copies the served pair from the store to
// pg-backup-api.crt/.key in the TPA directory (the pair it replaces kept
// as .old) and records it in the inventory, when it is a server
// certificate the server-only intermediate issued, valid now. It reports whether it
// copied anything: a pair already in place is left as it is.
func ExportServedCert(l Layout, now time.Time) (bool, error) {
	certPEM, err := readNoFollow(l.ServedCert())
	if err != nil {
		return false, err
	}
	keyPEM, err := readNoFollow(l.ServedKey())
	if err != nil {
		return false, err
	}
	// The service's own key stays the service's in the TPA directory
	// (it reads it there when it restarts); a directory of root's keeps
	// it from replacing anything else.
	keyOwner := ownerOfStore(l.ServedKey())
	certs, key, err := matchingPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("%s: %w", l.ServedCert(), err)
	}
	root, err := LoadCert(l.RootCert())
	if err != nil {
		return false, err
	}
	inter, err := LoadCert(l.IntermediateCert())
	if err != nil {
		return false, fmt.Errorf("the server intermediate: %w", err)
	}
	// Only what the server-only intermediate signed: never, say, a client
	// certificate of the cluster CA that the store was made to hold.
	if err := certs[0].CheckSignatureFrom(inter); err != nil {
		return false, fmt.Errorf("%s is not a server certificate of this PKI (not issued by %s), so it is not copied", l.ServedCert(), inter.Subject)
	}
	if err := VerifyChain([]*x509.Certificate{certs[0], inter}, root, x509.ExtKeyUsageServerAuth, now); err != nil {
		return false, fmt.Errorf("%s is not a server certificate of this PKI, so it is not copied: %w", l.ServedCert(), err)
	}
	// What is copied is made here from what was checked: the leaf and the
	// intermediate, the key re-encoded; nothing else the store's file
	// holds (more certificates, text, another key) reaches the TPA
	// directory or the clients.
	certPEM = EncodeCerts(certs[0], inter)
	if keyPEM, err = EncodeKey(key); err != nil {
		return false, err
	}
	if current, err := os.ReadFile(l.ServerCert()); err == nil && bytes.Equal(current, certPEM) {
		return false, nil
	}
	err = withLock(l, func() error {
		if err := addRecords(l, NewRecord(ServerName, KindServer, certs[0], l.ServerCert(), now)); err != nil {
			return err
		}
		for _, p := range []string{l.ServerCert(), l.ServerKey()} {
			if err := keepOld(p); err != nil {
				return err
			}
		}
		if err := Replace(l.ServerKey(), keyPEM, KeyMode, keyOwner); err != nil {
			return err
		}
		return Replace(l.ServerCert(), certPEM, CertMode, nil)
	})
	return err == nil, err
}

// ownerOfStore is the owner of a file in the service's store, when this
// process is root and the file is not root's: the one account root may
// give the service's own key back to. A link lends nothing.
func ownerOfStore(path string) *Owner {
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() || os.Geteuid() != 0 {
		return nil
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return &Owner{UID: int(st.Uid), GID: int(st.Gid)}
}

// matchingPair parses a certificate chain and the key of its leaf.
func matchingPair(certPEM, keyPEM []byte) ([]*x509.Certificate, crypto.Signer, error) {
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !KeyMatches(certs[0], key) {
		return nil, nil, errors.New("the key does not belong to the certificate")
	}
	return certs, key, nil
}

// readNoFollow reads a regular file without following a link at path,
// up to maxServedFile bytes: what root reads from a directory another
// account can write.
func readNoFollow(path string) ([]byte, error) {
	return ReadBounded(path, false, maxServedFile, nil)
}
