package namespaces

import (
	"context"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"google.golang.org/grpc/metadata"
)

func TestRequired(t *testing.T) {
	if _, err := NamespaceRequired(context.Background()); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("missing namespace: %v", err)
	}
	if _, err := NamespaceRequired(WithNamespace(context.Background(), "-bad")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad namespace: %v", err)
	}
	ns, err := NamespaceRequired(WithNamespace(context.Background(), K8s))
	if err != nil || ns != K8s {
		t.Fatal(ns, err)
	}
}

func TestHeaderMirror(t *testing.T) {
	out := WithNamespace(context.Background(), "ns1")
	md, _ := metadata.FromOutgoingContext(out)
	in := metadata.NewIncomingContext(context.Background(), md)
	if ns, ok := Namespace(in); !ok || ns != "ns1" {
		t.Fatal(ns, ok)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(EnvVar, "")
	if FromEnv() != Default {
		t.Fatal(FromEnv())
	}
	t.Setenv(EnvVar, "ci")
	if FromEnv() != "ci" {
		t.Fatal(FromEnv())
	}
}
