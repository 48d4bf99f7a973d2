package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// InitOptions says what init sets up.
type InitOptions struct {
	Layout
	Cluster   string   // CN of the root is Cluster + ".CA"
	Hostnames []string // server cert CN (first) and DNS SANs; at least one
	IPs       []net.IP // server cert IP SANs
	// DefaultHostnames and DefaultIPs say Hostnames and IPs are this
	// machine's defaults, not names asked for: on a PKI set up before they
	// add nothing, and the names of an adopted server certificate come
	// before them. Names asked for are added to what an existing PKI
	// covers, and an existing server certificate must cover them.
	DefaultHostnames bool
	DefaultIPs       bool
	KeyType          KeyType // for every key init generates
	CACertFile       string  // adopt this CA instead of creating one ...
	CAKeyFile        string  // ... with this key (both or neither)
	ServerDays       int
	ClientDays       int
	Now              func() time.Time // nil: time.Now
}

// Action is what init did about one file.
type Action string

// Actions in an init report.
const (
	Created  Action = "created"
	Kept     Action = "kept"
	Imported Action = "imported"
	Skipped  Action = "skipped"
)

// Step is one line of an init report.
type Step struct {
	Action Action
	What   string
	Path   string
	Note   string
}

// Validate checks the options before anything is written.
func (o *InitOptions) Validate() error {
	if o.TPADir == "" || o.StateDir == "" {
		return errors.New("both the TPA directory and the state directory must be set")
	}
	if err := CheckName("cluster name", o.Cluster); err != nil {
		return fieldError("Cluster", err)
	}
	if len(o.Hostnames) == 0 {
		return fieldErrorf("Hostnames", "at least one host name is needed for the server certificate")
	}
	for _, h := range o.Hostnames {
		if err := CheckHostname(h); err != nil {
			return fieldError("Hostnames", err)
		}
	}
	if _, err := ParseKeyType(string(o.KeyType)); err != nil {
		return fieldError("KeyType", err)
	}
	if (o.CACertFile == "") != (o.CAKeyFile == "") {
		return fieldErrorf("CACertFile", "the CA certificate and its key go together: give both to adopt an existing CA")
	}
	if o.ServerDays < 1 {
		return fieldErrorf("ServerDays", "a lifetime of %d days: it must be at least 1", o.ServerDays)
	}
	if o.ClientDays < 1 {
		return fieldErrorf("ClientDays", "a lifetime of %d days: it must be at least 1", o.ClientDays)
	}
	return nil
}

// initRun carries the state of one init.
type initRun struct {
	o      InitOptions
	now    time.Time
	steps  []Step
	recs   []Record
	known  map[string]bool // SHA-256 of certificates already in the inventory
	roots  []Record        // the cluster CA as the inventory recorded it
	root   *x509.Certificate
	ca     *Authority // nil when the CA key is not on this host
	server *Authority // the intermediate; nil likewise
	// hosts and ips are every name the server certificate must cover: those
	// recorded before, an adopted certificate's, and those asked for.
	hosts   []string
	ips     []net.IP
	oldMeta *Meta    // nil on a first run
	added   []string // names this run adds to what was recorded
	// asked are the names asked for (not defaults): an existing server
	// certificate that leaves one out is replaced. Others it leaves out
	// are covered by the proxy's next renewal.
	askedHosts []string
	askedIPs   []net.IP
}

