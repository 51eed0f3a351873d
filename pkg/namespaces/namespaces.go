// Package namespaces carries the namespace of an operation in its
// context.Context and mirrors it to and from a gRPC metadata header.
//
// Every store call requires a namespace (NamespaceRequired). kubelet's CRI
// calls run in "k8s.io"; the CLI's default is "default", overridden by the
// CRI_RUNTIME_NAMESPACE environment variable or --namespace.
//
// This package imports nothing of the project but errdefs and identifiers.
package namespaces

import (
	"context"
	"fmt"
	"os"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"google.golang.org/grpc/metadata"
)

const (
	// Default is the namespace of the CLI when none is given.
	Default = "default"
	// K8s is the namespace of every CRI call.
	K8s = "k8s.io"
	// EnvVar overrides Default for the CLI.
	EnvVar = "CRI_RUNTIME_NAMESPACE"
	// GRPCHeader is the metadata key that carries the namespace.
	GRPCHeader = "cri-runtime-namespace"
)

type key struct{}

// WithNamespace returns a context that carries ns, both for in-process
// callers and, through outgoing gRPC metadata, for remote ones.
func WithNamespace(ctx context.Context, ns string) context.Context {
	ctx = context.WithValue(ctx, key{}, ns)
	return metadata.AppendToOutgoingContext(ctx, GRPCHeader, ns)
}

// Namespace returns the namespace in ctx: the in-process value first, then
// the incoming gRPC header.
func Namespace(ctx context.Context) (string, bool) {
	if ns, ok := ctx.Value(key{}).(string); ok {
		return ns, true
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(GRPCHeader); len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
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
