package pki

import "path/filepath"

// Default directories, as the packaged service and TPA use them.
const (
	DefaultTPADir   = "/etc/tpa/pg-backup-api"
	DefaultStateDir = "/var/lib/pgbapi-proxy"
)

// Names of the files the PKI keeps. The TPA directory holds what operators
// and other tools already know by name; the state directory holds what
// only this program needs.
const (
	RootCertName     = "root.crt" // cluster CA, in the TPA dir
	CACertName       = "CA.crt"   // the same certificate again, as TPA writes it
	ServerName       = "pg-backup-api"
	TestClientName   = "pg-backup-user"
	caSubdir         = "ca" // state dir: the root CA, root-only
	intermediateName = "intermediate"
	inventoryName    = "inventory.json"
	lockName         = "inventory.lock"
	metaName         = "pki.json"
)

// Layout is where the PKI lives on disk. Nothing in this package has a
// path of its own: every file is found through a Layout.
type Layout struct {
	TPADir   string // certificates and keys that operators use
	StateDir string // the CA, the intermediate, the inventory
}

// RootCert is the cluster CA certificate in the TPA directory.
func (l Layout) RootCert() string { return filepath.Join(l.TPADir, RootCertName) }

// CACert is the second copy of the CA certificate in the TPA directory.
func (l Layout) CACert() string { return filepath.Join(l.TPADir, CACertName) }

// CADir holds the root CA's own certificate and key; root-only.
func (l Layout) CADir() string { return filepath.Join(l.StateDir, caSubdir) }

// CAKey is the root CA's private key.
func (l Layout) CAKey() string { return filepath.Join(l.CADir(), "root.key") }

// CAStateCert is the state directory's copy of the root certificate, kept
// next to its key.
func (l Layout) CAStateCert() string { return filepath.Join(l.CADir(), "root.crt") }

// IntermediateCert is the server-only intermediate CA certificate.
func (l Layout) IntermediateCert() string {
	return filepath.Join(l.StateDir, intermediateName+".crt")
}

// IntermediateKey is the server-only intermediate CA key.
func (l Layout) IntermediateKey() string {
	return filepath.Join(l.StateDir, intermediateName+".key")
}

// ServerCert is the server certificate followed by its chain.
func (l Layout) ServerCert() string { return l.CertIn(l.TPADir, ServerName) }

// ServerKey is the server certificate's key.
func (l Layout) ServerKey() string { return l.KeyIn(l.TPADir, ServerName) }

// CertIn is NAME.crt in dir.
func (Layout) CertIn(dir, name string) string { return filepath.Join(dir, name+".crt") }

// KeyIn is NAME.key in dir.
func (Layout) KeyIn(dir, name string) string { return filepath.Join(dir, name+".key") }

// Inventory is the record of every certificate issued here.
func (l Layout) Inventory() string { return filepath.Join(l.StateDir, inventoryName) }

// Lock serialises commands that change the PKI.
func (l Layout) Lock() string { return filepath.Join(l.StateDir, lockName) }

// Meta records how the PKI was set up (cluster name, host names, key type).
func (l Layout) Meta() string { return filepath.Join(l.StateDir, metaName) }
