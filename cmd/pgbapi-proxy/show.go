package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/spf13/pflag"
)

var showCommand = command{
	name:    "show",
	summary: "show one certificate: its inventory entry, subject, SANs, issuer, fingerprint and files",
	args:    " NAME | --serial SERIAL | --cert FILE",
	about: `Shows one certificate as 'list' does (name, kind, serial, expiry, state)
plus its subject, SANs, issuer, key type, SHA-256 fingerprint and where its
certificate and key files are.

NAME is the current certificate of that name (renewed ones: use --serial,
as 'list --all' prints them). --cert shows a certificate file, and its
inventory entry when it was issued here.`,
	setup: func(fs *pflag.FlagSet) runFunc {
		layout := layoutFlags(fs)
		serial := fs.String("serial", "", "the certificate with this serial (hex, as list prints it)")
		certFile := fs.String("cert", "", "the certificate in this PEM file")
		byName := fs.String("name", "", "the current certificate of this name (the same as NAME, as revoke and issue-client spell it)")
		asJSON := fs.Bool("json", false, "print JSON (see README, Machine-readable output)")
		return func(ctx context.Context, sio *stdio, args []string) error {
			if len(args) > 1 {
				return usagef("show takes one NAME; see '%s show --help'", prog)
			}
			name := *byName
			if len(args) == 1 {
				if name != "" {
					return usagef("show takes NAME or --name NAME, not both")
				}
				name = args[0]
			}
			given := 0
			for _, s := range []string{name, *serial, *certFile} {
				if s != "" {
					given++
				}
			}
			if given != 1 {
				return usagef("show needs one of NAME, --serial SERIAL or --cert FILE")
			}
			out, err := findCert(*layout, name, *serial, *certFile, time.Now())
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(sio.out, out)
			}
			printShow(sio, out)
			return nil
		}
	},
}

// showOutput is show --json: a list row plus what the certificate says.
type showOutput struct {
	listRow
	Recorded bool      `json:"recorded"` // false for a --cert file not in this host's inventory
	Issuer   string    `json:"issuer"`
	SANs     []string  `json:"sans"`     // DNS:..., IP:..., URI:..., email:...
	KeyType  string    `json:"key_type"` // ecdsa-p256, rsa-2048, ...
	Files    showFiles `json:"files"`
}

type showFiles struct {
	Certificate string `json:"certificate"` // "" when the file no longer holds this certificate
	Key         string `json:"key"`         // "" when no key is next to it (a CSR-signed or handed-over certificate)
}

// findCert finds the certificate show is asked about: by --cert file, by
// serial or by name, and describes it from the inventory and its file.
func findCert(l pki.Layout, name, serial, certFile string, now time.Time) (*showOutput, error) {
	if certFile == "" {
		if _, err := pki.ReadMeta(l); err != nil {
			return nil, err
		}
	}
	recs, err := pki.ReadInventory(l)
	if err != nil {
		return nil, err
	}
	rec, cert, err := findRecord(recs, name, serial, certFile)
	if err != nil {
		return nil, err
	}
	out := &showOutput{listRow: listRow{Record: *rec, State: rec.State(now)}, Recorded: rec.Kind != "", SANs: []string{}}
	if cert == nil {
		cert = certAt(rec.Path, rec.SHA256)
	} else {
		out.Files.Certificate = certFile
	}
	if cert == nil {
		return out, nil // the file was replaced (a renewal) or removed
	}
	if out.Files.Certificate == "" {
		out.Files.Certificate = rec.Path
	}
	out.describe(cert)
	return out, nil
}

// findRecord finds the record show is about; with certFile, the
// certificate too (and a record made for it when it is not recorded).
func findRecord(recs []pki.Record, name, serial, certFile string) (*pki.Record, *x509.Certificate, error) {
	switch {
	case certFile != "":
		return recordOfFile(recs, certFile)
	case serial != "":
		rec := recordBySerial(recs, serial)
		if rec == nil {
			return nil, nil, fmt.Errorf("no certificate with serial %s was issued here; see '%s list --all'", serial, prog)
		}
		return rec, nil, nil
	default:
		rec := recordByName(recs, name)
		if rec == nil {
			return nil, nil, fmt.Errorf("no certificate named %q was issued here; see '%s list'", name, prog)
		}
		return rec, nil, nil
	}
}

