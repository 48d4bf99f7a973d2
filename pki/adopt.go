package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Actions that only adoption reports.
const (
	Adopted   Action = "adopted"    // a certificate the cluster CA signed, now recorded
	LeftAlone Action = "left alone" // a file init does not take over, and why
	Replaced  Action = "replaced"   // a certificate that no longer fitted, kept as .old
	Updated   Action = "updated"
)

// managedFiles are the TPA directory's files that init handles by name.
var managedFiles = []string{RootCertName, CACertName, ServerName + ".crt", TestClientName + ".crt"}

// maxAdoptedFile bounds a file init reads to adopt it: a certificate and
// its chain are a few KB.
const maxAdoptedFile = 1 << 20

// adoptClients records every client certificate in the TPA directory that
// the cluster CA signed and the inventory does not know yet, with or
// without its key next to it, and says what it left alone and why. It
// changes no file in the TPA directory and follows no symbolic link.
func (r *initRun) adoptClients() error {
	dir := r.o.TPADir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Name()] = true
		if strings.HasSuffix(e.Name(), ".crt") && !strings.HasPrefix(e.Name(), ".") && !slices.Contains(managedFiles, e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, e := range entries {
		base, isKey := strings.CutSuffix(e.Name(), ".key")
		if isKey && !strings.HasPrefix(base, ".") && base != "CA" && base != ServerName && base != TestClientName && !have[base+".crt"] {
			r.step(LeftAlone, "key "+e.Name(), filepath.Join(dir, e.Name()), "a key without a certificate next to it: nothing to record")
		}
	}
	for _, name := range names {
		path := filepath.Join(dir, name)
		what, shown := "certificate "+name, path
		oddName := strings.ContainsFunc(name, unicode.IsControl)
		if oddName { // a newline in a name stays on one line
			q := strconv.QuoteToGraphic(name)
			what, shown = "certificate "+q[1:len(q)-1], strconv.QuoteToGraphic(path)
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case !info.Mode().IsRegular():
			r.step(LeftAlone, what, shown, "not a regular file (a symbolic link is not followed)")
			continue
		case oddName:
			// A name that would break every line-per-certificate output.
			r.step(LeftAlone, what, shown, "its name holds control characters (a newline, say): rename it to be adopted")
			continue
		}
		// The file Lstat saw, read once and bounded.
		data, err := ReadBounded(path, false, maxAdoptedFile, nil)
		var tooLarge *SizeError
		if errors.As(err, &tooLarge) {
			r.step(LeftAlone, what, path, fmt.Sprintf("over %d KiB, which no certificate chain here is", maxAdoptedFile>>10))
			continue
		}
		if err != nil {
			r.step(LeftAlone, what, path, "not a certificate: "+err.Error())
			continue
		}
		certs, err := ParseCerts(data)
		if err != nil {
			r.step(LeftAlone, what, path, fmt.Sprintf("not a certificate: reading certificate %q: %v", path, err))
			continue
		}
		cert := certs[0]
		if reason := r.notAdoptable(cert, certs); reason != "" {
			r.step(LeftAlone, what, path, reason)
			continue
		}
		note := "client CN=" + cert.Subject.CommonName + ", " + r.keyNote(cert, strings.TrimSuffix(path, ".crt")+".key")
		rec := NewRecord(recordName(cert, path), KindClient, cert, path, r.now)
		if r.known[rec.SHA256] {
			r.step(Kept, what, path, "recorded already")
			continue
		}
		rec.Adopted = true
		r.known[rec.SHA256] = true
		r.recs = append(r.recs, rec)
		r.step(Adopted, what, path, note)
	}
	return nil
}

