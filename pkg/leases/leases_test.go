package leases

import (
	"context"
	"testing"
)

func TestWithLease(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("a bare context has no lease")
	}
	ctx := WithLease(context.Background(), "l1")
	if id, ok := FromContext(ctx); !ok || id != "l1" {
		t.Fatalf("lease %q %v", id, ok)
	}
	if id, _ := FromContext(WithLease(ctx, "l2")); id != "l2" {
		t.Fatalf("lease %q, want the last one set", id)
	}
}
