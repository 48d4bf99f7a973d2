// Package proxytest provides an upstream that answers like pg-backup-api
// 2.x, for tests and for the `make run` demo. It is an imitation: it runs
// no Barman command, but it keeps the API's routes, status codes, headers
// and quirks that a proxy in front of it must respect: no keep-alive, a
// Content-Length on every answer, 100 Continue for Expect, a 308 to
// http://<Host>/... for doubled slashes, JSON 404s and HTML 400/405s.
package proxytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Diagnose is the document /diagnose answers: compact JSON with sorted
// keys, as `barman diagnose` prints it.
const Diagnose = `{"global":{"config":{"barman_home":"/var/lib/barman","barman_user":"barman","configuration_files_directory":"/etc/barman.d","log_file":"/var/log/barman/barman.log","log_level":"INFO"},"system_info":{"barman_ver":"3.10.0","kernel_ver":"Linux 6.1.0","python_ver":"Python 3.11.2","release":"Debian GNU/Linux 12 (bookworm)","timestamp":"2026-11-22T12:00:00+00:00"}},"models":{},"servers":{"pg":{"backups":{},"config":{"active":true,"backup_method":"postgres","conninfo":"host=pg1 user=barman dbname=postgres","name":"pg","streaming_conninfo":"host=pg1 user=streaming_barman"},"status":{"is_in_recovery":false,"pgespresso_installed":null,"server_txt_version":"16.4"}}}}`

// Upstream imitates pg-backup-api. The zero value is ready to serve.
type Upstream struct {
	// Delay holds every answer back this long (a slow /diagnose).
	Delay time.Duration
	// KeepAlive answers without "Connection: close", unlike pg-backup-api:
	// a fast stand-in for benchmarks.
	KeepAlive bool
	// DiagnoseBytes pads /diagnose with more servers to about this size.
	DiagnoseBytes int

	requests atomic.Int64
	inflight atomic.Int64
	peak     atomic.Int64
	mu       sync.Mutex
	lastPath string
	last     http.Header
	bodies   []string
	byClient map[string]int64
	nextID   atomic.Int64
	padOnce  sync.Once
	padded   string
}

// Requests is how many requests reached the upstream.
func (u *Upstream) Requests() int64 { return u.requests.Load() }

// Peak is the most requests the upstream answered at once.
func (u *Upstream) Peak() int64 { return u.peak.Load() }

// LastPath is the path of the last request, as the upstream read it.
func (u *Upstream) LastPath() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastPath
}

// LastHeader is a copy of the headers of the last request.
func (u *Upstream) LastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last.Clone()
}

// RequestsFrom is how many requests reached the upstream for the client
// the proxy named in X-Client-Cert-CN.
func (u *Upstream) RequestsFrom(client string) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byClient[client]
}

// Bodies are the bodies of every POST, in order.
func (u *Upstream) Bodies() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bodies...)
}

// Start serves on a new listener on 127.0.0.1 and returns its base URL
// and a function that stops it.
func (u *Upstream) Start(addr string) (string, func(), error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l) //nolint:errcheck // ends with Close
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}

func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	now := u.inflight.Add(1)
	defer u.inflight.Add(-1)
	for peak := u.peak.Load(); now > peak && !u.peak.CompareAndSwap(peak, now); peak = u.peak.Load() {
	}
	body, _ := io.ReadAll(r.Body) // answers 100 Continue when the client expects it
	u.mu.Lock()
	u.last = r.Header.Clone()
	u.lastPath = r.URL.Path
	if u.byClient == nil {
		u.byClient = map[string]int64{}
	}
	u.byClient[r.Header.Get("X-Client-Cert-CN")]++
	if r.Method == http.MethodPost {
		u.bodies = append(u.bodies, string(body))
	}
	u.mu.Unlock()
	if u.Delay > 0 {
		select {
		case <-time.After(u.Delay):
		case <-r.Context().Done():
			return
		}
	}
	// Like the real service: no keep-alive, always a Content-Length.
	if !u.KeepAlive {
		w.Header().Set("Connection", "close")
	}
	if strings.Contains(r.URL.Path, "//") {
		// Werkzeug merges slashes with a 308 to http://<Host>/...
		clean := "/" + strings.Join(strings.FieldsFunc(r.URL.Path, func(c rune) bool { return c == '/' }), "/")
		w.Header().Set("Location", "http://"+r.Host+clean)
		answer(w, http.StatusPermanentRedirect, "text/html; charset=utf-8", "redirecting\n")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/status" && isRead(r):
		answer(w, http.StatusOK, "text/html; charset=utf-8", `"OK"`)
	case r.URL.Path == "/diagnose" && isRead(r):
		answer(w, http.StatusOK, "application/json", u.diagnose())
	case len(parts) == 3 && parts[0] == "servers" && parts[2] == "operations",
		len(parts) == 1 && parts[0] == "operations":
		u.operations(w, r, body)
	case len(parts) == 4 && parts[0] == "servers" && parts[2] == "operations",
		len(parts) == 2 && parts[0] == "operations":
		if !isRead(r) {
			answer(w, http.StatusMethodNotAllowed, "text/html; charset=utf-8", "<h1>Method Not Allowed</h1>\n")
			return
		}
		jsonAnswer(w, http.StatusOK, map[string]string{"operation_id": parts[len(parts)-1], "status": "DONE"})
	default:
		jsonAnswer(w, http.StatusNotFound, map[string]string{"error": "404 Not Found: The requested URL was not found on the server."})
	}
}

// diagnose is the /diagnose document, padded to DiagnoseBytes with more
// servers like the one in Diagnose.
func (u *Upstream) diagnose() string {
	u.padOnce.Do(func() {
		u.padded = Diagnose + "\n"
		if u.DiagnoseBytes <= len(u.padded) {
			return
		}
		var doc map[string]any
		if json.Unmarshal([]byte(Diagnose), &doc) != nil {
			return
		}
		servers := doc["servers"].(map[string]any)
		pg := servers["pg"]
		for i := 1; ; i++ {
			servers[fmt.Sprintf("pg%04d", i)] = pg
			data, _ := json.Marshal(doc) // Marshal sorts keys, as barman does
			if len(data) >= u.DiagnoseBytes {
				u.padded = string(data) + "\n"
				return
			}
		}
	})
	return u.padded
}

func (u *Upstream) operations(w http.ResponseWriter, r *http.Request, body []byte) {
	switch {
	case isRead(r):
		jsonAnswer(w, http.StatusOK, map[string][]string{"operations": {}})
	case r.Method == http.MethodPost:
		var op struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(body, &op) != nil || op.Type == "" {
			answer(w, http.StatusBadRequest, "text/html; charset=utf-8", "<h1>Bad Request</h1>\n")
			return
		}
		id := fmt.Sprintf("2026112212%04d", u.nextID.Add(1))
		jsonAnswer(w, http.StatusAccepted, map[string]string{"operation_id": id})
	default:
		answer(w, http.StatusMethodNotAllowed, "text/html; charset=utf-8", "<h1>Method Not Allowed</h1>\n")
	}
}

func isRead(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

func jsonAnswer(w http.ResponseWriter, code int, v any) {
	data, _ := json.Marshal(v)
	answer(w, code, "application/json", string(data)+"\n")
}

func answer(w http.ResponseWriter, code int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(code)
	io.WriteString(w, body) //nolint:errcheck // the client may have gone
}