// notAdoptable says why cert is not taken over as a client certificate of
// this cluster, or "" when it is.
func (r *initRun) notAdoptable(cert *x509.Certificate, chain []*x509.Certificate) string {
	switch {
	case cert.IsCA && bytesEqual(cert.RawSubject, cert.RawIssuer):
		return fmt.Sprintf("the certificate of another CA (%s), not a client", cert.Subject)
	case cert.IsCA:
		return fmt.Sprintf("a CA certificate (%s), not a client", cert.Subject)
	case cert.CheckSignatureFrom(r.root) != nil:
		return fmt.Sprintf("signed by another CA (%s), not the cluster CA %s", cert.Issuer, r.root.Subject)
	case !r.now.Before(cert.NotAfter):
		return fmt.Sprintf("expired on %s: no verifier accepts it any more", cert.NotAfter.UTC().Format("2006-01-02"))
	case r.now.Before(cert.NotBefore):
		return fmt.Sprintf("not valid before %s", cert.NotBefore.UTC().Format("2006-01-02 15:04"))
	}
	if err := VerifyChain(chain, r.root, x509.ExtKeyUsageClientAuth, r.now); err != nil {
		return "not usable as a client certificate: " + err.Error()
	}
	return ""
}

// keyNote describes the key next to a certificate being adopted.
func (r *initRun) keyNote(cert *x509.Certificate, keyPath string) string {
	info, err := os.Lstat(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "without its key (the service that uses it holds it)"
	case err != nil:
		return "its key: " + err.Error()
	case !info.Mode().IsRegular():
		return "its key " + filepath.Base(keyPath) + " is not a regular file"
	}
	key, err := LoadKey(keyPath)
	switch {
	case err != nil:
		return "its key: " + err.Error()
	case !KeyMatches(cert, key):
		return "but " + filepath.Base(keyPath) + " is not its key (doctor reports it)"
	case CheckKeyMode(keyPath) != nil:
		return fmt.Sprintf("with its key, WARNING: others can read %s (mode %04o); run: chmod 600 %s", keyPath, info.Mode().Perm(), keyPath)
	}
	return "with its key"
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// certNames returns the DNS names (lower case, valid host names only) and
// the addresses a server certificate covers.
func certNames(c *x509.Certificate) (hosts []string, ips []net.IP, skipped []string) {
	for _, n := range c.DNSNames {
		n = strings.ToLower(n)
		if CheckHostname(n) != nil {
			skipped = append(skipped, n)
			continue
		}
		hosts = append(hosts, n)
	}
	return hosts, c.IPAddresses, skipped
}

// mergeHosts appends to hosts the names it does not hold yet, and returns
// those.
func mergeHosts(hosts, add []string) ([]string, []string) {
	var added []string
	for _, h := range add {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
			added = append(added, h)
		}
	}
	return hosts, added
}

// mergeIPs appends to ips the addresses it does not hold yet, and returns
// those.
func mergeIPs(ips, add []net.IP) ([]net.IP, []string) {
	var added []string
	for _, ip := range add {
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
			added = append(added, ip.String())
		}
	}
	return ips, added
}

// missingNames reports the names among hosts and ips that cert does not cover.
func missingNames(cert *x509.Certificate, hosts []string, ips []net.IP) []string {
	var missing []string
	for _, h := range hosts {
		if !slices.Contains(cert.DNSNames, h) {
			missing = append(missing, h)
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			missing = append(missing, ip.String())
		}
	}
	return missing
}

// notPermitted lists the names the intermediate's name constraints do not
// allow it to sign for.
func notPermitted(inter *x509.Certificate, hosts []string, ips []net.IP) []string {
	var out []string
	if len(inter.PermittedDNSDomains) > 0 {
		for _, h := range hosts {
			if !slices.ContainsFunc(inter.PermittedDNSDomains, func(c string) bool {
				c = strings.TrimPrefix(c, ".")
				return h == c || strings.HasSuffix(h, "."+c)
			}) {
				out = append(out, h)
			}
		}
	}
	for _, ip := range ips {
		if slices.ContainsFunc(inter.ExcludedIPRanges, func(n *net.IPNet) bool { return n.Contains(ip) }) ||
			len(inter.PermittedIPRanges) > 0 && !slices.ContainsFunc(inter.PermittedIPRanges, func(n *net.IPNet) bool { return n.Contains(ip) }) {
			out = append(out, ip.String())
		}
	}
	return out
}

// keepOld copies path to path.old (same mode), replacing an older .old,
// so that a certificate or key init or serve replaces stays at hand. A
// path that is not a regular file is not read.
func keepOld(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	data, err := readNoFollow(path) // the file Lstat saw, not a link put there since
	if err != nil {
		return err
	}
	return Replace(path+".old", data, info.Mode().Perm(), nil)
}
