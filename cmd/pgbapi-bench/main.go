// Command pgbapi-bench is the load generator of `make bench`: HTTPS with a
// client certificate against pgbapi-proxy (or nginx, for comparison),
// either over N kept-alive connections or with a full TLS handshake per
// request (no session resumption). It prints requests per second, errors
// and latency percentiles, and a JSON line for scripts. An http:// URL
// (keepalive mode only) measures an upstream directly, without TLS.
// --free-ports N prints N free loopback ports, one a line, for the script.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	flag "github.com/spf13/pflag"
)

type options struct {
	url, cert, key, cacert, serverName, mode, label string
	conns                                           int
	duration                                        time.Duration
	rsaOnly, classicalKEX                           bool
}

type result struct {
	Label    string  `json:"label"`
	Mode     string  `json:"mode"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	Bytes    int64   `json:"bytes"`
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "", "https URL to GET")
	flag.StringVar(&o.cert, "cert", "", "client certificate")
	flag.StringVar(&o.key, "key", "", "client key")
	flag.StringVar(&o.cacert, "cacert", "", "CA to verify the server with")
	flag.StringVar(&o.serverName, "server-name", "", "TLS server name (default: the URL's host)")
	flag.StringVar(&o.mode, "mode", "keepalive", "keepalive (N kept-alive connections) or handshake (a new TLS connection per request, no resumption)")
	flag.StringVar(&o.label, "label", "", "label for the JSON line")
	flag.IntVar(&o.conns, "connections", 16, "concurrent connections (workers)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run")
	flag.BoolVar(&o.rsaOnly, "rsa-only", false, "offer only TLS 1.2 ECDHE-RSA cipher suites: a client that cannot take an ECDSA server certificate")
	flag.BoolVar(&o.classicalKEX, "classical-kex", false, "offer only classical key exchanges (X25519, P-256), no post-quantum hybrid: what nginx and HAProxy with OpenSSL 3.0 negotiate anyway")
	freePorts := flag.Int("free-ports", 0, "print this many free TCP ports on 127.0.0.1 and exit")
	flag.Parse()
	if *freePorts > 0 {
		if err := printFreePorts(*freePorts); err != nil {
			fmt.Fprintln(os.Stderr, "pgbapi-bench:", err)
			os.Exit(1)
		}
		return
	}
	res, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgbapi-bench:", err)
		os.Exit(1)
	}
	fmt.Printf("%-28s %10.0f req/s  errors %d  p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms\n",
		res.Label, res.RPS, res.Errors, res.P50ms, res.P90ms, res.P99ms, res.MaxMs)
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if res.Requests == 0 {
		os.Exit(1)
	}
}

func run(o options) (*result, error) {
	u, err := url.Parse(o.url)
	if err == nil && u.Scheme == "http" && o.mode == "keepalive" {
		return measure(o, keepAlive(o, &http.Transport{MaxIdleConnsPerHost: o.conns, MaxConnsPerHost: o.conns, DisableCompression: true}))
	}
	if err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("--url must be an https URL (or http:// in keepalive mode)")
	}
	cert, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return nil, err
	}
	pemData, err := os.ReadFile(o.cacert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("%s holds no certificate", o.cacert)
	}
	if o.serverName == "" {
		o.serverName = u.Hostname()
	}
	tlsCfg := &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: o.serverName,
		SessionTicketsDisabled: true, ClientSessionCache: nil, MinVersion: tls.VersionTLS12,
	}
	if o.classicalKEX {
		tlsCfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	}
	if o.rsaOnly {
		tlsCfg.MaxVersion = tls.VersionTLS12
		tlsCfg.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}
	}
	var one func() (int64, error)
	switch o.mode {
	case "keepalive":
		one = keepAlive(o, &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: o.conns, MaxConnsPerHost: o.conns, DisableCompression: true})
	case "handshake":
		path := u.RequestURI()
		host := u.Host
		one = func() (int64, error) {
			d := &net.Dialer{Timeout: 10 * time.Second}
			conn, err := tls.DialWithDialer(d, "tcp", host, tlsCfg)
			if err != nil {
				return 0, err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, u.Host); err != nil {
				return 0, err
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return 0, err
			}
			return drain(resp)
		}
	default:
		return nil, fmt.Errorf("--mode %q: use keepalive or handshake", o.mode)
	}
	return measure(o, one)
}

// keepAlive GETs the URL over kept-alive connections.
func keepAlive(o options, tr *http.Transport) func() (int64, error) {
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return func() (int64, error) {
		resp, err := client.Get(o.url)
		if err != nil {
			return 0, err
		}
		return drain(resp)
	}
}

// printFreePorts binds n ports on 127.0.0.1 at once (so they differ),
// prints them and lets them go.
func printFreePorts(n int) error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

// measure runs one from o.conns workers for o.duration.
func measure(o options, one func() (int64, error)) (*result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	var (
		requests, errs, bytes atomic.Int64
		mu                    sync.Mutex
		lat                   []time.Duration
		wg                    sync.WaitGroup
		firstErr              atomic.Value
	)
	start := time.Now()
	for range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := one()
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, time.Since(t0))
				requests.Add(1)
				bytes.Add(n)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "pgbapi-bench: first error:", e)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	label := o.label
	if label == "" {
		label = o.mode
	}
	return &result{
		Label: label, Mode: o.mode, Requests: requests.Load(), Errors: errs.Load(), Seconds: elapsed,
		RPS: float64(requests.Load()) / elapsed, P50ms: pct(0.5), P90ms: pct(0.9), P99ms: pct(0.99), MaxMs: pct(1), Bytes: bytes.Load(),
	}, nil
}

// drain reads a whole answer; anything but 200 is an error.
func drain(resp *http.Response) (int64, error) {
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return n, err
}
