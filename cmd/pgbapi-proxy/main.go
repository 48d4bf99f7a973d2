// Command pgbapi-proxy puts pg-backup-api (the REST API for Barman) behind
// TLS with mandatory client certificates, and issues the PKI for it.
//
// Each subcommand lives in its own file: init.go, issue_client.go, list.go,
// version.go. cli.go holds what they share: the command table, flag and
// environment handling, and how errors become exit codes.
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
