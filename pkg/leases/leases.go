// Package leases carries the lease of an operation in its context.Context.
// Resources created under a lease (content, ingests, snapshots) are held by
// it against GC; the leases themselves live in pkg/meta. The lease crosses
// the management API as a gRPC header, which pkg/rpc maps to and from the
// context, so that this package links no gRPC.
//
// This package imports nothing of the project, and only the standard library.
package leases

import "context"

type key struct{}

// WithLease returns a context that carries the lease id, replacing any
// lease ctx carried before.
func WithLease(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// FromContext returns the lease in ctx.
func FromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(key{}).(string)
	return id, ok
}
