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
	flag.Parse()
	var up proxytest.Upstream
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
