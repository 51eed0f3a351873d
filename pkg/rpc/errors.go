package rpc

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// classes lists each class with its gRPC code, in the order they are tested.
var classes = []struct {
	err  error
	code codes.Code
}{
	{errdefs.ErrInvalidArgument, codes.InvalidArgument},
	{errdefs.ErrNotFound, codes.NotFound},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{errdefs.ErrFailedPrecondition, codes.FailedPrecondition},
	{errdefs.ErrResourceExhausted, codes.ResourceExhausted},
	{errdefs.ErrUnavailable, codes.Unavailable},
	{errdefs.ErrNotImplemented, codes.Unimplemented},
	{errdefs.ErrConflict, codes.Aborted},
	{errdefs.ErrInternal, codes.Internal},
	{errdefs.ErrUnknown, codes.Unknown},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// Code returns the gRPC code of err's class, codes.Unknown when it has none.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	if errdefs.IsResourceExhausted(err) { // ENOSPC, EDQUOT
		return codes.ResourceExhausted
	}
	return codes.Unknown
}

// ToGRPC converts err into a gRPC status error carrying its class as the
// code. It is called only by the server's interceptor. Errors that already
// are gRPC statuses pass through unchanged.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}

// FromGRPC converts a gRPC status error back into an error of the matching
// class. It is called only by client helpers. The message is kept as sent;
// the class is attached without repeating its text, so a round trip of
// "image \"x\": not found" does not become "not found: image \"x\": not found".
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	var class error
	for _, c := range classes {
		if c.code == s.Code() {
			class = c.err
			break
		}
	}
	if class == nil {
		class = errdefs.ErrUnknown
	}
	return &grpcError{msg: s.Message(), class: class}
}

// grpcError is an error received over gRPC: its text is the server's
// message and it unwraps to its class.
type grpcError struct {
	msg   string
	class error
}

func (e *grpcError) Error() string {
	if e.msg == "" {
		return e.class.Error()
	}
	return e.msg
}

func (e *grpcError) Unwrap() error { return e.class }

// GRPCStatus lets a converted error be sent on again by a proxy with its code.
func (e *grpcError) GRPCStatus() *status.Status { return status.New(Code(e.class), e.msg) }
