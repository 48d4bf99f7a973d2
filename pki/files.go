package pki

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// File modes of what the PKI writes.
const (
	DirMode  fs.FileMode = 0o700
	KeyMode  fs.FileMode = 0o600
	CertMode fs.FileMode = 0o644
)

// Owner is a numeric uid and gid that written files are given; nil keeps
// the owner of the process. Groups are the user's supplementary groups,
// for CheckReach.
type Owner struct {
	UID, GID int
	Groups   []int
}

// ErrExists is returned (wrapped) when a file that must not be overwritten
// is already there.
var ErrExists = fs.ErrExist

// WriteNew writes data to path atomically and only if path does not exist:
// the bytes go to a temporary file in the same directory, are synced, given
// their mode and owner, and then hard-linked into place, which fails rather
// than replace a file that appeared meanwhile. Nothing half-written is ever
// visible under path.
func WriteNew(path string, data []byte, mode fs.FileMode, owner *Owner) error {
	return writeAtomic(path, data, mode, owner, false)
}

// Replace writes data to path atomically, replacing what is there.
func Replace(path string, data []byte, mode fs.FileMode, owner *Owner) error {
	return writeAtomic(path, data, mode, owner, true)
}

func writeAtomic(path string, data []byte, mode fs.FileMode, owner *Owner, replace bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	defer func() {
		// The temporary name never survives: on success it was renamed or
		// linked (and the extra link is dropped), on failure it is removed.
		_ = os.Remove(tmp.Name())
		if err != nil {
			err = fmt.Errorf("writing %q: %w", path, err)
		}
	}()
	// CreateTemp makes the file 0600, so a key is never readable by others,
	// not even for a moment.
	if err = prepare(tmp, data, mode, owner); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		var linkErr *os.LinkError
		if errors.As(err, &linkErr) {
			err = linkErr.Err
		}
		return err
	}
	return syncDir(dir)
}

func prepare(f *os.File, data []byte, mode fs.FileMode, owner *Owner) error {
	_, err := f.Write(data)
	if err == nil && owner != nil {
		err = f.Chown(owner.UID, owner.GID)
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// EnsureDir creates dir with mode 0700 (and missing parents with 0755)
// when missing. An existing directory keeps its mode: an operator may have
// chosen it.
func EnsureDir(dir string) error {
	info, err := os.Stat(dir)
	if err == nil {
		if !info.IsDir() {
			return fmt.Errorf("%q exists and is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return needsRoot(err)
	}
	// Parents such as /etc/tpa are ordinary directories others traverse;
	// only the directory itself is private.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return needsRoot(fmt.Errorf("creating directory %q: %w", filepath.Dir(dir), err))
	}
	if err := os.Mkdir(dir, DirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return needsRoot(fmt.Errorf("creating directory %q: %w", dir, err))
	}
	return nil
}

// exists reports whether path exists; errors other than "not there" are
// returned so that an unreadable directory is not mistaken for an empty one.
func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// ErrNotRegular is a path ReadBounded refuses: a directory, a FIFO, a
// device or (unless followed) a symbolic link.
var ErrNotRegular = errors.New("not a regular file")

// SizeError is a file ReadBounded refuses for being over its limit.
type SizeError struct {
	Path  string
	Limit int64
}

func (e *SizeError) Error() string { return fmt.Sprintf("%s is larger than %d bytes", e.Path, e.Limit) }

// ReadBounded reads the regular file at path, at most limit bytes, through
// one descriptor: a link at path is not followed unless follow, a FIFO or
// a device is refused without blocking, and check (when not nil) sees the
// opened file before anything is read, so that what was checked is what
// is read.
func ReadBounded(path string, follow bool, limit int64, check func(fs.FileInfo) error) ([]byte, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK
	if !follow {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %w", path, ErrNotRegular)
	}
	if check != nil {
		if err := check(info); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, &SizeError{Path: path, Limit: limit}
	}
	return data, nil
}