// Init creates what is missing of the PKI, adopts what an older setup left
// in the TPA directory and keeps everything that exists. The only files it
// ever replaces are the server certificate and the intermediate, when they
// leave out a name asked for (or the server certificate expired), and then
// the old ones stay as .old. It returns what it did, file by file. Running
// it twice changes nothing the second time.
func Init(o InitOptions) ([]Step, error) {
	asked := o.KeyType
	o.KeyType = keyTypeFor(o)
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.CACertFile != "" {
		// A CA offered for adoption that cannot be used (another's key,
		// a key others can read) stops init before anything is written.
		if _, err := LoadAuthority(o.CACertFile, o.CAKeyFile); err != nil {
			return nil, err
		}
	}
	for _, dir := range []string{o.StateDir, o.TPADir, o.CADir()} {
		if err := EnsureDir(dir); err != nil {
			return nil, err
		}
	}
	r := &initRun{o: o, now: time.Now()}
	if o.Now != nil {
		r.now = o.Now()
	}
	if asked != "" && asked != o.KeyType {
		r.step(LeftAlone, "key type", o.Meta(), fmt.Sprintf("stays %s, chosen when this PKI was set up; --key-type %s is for a new PKI", o.KeyType, asked))
	}
	err := withLock(o.Layout, func() error {
		inv, err := ReadInventory(o.Layout)
		if err != nil {
			return err
		}
		r.known = make(map[string]bool, len(inv))
		for _, rec := range inv {
			r.known[rec.SHA256] = true
			if rec.Kind == KindRoot {
				r.roots = append(r.roots, rec)
			}
		}
		for _, step := range []func() error{r.rootCA, r.rootCopies, r.names, r.intermediate, r.serverCert, r.testClient, r.adoptClients, r.meta, r.crl} {
			if err := step(); err != nil {
				return err
			}
		}
		if len(r.recs) == 0 {
			return nil
		}
		return addRecords(o.Layout, r.recs...)
	})
	return r.steps, err
}

// keyTypeFor is the key type of every key init generates: the one
// recorded by the first init; on a first init, the one asked for, else
// the kind of the CA being adopted (RSA 2048 for an RSA CA such as
// TPA's, so that RSA-only clients keep working and serve adds an ECDSA
// companion), else DefaultKeyType.
func keyTypeFor(o InitOptions) KeyType {
	if m, err := ReadMeta(o.Layout); err == nil && m.KeyType != "" {
		return m.KeyType
	}
	if o.KeyType != "" {
		return o.KeyType
	}
	caFile := o.CACertFile
	if caFile == "" {
		caFile = o.RootCert()
	}
	if ca, err := LoadCert(caFile); err == nil {
		switch pub := ca.PublicKey.(type) {
		case *rsa.PublicKey:
			return RSA2048
		case *ecdsa.PublicKey:
			if pub.Curve == elliptic.P384() {
				return ECDSAP384
			}
		}
	}
	return DefaultKeyType
}

func (r *initRun) step(a Action, what, path, note string) {
	r.steps = append(r.steps, Step{Action: a, What: what, Path: path, Note: note})
}

// recordAdopted records cert as adopted unless the inventory knows it, and
// reports whether it did.
func (r *initRun) recordAdopted(name string, kind Kind, cert *x509.Certificate, path string) bool {
	rec := NewRecord(name, kind, cert, path, r.now)
	if r.known[rec.SHA256] {
		return false
	}
	rec.Adopted = true
	r.known[rec.SHA256] = true
	r.recs = append(r.recs, rec)
	return true
}

// record adds cert to the inventory unless it is there already.
func (r *initRun) record(name string, kind Kind, cert *x509.Certificate, path string) {
	rec := NewRecord(name, kind, cert, path, r.now)
	if !r.known[rec.SHA256] {
		r.known[rec.SHA256] = true
		r.recs = append(r.recs, rec)
	}
}

// rootCA finds, adopts or creates the cluster CA.
func (r *initRun) rootCA() error {
	l := r.o.Layout
	var given *Authority
	if r.o.CACertFile != "" {
		// Check the CA offered for adoption first, whatever is set up.
		var err error
		if given, err = LoadAuthority(r.o.CACertFile, r.o.CAKeyFile); err != nil {
			return err
		}
	}
	haveKey, err := exists(l.CAKey())
	if err != nil {
		return err
	}
	haveCert, err := exists(l.CAStateCert())
	if err != nil {
		return err
	}
	switch {
	case haveKey != haveCert:
		return fmt.Errorf("incomplete CA in %q: one of root.crt and root.key is missing; restore it from a backup (nothing was changed)", l.CADir())
	case haveKey:
		ca, err := LoadAuthority(l.CAStateCert(), l.CAKey())
		if err != nil {
			return err
		}
		if given != nil && !bytes.Equal(given.Cert.Raw, ca.Cert.Raw) {
			return fmt.Errorf("a different CA (%s) is already set up in %q; refusing to replace it", ca.Cert.Subject, l.CADir())
		}
		r.ca, r.root = ca, ca.Cert
		r.step(Kept, "cluster CA", l.CAKey(), "")
	case given != nil:
		if err := r.writeCA(given); err != nil {
			return err
		}
		r.ca, r.root = given, given.Cert
		r.step(Imported, "cluster CA", l.CAKey(), "from "+r.o.CACertFile)
		r.recordAdopted("root", KindRoot, r.root, l.CAStateCert())
	default:
		return r.adoptOrCreateRoot()
	}
	r.record("root", KindRoot, r.root, l.CAStateCert())
	return nil
}

