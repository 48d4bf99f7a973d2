// Command demo-upstream answers like pg-backup-api on 127.0.0.1:7480, so
// that `make run` can show the proxy working on a machine without Barman.
// It is a demo and test aid; it is not installed by the packages.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
	flag "github.com/spf13/pflag"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7480", "address to answer on")
	keepAlive := flag.Bool("keepalive", false, "keep connections open (pg-backup-api closes them): a fast stand-in for benchmarks")
	diagnoseBytes := flag.Int("diagnose-bytes", 0, "pad /diagnose with more servers to about this many bytes")
	delay := flag.Duration("delay", 0, "hold each answer back this long, as a real Barman command takes time")
	delayPath := flag.String("delay-path", "", "only delay answers to paths starting with this (e.g. /diagnose); empty: all")
	oneAtATime := flag.Bool("one-at-a-time", false, "answer one request at a time, as gunicorn's single sync worker does")
	flag.Parse()
	up := &proxytest.Upstream{KeepAlive: *keepAlive, DiagnoseBytes: *diagnoseBytes}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-upstream:", err)
		os.Exit(1)
	}
	var h http.Handler = up
	if *delay > 0 || *oneAtATime {
		h = &paced{next: up, delay: *delay, prefix: *delayPath, serial: *oneAtATime}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l) //nolint:errcheck // ends with Close
	fmt.Fprintln(os.Stderr, "demo-upstream: answering like pg-backup-api on", "http://"+l.Addr().String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Close()
}

// paced delays answers and, when serial, answers one request at a time.
type paced struct {
	next   http.Handler
	delay  time.Duration
	prefix string
	serial bool
	mu     sync.Mutex
}

func (p *paced) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.serial {
		p.mu.Lock()
		defer p.mu.Unlock()
	}
	if p.delay > 0 && strings.HasPrefix(r.URL.Path, p.prefix) {
		time.Sleep(p.delay)
	}
	p.next.ServeHTTP(w, r)
}
