package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/cri-runtime/cri-runtime/pkg/cri/spec"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// CreateContainer creates a container in a ready pod: its rootfs (a
// snapshot over the image), its record and its task (runc create, in the
// pod's shim, which opens the log file). A retry with the same name gets
// the same container.
func (s *Service) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("container metadata: name is required: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, fmt.Errorf("container %q: image is required: %w", cfg.GetMetadata().GetName(), errdefs.ErrInvalidArgument)
	}
	pod, err := s.pod(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if podState(pod.Status) != runtime.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("sandbox %s is not ready: %w", pod.ID, errdefs.ErrFailedPrecondition)
	}
	name := containerName(cfg.GetMetadata(), pod.config.GetMetadata())
	id, err := s.containers.Do(ctx, name, time.Duration(s.cfg.CreateTimeout), func(ctx context.Context, stage sandbox.Stage) (string, error) {
		return s.createContainer(ctx, name, pod, cfg, stage)
	})
	if err != nil {
		return nil, err
	}
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

// createContainer is one create, run by the in-flight table: named steps
// with an undo list.
func (s *Service) createContainer(ctx context.Context, name string, pod podRecord, cfg *runtime.ContainerConfig, stage sandbox.Stage) (_ string, retErr error) {
	if list, err := s.db.Containers().List(ctx, fmt.Sprintf("labels.%q==%q", LabelName, name)); err != nil {
		return "", err
	} else if len(list) > 0 {
		if st := list[0].Status; st.State == meta.StateCreated || !st.StartedAt.IsZero() {
			return list[0].ID, nil // an earlier attempt made it
		}
		// An earlier attempt that a crash cut before its task was made,
		// or whose shim died with the daemon before it started: remove it
		// and make it again.
		if err := s.removeContainer(ctx, list[0].ID); err != nil && !errdefs.IsNotFound(err) {
			return "", err
		}
	}
	id := newID()
	var undo sandbox.Undo
	defer func() {
		if retErr != nil {
			undo.Run(ctx)
		}
	}()
	stage("image")
	imgs, err := s.lookupImage(ctx, cfg.GetImage().GetImage())
	if err != nil {
		return "", fmt.Errorf("container %q: image: %w", name, err)
	}
	img := imgs[0]
	imgCfg, err := s.imageConfig(ctx, img)
	if err != nil {
		return "", err
	}
	chainID, err := s.chainID(ctx, img)
	if err != nil {
		return "", err
	}
	lctx, done, err := sandbox.CreateLease(ctx, s.db)
	if err != nil {
		return "", err
	}
	defer done()

	stage("snapshot")
	snName := s.images.Snapshotter()
	sn := s.db.Snapshotter(snName)
	mounts, err := sn.Prepare(lctx, id, chainID.String())
	if err != nil {
		return "", fmt.Errorf("container %q: rootfs: %w", name, err)
	}
	undo.Add("remove the rootfs", func(ctx context.Context) error { return sn.Remove(ctx, id) })
	var users *spec.UserDB
	if err := mount.WithTempMountIn(ctx, s.tempMounts, readOnly(mounts), func(root string) error {
		users, err = spec.ReadUserDB(root)
		return err
	}); err != nil {
		return "", fmt.Errorf("container %q: %w", name, err)
	}

	stage("volumes")
	vols, err := s.imageVolumes(lctx, id, cfg, &undo)
	if err != nil {
		return "", err
	}

	stage("spec")
	ociSpec, info, err := s.containerSpec(ctx, id, pod, cfg, &imgCfg.Config, users, vols)
	if err != nil {
		return "", err
	}
	info.ImageRef, info.ImageName = img.ConfigDigest.String(), cfg.GetImage().GetImage()
	specJSON, err := json.Marshal(ociSpec)
	if err != nil {
		return "", err
	}
	ext, err := extensions(cfg, info)
	if err != nil {
		return "", err
	}

	stage("record")
	rec := meta.Container{
		ID: id, Labels: recordLabels(cfg.GetLabels(), name), Image: img.Name,
		Runtime: meta.Runtime{Name: pod.info.RuntimeHandler}, Spec: specJSON,
		Snapshotter: snName, SnapshotKey: id, SandboxID: pod.ID, Extensions: ext,
	}
	if _, err := s.db.Containers().Create(lctx, rec); err != nil {
		return "", fmt.Errorf("container %q: %w", name, err)
	}
	undo.Add("delete the record", func(ctx context.Context) error { return s.db.Containers().Delete(ctx, id) })

	stage("create")
	_, binary, err := s.cfg.binary(pod.info.RuntimeHandler)
	if err != nil {
		return "", err
	}
	if info.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(info.LogPath), 0o755); err != nil {
			return "", fmt.Errorf("container %q: log directory: %w", name, err)
		}
	}
	t, err := s.createTask(ctx, pod.ID, cfg, task.CreateOpts{ID: id, Runtime: binary, Spec: specJSON, Rootfs: mounts,
		IO: task.IO{Terminal: cfg.GetTty(), LogPath: info.LogPath, LogLineSize: s.cfg.MaxContainerLogLineSize}})
	if err != nil {
		return "", fmt.Errorf("container %q: %w", name, err)
	}
	undo.Add("delete the task", func(ctx context.Context) error {
		_ = t.Kill(ctx, syscall.SIGKILL, task.KillOpts{All: true})
		_, err := t.Delete(ctx)
		return err
	})
	// The status now, not when the shim's event arrives: the caller's
	// next call (StartContainer) must see the container created.
	st, err := t.State(ctx)
	if err != nil {
		return "", fmt.Errorf("container %q: %w", name, err)
	}
	if err := s.db.UpdateStatus(ctx, id, func(ms *meta.Status) bool { return ms.Created(st.Pid) }); err != nil {
		return "", err
	}
	klog.FromContext(ctx).V(2).Info("Container created", "container", id, "name", name, "sandbox", pod.ID)
	return id, nil
}

