package server

import (
	"context"

	"google.golang.org/protobuf/types/known/emptypb"

	api "github.com/cri-runtime/cri-runtime/api/services/containers/v1"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// containersService serves api/services/containers over meta's
// ContainerStore.
type containersService struct {
	api.UnimplementedContainersServer
	store *meta.ContainerStore
}

func (s *containersService) Get(ctx context.Context, req *api.GetContainerRequest) (*api.GetContainerResponse, error) {
	c, err := s.store.Get(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &api.GetContainerResponse{Container: convert.ContainerToProto(c)}, nil
}

func (s *containersService) List(ctx context.Context, req *api.ListContainersRequest) (*api.ListContainersResponse, error) {
	list, err := s.store.List(ctx, req.GetFilters()...)
	if err != nil {
		return nil, err
	}
	resp := &api.ListContainersResponse{Containers: make([]*api.Container, 0, len(list))}
	for _, c := range list {
		resp.Containers = append(resp.Containers, convert.ContainerToProto(c))
	}
	return resp, nil
}

func (s *containersService) Create(ctx context.Context, req *api.CreateContainerRequest) (*api.CreateContainerResponse, error) {
	c, err := s.store.Create(ctx, convert.ContainerFromProto(req.GetContainer()))
	if err != nil {
		return nil, err
	}
	return &api.CreateContainerResponse{Container: convert.ContainerToProto(c)}, nil
}

func (s *containersService) Update(ctx context.Context, req *api.UpdateContainerRequest) (*api.UpdateContainerResponse, error) {
	c, err := s.store.Update(ctx, convert.ContainerFromProto(req.GetContainer()), req.GetUpdateMask().GetPaths()...)
	if err != nil {
		return nil, err
	}
	return &api.UpdateContainerResponse{Container: convert.ContainerToProto(c)}, nil
}

func (s *containersService) Delete(ctx context.Context, req *api.DeleteContainerRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, s.store.Delete(ctx, req.GetId())
}
