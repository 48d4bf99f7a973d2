// Command demo-upstream answers like pg-backup-api on 127.0.0.1:7480, so
// that `make run` can show the proxy working on a machine without Barman.
// It is a demo and test aid; it is not installed by the packages.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgbapi/pgbapi-proxy/proxy/proxytest"
	flag "github.com/spf13/pflag"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7480", "address to answer on")
	keepAlive := flag.Bool("keepalive", false, "keep connections open (pg-backup-api closes them): a fast stand-in for benchmarks")
	diagnoseBytes := flag.Int("diagnose-bytes", 0, "pad /diagnose with more servers to about this many bytes")
	flag.Parse()
	up := proxytest.Upstream{KeepAlive: *keepAlive, DiagnoseBytes: *diagnoseBytes}
	url, stop, err := up.Start(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-upstream:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "demo-upstream: answering like pg-backup-api on", url)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	stop()
}
