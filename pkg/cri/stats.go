package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// ContainerStats returns a container's CPU, memory, IO and writable layer
// usage, read from its cgroup and its snapshot.
func (s *Service) ContainerStats(ctx context.Context, req *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	c, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtime.ContainerStatsResponse{Stats: s.containerStats(ctx, c)}, nil
}

// ListContainerStats returns the stats of the containers the filter names.
func (s *Service) ListContainerStats(ctx context.Context, req *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	list, err := s.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{
		Id: f.GetId(), PodSandboxId: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()}})
	if err != nil {
		return nil, err
	}
	resp := &runtime.ListContainerStatsResponse{}
	for _, item := range list.GetContainers() {
		c, err := s.container(ctx, item.GetId())
		if err != nil {
			continue // removed meanwhile
		}
		resp.Stats = append(resp.Stats, s.containerStats(ctx, c))
	}
	return resp, nil
}

// containerStats are c's stats; a container with no running task has
// only its attributes and writable layer.
func (s *Service) containerStats(ctx context.Context, c containerRecord) *runtime.ContainerStats {
	now := time.Now().UnixNano()
	out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{
		Id: c.ID, Metadata: c.config.GetMetadata(), Labels: criLabels(c.Labels), Annotations: c.config.GetAnnotations(),
	}}
	if t, err := s.tasks.Get(ctx, c.ID); err == nil {
		if st, err := t.Stats(ctx); err == nil {
			out.Cpu, out.Memory = cpuMemory(st, now)
			out.Io = &runtime.IoUsage{Timestamp: now}
		}
	}
	if sn := s.db.Snapshotter(c.Snapshotter); sn != nil {
		if u, err := sn.Usage(ctx, c.SnapshotKey); err == nil {
			out.WritableLayer = &runtime.FilesystemUsage{Timestamp: now,
				FsId:      &runtime.FilesystemIdentifier{Mountpoint: s.root},
				UsedBytes: &runtime.UInt64Value{Value: uint64(u.Size)}, InodesUsed: &runtime.UInt64Value{Value: uint64(u.Inodes)}}
		}
	}
	return out
}

func cpuMemory(st *task.Stats, now int64) (*runtime.CpuUsage, *runtime.MemoryUsage) {
	cpu := &runtime.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: st.CPU.UsageNanos}}
	mem := &runtime.MemoryUsage{Timestamp: now,
		WorkingSetBytes: &runtime.UInt64Value{Value: st.Memory.WorkingSet},
		UsageBytes:      &runtime.UInt64Value{Value: st.Memory.Usage},
		RssBytes:        &runtime.UInt64Value{Value: st.Memory.RSS},
	}
	if st.Memory.Limit > 0 && st.Memory.Limit > st.Memory.WorkingSet {
		mem.AvailableBytes = &runtime.UInt64Value{Value: st.Memory.Limit - st.Memory.WorkingSet}
	}
	return cpu, mem
}

// podCgroupStats are the cgroup stats of a pod: its pause's, or, in a pod
// without one, those of its cgroup parent, found above a running
// container's cgroup.
func (s *Service) podCgroupStats(ctx context.Context, pod podRecord, ctrs []meta.Container) (*task.Stats, error) {
	t, err := s.tasks.Get(ctx, pod.ID)
	if err == nil {
		return t.Stats(ctx)
	}
	if !errdefs.IsNotFound(err) {
		return nil, err
	}
	pid, err := s.containerPid(ctx, pod.ID, ctrs)
	if err != nil {
		return nil, err
	}
	cg := podCgroup(pid, pod.info.CgroupParent)
	if cg == nil {
		return nil, fmt.Errorf("pod %s: no cgroup of its own: %w", pod.ID, errdefs.ErrNotFound)
	}
	return cg.Stats()
}

// PodSandboxStats returns the stats of a pod: its pause, its containers.
func (s *Service) PodSandboxStats(ctx context.Context, req *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	pod, err := s.pod(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStatsResponse{Stats: s.podStats(ctx, pod)}, nil
}

// ListPodSandboxStats returns the stats of the pods the filter names.
func (s *Service) ListPodSandboxStats(ctx context.Context, req *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	all, err := s.db.Sandboxes().List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ListPodSandboxStatsResponse{}
	for _, sb := range all {
		if (f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId())) || !matchLabels(criLabels(sb.Labels), f.GetLabelSelector()) {
			continue
		}
		pod, err := decodePod(sb)
		if err != nil {
			return nil, err
		}
		resp.Stats = append(resp.Stats, s.podStats(ctx, pod))
	}
	return resp, nil
}

func (s *Service) podStats(ctx context.Context, pod podRecord) *runtime.PodSandboxStats {
	now := time.Now().UnixNano()
	out := &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: pod.ID, Metadata: pod.config.GetMetadata(),
			Labels: criLabels(pod.Labels), Annotations: pod.config.GetAnnotations()},
		Linux: &runtime.LinuxPodSandboxStats{},
	}
	ctrs, err := s.db.Containers().List(ctx, "sandboxid=="+pod.ID)
	if err != nil && !errdefs.IsNotFound(err) {
		return out
	}
	if st, err := s.podCgroupStats(ctx, pod, ctrs); err == nil {
		out.Linux.Cpu, out.Linux.Memory = cpuMemory(st, now)
		out.Linux.Process = &runtime.ProcessUsage{Timestamp: now, ProcessCount: &runtime.UInt64Value{Value: st.Pids.Current}}
	}
	for _, mc := range ctrs {
		if c, err := decodeContainer(mc); err == nil {
			out.Linux.Containers = append(out.Linux.Containers, s.containerStats(ctx, c))
		}
	}
	return out
}
