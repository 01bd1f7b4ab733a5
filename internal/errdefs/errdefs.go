// Package errdefs holds the fixed set of error classes that every layer of
// Nose Cone attaches to its errors with %w, so that the CLI can map a failure
// to an exit code and a test can assert the class with errors.Is.
//
// It runs in every stage, needs no privileges and imports only the stdlib.
package errdefs

import (
	"errors"
	"fmt"
)

// The classes. Wrap them, never compare messages.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrNotImplemented     = errors.New("not implemented")
	ErrUnavailable        = errors.New("unavailable")
	ErrPermissionDenied   = errors.New("permission denied")
)

// classified joins a cause with a class while keeping the cause's message as
// the only text shown to the user.
type classified struct {
	class error
	cause error
}

func (c *classified) Error() string   { return c.cause.Error() }
func (c *classified) Unwrap() []error { return []error{c.cause, c.class} }

// With attaches class to err without changing its message. A nil err stays nil.
func With(class, err error) error {
	if err == nil {
		return nil
	}
	return &classified{class: class, cause: err}
}

// Newf formats a new error of the given class.
func Newf(class error, format string, args ...any) error {
	return With(class, fmt.Errorf(format, args...))
}

// NotFound formats an ErrNotFound error. It and InvalidArgument, ... are
// shorthands for Newf with that class.
func NotFound(format string, args ...any) error { return Newf(ErrNotFound, format, args...) }

// InvalidArgument formats an ErrInvalidArgument error.
func InvalidArgument(format string, args ...any) error {
	return Newf(ErrInvalidArgument, format, args...)
}

// FailedPrecondition formats an ErrFailedPrecondition error.
func FailedPrecondition(format string, args ...any) error {
	return Newf(ErrFailedPrecondition, format, args...)
}

// Unavailable formats an ErrUnavailable error.
func Unavailable(format string, args ...any) error { return Newf(ErrUnavailable, format, args...) }

// PermissionDenied formats an ErrPermissionDenied error.
func PermissionDenied(format string, args ...any) error {
	return Newf(ErrPermissionDenied, format, args...)
}

// AlreadyExists formats an ErrAlreadyExists error.
func AlreadyExists(format string, args ...any) error {
	return Newf(ErrAlreadyExists, format, args...)
}
