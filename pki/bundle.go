package pki

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Bundle is what a remote service needs to call the API: its certificate
// and key, the cluster root, and how to use them. Without KeyPEM (a
// certificate signed from the client's request) it holds no key.
type Bundle struct {
	Name    string // client name: NAME.crt and NAME.key
	CertPEM []byte
	KeyPEM  []byte
	RootPEM []byte
	Host    string // what the client connects to (a name on the server cert)
}

// readme explains the bundle to whoever sets the remote service up.
func (b Bundle) readme() string {
	r := strings.NewReplacer("NAME", b.Name, "HOST", b.Host)
	keyLine := "NAME.key   its private key: keep it readable by the service only (0600)"
	if len(b.KeyPEM) == 0 {
		keyLine = "(NAME.key  not here: the private key made with the request never left its host;\n           put it next to NAME.crt, readable by the service only)"
	}
	return r.Replace(`pg-backup-api client bundle for NAME
=====================================

NAME.crt   the client certificate (CN=NAME), signed by the cluster CA
` + keyLine + `
root.crt   the cluster CA, to verify the server

Test it:

  curl --cacert root.crt --cert NAME.crt --key NAME.key https://HOST/diagnose

Python (requests):

  import requests
  r = requests.get("https://HOST/diagnose",
                   cert=("NAME.crt", "NAME.key"),
                   verify="root.crt")
  r.raise_for_status()
  print(r.json())

The server certificate is for HOST; connect by that name (or another name
it lists: openssl s_client -connect HOST:443 -showcerts).
`)
}

func (b Bundle) files() []struct {
	name string
	data []byte
	mode int64
} {
	files := []struct {
		name string
		data []byte
		mode int64
	}{
		{b.Name + ".crt", b.CertPEM, 0o644},
		{b.Name + ".key", b.KeyPEM, 0o600},
		{RootCertName, b.RootPEM, 0o644},
		{"README.txt", []byte(b.readme()), 0o644},
	}
	if len(b.KeyPEM) == 0 { // signed from a request: the key is not ours to hand over
		files = append(files[:1], files[2:]...)
	}
	return files
}

// WriteTarGz writes the bundle as a .tar.gz at path, which must not exist.
// The archive holds a directory NAME/ with the files, the key 0600.
func (b Bundle) WriteTarGz(path string, now time.Time) error {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: b.Name + "/", Mode: 0o700, ModTime: now}); err != nil {
		return err
	}
	for _, f := range b.files() {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: b.Name + "/" + f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	// The archive holds a private key: 0600 like the key itself.
	return WriteNew(path, buf.Bytes(), KeyMode, nil)
}

// WriteDir writes the bundle's files into dir, which is created (0700)
// and must not exist yet or be empty.
func (b Bundle) WriteDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := EnsureDir(dir); err != nil {
			return err
		}
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("bundle directory %q is not empty; give a new one", dir)
	}
	for _, f := range b.files() {
		mode := CertMode
		if f.mode == 0o600 {
			mode = KeyMode
		}
		if err := WriteNew(filepath.Join(dir, f.name), f.data, mode, nil); err != nil {
			return err
		}
	}
	return nil
}
