// Package errdefs defines the error classes shared by every package of
// cri-runtime and their mapping to gRPC codes.
//
// Errors are classified by wrapping one of the sentinel values with %w,
// subject first:
//
//	fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
//
// and tested with the IsX helpers (errors.Is underneath). The mapping to
// gRPC codes happens in exactly two places: ToGRPC in the server interceptor
// and FromGRPC in the client helper, so a class survives a round trip.
//
// This package imports nothing of the project.
package errdefs

import (
	"context"
	"errors"
)

// The error classes. Wrap them; do not compare error text.
var (
	ErrUnknown            = errors.New("unknown")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrNotImplemented     = errors.New("not implemented")
	ErrConflict           = errors.New("conflict") // maps to Aborted
	ErrInternal           = errors.New("internal")
)

// IsInvalidArgument reports whether err is of the InvalidArgument class.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsNotFound reports whether err is of the NotFound class.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is of the AlreadyExists class.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsFailedPrecondition reports whether err is of the FailedPrecondition class.
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }

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