// sameRoot refuses a root.crt that is not the cluster CA this host
// recorded when it first adopted or created it: a root.crt someone
// replaced must not become the CA that every client and the system trust
// store trust.
func (r *initRun) sameRoot(root *x509.Certificate) error {
	if len(r.roots) == 0 {
		return nil
	}
	sum := sha256.Sum256(root.Raw)
	for _, rec := range r.roots {
		if rec.SHA256 == hex.EncodeToString(sum[:]) {
			return nil
		}
	}
	return fmt.Errorf("%s (%s) is not the cluster CA this host recorded (%s, sha256 %s): restore root.crt from a backup; nothing was changed",
		r.o.RootCert(), root.Subject, r.roots[0].Subject, r.roots[0].SHA256)
}

// adoptOrCreateRoot keeps a root.crt that an older setup left in the TPA
// directory (without its key: this host can then verify but not issue), or
// creates a new CA.
func (r *initRun) adoptOrCreateRoot() error {
	l := r.o.Layout
	haveTPARoot, err := exists(l.RootCert())
	if err != nil {
		return err
	}
	if haveTPARoot {
		root, err := LoadCert(l.RootCert())
		if err != nil {
			return err
		}
		if err := r.sameRoot(root); err != nil {
			return err
		}
		r.root = root
		note := "adopted without its key: this host can verify clients but not issue certificates"
		if tpaKey := l.KeyIn(l.TPADir, "CA"); regularFile(tpaKey) {
			if key, err := LoadKey(tpaKey); err == nil && KeyMatches(root, key) {
				note += fmt.Sprintf("; to issue here, run init --ca-cert %s --ca-key %s", l.CACert(), tpaKey)
			} else {
				r.step(LeftAlone, "CA key", tpaKey, "not the key of the cluster CA "+root.Subject.String())
			}
		}
		r.step(Kept, "cluster CA certificate", l.RootCert(), note)
		r.recordAdopted("root", KindRoot, root, l.RootCert())
		return nil
	}
	ca, err := newRoot(r.o.Cluster, r.o.KeyType, r.now)
	if err != nil {
		return err
	}
	if err := r.writeCA(ca); err != nil {
		return err
	}
	r.ca, r.root = ca, ca.Cert
	r.step(Created, "cluster CA", l.CAKey(), ca.Cert.Subject.String())
	r.record("root", KindRoot, r.root, l.CAStateCert())
	return nil
}

// writeCA stores the CA key (root-only) and certificate in the state dir.
func (r *initRun) writeCA(ca *Authority) error {
	keyPEM, err := EncodeKey(ca.Key)
	if err != nil {
		return err
	}
	if err := WriteNew(r.o.CAKey(), keyPEM, KeyMode, nil); err != nil {
		return err
	}
	return WriteNew(r.o.CAStateCert(), EncodeCerts(ca.Cert), CertMode, nil)
}

