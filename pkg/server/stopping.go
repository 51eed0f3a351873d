package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// A graceful stop lets unary calls finish, within the shutdown timeout,
// but ends streaming calls at once: an ingest, a blob read or a
// subscription can last as long as its client wants, and would otherwise
// hold the stop for the whole timeout and then be cut with a bare
// transport error. Each stream instead gets an Unavailable error saying
// that the daemon is stopping, on its next receive or send, or at once
// when it is waiting for its client. An ingest so ended is kept, to be
// resumed after the restart.

// streamStopper is the innermost stream interceptor: it ends the stream's
// receives and sends once stopping is done.
func streamStopper(stopping context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &stoppableStream{ServerStream: ss, stopping: stopping, method: info.FullMethod, clientStream: info.IsClientStream})
	}
}

type stoppableStream struct {
	grpc.ServerStream
	stopping     context.Context
	method       string
	clientStream bool // the client sends a stream, and may keep the server waiting
}

func (s *stoppableStream) stopErr() error {
	return fmt.Errorf("%s: the daemon is stopping: %w", s.method, errdefs.ErrUnavailable)
}

// RecvMsg receives m, or returns the stopping error as soon as the daemon
// stops. The receive of a client stream runs aside, so that a handler
// waiting for an idle client is released: m is then dropped by the
// generated Recv that allocated it, so the receive left running aside (it
// ends with the stream, once the handler has returned) writes into memory
// nobody reads.
func (s *stoppableStream) RecvMsg(m any) error {
	if s.stopping.Err() != nil {
		return s.stopErr()
	}
	if !s.clientStream {
		return s.ServerStream.RecvMsg(m)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServerStream.RecvMsg(m) }()
	select {
	case err := <-done:
		return err
	case <-s.stopping.Done():
		return s.stopErr()
	}
}

// SendMsg sends m unless the daemon is stopping.
func (s *stoppableStream) SendMsg(m any) error {
	if s.stopping.Err() != nil {
		return s.stopErr()
	}
	return s.ServerStream.SendMsg(m)
}
