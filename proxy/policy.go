package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgbapi/pgbapi-proxy/pki"
)

// errRevoked fails the handshake of a revoked client certificate.
var errRevoked = errors.New("the client certificate is revoked")

// policy is who may do what: the revoked serials from the CRL and the
// access rules. Both reload on SIGHUP and when their files change; a file
// that fails to load leaves the last good state in force.
type policy struct {
	layout     pki.Layout
	accessFile string
	revoked    atomic.Pointer[map[string]bool]
	rules      atomic.Pointer[Rules] // nil: no rules file, everything allowed
	log        *slog.Logger
}

func newPolicy(l pki.Layout, accessFile string, log *slog.Logger) (*policy, error) {
	p := &policy{layout: l, accessFile: accessFile, log: log}
	p.revoked.Store(&map[string]bool{})
	if err := p.reloadCRL(); err != nil {
		return nil, err
	}
	if err := p.reloadRules(); err != nil {
		return nil, err
	}
	return p, nil
}

// reloadCRL reads the CRL init's CA signs on revoke. No file: nothing revoked.
func (p *policy) reloadCRL() error {
	if _, err := os.Stat(p.layout.CRL()); errors.Is(err, os.ErrNotExist) {
		p.revoked.Store(&map[string]bool{})
		return nil
	}
	root, err := pki.LoadCert(p.layout.RootCert())
	if err != nil {
		return err
	}
	set, err := pki.LoadCRL(p.layout.CRL(), root)
	if err != nil {
		return fmt.Errorf("loading the CRL: %w", err)
	}
	p.revoked.Store(&set)
	return nil
}

func (p *policy) reloadRules() error {
	if p.accessFile == "" {
		return nil
	}
	rs, err := LoadRules(p.accessFile)
	if err != nil {
		return err
	}
	p.rules.Store(rs)
	return nil
}

func (p *policy) isRevoked(cert *x509.Certificate) bool {
	return (*p.revoked.Load())[pki.SerialHex(cert)]
}

// reload reloads both, logging each failure; it returns the first error.
func (p *policy) reload() error {
	errCRL := p.reloadCRL()
	if errCRL != nil {
		p.log.Error("CRL reload failed; the last good CRL stays in force", "err", errCRL)
	}
	errRules := p.reloadRules()
	if errRules != nil {
		p.log.Error("access rules reload failed; the last good rules stay in force", "err", errRules)
	}
	return errors.Join(errCRL, errRules)
}

// watch reloads the CRL and the rules within interval of their files
// changing, until ctx ends.
func (p *policy) watch(ctx context.Context, interval time.Duration) {
	files := map[string]func() error{p.layout.CRL(): p.reloadCRL}
	what := map[string]string{p.layout.CRL(): "CRL"}
	if p.accessFile != "" {
		files[p.accessFile] = p.reloadRules
		what[p.accessFile] = "access rules"
	}
	last := map[string]fileStamp{}
	for path := range files {
		last[path] = stampOf(path)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for path, reload := range files {
			now := stampOf(path)
			if now == last[path] {
				continue
			}
			last[path] = now
			if err := reload(); err != nil {
				p.log.Error(what[path]+" changed but did not load; the last good state stays in force", "file", path, "err", err)
				continue
			}
			p.log.Info("reloaded "+what[path], "file", path)
		}
	}
}

// fileStamp tells whether a file changed: an atomic rename changes the
// inode, an edit in place the size or time.
type fileStamp struct {
	ino, size int64
	mtime     time.Time
	exists    bool
}

func stampOf(path string) fileStamp {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{size: info.Size(), mtime: info.ModTime(), exists: true}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		s.ino = int64(st.Ino)
	}
	return s
}