// rootCopies makes sure root.crt and CA.crt in the TPA dir hold the CA.
func (r *initRun) rootCopies() error {
	for _, path := range []string{r.o.RootCert(), r.o.CACert()} {
		have, err := exists(path)
		if err != nil {
			return err
		}
		if !have {
			if err := WriteNew(path, EncodeCerts(r.root), CertMode, nil); err != nil {
				return err
			}
			r.step(Created, "CA certificate copy", path, "")
			continue
		}
		cert, err := LoadCert(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(cert.Raw, r.root.Raw) {
			return fmt.Errorf("%q holds a different CA (%s) than the cluster CA (%s); move it away or adopt it with --ca-cert/--ca-key", path, cert.Subject, r.root.Subject)
		}
		if !slices.ContainsFunc(r.steps, func(s Step) bool { return s.Path == path }) {
			r.step(Kept, "CA certificate copy", path, "") // once a file: root.crt may have its line already
		}
	}
	return nil
}

// intermediate finds or creates the server-only intermediate CA.
func (r *initRun) intermediate() error {
	l := r.o.Layout
	if r.ca == nil {
		r.step(Skipped, "server intermediate CA", l.IntermediateCert(), "the CA key is not on this host")
		return nil
	}
	kind, err := pairState(l.IntermediateCert(), l.IntermediateKey())
	if err != nil {
		return err
	}
	switch kind {
	case pairBoth:
		inter, err := LoadAuthority(l.IntermediateCert(), l.IntermediateKey())
		if err != nil {
			return err
		}
		if err := inter.Cert.CheckSignatureFrom(r.root); err != nil {
			return fmt.Errorf("intermediate %q is not signed by the cluster CA: %w", l.IntermediateCert(), err)
		}
		if missing := notPermitted(inter.Cert, r.hosts, r.ips); len(missing) > 0 {
			// Its name constraints leave out a name the server
			// certificate must cover: a new intermediate, the old kept.
			for _, p := range []string{l.IntermediateCert(), l.IntermediateKey()} {
				if err := keepOld(p); err != nil {
					return err
				}
			}
			if inter, err = r.ca.newIntermediate(r.o.Cluster, r.hosts, r.ips, r.o.KeyType, r.now); err != nil {
				return err
			}
			if err := replacePair(l.IntermediateCert(), l.IntermediateKey(), EncodeCerts(inter.Cert), inter.Key, nil); err != nil {
				return err
			}
			r.step(Replaced, "server intermediate CA", l.IntermediateCert(), fmt.Sprintf("its name constraints left out %s; the new one may issue for %s (old one kept as .old; restart the proxy or send it SIGHUP)",
				strings.Join(missing, ", "), describeNames(r.hosts, r.ips)))
		} else {
			r.step(Kept, "server intermediate CA", l.IntermediateCert(), "")
		}
		r.server = inter
	case pairNone:
		inter, err := r.ca.newIntermediate(r.o.Cluster, r.hosts, r.ips, r.o.KeyType, r.now)
		if err != nil {
			return err
		}
		if err := writePair(l.IntermediateCert(), l.IntermediateKey(), EncodeCerts(inter.Cert), inter.Key, nil); err != nil {
			return err
		}
		r.server = inter
		r.step(Created, "server intermediate CA", l.IntermediateCert(), "may only issue server certificates for "+describeNames(r.hosts, r.ips))
	default:
		return incompletePair(l.IntermediateCert(), l.IntermediateKey())
	}
	r.record("intermediate", KindIntermediate, r.server.Cert, l.IntermediateCert())
	return nil
}

// serverCert finds, replaces or creates pg-backup-api.crt/.key. An
// existing certificate is kept while it is valid and covers every name;
// otherwise, where the intermediate is, a new one is issued and the old
// pair kept as .old; without it, init says what to do.
func (r *initRun) serverCert() error {
	l := r.o.Layout
	kind, err := pairState(l.ServerCert(), l.ServerKey())
	if err != nil {
		return err
	}
	switch {
	case kind == pairBoth:
		return r.existingServerCert()
	case kind == pairCertOnly:
		return incompletePair(l.ServerCert(), l.ServerKey())
	case r.server == nil:
		return fmt.Errorf("no server certificate in %q and the CA key is not on this host: copy pg-backup-api.crt/.key from the old setup, or adopt the CA with --ca-cert/--ca-key", l.TPADir)
	}
	key, err := r.keyFor(kind, l.ServerKey())
	if err != nil {
		return err
	}
	cert, err := r.signServer(key)
	if err != nil {
		return err
	}
	if err := r.writeLeaf(kind, l.ServerCert(), l.ServerKey(), EncodeCerts(cert, r.server.Cert), key); err != nil {
		return err
	}
	r.step(Created, "server certificate", l.ServerCert(), describeNames(r.hosts, r.ips))
	r.record(ServerName, KindServer, cert, l.ServerCert())
	return nil
}

// existingServerCert keeps a valid server certificate that covers every
// name, and otherwise replaces it where the intermediate is, or says what
// to do where it is not.
func (r *initRun) existingServerCert() error {
	l := r.o.Layout
	cert, problem, err := r.checkServer()
	if err != nil {
		return err
	}
	action := Kept
	if r.recordAdopted(ServerName, KindServer, cert, l.ServerCert()) {
		action = Adopted
	}
	if problem == "" {
		r.step(action, "server certificate", l.ServerCert(), r.coverage(cert))
		return nil
	}
	if r.server == nil {
		r.step(action, "server certificate", l.ServerCert(), problem+"; the CA key is not on this host: issue one for "+
			describeNames(r.hosts, r.ips)+" where it is, copy it here and send the proxy SIGHUP")
		return nil
	}
	return r.replaceServerCert(problem)
}

// coverage says which names a kept server certificate covers and, of the
// names recorded for the server, which it does not and what happens to
// them: with the intermediate, serve issues a certificate for every name;
// without it, the certificate is served as it is.
func (r *initRun) coverage(cert *x509.Certificate) string {
	hosts, ips, _ := certNames(cert)
	note := "covers " + describeNames(hosts, ips)
	missing := missingNames(cert, r.hosts, r.ips)
	switch {
	case len(missing) == 0:
	case r.server != nil:
		note += "; serve will issue one that also covers " + strings.Join(missing, ", ")
	default:
		note += "; not " + strings.Join(missing, ", ") + ", recorded for later: the CA key is not on this host, so serve uses this one as it is"
	}
	return note
}

// replaceServerCert keeps the old pair as .old and issues a new one for
// every name; problem says what was wrong with the old one.
func (r *initRun) replaceServerCert(problem string) error {
	l := r.o.Layout
	for _, p := range []string{l.ServerCert(), l.ServerKey()} {
		if err := keepOld(p); err != nil {
			return err
		}
	}
	key, err := r.o.KeyType.Generate()
	if err != nil {
		return err
	}
	newCert, err := r.signServer(key)
	if err != nil {
		return err
	}
	if err := replacePair(l.ServerCert(), l.ServerKey(), EncodeCerts(newCert, r.server.Cert), key, nil); err != nil {
		return err
	}
	r.step(Replaced, "server certificate", l.ServerCert(), problem+"; the new one covers "+describeNames(r.hosts, r.ips)+" (old pair kept as .old)")
	r.record(ServerName, KindServer, newCert, l.ServerCert())
	return nil
}

func (r *initRun) signServer(key crypto.Signer) (*x509.Certificate, error) {
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	return r.server.Sign(ServerTemplate(r.hosts, r.ips, Days(r.o.ServerDays), r.now, serial), key.Public())
}

// checkServer loads the existing server pair. A pair that does not belong
// together or to this cluster is an error; one that expired or leaves out
// a name is returned with the problem.
func (r *initRun) checkServer() (*x509.Certificate, string, error) {
	l := r.o.Layout
	certs, err := LoadCerts(l.ServerCert())
	if err != nil {
		return nil, "", err
	}
	key, err := LoadKey(l.ServerKey())
	if err != nil {
		return nil, "", err
	}
	cert := certs[0]
	if !KeyMatches(cert, key) {
		return nil, "", fmt.Errorf("key %q does not belong to certificate %q", l.ServerKey(), l.ServerCert())
	}
	err = VerifyChain(certs, r.root, x509.ExtKeyUsageServerAuth, r.now)
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return cert, fmt.Sprintf("it expired on %s", cert.NotAfter.UTC().Format("2006-01-02")), nil
	case err != nil:
		return nil, "", fmt.Errorf("certificate %q: %w", l.ServerCert(), err)
	}
	if missing := missingNames(cert, r.askedHosts, r.askedIPs); len(missing) > 0 {
		return cert, "it does not cover " + strings.Join(missing, ", "), nil
	}
	return cert, "", nil
}

