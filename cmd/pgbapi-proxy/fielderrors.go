package main

import (
	"errors"

	"github.com/pgbapi/pgbapi-proxy/pki"
)

// The pki options' fields, by the flag that sets each, per command: a
// pki.FieldError becomes a usage error (exit 2) naming the flag.
var (
	issueClientFields = map[string]string{
		"Name": "name", "Days": "days", "KeyType": "key-type", "OutDir": "out", "CSR": "csr",
	}
	initFields = map[string]string{
		"Cluster": "cluster-name", "Hostnames": "hostname", "IPs": "ip", "KeyType": "key-type",
		"CACertFile": "ca-cert", "CAKeyFile": "ca-key", "ServerDays": "server-cert-days", "ClientDays": "client-days",
	}
)

// pkiFlagError turns a pki.FieldError into a usage error that names the flag
// setting that field ("--days: ..."); other errors pass unchanged.
func pkiFlagError(err error, flags map[string]string) error {
	var fe *pki.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	if flag, ok := flags[fe.Field]; ok {
		return usagef("--%s: %v", flag, fe.Err)
	}
	return usageError{fe.Error()}
}
