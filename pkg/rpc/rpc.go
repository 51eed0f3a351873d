// Package rpc is the gRPC edge of the project's leaves: it maps errdefs
// classes to gRPC status codes and back, and the namespace and lease of a
// context to the gRPC headers that carry them across a connection. The
// server's interceptors and the client's use it; nothing below them does,
// so the leaves and the shim link no gRPC.
//
// This package imports only the leaves.
package rpc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// The gRPC metadata keys that carry the namespace and the lease of a call.
const (
	NamespaceHeader = "cri-runtime-namespace"
	LeaseHeader     = "cri-runtime-lease"
)

// OutgoingContext returns ctx with its namespace and lease set as the
// outgoing headers of a call, replacing any value set before: a context
// namespaced twice sends the last namespace only.
func OutgoingContext(ctx context.Context) context.Context {
	ns, hasNS := namespaces.Namespace(ctx)
	lease, hasLease := leases.FromContext(ctx)
	if !hasNS && !hasLease {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	if hasNS {
		md.Set(NamespaceHeader, ns)
	}
	if hasLease {
		md.Set(LeaseHeader, lease)
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// IncomingContext returns the context of a call received by a server, with
// the namespace and lease its headers carry. A header sent more than once
// is ambiguous; the last value wins, as in OutgoingContext.
func IncomingContext(ctx context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	if v := md.Get(NamespaceHeader); len(v) > 0 {
		ctx = namespaces.WithNamespace(ctx, v[len(v)-1])
	}
	if v := md.Get(LeaseHeader); len(v) > 0 {
		ctx = leases.WithLease(ctx, v[len(v)-1])
	}
	return ctx
}

// UnaryClientInterceptor is a client's one interceptor for unary calls: it
// sends the namespace and lease of ctx, and returns every error through
// FromGRPC, with its class and the server's message.
func UnaryClientInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return FromGRPC(invoker(OutgoingContext(ctx), method, req, reply, cc, opts...))
}

// StreamClientInterceptor is UnaryClientInterceptor for streams.
func StreamClientInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(OutgoingContext(ctx), desc, cc, method, opts...)
	if err != nil {
		return nil, FromGRPC(err)
	}
	return &errStream{ClientStream: s}, nil
}

// errStream converts the errors of a client stream. io.EOF is not a gRPC
// status and passes unchanged.
type errStream struct {
	grpc.ClientStream
}

func (s *errStream) SendMsg(m any) error { return FromGRPC(s.ClientStream.SendMsg(m)) }
func (s *errStream) RecvMsg(m any) error { return FromGRPC(s.ClientStream.RecvMsg(m)) }
func (s *errStream) CloseSend() error    { return FromGRPC(s.ClientStream.CloseSend()) }
