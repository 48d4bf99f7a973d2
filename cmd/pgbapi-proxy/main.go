// Command pgbapi-proxy puts pg-backup-api (the REST API for Barman) behind
// TLS with mandatory client certificates, and issues the PKI for it.
//
// Each subcommand lives in a file named after it (init.go, issue_client.go,
// serve.go, ...). cli.go holds what they share: the command table, flag and
// environment handling, and how errors become exit codes. This package is
// the only one that knows flag names; serve.go wires the libraries
// together (pkisource, servercert, proxy).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