// names gathers every name the server certificate must cover: those
// recorded by an earlier init, those of a server certificate found in the
// TPA directory, and those asked for.
func (r *initRun) names() error {
	l := r.o.Layout
	meta, err := ReadMeta(l)
	if err == nil {
		r.oldMeta = meta
		r.hosts, r.ips = slices.Clone(meta.Hostnames), meta.ParsedIPs()
	} else if ok, _ := exists(l.Meta()); ok {
		return err
	}
	var foundHosts []string
	var foundIPs []net.IP
	// Names of the server certificate in place count even when it expired:
	// clients still use them.
	if certs, err := LoadCerts(l.ServerCert()); err == nil && signedByCluster(certs, r.root) {
		var skipped []string
		foundHosts, foundIPs, skipped = certNames(certs[0])
		if len(skipped) > 0 {
			r.step(LeftAlone, "server certificate names", l.ServerCert(), "not valid host names here: "+strings.Join(skipped, ", "))
		}
	}
	// On a first run, names asked for come first (the first is the CN),
	// then an adopted certificate's, then this machine's defaults. Later,
	// names are only added, never dropped; defaults add nothing.
	var addH, addIPs []string
	switch {
	case r.oldMeta == nil && r.o.DefaultHostnames:
		r.hosts, addH = mergeHosts(foundHosts, r.o.Hostnames)
	case r.oldMeta == nil:
		r.hosts, addH = mergeHosts(slices.Clone(r.o.Hostnames), foundHosts)
	default:
		var more []string
		r.hosts, addH = mergeHosts(r.hosts, foundHosts)
		if !r.o.DefaultHostnames {
			r.hosts, more = mergeHosts(r.hosts, r.o.Hostnames)
			addH = append(addH, more...)
		}
	}
	switch {
	case r.oldMeta == nil && r.o.DefaultIPs:
		r.ips, addIPs = mergeIPs(slices.Clone(foundIPs), r.o.IPs)
	case r.oldMeta == nil:
		r.ips, addIPs = mergeIPs(slices.Clone(r.o.IPs), foundIPs)
	default:
		var more []string
		r.ips, addIPs = mergeIPs(r.ips, foundIPs)
		if !r.o.DefaultIPs {
			r.ips, more = mergeIPs(r.ips, r.o.IPs)
			addIPs = append(addIPs, more...)
		}
	}
	r.added = append(addH, addIPs...)
	if !r.o.DefaultHostnames {
		r.askedHosts = r.o.Hostnames
	}
	if !r.o.DefaultIPs {
		r.askedIPs = r.o.IPs
	}
	if len(r.hosts) == 0 {
		return errors.New("at least one host name is needed for the server certificate")
	}
	return nil
}

