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

// ContainerDeleteOpt configures the deletion of a container.
type ContainerDeleteOpt func(*api.DeleteContainerRequest)

// KeepSnapshot leaves the container's snapshot (to the collector, unless
// something else holds it).
func KeepSnapshot() ContainerDeleteOpt {
	return func(r *api.DeleteContainerRequest) { r.KeepSnapshot = true }
}

// Delete removes the container record and, unless kept, its active
// snapshot and its log file. FailedPrecondition while it has a task.
func (s *ContainerStore) Delete(ctx context.Context, id string, opts ...ContainerDeleteOpt) error {
	req := &api.DeleteContainerRequest{Id: id}
	for _, o := range opts {
		o(req)
	}
	_, err := s.client.Delete(ctx, req)
	return err
}

// Mount is a bind mount of a host path into a container.
type Mount struct {
	Type        string   // "bind"
	Source      string   // absolute host path
	Destination string   // absolute path in the container
	Options     []string // ro or rw; rprivate, rslave or rshared
}

// ImageContainer describes a container that runs an image.
type ImageContainer struct {
	ID    string
	Image string
	// Runtime is the OCI runtime binary; "" is runc.
	Runtime string
	// Args replace the image's Cmd (its Entrypoint stays).
	Args []string
	// Env is KEY=VALUE, over the image's.
	Env         []string
	Mounts      []Mount
	HostNetwork bool
	Terminal    bool
	// MemoryLimit in bytes; 0 is none.
	MemoryLimit int64
	Labels      map[string]string
	// Group holds its task; "" is its ID.
	Group string
	// Snapshotter; "" is the daemon's.
	Snapshotter string
	// NoSeccomp runs it without a seccomp filter (the default is the
	// runtime default profile).
	NoSeccomp bool
}

// CreateFromImage records a container that runs an image: its spec from
// the image config, its rootfs a snapshot prepared on the image.
func (s *ContainerStore) CreateFromImage(ctx context.Context, c ImageContainer) (meta.Container, error) {
	req := &api.CreateFromImageRequest{
		Id: c.ID, Image: c.Image, Runtime: c.Runtime, Args: c.Args, Env: c.Env,
		HostNetwork: c.HostNetwork, Terminal: c.Terminal, MemoryLimit: c.MemoryLimit,
		Labels: c.Labels, Group: c.Group, Snapshotter: c.Snapshotter, NoSeccomp: c.NoSeccomp,
	}
	for _, m := range c.Mounts {
		req.Mounts = append(req.Mounts, &api.Mount{Type: m.Type, Source: m.Source, Destination: m.Destination, Options: m.Options})
	}
	resp, err := s.client.CreateFromImage(ctx, req)
	if err != nil {
		return meta.Container{}, err
	}
	return convert.ContainerFromProto(resp.GetContainer()), nil
}
