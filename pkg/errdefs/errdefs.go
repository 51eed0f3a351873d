// Package errdefs defines the error classes shared by every package of
// cri-runtime and their mapping to gRPC codes.
//
// Errors are classified by wrapping one of the sentinel values with %w,
// subject first:
//
//	fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
//
// and tested with the IsX helpers (errors.Is underneath). The mapping to
// gRPC codes lives in pkg/rpc, beside the server and the client, so that
// this package links no gRPC and the shim can use it.
//
// This package imports nothing of the project, and only the standard library.
package errdefs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
)

// The error classes. Wrap them; do not compare error text.
var (
	ErrUnknown            = errors.New("unknown")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrResourceExhausted is a full disk, a quota or a limit reached.
	ErrResourceExhausted = errors.New("resource exhausted")
	ErrUnavailable       = errors.New("unavailable")
	ErrNotImplemented    = errors.New("not implemented")
	ErrConflict          = errors.New("conflict") // maps to Aborted
	ErrInternal          = errors.New("internal")
)

// IsInvalidArgument reports whether err is of the InvalidArgument class.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsNotFound reports whether err is of the NotFound class.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is of the AlreadyExists class.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsFailedPrecondition reports whether err is of the FailedPrecondition class.
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }

// IsResourceExhausted reports whether err is of the ResourceExhausted class:
// wrapped ErrResourceExhausted, or a full disk (ENOSPC) or quota (EDQUOT)
// from the system, which need no wrapping to be classified.
func IsResourceExhausted(err error) bool {
	return errors.Is(err, ErrResourceExhausted) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// IsUnavailable reports whether err is of the Unavailable class.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsNotImplemented reports whether err is of the NotImplemented class.
func IsNotImplemented(err error) bool { return errors.Is(err, ErrNotImplemented) }

// IsConflict reports whether err is of the Conflict (Aborted) class.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsInternal reports whether err is of the Internal class.
func IsInternal(err error) bool { return errors.Is(err, ErrInternal) }

// IsUnknown reports whether err is explicitly of the Unknown class.
func IsUnknown(err error) bool { return errors.Is(err, ErrUnknown) }

// IsCanceled reports whether err is a context cancellation.
func IsCanceled(err error) bool { return errors.Is(err, context.Canceled) }

// IsDeadlineExceeded reports whether err is a context deadline.
func IsDeadlineExceeded(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

// Errorf formats a message and attaches class to it:
// Errorf(ErrNotFound, "lease %q", id) reads `lease "l1": not found`.
func Errorf(class error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), class)
}