// testClient finds or creates pg-backup-user.crt/.key, the client
// certificate operators test the API with.
func (r *initRun) testClient() error {
	l := r.o.Layout
	certPath, keyPath := l.CertIn(l.TPADir, TestClientName), l.KeyIn(l.TPADir, TestClientName)
	kind, err := pairState(certPath, keyPath)
	if err != nil {
		return err
	}
	switch {
	case kind == pairBoth:
		cert, err := r.checkPair(certPath, keyPath, x509.ExtKeyUsageClientAuth)
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			r.step(LeftAlone, "test client certificate", certPath, fmt.Sprintf("expired on %s: pgbapi-proxy issue-client --name %s --renew", invalid.Cert.NotAfter.UTC().Format("2006-01-02"), TestClientName))
			return nil
		}
		if err != nil {
			return err
		}
		if r.recordAdopted(TestClientName, KindClient, cert, certPath) {
			r.step(Adopted, "test client certificate", certPath, "CN="+cert.Subject.CommonName)
		} else {
			r.step(Kept, "test client certificate", certPath, "")
		}
		return nil
	case kind == pairCertOnly:
		return incompletePair(certPath, keyPath)
	case r.ca == nil:
		r.step(Skipped, "test client certificate", certPath, "the CA key is not on this host")
		return nil
	}
	key, err := r.keyFor(kind, keyPath)
	if err != nil {
		return err
	}
	cert, err := signClient(r.ca, TestClientName, r.o.ClientDays, key, r.now)
	if err != nil {
		return err
	}
	if err := r.writeLeaf(kind, certPath, keyPath, EncodeCerts(cert), key); err != nil {
		return err
	}
	r.step(Created, "test client certificate", certPath, "CN="+TestClientName)
	r.record(TestClientName, KindClient, cert, certPath)
	return nil
}

