package cri

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/cri/spec"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// UpdateContainerResources changes the cgroup limits of a container, in
// its task when it runs and in its record for its status.
func (s *Service) UpdateContainerResources(ctx context.Context, req *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	c, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	unlock := s.locks.lock(c.ID)
	defer unlock()
	r, err := spec.Resources(req.GetLinux(), s.host)
	if err != nil {
		return nil, err
	}
	st := containerState(c.Status)
	if st == runtime.ContainerState_CONTAINER_EXITED || st == runtime.ContainerState_CONTAINER_UNKNOWN {
		return nil, fmt.Errorf("container %s is %s: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	if t, err := s.tasks.Get(ctx, c.ID); err == nil {
		if err := t.Update(ctx, r); err != nil {
			return nil, fmt.Errorf("container %s: %w", c.ID, err)
		}
	}
	c.info.Resources, _ = proto.Marshal(req.GetLinux())
	info, err := json.Marshal(c.info)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Containers().Update(ctx, meta.Container{ID: c.ID, Extensions: map[string][]byte{ExtInfo: info}}, "extensions."+ExtInfo); err != nil {
		return nil, err
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog reopens a running container's log file, after
// kubelet rotated it.
func (s *Service) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	c, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if containerState(c.Status) != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	t, err := s.tasks.Get(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if err := t.ReopenLog(ctx); err != nil {
		return nil, err
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}

// UpdatePodSandboxResources is accepted: the pod's cgroup is kubelet's,
// and the pause container asks for nothing.
func (s *Service) UpdatePodSandboxResources(ctx context.Context, req *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	if _, err := s.pod(ctx, req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return &runtime.UpdatePodSandboxResourcesResponse{}, nil
}

// CheckpointContainer is not implemented: CRIU does not work on the
// kernels this runtime is tested on.
func (s *Service) CheckpointContainer(ctx context.Context, req *runtime.CheckpointContainerRequest) (*runtime.CheckpointContainerResponse, error) {
	return nil, fmt.Errorf("checkpoint of container %q: %w", req.GetContainerId(), errdefs.ErrNotImplemented)
}
