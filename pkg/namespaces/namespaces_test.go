package namespaces

import (
	"context"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
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

func TestWithNamespaceReplaces(t *testing.T) {
	ctx := WithNamespace(WithNamespace(context.Background(), "a"), "b")
	if ns, _ := Namespace(ctx); ns != "b" {
		t.Fatalf("namespace %q, want the last one set", ns)
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
