package doctor

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgbapi/pgbapi-proxy/pki"
)

// An address no request can be made to (the old settings reader let
// "127.0.0.1:7480 # comment" through) is a FAIL line, not a nil pointer.
func TestUnusableUpstreamDoesNotPanic(t *testing.T) {
	base := t.TempDir()
	res := Run(context.Background(), Options{
		Layout:      pki.Layout{TPADir: filepath.Join(base, "tpa"), StateDir: filepath.Join(base, "state")},
		Listen:      "127.0.0.1:1",
		AdminListen: "127.0.0.1:1",
		Upstream:    &url.URL{Scheme: "http", Host: "127.0.0.1:7480 # comment"},
	})
	for _, r := range res {
		if r.Area == "upstream" {
			if r.Status != Fail || !strings.Contains(r.Detail, "is not usable") {
				t.Fatalf("upstream: %+v", r)
			}
			return
		}
	}
	t.Fatalf("no upstream line: %+v", res)
}

// A TPA directory of its own and no --state-dir: the fix for a missing
// PKI names --state-dir rather than an init that would set one up in the
// default state directory; with the state directory given, init is the
// fix.
func TestMissingPKIFixNamesTheStateDir(t *testing.T) {
	base := t.TempDir()
	l := pki.Layout{TPADir: filepath.Join(base, "tpa"), StateDir: filepath.Join(base, "state")}
	for _, tc := range []struct {
		stateDirDefault bool
		fix             string
	}{
		{true, "give the --state-dir this PKI was set up with; to set one up, pgbapi-proxy init --tpa-dir " + l.TPADir + " --state-dir DIR"},
		{false, "pgbapi-proxy init --tpa-dir " + l.TPADir + " --state-dir " + l.StateDir},
	} {
		res := Run(context.Background(), Options{Layout: l, StateDirDefault: tc.stateDirDefault, Listen: "127.0.0.1:1", AdminListen: "127.0.0.1:1",
			Upstream: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}})
		if res[0].Area != "pki" || res[0].Status != Fail || res[0].Fix != tc.fix {
			t.Fatalf("state dir default %v: %+v, want fix %q", tc.stateDirDefault, res[0], tc.fix)
		}
	}
}
