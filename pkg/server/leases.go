package server

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/cri-runtime/cri-runtime/api/services/leases/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// leasesService serves api/services/leases over meta's LeaseManager.
type leasesService struct {
	api.UnimplementedLeasesServer
	leases *meta.LeaseManager
}

// Create creates a lease, named by a fresh UUID when the request has no ID.
func (s *leasesService) Create(ctx context.Context, req *api.CreateRequest) (*api.CreateResponse, error) {
	id := req.GetId()
	if id == "" {
		id = uuid.NewString()
	}
	opts := []meta.LeaseOpt{meta.WithLeaseID(id)}
	if len(req.GetLabels()) > 0 {
		opts = append(opts, meta.WithLeaseLabels(req.GetLabels()))
	}
	if exp := req.GetExpire(); exp != nil {
		d := exp.AsDuration()
		if err := exp.CheckValid(); err != nil || d < 0 {
			return nil, fmt.Errorf("lease %q: expiry %v: must be a positive duration: %w", id, d, errdefs.ErrInvalidArgument)
		}
		if d != 0 {
			opts = append(opts, meta.WithExpiration(d))
		}
	}
	l, err := s.leases.Create(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &api.CreateResponse{Lease: convert.LeaseToProto(l)}, nil
}

func (s *leasesService) Delete(ctx context.Context, req *api.DeleteRequest) (*emptypb.Empty, error) {
	var opts []meta.DeleteOpt
	if req.GetSync() {
		opts = append(opts, meta.SynchronousDelete())
	}
	return &emptypb.Empty{}, s.leases.Delete(ctx, meta.Lease{ID: req.GetId()}, opts...)
}

func (s *leasesService) List(ctx context.Context, req *api.ListRequest) (*api.ListResponse, error) {
	list, err := s.leases.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, err
	}
	resp := &api.ListResponse{Leases: make([]*api.Lease, 0, len(list))}
	for _, l := range list {
		resp.Leases = append(resp.Leases, convert.LeaseToProto(l))
	}
	return resp, nil
}

func (s *leasesService) AddResource(ctx context.Context, req *api.AddResourceRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, s.leases.AddResource(ctx, meta.Lease{ID: req.GetId()}, convert.ResourceFromProto(req.GetResource()))
}

func (s *leasesService) DeleteResource(ctx context.Context, req *api.DeleteResourceRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, s.leases.DeleteResource(ctx, meta.Lease{ID: req.GetId()}, convert.ResourceFromProto(req.GetResource()))
}

func (s *leasesService) ListResources(ctx context.Context, req *api.ListResourcesRequest) (*api.ListResourcesResponse, error) {
	list, err := s.leases.ListResources(ctx, meta.Lease{ID: req.GetId()})
	if err != nil {
		return nil, err
	}
	resp := &api.ListResourcesResponse{Resources: make([]*api.Resource, 0, len(list))}
	for _, r := range list {
		resp.Resources = append(resp.Resources, convert.ResourceToProto(r))
	}
	return resp, nil
}
