package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/spf13/pflag"
)

var issueClientCommand = command{
	name:    "issue-client",
	summary: "issue a client certificate (NAME.crt/.key) signed by the cluster CA",
	about: `Issues a client certificate CN=NAME, signed by the cluster root CA, for one
service that queries the API (the PEM agent, for one). It is written as
NAME.crt and NAME.key (mode 0600) into the TPA dir or --out, and recorded
in the inventory ('pgbapi-proxy list').

With --csr FILE, the certificate is signed for the key of a PKCS#10
request made on the client's host (openssl req -new), which never leaves
it: only NAME.crt is written (with root.crt next to it in an --out
directory, and in bundles). The request's
signature must verify; its CN must be NAME or empty; it may carry
DNS:NAME and no other DNS name, IP address, URI or e-mail address; a
request for CA:TRUE is refused. Only its public key is used: the
certificate is CN=NAME for client authentication, like any other.

An existing NAME is refused; --renew replaces the pair atomically. Renewing
revokes nothing: the old certificate stays valid until it expires. To
retire it, find its serial with 'pgbapi-proxy list --all' and run
'pgbapi-proxy revoke --serial SERIAL'.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		return declareIssueClientFlags(fs).run
	},
}

// issueClientFlags are issue-client's flags.
type issueClientFlags struct {
	layout            *pki.Layout
	name              string
	days              int
	out, owner        string
	renew             bool
	keyType           string
	bundle, bundleDir string
	asJSON            bool
	csrFile           string
}

func declareIssueClientFlags(fs *pflag.FlagSet) *issueClientFlags {
	f := &issueClientFlags{layout: layoutFlags(fs)}
	fs.StringVar(&f.name, "name", "", "client name: the certificate's CN and file name (required)")
	fs.IntVar(&f.days, "days", pki.DefaultClientDays, "lifetime in days")
	fs.StringVar(&f.out, "out", "", "directory to write NAME.crt/.key to (default: the TPA dir)")
	fs.StringVar(&f.owner, "owner", "", "give the files to USER[:GROUP] (the service that uses them)")
	fs.BoolVar(&f.renew, "renew", false, "replace an existing certificate and key of that name")
	fs.StringVar(&f.keyType, "key-type", "", keyTypeUsage()+" (default: the type init used)")
	fs.StringVar(&f.bundle, "bundle", "", "also write a hand-over bundle FILE.tar.gz: cert, key (none with --csr), root.crt and a README with the curl and Python settings")
	fs.StringVar(&f.bundleDir, "bundle-dir", "", "also write the hand-over bundle's files into this new directory")
	fs.BoolVar(&f.asJSON, "json", false, "print JSON (see README, Machine-readable output)")
	fs.StringVar(&f.csrFile, "csr", "", "sign this PKCS#10 request (PEM or DER) instead of making a key: only NAME.crt is written")
	return f
}

func (f *issueClientFlags) run(ctx context.Context, sio *stdio, args []string) error {
	if err := noArgs("issue-client", args); err != nil {
		return err
	}
	opts, rootCopy, err := f.options()
	if err != nil {
		return err
	}
	res, err := pki.IssueClient(opts)
	if errors.Is(err, pki.ErrUnreachable) {
		return fmt.Errorf("--owner %s: %w (nothing was issued)", f.owner, err)
	}
	if err != nil {
		return pkiFlagError(err, issueClientFields)
	}
	if err := f.writeExtras(res, rootCopy, opts.Owner); err != nil {
		return err
	}
	if f.asJSON {
		return printIssueJSON(sio, res, f.bundle, f.bundleDir)
	}
	printIssued(sio, res, f.csrFile, f.bundle, f.bundleDir)
	return nil
}

// options checks the flags before anything is issued and turns them into
// pki.IssueOptions; rootCopy is where root.crt is to be copied ("" for
// nowhere).
func (f *issueClientFlags) options() (opts pki.IssueOptions, rootCopy string, err error) {
	if f.name == "" {
		return opts, "", usagef("issue-client needs --name NAME")
	}
	csr, err := readCSR(f.csrFile, f.keyType)
	if err != nil {
		return opts, "", err
	}
	var kt pki.KeyType
	if f.keyType != "" {
		if kt, err = pki.ParseKeyType(f.keyType); err != nil {
			return opts, "", usagef("--key-type: %v", err)
		}
	}
	own, err := parseOwner(f.owner)
	if err != nil {
		return opts, "", err
	}
	if err := checkBundleOutputs(f.bundle, f.bundleDir); err != nil {
		return opts, "", err
	}
	if rootCopy, err = rootCopyFor(*f.layout, csr, f.out); err != nil {
		return opts, "", err
	}
	return pki.IssueOptions{
		Layout: *f.layout, Name: f.name, Days: f.days, OutDir: f.out,
		Owner: own, Renew: f.renew, KeyType: kt, CSR: csr,
	}, rootCopy, nil
}

// writeExtras writes, once the certificate is issued, the copy of root.crt
// and the hand-over bundle the flags ask for.
func (f *issueClientFlags) writeExtras(res *pki.Issued, rootCopy string, own *pki.Owner) error {
	if rootCopy != "" {
		if err := copyRoot(*f.layout, rootCopy, own); err != nil {
			return fmt.Errorf("the certificate was issued (%s) but %s was not written: %w", res.CertPath, rootCopy, err)
		}
	}
	if f.bundle != "" || f.bundleDir != "" {
		if err := writeBundle(*f.layout, res, f.bundle, f.bundleDir); err != nil {
			return fmt.Errorf("the certificate was issued (%s) but the bundle was not written: %w", res.CertPath, err)
		}
	}
	return nil
}

// readCSR reads --csr, which replaces --key-type: the request's key is used.
func readCSR(file, keyType string) ([]byte, error) {
	if file == "" {
		return nil, nil
	}
	if keyType != "" {
		return nil, usagef("--key-type and --csr do not go together: the request's key is used")
	}
	// A PEM request is a few KB: anything far larger is not one.
	data, err := pki.ReadBounded(file, true, maxCSRFile, nil)
	var tooLarge *pki.SizeError
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, pki.ErrNotRegular):
		return nil, usagef("--csr %s: not a regular file (give the request's PEM file)", file)
	case errors.As(err, &tooLarge):
		return nil, usagef("--csr %s: over %d KiB, which no certificate request is", file, maxCSRFile>>10)
	case errors.As(err, &pathErr):
		return nil, fmt.Errorf("--csr: %w", pathErr) // the system's words, once
	case err != nil:
		return nil, fmt.Errorf("--csr: %w", err)
	}
	return data, nil
}

// maxCSRFile bounds what --csr reads.
const maxCSRFile = 64 << 10

// rootCopyFor is where root.crt goes next to a certificate signed from a
// request into another directory than the TPA dir (--csr --out DIR), so
// that DIR holds what the client needs but its key; "" when nothing is to
// be written. A root.crt already there must be the cluster's.
func rootCopyFor(l pki.Layout, csr []byte, out string) (string, error) {
	if csr == nil || out == "" || filepath.Clean(out) == filepath.Clean(l.TPADir) {
		return "", nil
	}
	path := filepath.Join(out, pki.RootCertName)
	have, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return path, nil
	}
	if err != nil {
		return "", err
	}
	want, err := os.ReadFile(l.RootCert())
	if err != nil {
		return "", err
	}
	if !bytes.Equal(have, want) {
		return "", fmt.Errorf("%s holds another certificate than the cluster's %s: move it away (nothing was issued)", path, l.RootCert())
	}
	return "", nil // already there
}

func copyRoot(l pki.Layout, path string, owner *pki.Owner) error {
	data, err := os.ReadFile(l.RootCert())
	if err != nil {
		return err
	}
	return pki.WriteNew(path, data, pki.CertMode, owner)
}

// checkBundleOutputs checks, before anything is issued, that the bundle
// can be written where asked.
func checkBundleOutputs(file, dir string) error {
	if file != "" {
		if err := pki.CheckTarGzPath(file); err != nil {
			return fmt.Errorf("--bundle: %w (nothing was issued)", err)
		}
	}
	if dir != "" {
		if err := pki.CheckBundleDir(dir); err != nil {
			return fmt.Errorf("--bundle-dir: %w (nothing was issued)", err)
		}
	}
	return nil
}

func printIssued(sio *stdio, res *pki.Issued, csrFile, bundle, bundleDir string) {
	verb := "issued"
	if res.Renewed {
		verb = "renewed"
	}
	keyPath := res.KeyPath
	if keyPath == "" {
		keyPath = "(signed from " + csrFile + ": the key stays where the request was made)"
	}
	fmt.Fprintf(sio.out, "%s %s: serial %s, valid until %s\n  certificate %s\n  key         %s\n",
		verb, res.Cert.Subject.CommonName, pki.SerialHex(res.Cert), res.Cert.NotAfter.UTC().Format("2006-01-02"),
		res.CertPath, keyPath)
	if bundle != "" {
		fmt.Fprintf(sio.out, "  bundle      %s\n", bundle)
	}
	if bundleDir != "" {
		fmt.Fprintf(sio.out, "  bundle dir  %s\n", bundleDir)
	}
}

// writeBundle packs what was just issued for hand-over.
func writeBundle(l pki.Layout, res *pki.Issued, file, dir string) error {
	meta, err := pki.ReadMeta(l)
	if err != nil {
		return err
	}
	b := pki.Bundle{Name: res.Cert.Subject.CommonName, Host: meta.Hostnames[0]}
	for path, dst := range map[string]*[]byte{res.CertPath: &b.CertPEM, res.KeyPath: &b.KeyPEM, l.RootCert(): &b.RootPEM} {
		if path == "" {
			continue // signed from a request: no key here
		}
		if *dst, err = os.ReadFile(path); err != nil {
			return err
		}
	}
	if file != "" {
		if err := b.WriteTarGz(file, time.Now()); err != nil {
			return err
		}
	}
	if dir != "" {
		return b.WriteDir(dir)
	}
	return nil
}
