package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Checks made before anything is issued, so that an output that cannot
// be written is found while nothing has changed yet.

// probeWrite checks that a new file can be made in dir, by making one and
// removing it: the only test that also covers read-only mounts, chattr +i
// and root.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".pgbapi-proxy-probe-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return needsRoot(fmt.Errorf("cannot write into %q: %w", dir, err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// ErrUnreachable is returned (wrapped) by CheckReach.
var ErrUnreachable = errors.New("the owner could not read its key there")

// CheckReach says whether owner can get to files in dir: search (x)
// permission on every directory from / down to dir, for the owner's uid,
// its group or one of its supplementary groups, as the kernel decides.
// The packaged TPA directory is root:pgbapi-proxy 0770, so a key written
// there for another user is out of that user's reach.
func CheckReach(dir string, owner Owner) error {
	if owner.UID == 0 {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	groups := append([]int{owner.GID}, owner.Groups...)
	for p := abs; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := info.Mode().Perm()
		var bit fs.FileMode = 0o001
		switch {
		case int(st.Uid) == owner.UID:
			bit = 0o100
		case slices.Contains(groups, int(st.Gid)):
			bit = 0o010
		}
		if perm&bit == 0 {
			return fmt.Errorf("%w: uid %d cannot reach files in %q (%q is mode %04o, owner %d:%d); write them where it can, or open the directories on the way",
				ErrUnreachable, owner.UID, abs, p, perm, st.Uid, st.Gid)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// CheckTarGzPath says whether WriteTarGz can write path: it must not
// exist, and its directory must take a new file.
func CheckTarGzPath(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("bundle %q already exists; give a new file name", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(path)
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("the bundle's directory: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("the bundle's directory %q is not a directory", dir)
	}
	return probeWrite(dir)
}

// CheckBundleDir says whether WriteDir can write into dir: an empty
// directory that takes new files, or a directory that can be created.
func CheckBundleDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return fmt.Errorf("bundle directory %q is not empty; give a new one", dir)
	case err == nil:
		return probeWrite(dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("bundle directory: %w", err)
	}
	// Missing: the nearest directory that exists must take the new one.
	parent := filepath.Dir(filepath.Clean(dir))
	for {
		info, err := os.Stat(parent)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("bundle directory %q: %q is not a directory", dir, parent)
			}
			return probeWrite(parent)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("bundle directory: %w", err)
		}
		if parent == filepath.Dir(parent) {
			return err
		}
		parent = filepath.Dir(parent)
	}
}
