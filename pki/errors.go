package pki

import (
	"errors"
	"fmt"
	"io/fs"
)

// FieldError is an option whose value cannot be used: the caller gave a
// wrong value, not the host a problem. Field is the name of the options
// struct's field (Name, Days, KeyType, ServerDays, ...), so that a command
// line can name its own flag; Err says what is wrong in words that stand
// alone.
//
//	var fe *pki.FieldError
//	if errors.As(err, &fe) && fe.Field == "Days" { ... }
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// fieldError marks err as being about field; nil stays nil.
func fieldError(field string, err error) error {
	if err == nil {
		return nil
	}
	return &FieldError{Field: field, Err: err}
}

// fieldErrorf is fieldError with a formatted message.
func fieldErrorf(field, format string, a ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, a...)}
}

// needsRoot adds what to do to a permission error on a file only root
// (or the service) may read; other errors pass unchanged.
func needsRoot(err error) error {
	if err != nil && errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: run this as root (the PKI's keys and inventory are root's only)", err)
	}
	return err
}
