package cri

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// ContainerStatus returns the status of a container: state, times, exit
// code and reason (OOMKilled), image, mounts, log path, user and, verbose,
// its pid and spec.
func (s *Service) ContainerStatus(ctx context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	c, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{Status: s.containerStatus(ctx, c)}
	if req.GetVerbose() {
		var sp specs.Spec
		_ = json.Unmarshal(c.Spec, &sp)
		info, _ := json.Marshal(map[string]any{
			"sandboxID": c.SandboxID, "pid": c.Status.Pid, "state": c.Status.State.String(),
			"snapshotKey": c.SnapshotKey, "snapshotter": c.Snapshotter, "runtimeSpec": sp, "config": c.config,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// containerStatus is the CRI status of c.
func (s *Service) containerStatus(ctx context.Context, c containerRecord) *runtime.ContainerStatus {
	st := c.Status
	out := &runtime.ContainerStatus{
		Id: c.ID, Metadata: c.config.GetMetadata(), State: containerState(st),
		CreatedAt: nanos(c.CreatedAt), StartedAt: nanos(st.StartedAt), FinishedAt: nanos(st.FinishedAt),
		ExitCode: st.ExitCode, Image: c.config.GetImage(), ImageRef: s.imageRef(ctx, c), ImageId: c.info.ImageRef,
		Labels: criLabels(c.Labels), Annotations: c.config.GetAnnotations(), LogPath: c.info.LogPath,
		StopSignal: criSignal(c.info.StopSignal),
	}
	if st.State == meta.StateExited {
		out.Reason, out.Message = st.Reason, st.Message
	}
	for _, m := range c.info.Mounts {
		cm := &runtime.Mount{ContainerPath: m.ContainerPath, HostPath: m.HostPath, Readonly: m.Readonly,
			Propagation: runtime.MountPropagation(m.Propagation), SelinuxRelabel: m.SelinuxRelabel, ImageSubPath: m.ImageSubPath}
		if m.Image != "" {
			cm.Image = &runtime.ImageSpec{Image: m.Image, UserSpecifiedImage: m.Image, ImageRef: m.ImageRef}
			cm.HostPath = ""
		}
		out.Mounts = append(out.Mounts, cm)
	}
	if len(c.info.Resources) > 0 {
		var r runtime.LinuxContainerResources
		if proto.Unmarshal(c.info.Resources, &r) == nil {
			out.Resources = &runtime.ContainerResources{Linux: &r}
		}
	}
	var sp specs.Spec
	if json.Unmarshal(c.Spec, &sp) == nil && sp.Process != nil {
		// The process's groups, as id -G shows them: its primary group
		// and the supplementary ones.
		u := sp.Process.User
		gids := []int64{int64(u.GID)}
		for _, g := range u.AdditionalGids {
			if !slices.Contains(gids, int64(g)) {
				gids = append(gids, int64(g))
			}
		}
		slices.Sort(gids)
		out.User = &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{Uid: int64(u.UID), Gid: int64(u.GID), SupplementalGroups: gids}}
	}
	return out
}

// imageRef is the repo digest of c's image when it has one, else its ID.
func (s *Service) imageRef(ctx context.Context, c containerRecord) string {
	if imgs, err := s.lookupImage(ctx, c.info.ImageRef); err == nil {
		if _, digests := repoNames(imgs); len(digests) > 0 {
			return digests[0]
		}
	}
	return c.info.ImageRef
}

// ListContainers lists the containers that match the filter (ID prefix,
// state, pod, labels).
func (s *Service) ListContainers(ctx context.Context, req *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	f := req.GetFilter()
	var podID string
	if f.GetPodSandboxId() != "" {
		pod, err := s.pod(ctx, f.GetPodSandboxId())
		if err != nil {
			return &runtime.ListContainersResponse{}, nil
		}
		podID = pod.ID
	}
	all, err := s.listed.containers.walk(ctx, s.db.Containers().View, buildContainerItem)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ListContainersResponse{Containers: make([]*runtime.Container, 0, len(all))}
	for _, e := range all {
		if podID != "" && e.item.sandboxID != podID {
			continue
		}
		if f.GetId() != "" && !strings.HasPrefix(e.id, f.GetId()) {
			continue
		}
		if f.GetState() != nil && e.item.state != f.GetState().GetState() {
			continue
		}
		if sel := f.GetLabelSelector(); len(sel) > 0 && !matchLabels(e.item.labels, sel) {
			continue
		}
		if e.err != nil {
			return nil, e.err
		}
		resp.Containers = append(resp.Containers, e.item.msg)
	}
	if len(resp.Containers) == 0 {
		resp.Containers = nil
	}
	return resp, nil
}

// containerItem is what ListContainers reports of a container, decoded
// once.
type containerItem struct {
	sandboxID   string
	metadata    *runtime.ContainerMetadata
	image       *runtime.ImageSpec
	imageRef    string
	state       runtime.ContainerState
	createdAt   int64
	labels      map[string]string // the CRI's
	annotations map[string]string
	// msg is what ListContainers reports, shared by its answers.
	msg *runtime.Container
}

func (containerItem) extension() string { return "" }

func buildContainerItem(e *listEntry[containerItem]) {
	id, labels, ext := e.record()
	e.item = containerItem{sandboxID: string(e.raw[2]), state: containerState(e.status),
		createdAt: nanos(meta.DecodeTime(e.raw[1])), labels: criLabels(labels)}
	c, err := decodeContainer(meta.Container{ID: id, SandboxID: e.item.sandboxID, Labels: labels, Status: e.status, Extensions: ext})
	if err != nil {
		e.err = err
		return
	}
	it := &e.item
	it.metadata, it.image, it.imageRef, it.annotations = c.config.GetMetadata(), c.config.GetImage(), c.info.ImageRef, c.config.GetAnnotations()
	it.msg = &runtime.Container{Id: id, PodSandboxId: it.sandboxID, Metadata: it.metadata, Image: it.image,
		ImageRef: it.imageRef, ImageId: it.imageRef, State: it.state, CreatedAt: it.createdAt,
		Labels: it.labels, Annotations: it.annotations}
}

func (it containerItem) message() proto.Message {
	if it.msg == nil {
		return nil
	}
	return it.msg
}

// criSignal is the CRI's name of the signal number sig.
func criSignal(sig int) runtime.Signal {
	if sig == 0 {
		return runtime.Signal_SIGNAL_RUNTIME_DEFAULT
	}
	name := unix.SignalName(syscall.Signal(sig))
	name = strings.ReplaceAll(strings.ReplaceAll(name, "+", "PLUS"), "-", "MINUS")
	return runtime.Signal(runtime.Signal_value["SIGNAL_"+name])
}
