package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The audited type is the one pg-backup-api reads: the "type" key matched
// case-sensitively, the last of duplicates winning, and a body Python's
// json takes but strict JSON does not (NaN) is audited as "unknown", with
// a note, not as an empty or a wrong type.
func TestAuditTypeIsReadAsPythonReadsIt(t *testing.T) {
	// An upstream that starts whatever it is sent, as pg-backup-api
	// would start the NaN body's recovery.
	up := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"operation_id":"20261122120001"}`)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go up.Serve(l) //nolint:errcheck // closed below
	defer up.Close()
	h := newHarness(t, func(c *Config, _ *Trust) { c.Upstream = &url.URL{Scheme: "http", Host: l.Addr().String()} })
	for i, tc := range []struct {
		body, typ, label string
		strict           bool
	}{
		{`{"type":"recovery","Type":"config_switch"}`, "recovery", "recovery", true},
		{`{"Type":"config_switch","type":"recovery"}`, "recovery", "recovery", true},
		{`{"type":"config_switch","type":"recovery"}`, "recovery", "recovery", true},
		{`{"type":"recovery","type":"config_update"}`, "config_update", "config_update", true},
		{`{"type":"recovery","n":NaN}`, "unknown", "unknown", false},
		{`{"type":"recovery","n":Infinity}`, "unknown", "unknown", false},
		{`{"type":7}`, "unknown", "unknown", false},
		// No type: pg-backup-api starts its default, a recovery.
		{`{"backup_id":"20261122T120000"}`, "recovery", "recovery", true},
		// A UTF-8 BOM: Python's json.loads(bytes) reads through it.
		{"\xef\xbb\xbf" + `{"type":"config_switch"}`, "config_switch", "config_switch", true},
	} {
		client := fmt.Sprintf("c%d", i)
		cert := h.ca.Client(t, client)
		code, body := h.do(t, h.client(&cert), "POST", "/servers/pg/operations", tc.body)
		require.Equal(t, http.StatusAccepted, code, body)
		want := fmt.Sprintf(`msg="operation started" client=%s serial=%s server=pg type=%s operation_id=20261122120001`,
			client, pki.SerialHex(cert.Leaf), tc.typ)
		require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), want) }, 2*time.Second, 10*time.Millisecond, tc.body)
		line := lineWith(h.logs.String(), want)
		requested := lineWith(h.logs.String(), fmt.Sprintf(`msg="operation requested" client=%s `, client))
		assert.Contains(t, requested, "type="+tc.typ, tc.body)
		if tc.strict {
			assert.NotContains(t, line, "not strict JSON", tc.body)
			assert.NotContains(t, requested, "not strict JSON", tc.body)
		} else {
			assert.Contains(t, line, `note="the body is not strict JSON; its type is unknown"`, tc.body)
			assert.Contains(t, requested, "not strict JSON", tc.body)
		}
		assert.True(t, h.hasMetric(t, fmt.Sprintf(`pgbapi_proxy_operations_started_total{client=%q,type=%q} 1`, client, tc.label)), tc.body)
	}
}

// lineWith is the log line holding s.
func lineWith(logs, s string) string {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
