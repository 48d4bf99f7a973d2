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