// containerSpec builds the container's runtime-spec and the facts its
// record keeps.
func (s *Service) containerSpec(ctx context.Context, id string, pod podRecord, cfg *runtime.ContainerConfig, img *ocispec.ImageConfig, users *spec.UserDB, vols map[int]volume) (*specs.Spec, containerInfo, error) {
	var info containerInfo
	netw, err := sandbox.ReadNetwork(pod.Sandbox)
	if err != nil {
		return nil, info, err
	}
	paths := s.sandboxes.Paths(pod.ID, netw.NetNS == "", pod.config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE)
	profile, err := readSeccompProfile(spec.ContainerSeccompPath(cfg))
	if err != nil {
		return nil, info, fmt.Errorf("container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	// Image volumes: the request names the image, the spec the mount.
	cfgCopy := proto.Clone(cfg).(*runtime.ContainerConfig)
	for i, m := range cfgCopy.GetMounts() {
		if v, ok := vols[i]; ok {
			m.HostPath = v.dir
		}
	}
	ociSpec, err := spec.Container(img, cfgCopy, pod.config, spec.ContainerOptions{
		ID: id, SandboxID: pod.ID, SandboxPID: pod.Status.Pid, NetNSPath: netw.NetNS, IPCPath: netw.IPC, UTSPath: netw.UTS, NoPause: netw.NoPause,
		Files: spec.SandboxFiles{Hosts: paths.Hosts, ResolvConf: paths.Resolv, Hostname: paths.Hostname, Shm: paths.Shm},
		Users: users, Devices: spec.HostDevices, SeccompProfile: profile,
		Host: s.host, Runtime: s.runtimeOptions(pod.info.RuntimeHandler),
	})
	if err != nil {
		return nil, info, err
	}
	sig, err := spec.StopSignal(cfg, img)
	if err != nil {
		return nil, info, err
	}
	info.StopSignal = int(sig)
	if dir, p := pod.config.GetLogDirectory(), cfg.GetLogPath(); dir != "" && p != "" {
		info.LogPath = filepath.Join(dir, p)
	}
	for i, m := range cfgCopy.GetMounts() {
		mi := mountInfo{ContainerPath: m.GetContainerPath(), HostPath: m.GetHostPath(), Readonly: m.GetReadonly(),
			Propagation: int32(m.GetPropagation()), SelinuxRelabel: m.GetSelinuxRelabel()}
		if im := cfg.GetMounts()[i].GetImage(); im != nil {
			mi.Image, mi.ImageSubPath, mi.Readonly = im.GetImage(), m.GetImageSubPath(), true
			mi.ImageRef = vols[i].imageRef
		}
		info.Mounts = append(info.Mounts, mi)
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		info.Resources, _ = proto.Marshal(r)
	}
	return ociSpec, info, nil
}

// readOnly returns mounts to mount read-only, for a look at the files.
func readOnly(mounts []mount.Mount) []mount.Mount {
	out := make([]mount.Mount, len(mounts))
	for i, m := range mounts {
		m.Options = append(append([]string(nil), m.Options...), "ro")
		out[i] = m
	}
	return out
}

// volume is an image volume: the image's rootfs mounted read-only.
type volume struct{ dir, imageRef string }

// imageVolumes mounts, read-only, the image of each mount of cfg that
// names one, and returns them by mount index.
func (s *Service) imageVolumes(ctx context.Context, id string, cfg *runtime.ContainerConfig, undo *sandbox.Undo) (map[int]volume, error) {
	out := map[int]volume{}
	for i, m := range cfg.GetMounts() {
		if m.GetImage().GetImage() == "" {
			continue
		}
		if !m.GetReadonly() {
			return nil, fmt.Errorf("mounts[%d]: an image volume must be read-only: %w", i, errdefs.ErrInvalidArgument)
		}
		imgs, err := s.lookupImage(ctx, m.GetImage().GetImage())
		if err != nil {
			return nil, fmt.Errorf("image volume %q: %w", m.GetImage().GetImage(), err)
		}
		chainID, err := s.chainID(ctx, imgs[0])
		if err != nil {
			return nil, err
		}
		key := id + "-volume-" + strconv.Itoa(i)
		sn := s.db.Snapshotter(s.images.Snapshotter())
		mounts, err := sn.View(ctx, key, chainID.String())
		if err != nil {
			return nil, fmt.Errorf("image volume %q: %w", m.GetImage().GetImage(), err)
		}
		undo.Add("remove an image volume", func(ctx context.Context) error { return sn.Remove(ctx, key) })
		dir := s.volumeDir(id, i)
		// 0700: the runtime binds the view into the container as root.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := mount.MountAll(readOnly(mounts), dir); err != nil {
			return nil, fmt.Errorf("image volume %q: %w", m.GetImage().GetImage(), err)
		}
		undo.Add("unmount an image volume", func(context.Context) error { return unmountVolume(dir) })
		src := dir
		if sub := m.GetImageSubPath(); sub != "" {
			// Resolved inside the image: a symlink cannot lead out of it.
			if src, err = securejoin.SecureJoin(dir, sub); err != nil {
				return nil, fmt.Errorf("image volume %q: sub path %q: %w", m.GetImage().GetImage(), sub, errors.Join(err, errdefs.ErrInvalidArgument))
			}
			if _, err := os.Stat(src); err != nil {
				return nil, fmt.Errorf("image volume %q: sub path %q: %w", m.GetImage().GetImage(), sub, errors.Join(err, errdefs.ErrNotFound))
			}
		}
		out[i] = volume{dir: src, imageRef: imgs[0].ConfigDigest.String()}
	}
	return out, nil
}

// volumeDir is where image volume i of container id is mounted.
func (s *Service) volumeDir(id string, i int) string {
	return filepath.Join(s.stateDir, "volumes", id, strconv.Itoa(i))
}

func unmountVolume(dir string) error {
	if err := mount.UnmountAll(dir); err != nil {
		return err
	}
	return os.Remove(dir)
}
