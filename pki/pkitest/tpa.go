// Package pkitest builds, for tests, the PKI that TPA (EDB's Ansible tool)
// leaves on a barman host, with the real openssl and the same shape as
// Ansible's community.crypto modules make it: RSA 4096 keys in PKCS#1 PEM
// ("BEGIN RSA PRIVATE KEY", mode 0600), a CA "CN=<cluster>.CA" with SAN
// DNS:<cluster>.CA and basicConstraints critical CA:TRUE but no keyUsage
// and no extendedKeyUsage, and leaves with CA:FALSE, SAN DNS:<CN>, no
// keyUsage, no extendedKeyUsage and random serials.
//
// RSA 4096 keys are slow to make, so each key is generated once per test
// binary and every fixture gets fresh copies of the files.
package pkitest

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
)

// Options shape one TPA host. The zero value is the common case: cluster
// "tpa", host "barman1", clients pg-backup-user and pemagent-barman1.
type Options struct {
	Cluster string // the CA is CN=<Cluster>.CA; default "tpa"
	Host    string // the inventory host name, the server certificate's CN; default "barman1"
	// ExtraDNS and ExtraIPs are added to the server certificate's SAN
	// after DNS:<Host> (e.g. "barman1.example.com", "10.1.2.3").
	ExtraDNS []string
	ExtraIPs []string
	// Clients are the client pairs in the TPA directory; nil means
	// pg-backup-user and pemagent-<Host>.
	Clients []string
	// KeyBits is the RSA key size; 0 means 4096, as TPA makes them.
	KeyBits int
}

// TPAFixture is one TPA-shaped host, in a fresh temporary directory.
type TPAFixture struct {
	// Dir is the TPA directory (/etc/tpa/pg-backup-api on a host): root.crt,
	// CA.crt, pg-backup-api.crt/.key and one pair per client. No CA key.
	Dir string
	// ControllerDir is the TPA controller's <cluster_dir>/ssl: CA.crt and
	// CA.key. It is outside Dir, as on a real deployment.
	ControllerDir string
	CACert        string // ControllerDir/CA.crt
	CAKey         string // ControllerDir/CA.key
	Cluster       string
	Host          string
	Clients       []string
	keyBits       int
}

// Cert is NAME.crt in the TPA directory.
func (f TPAFixture) Cert(name string) string { return filepath.Join(f.Dir, name+".crt") }

// Key is NAME.key in the TPA directory.
func (f TPAFixture) Key(name string) string { return filepath.Join(f.Dir, name+".key") }

// ServerCert is pg-backup-api.crt.
func (f TPAFixture) ServerCert() string { return f.Cert("pg-backup-api") }

// ServerKey is pg-backup-api.key.
func (f TPAFixture) ServerKey() string { return f.Key("pg-backup-api") }

// RootCert is root.crt.
func (f TPAFixture) RootCert() string { return filepath.Join(f.Dir, "root.crt") }

// TPAHost makes a TPA-shaped host for t. It needs openssl (it skips, or
// fails under CI=true, without it).
func TPAHost(t testing.TB, o Options) TPAFixture {
	t.Helper()
	needs.Command(t, "openssl", "openssl")
	if o.Cluster == "" {
		o.Cluster = "tpa"
	}
	if o.Host == "" {
		o.Host = "barman1"
	}
	if o.Clients == nil {
		o.Clients = []string{"pg-backup-user", "pemagent-" + o.Host}
	}
	if o.KeyBits == 0 {
		o.KeyBits = 4096
	}
	base := t.TempDir()
	f := TPAFixture{
		Dir:           filepath.Join(base, "etc-tpa-pg-backup-api"),
		ControllerDir: filepath.Join(base, "controller-ssl"),
		Cluster:       o.Cluster, Host: o.Host, Clients: o.Clients, keyBits: o.KeyBits,
	}
	f.CACert, f.CAKey = filepath.Join(f.ControllerDir, "CA.crt"), filepath.Join(f.ControllerDir, "CA.key")
	for _, d := range []string{f.Dir, f.ControllerDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, f.CAKey, caKey(t, o.Cluster, o.KeyBits), 0o600)
	writeFile(t, f.CACert, caCert(t, o.Cluster, o.KeyBits), 0o644)
	writeFile(t, f.RootCert(), caCert(t, o.Cluster, o.KeyBits), 0o644)
	writeFile(t, filepath.Join(f.Dir, "CA.crt"), caCert(t, o.Cluster, o.KeyBits), 0o644)

	var ips []string
	for _, ip := range o.ExtraIPs {
		ips = append(ips, "IP:"+ip)
	}
	san := append([]string{"DNS:" + o.Host}, prefixed("DNS:", o.ExtraDNS)...)
	f.Leaf(t, "pg-backup-api", o.Host, append(san, ips...), 365)
	for _, c := range o.Clients {
		f.Client(t, c, 365)
	}
	return f
}

