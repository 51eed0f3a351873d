// Package leases carries the lease of an operation in its context.Context
// and mirrors it to and from a gRPC metadata header. Resources created under
// a lease (content, ingests, snapshots) are held by it against GC; the
// leases themselves live in pkg/meta.
//
// This package imports nothing of the project.
package leases

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// GRPCHeader is the metadata key that carries the lease ID.
const GRPCHeader = "cri-runtime-lease"

type key struct{}

// WithLease returns a context that carries the lease id.
func WithLease(ctx context.Context, id string) context.Context {
	ctx = context.WithValue(ctx, key{}, id)
	return metadata.AppendToOutgoingContext(ctx, GRPCHeader, id)
}

// FromContext returns the lease in ctx: the in-process value first, then
// the incoming gRPC header.
func FromContext(ctx context.Context) (string, bool) {
	if id, ok := ctx.Value(key{}).(string); ok {
		return id, true
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(GRPCHeader); len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}
