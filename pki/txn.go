package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// fileSet writes several files so that either all of them change or none
// does: every new content is first written to a temporary file next to its
// target (which is where a read-only or full directory fails), the current
// file is hard-linked aside, and only then are the temporary files renamed
// into place. If a rename fails, the ones already done are undone from the
// saved links. A rename replaces a symbolic link at the target itself; the
// file it pointed to is never written.
type fileSet struct {
	files []*setFile
}

type setFile struct {
	path, tmp, saved string // saved is "" when path did not exist
}

// stage writes data for path to a temporary file. On error nothing of this
// set stays behind (the caller still calls abort, which is harmless).
func (s *fileSet) stage(path string, data []byte, mode fs.FileMode, owner *Owner) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	f := &setFile{path: path, tmp: tmp.Name()}
	s.files = append(s.files, f)
	if err := prepare(tmp, data, mode, owner); err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	have, err := exists(path)
	if err != nil {
		return fmt.Errorf("writing %q: %w", path, err)
	}
	if have {
		f.saved = f.tmp + ".saved"
		if err := os.Link(path, f.saved); err != nil {
			f.saved = ""
			return fmt.Errorf("writing %q: keeping the old file: %w", path, err)
		}
	}
	return nil
}

// commit renames every staged file into place, in the order staged. On
// failure it puts back what it had replaced and returns the error.
func (s *fileSet) commit() error {
	for i, f := range s.files {
		if err := os.Rename(f.tmp, f.path); err != nil {
			err = fmt.Errorf("writing %q: %w", f.path, err)
			for _, done := range s.files[:i] {
				if uerr := done.undo(); uerr != nil {
					err = errors.Join(err, uerr)
				}
			}
			s.abort()
			return err
		}
	}
	dirs := map[string]bool{}
	for _, f := range s.files {
		if f.saved != "" {
			os.Remove(f.saved)
		}
		dirs[filepath.Dir(f.path)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	s.files = nil
	return nil
}

func (f *setFile) undo() error {
	var err error
	if f.saved != "" {
		err = os.Rename(f.saved, f.path)
	} else {
		err = os.Remove(f.path)
	}
	if err != nil {
		return fmt.Errorf("restoring %q: %w", f.path, err)
	}
	f.saved = ""
	return nil
}

// abort removes whatever is still staged.
func (s *fileSet) abort() {
	for _, f := range s.files {
		os.Remove(f.tmp)
		if f.saved != "" {
			os.Remove(f.saved)
		}
	}
	s.files = nil
}

// processOwner is the user and group of this process, for files that must
// belong to whoever wrote them (root) whatever owned them before.
func processOwner() *Owner { return &Owner{UID: os.Geteuid(), GID: os.Getegid()} }