// Client adds NAME.crt/.key to the TPA directory, signed by the cluster CA
// as TPA signs client certificates (CN=NAME, SAN DNS:NAME). A negative
// days makes a certificate that has already expired.
func (f TPAFixture) Client(t testing.TB, name string, days int) {
	t.Helper()
	f.Leaf(t, name, name, []string{"DNS:" + name}, days)
}

// Leaf writes NAME.crt/.key to the TPA directory: CN=cn with the given
// subjectAltName entries ("DNS:x", "IP:1.2.3.4"), CA:FALSE, no keyUsage,
// no extendedKeyUsage, a random serial, valid for days (negative: already
// expired). The key is one of the cached RSA keys of f's size.
func (f TPAFixture) Leaf(t testing.TB, name, cn string, san []string, days int) {
	t.Helper()
	work := t.TempDir()
	key := filepath.Join(work, "leaf.key")
	writeFile(t, key, leafKey(t, name, f.keyBits), 0o600)
	caKeyFile := filepath.Join(work, "CA.key")
	writeFile(t, caKeyFile, caKey(t, f.Cluster, f.keyBits), 0o600)
	caCertFile := filepath.Join(work, "CA.crt")
	writeFile(t, caCertFile, caCert(t, f.Cluster, f.keyBits), 0o644)
	ext := filepath.Join(work, "ext.cnf")
	writeFile(t, ext, []byte(fmt.Sprintf("[leaf]\nbasicConstraints = CA:FALSE\nsubjectAltName = %s\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
		strings.Join(san, ","))), 0o644)
	csr := filepath.Join(work, "leaf.csr")
	out := filepath.Join(work, "leaf.crt")
	run(t, "req", "-new", "-config", reqConfig(t, work), "-key", key, "-subj", "/CN="+cn, "-out", csr)
	run(t, "x509", "-req", "-in", csr, "-CA", caCertFile, "-CAkey", caKeyFile, "-set_serial", randomSerial(t),
		"-days", fmt.Sprint(days), "-sha256", "-extfile", ext, "-extensions", "leaf", "-out", out)
	writeFile(t, f.Key(name), readFile(t, key), 0o600)
	writeFile(t, f.Cert(name), readFile(t, out), 0o644)
}

var (
	mu    sync.Mutex
	cache = map[string][]byte{} // generated keys and CA certificates, by what they are
)

// cached returns the bytes made by make once per test binary under id.
func cached(t testing.TB, id string, make func() []byte) []byte {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if b, ok := cache[id]; ok {
		return b
	}
	b := make()
	cache[id] = b
	return b
}

// rsaKey is a new RSA key of bits in PKCS#1 PEM, as Ansible writes them.
func rsaKey(t testing.TB, bits int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "k.key")
	run(t, "genrsa", "-traditional", "-out", path, fmt.Sprint(bits))
	return readFile(t, path)
}

func caKey(t testing.TB, cluster string, bits int) []byte {
	t.Helper()
	return cached(t, fmt.Sprintf("ca-key/%s/%d", cluster, bits), func() []byte { return rsaKey(t, bits) })
}

func leafKey(t testing.TB, name string, bits int) []byte {
	t.Helper()
	return cached(t, fmt.Sprintf("leaf-key/%s/%d", name, bits), func() []byte { return rsaKey(t, bits) })
}

// caCert is the cluster CA as TPA makes it: self-signed, 10 years,
// CN=<cluster>.CA, SAN DNS:<cluster>.CA, basicConstraints critical CA:TRUE,
// no keyUsage, no extendedKeyUsage.
func caCert(t testing.TB, cluster string, bits int) []byte {
	t.Helper()
	key := caKey(t, cluster, bits)
	return cached(t, fmt.Sprintf("ca-cert/%s/%d", cluster, bits), func() []byte {
		work := t.TempDir()
		keyFile, out := filepath.Join(work, "CA.key"), filepath.Join(work, "CA.crt")
		writeFile(t, keyFile, key, 0o600)
		ext := filepath.Join(work, "ca.cnf")
		writeFile(t, ext, []byte(fmt.Sprintf(`[req]
distinguished_name = dn
prompt = no
[dn]
CN = %s.CA
[ca]
basicConstraints = critical,CA:TRUE
subjectAltName = DNS:%s.CA
subjectKeyIdentifier = hash
`, cluster, cluster)), 0o644)
		run(t, "req", "-x509", "-new", "-config", ext, "-extensions", "ca", "-key", keyFile, "-sha256",
			"-days", "3650", "-set_serial", randomSerial(t), "-out", out)
		return readFile(t, out)
	})
}

// reqConfig is an openssl config with no default extensions, so that a CSR
// carries nothing the leaf's own extension section does not add.
func reqConfig(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "req.cnf")
	writeFile(t, path, []byte("[req]\ndistinguished_name = dn\n[dn]\n"), 0o644)
	return path
}

// randomSerial is a random positive serial of up to 159 bits, as
// Ansible's cryptography backend makes them, for -set_serial.
func randomSerial(t testing.TB) string {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		t.Fatal(err)
	}
	return "0x" + n.Add(n, big.NewInt(1)).Text(16)
}

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func prefixed(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
