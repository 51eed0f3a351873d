// Package namespaces carries the namespace of an operation in its
// context.Context.
//
// Every store call requires a namespace (NamespaceRequired). kubelet's CRI
// calls run in "k8s.io"; the CLI's default is "default", overridden by the
// CRI_RUNTIME_NAMESPACE environment variable or --namespace. The namespace
// crosses the management API as a gRPC header, which pkg/rpc maps to and
// from the context, so that this package links no gRPC.
//
// This package imports nothing of the project but errdefs and identifiers.
package namespaces

import (
	"context"
	"fmt"
	"os"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
)

const (
	// Default is the namespace of the CLI when none is given.
	Default = "default"
	// K8s is the namespace of every CRI call.
	K8s = "k8s.io"
	// EnvVar overrides Default for the CLI.
	EnvVar = "CRI_RUNTIME_NAMESPACE"
)

type key struct{}

// WithNamespace returns a context that carries ns, replacing any namespace
// ctx carried before.
func WithNamespace(ctx context.Context, ns string) context.Context {
	return context.WithValue(ctx, key{}, ns)
}

// Namespace returns the namespace in ctx.
func Namespace(ctx context.Context) (string, bool) {
	ns, ok := ctx.Value(key{}).(string)
	return ns, ok
}

// NamespaceRequired returns the namespace in ctx, validated, or an
// InvalidArgument error when there is none or it is malformed.
func NamespaceRequired(ctx context.Context) (string, error) {
	ns, ok := Namespace(ctx)
	if !ok || ns == "" {
		return "", fmt.Errorf("namespace is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := identifiers.Validate(ns); err != nil {
		return "", fmt.Errorf("namespace: %w", err)
	}
	return ns, nil
}

// FromEnv returns the CLI's default namespace: $CRI_RUNTIME_NAMESPACE, else
// Default.
func FromEnv() string {
	if ns := os.Getenv(EnvVar); ns != "" {
		return ns
	}
	return Default
}
