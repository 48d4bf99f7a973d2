package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgbapi/pgbapi-proxy/internal/needs"
	"github.com/pgbapi/pgbapi-proxy/pki"
	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
	"github.com/stretchr/testify/require"
)

// proxyProc is a running `pgbapi-proxy serve`.
type proxyProc struct {
	cmd         *exec.Cmd
	addr, admin string // 127.0.0.1:port of the TLS and admin listeners
	logs        *lockedBuffer
	wrapped     bool // run under a wrapper (strace)
	exited      chan struct{}
	exitErr     error
}

type lockedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int // keep only about the last limit bytes; 0: everything
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.buf.Len() > b.limit {
		tail := append([]byte(nil), b.buf.Bytes()[b.buf.Len()-b.limit/2:]...)
		b.buf.Reset()
		b.buf.Write(tail)
	}
	return b.buf.Write(p)
}

// keepLast bounds the log kept in memory, for long runs.
func (b *lockedBuffer) keepLast(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = n
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var servingLine = regexp.MustCompile(`msg=serving listen=(\S+) admin=(\S+)`)

// startProxy runs serve on free loopback ports, with the PKI in d, in
// front of upstream; prefix (e.g. strace) runs before the binary.
func startProxy(t *testing.T, d dirs, upstream string, prefix []string, extra ...string) *proxyProc {
	t.Helper()
	// No access rules unless a test gives some: never the machine's file.
	args := d.flags("serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--upstream", upstream,
		"--access-file=")
	args = append(args, extra...)
	argv := append(append(append([]string{}, prefix...), binary), args...)
	p := &proxyProc{cmd: exec.Command(argv[0], argv[1:]...), logs: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = cleanEnv()
	p.wrapped = len(prefix) > 0
	pr, pw := io.Pipe()
	p.cmd.Stderr = io.MultiWriter(p.logs, pw)
	p.cmd.Stdout = p.logs
	require.NoError(t, p.cmd.Start())
	go func() {
		p.exitErr = p.cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		io.Copy(io.Discard, pr) //nolint:errcheck // drain
	}()
	select {
	case m := <-found:
		p.addr, p.admin = m[1], m[2]
	case <-p.exited:
		t.Fatalf("serve exited before serving: %v\n%s", p.exitErr, p.logs)
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("serve did not start in 30s:\n%s", p.logs)
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and waits; it returns the exit error.
func (p *proxyProc) stop(t *testing.T) error {
	select {
	case <-p.exited:
		return p.exitErr
	default:
	}
	p.signal(t, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(40 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("serve did not stop on SIGTERM:\n%s", p.logs)
	}
	return p.exitErr
}

// signal sends sig to the proxy, not to a wrapper such as strace, which
// would detach and leave the proxy running.
func (p *proxyProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	pid := p.cmd.Process.Pid
	if p.wrapped {
		children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		require.NoError(t, err)
		fields := strings.Fields(string(children))
		require.NotEmpty(t, fields, "the wrapper has no child")
		pid, err = strconv.Atoi(fields[0])
		require.NoError(t, err)
	}
	require.NoError(t, syscall.Kill(pid, sig))
}

func (p *proxyProc) port() string { return p.addr[strings.LastIndex(p.addr, ":")+1:] }

// url is the proxy's https URL for path, by the name localhost.
func (p *proxyProc) url(path string) string { return "https://localhost:" + p.port() + path }

// curlClient runs real curl with the client certificate name from the
// TPA dir (empty: none) and returns what curl did.
func curlClient(t *testing.T, d dirs, name string, args ...string) result {
	t.Helper()
	needs.Command(t, "curl", "curl")
	all := []string{"-sS", "--max-time", "60", "--cacert", filepath.Join(d.tpa, "root.crt")}
	if name != "" {
		all = append(all, "--cert", filepath.Join(d.tpa, name+".crt"), "--key", filepath.Join(d.tpa, name+".key"))
	}
	return runCmd(t, exec.Command("curl", append(all, args...)...))
}

// getStatus GETs url and reads the whole answer; it returns the status.
func getStatus(client *http.Client, url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// goClient is a Go HTTPS client with the named client certificate, for
// load: many requests, real TLS.
func goClient(t *testing.T, d dirs, name string) *http.Client {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(d.tpa, name+".crt"), filepath.Join(d.tpa, name+".key"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(filepath.Join(d.tpa, "root.crt"))
	require.NoError(t, err)
	require.True(t, pool.AppendCertsFromPEM(pem))
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"},
	}}
}

// upstream starts an imitation of pg-backup-api for one test.
func upstream(t *testing.T) (*proxytest.Upstream, string) {
	t.Helper()
	u := &proxytest.Upstream{}
	url, stop, err := u.Start("")
	require.NoError(t, err)
	t.Cleanup(stop)
	return u, url
}

// pkiFor sets up a PKI whose server certificate is for localhost and
// 127.0.0.1, as the README's demo uses.
func pkiFor(t *testing.T) dirs {
	t.Helper()
	d := newDirs(t)
	requireOK(t, cli(t, nil, d.flags("init", "--cluster-name", "test", "--hostname", "localhost", "--ip", "127.0.0.1")...))
	return d
}

// renewedServerPair signs a new one-hour server certificate with the
// intermediate in l, as serve renews one, and returns its chain and key
// (PEM).
func renewedServerPair(t *testing.T, l pki.Layout) ([]*x509.Certificate, []byte) {
	t.Helper()
	signer, err := pki.LoadServerSigner(l)
	require.NoError(t, err)
	key, err := pki.ECDSAP256.Generate()
	require.NoError(t, err)
	chain, err := signer.Sign(key.Public(), time.Hour, time.Now())
	require.NoError(t, err)
	keyPEM, err := pki.EncodeKey(key)
	require.NoError(t, err)
	return chain, keyPEM
}

// metricsText fetches the admin listener's /metrics.
func metricsText(t *testing.T, p *proxyProc) string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// waitLog waits until the proxy's log (batched every 100ms) holds want.
func (p *proxyProc) waitLog(t *testing.T, want string) string {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(p.logs.String(), want) }, 5*time.Second, 20*time.Millisecond,
		"the proxy's log never said %q:\n%s", want, p.logs)
	return p.logs.String()
}

// underLoad runs request(worker, n) in a loop on each of workers
// goroutines until the returned stop is called; stop waits for them.
func underLoad(workers int, request func(worker, n int)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				request(w, n)
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
