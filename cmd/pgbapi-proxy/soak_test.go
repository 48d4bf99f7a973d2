package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The soak tests run with `make soak` (PGBAPI_SOAK=1), not in make test.
func soakOnly(t *testing.T) {
	if os.Getenv("PGBAPI_SOAK") != "1" {
		t.Skip("a soak test: run it with make soak")
	}
}

// procStatus reads a kB field (VmRSS, VmHWM) of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindStringSubmatch(string(data))
	require.NotNil(t, m)
	n, _ := strconv.Atoi(m[1])
	return n
}

func openFDs(t *testing.T, pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err)
	return len(entries)
}

var goroutinesRe = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

func goroutines(t *testing.T, p *proxyProc) int {
	m := goroutinesRe.FindStringSubmatch(metricsText(t, p))
	require.NotNil(t, m)
	n, _ := strconv.Atoi(m[1])
	return n
}

func tlsConfigFor(t *testing.T, d dirs, name string) *tls.Config {
	root, err := pki.LoadCert(filepath.Join(d.tpa, "root.crt"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if name != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(d.tpa, name+".crt"), filepath.Join(d.tpa, name+".key"))
		require.NoError(t, err)
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// 10,000 idle kept-alive TLS connections: memory per connection.
func TestSoakIdleConnections(t *testing.T) {
	soakOnly(t)
	const n = 10000
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur < n+1000 {
		t.Skipf("needs ulimit -n of at least %d (have %d)", n+1000, lim.Cur)
	}
	d := pkiFor(t)
	_, upURL := upstream(t)
	// Above the default bounds (4096 connections, 32 handshakes from one
	// address): the test dials 64 at a time from 127.0.0.1.
	p := startProxy(t, d, upURL, nil, "--max-connections", strconv.Itoa(n+100), "--max-handshakes-per-source", "128")
	p.logs.keepLast(1 << 20)
	pid := p.cmd.Process.Pid
	cfg := tlsConfigFor(t, d, "pg-backup-user")
	requireOK(t, curlClient(t, d, "pg-backup-user", p.url("/status")))
	before := procStatus(t, pid, "VmRSS")

	conns := make([]*tls.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var failed atomic.Int64
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := tls.Dial("tcp", p.addr, cfg)
			if err != nil {
				failed.Add(1)
				return
			}
			// One request, so the connection is a kept-alive HTTP one.
			fmt.Fprint(c, "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
			buf := make([]byte, 512)
			if _, err := c.Read(buf); err != nil {
				failed.Add(1)
				c.Close()
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Zero(t, failed.Load())
	time.Sleep(2 * time.Second)
	held := procStatus(t, pid, "VmRSS")
	perConn := float64(held-before) / n
	t.Logf("SOAK idle: %d connections held; proxy RSS %d kB -> %d kB: %.1f kB per connection; fds %d", len(conns), before, held, perConn, openFDs(t, pid))
	assert.Less(t, perConn, 64.0, "memory per idle connection stays bounded")
	assert.Equal(t, http.StatusOK, func() int {
		resp, err := goClient(t, d, "pg-backup-user").Get(p.url("/status"))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}(), "still serving new clients")
}

// A million requests, good and bad clients mixed: goroutines and file
// descriptors come back to where they started, and no error but those the
// bad clients cause.
func TestSoakMillionRequests(t *testing.T) {
	soakOnly(t)
	total := int64(1_000_000)
	if s := os.Getenv("PGBAPI_SOAK_REQUESTS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		require.NoError(t, err)
		total = n
	}
	d := pkiFor(t)
	requireOK(t, cli(t, nil, d.flags("issue-client", "--name", "revoked")...))
	requireOK(t, cli(t, nil, d.flags("revoke", "--name", "revoked")...))
	up := &proxytest.Upstream{KeepAlive: true}
	upURL, stop, err := up.Start("")
	require.NoError(t, err)
	defer stop()
	p := startProxy(t, d, upURL, nil)
	p.logs.keepLast(1 << 20)
	pid := p.cmd.Process.Pid
	good := goClient(t, d, "pg-backup-user")
	requireOK(t, curlClient(t, d, "pg-backup-user", p.url("/status")))
	time.Sleep(time.Second)
	startG, startFD, startRSS := goroutines(t, p), openFDs(t, pid), procStatus(t, pid, "VmRSS")

	var sent, goodOK, goodErr, badRefused, badLeaked atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			noCert, revoked := tlsConfigFor(t, d, ""), tlsConfigFor(t, d, "revoked")
			for i := 0; sent.Add(1) <= total; i++ {
				if w == 0 && i%10 == 0 { // bad clients: no certificate, or a revoked one
					cfg := noCert
					if i%20 == 0 {
						cfg = revoked
					}
					c, err := tls.Dial("tcp", p.addr, cfg)
					if err == nil {
						fmt.Fprint(c, "GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
						out, _ := io.ReadAll(c)
						c.Close()
						if strings.Contains(string(out), " 200 ") {
							badLeaked.Add(1)
							continue
						}
					}
					badRefused.Add(1)
					continue
				}
				if code, err := getStatus(good, p.url("/status")); err == nil && code == http.StatusOK {
					goodOK.Add(1)
				} else {
					goodErr.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	good.CloseIdleConnections()
	// Idle connections close (the proxy's idle upstream connections after
	// 10 s), and their goroutines end.
	time.Sleep(13 * time.Second)
	endG, endFD, endRSS := goroutines(t, p), openFDs(t, pid), procStatus(t, pid, "VmRSS")
	t.Logf("SOAK mix: %d requests in %s (%.0f/s): %d good ok, %d good errors, %d bad refused, %d bad let through; goroutines %d -> %d, fds %d -> %d, RSS %d kB -> %d kB, peak %d kB",
		total, elapsed.Round(time.Second), float64(total)/elapsed.Seconds(), goodOK.Load(), goodErr.Load(), badRefused.Load(), badLeaked.Load(),
		startG, endG, startFD, endFD, startRSS, endRSS, procStatus(t, pid, "VmHWM"))
	assert.Zero(t, goodErr.Load())
	assert.Zero(t, badLeaked.Load())
	assert.LessOrEqual(t, endG, startG+2, "goroutines back to where they started")
	assert.LessOrEqual(t, endFD, startFD+2, "file descriptors back to where they started")
}
