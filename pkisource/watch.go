package pkisource

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/pgbapi/pgbapi-proxy/proxy"
)

// Watch loads the trust again within interval of any input changing, and
// hands each new Trust to publish, until ctx ends. What failed to load is
// logged; the Trust published then still holds its last good state.
func (l *Loader) Watch(ctx context.Context, interval time.Duration, publish func(*proxy.Trust) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !l.changed() {
			continue
		}
		l.Reload(publish)
	}
}

// Reload loads the trust and publishes it (SIGHUP, or a change Watch saw).
func (l *Loader) Reload(publish func(*proxy.Trust) error) {
	trust, err := l.Load()
	if err != nil {
		l.o.Log.Error("trust input did not load; its last good state stays in force", "err", err)
	}
	if perr := publish(trust); perr != nil {
		l.o.Log.Error("the new trust was not put in force; the previous one stays", "err", perr)
		return
	}
	if err == nil {
		l.o.Log.Info("trust reloaded", "trust", trust.Describe)
	}
}

// changed reports whether an input looks different from when the last
// Load began.
func (l *Loader) changed() bool {
	now := l.stamps()
	l.mu.Lock()
	defer l.mu.Unlock()
	return now != l.seen
}

// stamps tells whether any input changed: an atomic rename changes the
// inode, an edit in place the size or time, a removal the existence.
func (l *Loader) stamps() string {
	var b []byte
	for _, path := range l.files() {
		b = append(b, path...)
		info, err := os.Stat(path)
		if err != nil {
			b = append(b, " -;"...)
			continue
		}
		var ino uint64
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		b = append(b, []byte(" "+info.ModTime().String()+" "+itoa(info.Size())+" "+itoa(int64(ino))+";")...)
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