// meta records the settings init ran with, and every name added since.
func (r *initRun) meta() error {
	ips := make([]string, len(r.ips))
	for i, ip := range r.ips {
		ips[i] = ip.String()
	}
	m := Meta{Cluster: r.o.Cluster, Hostnames: r.hosts, IPs: ips, KeyType: r.o.KeyType, Created: r.now.UTC()}
	if old := r.oldMeta; old != nil {
		if len(r.added) == 0 {
			return nil
		}
		m.Cluster, m.KeyType, m.Created = old.Cluster, old.KeyType, old.Created
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if r.oldMeta == nil {
		return WriteNew(r.o.Meta(), data, CertMode, nil)
	}
	if err := Replace(r.o.Meta(), data, CertMode, nil); err != nil {
		return err
	}
	r.step(Updated, "PKI settings", r.o.Meta(), "names recorded for the server certificate: "+strings.Join(r.added, ", ")+" added")
	return nil
}

// checkPair loads an existing certificate and key, checks that they match
// and that the certificate chains to the cluster CA for usage.
func (r *initRun) checkPair(certPath, keyPath string, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	certs, err := LoadCerts(certPath)
	if err != nil {
		return nil, err
	}
	key, err := LoadKey(keyPath)
	if err != nil {
		return nil, err
	}
	if !KeyMatches(certs[0], key) {
		return nil, fmt.Errorf("key %q does not belong to certificate %q", keyPath, certPath)
	}
	if err := VerifyChain(certs, r.root, usage, r.now); err != nil {
		return nil, fmt.Errorf("certificate %q: %w", certPath, err)
	}
	return certs[0], nil
}

// keyFor returns the existing key (when only the key of a pair is there, as
// after an interrupted run) or a new one.
func (r *initRun) keyFor(kind pairKind, keyPath string) (crypto.Signer, error) {
	if kind == pairKeyOnly {
		return LoadKey(keyPath)
	}
	return r.o.KeyType.Generate()
}

func (r *initRun) writeLeaf(kind pairKind, certPath, keyPath string, certPEM []byte, key crypto.Signer) error {
	if kind == pairKeyOnly {
		return WriteNew(certPath, certPEM, CertMode, nil)
	}
	return writePair(certPath, keyPath, certPEM, key, nil)
}

// VerifyChain checks that certs[0] chains to root through certs[1:] for usage
// at now. Certificates without ExtKeyUsage (as an older openssl-made CA
// issued) are accepted for any usage, as Go and OpenSSL do.
func VerifyChain(certs []*x509.Certificate, root *x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return fmt.Errorf("does not verify against the cluster CA %s: %w", root.Subject, err)
	}
	return nil
}

func describeNames(hosts []string, ips []net.IP) string {
	s := fmt.Sprint(hosts)
	if len(ips) > 0 {
		s += fmt.Sprint(" ", ips)
	}
	return s
}

// crl signs the CRL for revocations recorded while the CA key was not on
// this host.
func (r *initRun) crl() error {
	if r.ca == nil {
		return nil
	}
	paths, err := catchUpCRL(r.o.Layout, r.ca, r.now)
	if err != nil {
		return fmt.Errorf("signing the CRL for the revocation record: %w", err)
	}
	for _, p := range paths {
		r.step(Created, "CRL", p, "signed for the revocations recorded without the CA key")
	}
	return nil
}

// regularFile reports whether path is a regular file (not a symbolic link).
func regularFile(path string) bool {
	info, err := os.Lstat(path)
	return err == nil && info.Mode().IsRegular()
}

// signedByCluster reports whether certs[0] was signed by root, directly or
// through certs[1] (validity and usage aside).
func signedByCluster(certs []*x509.Certificate, root *x509.Certificate) bool {
	if certs[0].CheckSignatureFrom(root) == nil {
		return true
	}
	return len(certs) > 1 && certs[0].CheckSignatureFrom(certs[1]) == nil && certs[1].CheckSignatureFrom(root) == nil
}