// recordOfFile loads certFile and finds its record by fingerprint; one not
// recorded gets a fresh record with no kind.
func recordOfFile(recs []pki.Record, certFile string) (*pki.Record, *x509.Certificate, error) {
	cert, err := pki.LoadCert(certFile)
	if err != nil {
		return nil, nil, err
	}
	fresh := pki.NewRecord(cert.Subject.CommonName, "", cert, certFile, time.Time{})
	var rec *pki.Record
	for i := range recs {
		if recs[i].SHA256 == fresh.SHA256 {
			rec = &recs[i]
		}
	}
	if rec == nil {
		rec = &fresh
	}
	return rec, cert, nil
}

// recordBySerial is the last record with serial in any form openssl prints
// it (colons, leading zeros, either case); nil when there is none.
func recordBySerial(recs []pki.Record, serial string) *pki.Record {
	want := strings.ToUpper(strings.TrimLeft(strings.ReplaceAll(serial, ":", ""), "0"))
	var rec *pki.Record
	for i := range recs {
		if strings.TrimLeft(recs[i].Serial, "0") == want {
			rec = &recs[i]
		}
	}
	return rec
}

// recordByName is the last record named name that is not replaced (the
// last replaced one when all are); nil when there is none.
func recordByName(recs []pki.Record, name string) *pki.Record {
	var rec *pki.Record
	for i := range recs {
		if recs[i].Name == name && (rec == nil || rec.Replaced || !recs[i].Replaced) {
			rec = &recs[i]
		}
	}
	return rec
}

// describe fills in what cert says, and the key file next to it, if any.
func (out *showOutput) describe(cert *x509.Certificate) {
	out.Issuer = cert.Issuer.String()
	out.SANs = sans(cert)
	out.KeyType = pki.KeyTypeOf(cert.PublicKey)
	if key := strings.TrimSuffix(out.Files.Certificate, ".crt") + ".key"; key != out.Files.Certificate {
		if _, err := os.Stat(key); err == nil {
			out.Files.Key = key
		}
	}
}

// certAt is the certificate in path if it is still the one with that
// SHA-256 fingerprint, else nil.
func certAt(path, sha string) *x509.Certificate {
	c, err := pki.LoadCert(path)
	if err != nil || pki.NewRecord("", "", c, path, time.Time{}).SHA256 != sha {
		return nil
	}
	return c
}

func sans(c *x509.Certificate) []string {
	out := []string{}
	for _, d := range c.DNSNames {
		out = append(out, "DNS:"+d)
	}
	for _, ip := range c.IPAddresses {
		out = append(out, "IP:"+ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, "URI:"+u.String())
	}
	for _, e := range c.EmailAddresses {
		out = append(out, "email:"+e)
	}
	return out
}

// colonHex writes a hex fingerprint as openssl -fingerprint does.
func colonHex(h string) string {
	var b bytes.Buffer
	for i := 0; i+1 < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToUpper(h[i : i+2]))
	}
	return b.String()
}

func printShow(sio *stdio, o *showOutput) {
	tw := tabwriter.NewWriter(sio.out, 0, 4, 2, ' ', 0)
	kind, state := string(o.Kind), string(o.State)
	if !o.Recorded {
		kind = "(not in this host's inventory)"
	}
	if o.Replaced {
		state += " (replaced)"
	}
	none := func(s, instead string) string {
		if s == "" {
			return instead
		}
		return s
	}
	for _, row := range [][2]string{
		{"name", o.Name}, {"kind", kind}, {"state", state}, {"serial", o.Serial},
		{"subject", o.Subject}, {"issuer", none(o.Issuer, "?")}, {"SANs", none(strings.Join(o.SANs, ", "), "none")},
		{"not before", o.NotBefore.UTC().Format("2006-01-02 15:04:05 MST")},
		{"not after", o.NotAfter.UTC().Format("2006-01-02 15:04:05 MST")},
		{"SHA-256", colonHex(o.SHA256)}, {"key type", none(o.KeyType, "?")},
		{"certificate", none(o.Files.Certificate, "not on disk any more ("+o.Path+" holds another certificate or is gone)")},
		{"key", none(o.Files.Key, "none next to the certificate")},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	tw.Flush()
}
