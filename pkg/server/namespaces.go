package server

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/cri-runtime/cri-runtime/api/services/namespaces/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
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
	set := map[string]string{} // key -> value, "" removes
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		paths = []string{"labels"}
	}
	for _, p := range paths {
		switch {
		case p == "labels":
			cur, err := s.store.Get(ctx, want.Name)
			if err != nil {
				return nil, err
			}
			for k := range cur.Labels {
				set[k] = ""
			}
			for k, v := range want.Labels {
				set[k] = v
			}
		case strings.HasPrefix(p, "labels."):
			k := strings.TrimPrefix(p, "labels.")
			set[k] = want.Labels[k]
		default:
			return nil, fmt.Errorf("namespace %q: field path %q cannot be updated: %w", want.Name, p, errdefs.ErrInvalidArgument)
		}
	}
	for k, v := range set {
		if err := s.store.SetLabel(ctx, want.Name, k, v); err != nil {
			return nil, err
		}
	}
	ns, err := s.store.Get(ctx, want.Name)
	if err != nil {
		return nil, err
	}
	return &api.UpdateNamespaceResponse{Namespace: convert.NamespaceToProto(ns)}, nil
}

func (s *namespacesService) Delete(ctx context.Context, req *api.DeleteNamespaceRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, s.store.Delete(ctx, req.GetName())
}
