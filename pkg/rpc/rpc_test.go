package rpc

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// Regression: re-namespacing a context used to append a second header, and
// the server read the first.
func TestOutgoingHeadersAreReplaced(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "a")
	ctx = leases.WithLease(ctx, "l1")
	ctx = OutgoingContext(ctx)
	ctx = namespaces.WithNamespace(ctx, "b")
	ctx = leases.WithLease(ctx, "l2")
	md, _ := metadata.FromOutgoingContext(OutgoingContext(ctx))
	if v := md.Get(NamespaceHeader); len(v) != 1 || v[0] != "b" {
		t.Fatalf("namespace header %q, want [b]", v)
	}
	if v := md.Get(LeaseHeader); len(v) != 1 || v[0] != "l2" {
		t.Fatalf("lease header %q, want [l2]", v)
	}
}

func TestIncomingContext(t *testing.T) {
	out := OutgoingContext(leases.WithLease(namespaces.WithNamespace(context.Background(), "ns1"), "l1"))
	md, _ := metadata.FromOutgoingContext(out)
	in := IncomingContext(metadata.NewIncomingContext(context.Background(), md))
	if ns, ok := namespaces.Namespace(in); !ok || ns != "ns1" {
		t.Fatal(ns, ok)
	}
	if id, ok := leases.FromContext(in); !ok || id != "l1" {
		t.Fatal(id, ok)
	}
	bare := IncomingContext(context.Background())
	if _, ok := namespaces.Namespace(bare); ok {
		t.Fatal("no header, no namespace")
	}
}
