package client

import (
	"context"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	api "github.com/cri-runtime/cri-runtime/api/services/namespaces/v1"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// NamespaceStore mirrors meta.NamespaceStore over the namespaces service.
type NamespaceStore struct {
	client api.NamespacesClient
}

// Create creates the namespace name; AlreadyExists if it exists.
func (s *NamespaceStore) Create(ctx context.Context, name string, labels map[string]string) error {
	_, err := s.client.Create(ctx, &api.CreateNamespaceRequest{Namespace: &api.Namespace{Name: name, Labels: labels}})
	return err
}

// Get returns the namespace name; NotFound if absent.
func (s *NamespaceStore) Get(ctx context.Context, name string) (meta.Namespace, error) {
	resp, err := s.client.Get(ctx, &api.GetNamespaceRequest{Name: name})
	if err != nil {
		return meta.Namespace{}, err
	}
	return convert.NamespaceFromProto(resp.GetNamespace()), nil
}

// List returns every namespace.
func (s *NamespaceStore) List(ctx context.Context) ([]meta.Namespace, error) {
	resp, err := s.client.List(ctx, &api.ListNamespacesRequest{})
	if err != nil {
		return nil, err
	}
	list := make([]meta.Namespace, 0, len(resp.GetNamespaces()))
	for _, ns := range resp.GetNamespaces() {
		list = append(list, convert.NamespaceFromProto(ns))
	}
	return list, nil
}

// SetLabel sets the label key of namespace name; an empty value removes it.
func (s *NamespaceStore) SetLabel(ctx context.Context, name, key, value string) error {
	req := &api.UpdateNamespaceRequest{
		Namespace:  &api.Namespace{Name: name, Labels: map[string]string{key: value}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels." + key}},
	}
	if value == "" {
		req.Namespace.Labels = nil
	}
	_, err := s.client.Update(ctx, req)
	return err
}

// Delete removes the namespace; FailedPrecondition while it holds anything.
func (s *NamespaceStore) Delete(ctx context.Context, name string) error {
	_, err := s.client.Delete(ctx, &api.DeleteNamespaceRequest{Name: name})
	return err
}
