package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// unaryFromGRPC and streamFromGRPC are the client's one error interceptor:
// every error of a call comes back through errdefs.FromGRPC, with its class
// and the daemon's message.
func unaryFromGRPC(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return errdefs.FromGRPC(invoker(ctx, method, req, reply, cc, opts...))
}

func streamFromGRPC(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, errdefs.FromGRPC(err)
	}
	return &errStream{ClientStream: s}, nil
}

// errStream converts the errors of a client stream. io.EOF is not a gRPC
// status and passes unchanged.
type errStream struct {
	grpc.ClientStream
}

func (s *errStream) SendMsg(m any) error { return errdefs.FromGRPC(s.ClientStream.SendMsg(m)) }
func (s *errStream) RecvMsg(m any) error { return errdefs.FromGRPC(s.ClientStream.RecvMsg(m)) }
func (s *errStream) CloseSend() error    { return errdefs.FromGRPC(s.ClientStream.CloseSend()) }
