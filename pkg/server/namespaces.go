package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/cri-runtime/cri-runtime/api/services/namespaces/v1"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// namespacesService serves api/services/namespaces over meta's
// NamespaceStore.
type namespacesService struct {
	api.UnimplementedNamespacesServer
	store *meta.NamespaceStore
}

func (s *namespacesService) Get(ctx context.Context, req *api.GetNamespaceRequest) (*api.GetNamespaceResponse, error) {
	ns, err := s.store.Get(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &api.GetNamespaceResponse{Namespace: convert.NamespaceToProto(ns)}, nil
}

func (s *namespacesService) List(ctx context.Context, _ *api.ListNamespacesRequest) (*api.ListNamespacesResponse, error) {
	list, err := s.store.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &api.ListNamespacesResponse{Namespaces: make([]*api.Namespace, 0, len(list))}
	for _, ns := range list {
		resp.Namespaces = append(resp.Namespaces, convert.NamespaceToProto(ns))
	}
	return resp, nil
}

func (s *namespacesService) Create(ctx context.Context, req *api.CreateNamespaceRequest) (*api.CreateNamespaceResponse, error) {
	ns := convert.NamespaceFromProto(req.GetNamespace())
	if err := s.store.Create(ctx, ns.Name, ns.Labels); err != nil {
		return nil, err
	}
	created, err := s.store.Get(ctx, ns.Name)
	if err != nil {
		return nil, err
	}
	return &api.CreateNamespaceResponse{Namespace: convert.NamespaceToProto(created)}, nil
}

// Update sets the labels named by the mask. An empty mask or "labels"
// replaces them all: labels absent from the request are removed.
func (s *namespacesService) Update(ctx context.Context, req *api.UpdateNamespaceRequest) (*api.UpdateNamespaceResponse, error) {
	want := convert.NamespaceFromProto(req.GetNamespace())
	ns, err := s.store.UpdateLabels(ctx, want, req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, err
	}
	return &api.UpdateNamespaceResponse{Namespace: convert.NamespaceToProto(ns)}, nil
}

func (s *namespacesService) Delete(ctx context.Context, req *api.DeleteNamespaceRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, s.store.Delete(ctx, req.GetName())
}
