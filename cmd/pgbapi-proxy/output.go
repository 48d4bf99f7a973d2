package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
)

// What --json prints, command by command. These shapes are documented in
// README.md ("Machine-readable output") and pinned by TestJSONShapes: add
// keys only with care, and never rename or drop one.

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// initOutput is init --json.
type initOutput struct {
	Steps []initStep `json:"steps"`
	Test  string     `json:"test"` // the curl command that tests the setup; "" when init failed
}

type initStep struct {
	Action string `json:"action"` // created, kept, imported, skipped
	What   string `json:"what"`
	Path   string `json:"path"`
	Note   string `json:"note"`
}

// reportInit prints what init did, as text or JSON, and returns err: a
// failed init still reports the steps it made. test is the curl command
// that tries the setup ("" after a failure).
func reportInit(sio *stdio, asJSON bool, steps []pki.Step, test string, err error) error {
	if asJSON {
		out := initOutput{Steps: []initStep{}, Test: test}
		for _, s := range steps {
			out.Steps = append(out.Steps, initStep{Action: string(s.Action), What: s.What, Path: s.Path, Note: s.Note})
		}
		if jerr := writeJSON(sio.out, out); jerr != nil {
			return jerr
		}
		return err
	}
	printSteps(sio, steps)
	if err == nil {
		if hint := serviceKeysHint(steps); hint != "" {
			fmt.Fprintf(sio.out, "\n%s\n", hint)
		}
		fmt.Fprintf(sio.out, "\nTest it: %s\n", test)
	}
	return err
}

// serviceKeysHint says what a packaged host needs after init made a new
// intermediate or server key as root: the service user must own them again
// (the package's own script does it) before serve picks them up.
func serviceKeysHint(steps []pki.Step) string {
	// The package's own script (which sets this) gives the keys back next.
	if os.Geteuid() != 0 || os.Getenv("PGBAPI_PROXY_MAINTAINER_SCRIPT") != "" {
		return ""
	}
	for _, s := range steps {
		if (s.Action == pki.Replaced || s.Action == pki.Created) && (s.What == "server intermediate CA" || s.What == "server certificate") {
			if _, err := user.Lookup("pgbapi-proxy"); err != nil {
				return ""
			}
			return "The new keys are root's. On a packaged host, give the service its keys and restart it:\n" +
				"  dpkg-reconfigure pgbapi-proxy   (deb)   or   dnf reinstall pgbapi-proxy   (rpm)"
		}
	}
	return ""
}

// issueOutput is issue-client --json.
type issueOutput struct {
	Name        string    `json:"name"`
	Serial      string    `json:"serial"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Renewed     bool      `json:"renewed"`
	Certificate string    `json:"certificate"`
	Key         string    `json:"key"`        // "" when signed from a request (--csr)
	Bundle      string    `json:"bundle"`     // "" without --bundle
	BundleDir   string    `json:"bundle_dir"` // "" without --bundle-dir
}

func printIssueJSON(sio *stdio, res *pki.Issued, bundle, bundleDir string) error {
	return writeJSON(sio.out, issueOutput{
		Name: res.Cert.Subject.CommonName, Serial: pki.SerialHex(res.Cert),
		NotBefore: res.Cert.NotBefore.UTC(), NotAfter: res.Cert.NotAfter.UTC(), Renewed: res.Renewed,
		Certificate: res.CertPath, Key: res.KeyPath, Bundle: bundle, BundleDir: bundleDir,
	})
}

// revokeOutput is revoke --json.
type revokeOutput struct {
	Revoked        []revokedCert `json:"revoked"`         // newly revoked
	AlreadyRevoked []revokedCert `json:"already_revoked"` // revoked before
	Number         int64         `json:"number"`          // of the revocation record and the CRL
	Record         string        `json:"record"`          // the revocation record the proxy enforces
	CRLs           []string      `json:"crls"`            // the signed CRLs written; [] without the CA key
}

type revokedCert struct {
	Name   string `json:"name"`
	Serial string `json:"serial"`
}

func printRevokeJSON(sio *stdio, res *pki.Revoked) error {
	conv := func(recs []pki.Record) []revokedCert {
		out := []revokedCert{}
		for _, r := range recs {
			out = append(out, revokedCert{Name: r.Name, Serial: r.Serial})
		}
		return out
	}
	crls := append([]string{}, res.CRLPaths...)
	return writeJSON(sio.out, revokeOutput{Revoked: conv(res.Records), AlreadyRevoked: conv(res.Already),
		Number: res.Number, Record: res.RecordPath, CRLs: crls})
}

// accessOutput is check-access --json.
type accessOutput struct {
	Client  string `json:"client"`
	Method  string `json:"method"`
	Path    string `json:"path"` // as matched: without the query string
	Allowed bool   `json:"allowed"`
	Rule    string `json:"rule"`
}

// statusOutput is status --json.
type statusOutput struct {
	Admin  string `json:"admin"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason"` // why not ready; "" when ready
}

// printAccess reports a check-access decision: a denial is an error (exit
// 1) in both forms.
func printAccess(sio *stdio, asJSON bool, o accessOutput) error {
	if asJSON {
		if err := writeJSON(sio.out, o); err != nil {
			return err
		}
	} else if o.Allowed {
		fmt.Fprintf(sio.out, "allowed: %s\n", o.Rule)
	}
	if !o.Allowed {
		return fmt.Errorf("denied: %s", o.Rule)
	}
	return nil
}

// matchedPath is the path of a request target as the rules see it:
// without the query string, percent-decoded; the target itself when it
// does not parse (check-access then says why).
func matchedPath(target string) string {
	if u, err := url.ParseRequestURI(target); err == nil {
		return u.Path
	}
	return target
}
