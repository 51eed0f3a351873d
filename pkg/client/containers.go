package client

import (
	"context"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	api "github.com/cri-runtime/cri-runtime/api/services/containers/v1"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
)

// ContainerStore mirrors meta.ContainerStore over the containers service.
type ContainerStore struct {
	client api.ContainersClient
}

// Get returns the container id; NotFound if absent.
func (s *ContainerStore) Get(ctx context.Context, id string) (meta.Container, error) {
	resp, err := s.client.Get(ctx, &api.GetContainerRequest{Id: id})
	if err != nil {
		return meta.Container{}, err
	}
	return convert.ContainerFromProto(resp.GetContainer()), nil
}

// List returns the containers matching any of filters.
func (s *ContainerStore) List(ctx context.Context, filters ...string) ([]meta.Container, error) {
	resp, err := s.client.List(ctx, &api.ListContainersRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	list := make([]meta.Container, 0, len(resp.GetContainers()))
	for _, c := range resp.GetContainers() {
		list = append(list, convert.ContainerFromProto(c))
	}
	return list, nil
}

// Create records c; AlreadyExists if its ID is taken.
func (s *ContainerStore) Create(ctx context.Context, c meta.Container) (meta.Container, error) {
	resp, err := s.client.Create(ctx, &api.CreateContainerRequest{Container: convert.ContainerToProto(c)})
	if err != nil {
		return meta.Container{}, err
	}
	return convert.ContainerFromProto(resp.GetContainer()), nil
}

// Update changes the fields of c named by fieldpaths (none: all mutable).
func (s *ContainerStore) Update(ctx context.Context, c meta.Container, fieldpaths ...string) (meta.Container, error) {
	req := &api.UpdateContainerRequest{Container: convert.ContainerToProto(c)}
	if len(fieldpaths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: fieldpaths}
	}
	resp, err := s.client.Update(ctx, req)
	if err != nil {
		return meta.Container{}, err
	}
	return convert.ContainerFromProto(resp.GetContainer()), nil
}

// Delete removes the container record.
func (s *ContainerStore) Delete(ctx context.Context, id string) error {
	_, err := s.client.Delete(ctx, &api.DeleteContainerRequest{Id: id})
	return err
}
