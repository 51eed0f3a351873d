package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	api "github.com/cri-runtime/cri-runtime/api/services/containers/v1"
	"github.com/cri-runtime/cri-runtime/pkg/cri/spec"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/reference"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server/convert"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// DefaultRuntime is the OCI runtime of a container that names none.
const DefaultRuntime = "runc"

// hostInfo is what spec.Container needs to know of this machine, read once
// on first use.
type hostInfo struct {
	once sync.Once
	host spec.Host
	err  error
}

func (h *hostInfo) get() (spec.Host, error) {
	h.once.Do(func() { h.host, h.err = spec.DetectHost() })
	return h.host, h.err
}

// CreateFromImage records a container running an image, in steps: check
// the request (nothing is made for a bad one), read the image config,
// prepare the snapshot under a lease, build the spec from the image's
// user database in it, then the record, which holds the snapshot from
// then on. A failure after the prepare removes the snapshot.
func (s *containersService) CreateFromImage(ctx context.Context, req *api.CreateFromImageRequest) (_ *api.CreateContainerResponse, retErr error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	id := req.GetId()
	if err := identifiers.Validate(id); err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	rt, cfg, err := s.checkRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	img, imgCfg, err := s.image(ctx, req.GetImage())
	if err != nil {
		return nil, err
	}
	snName := req.GetSnapshotter()
	if snName == "" {
		snName = s.snapshotter
	}
	sn := s.db.Snapshotter(snName)
	if sn == nil {
		return nil, fmt.Errorf("snapshotter %q: %w", snName, errdefs.ErrInvalidArgument)
	}
	unlock, err := s.locks.lock(ctx, ns+"/"+id)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// The snapshot is under a lease until the record holds it.
	lctx, done, err := meta.WithLease(ctx, s.db.Leases(), meta.WithExpiration(cleanupTimeout))
	if err != nil {
		return nil, err
	}
	prepared := false
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if retErr != nil && prepared {
			_ = sn.Remove(cctx, id)
		}
		_ = done(cctx)
	}()
	mounts, err := sn.Prepare(lctx, id, image.ChainID(imgCfg.RootFS.DiffIDs).String())
	if err != nil {
		return nil, fmt.Errorf("container %q: rootfs: %w", id, err)
	}
	prepared = true
	specJSON, err := s.buildSpec(ctx, ns, id, &imgCfg.Config, cfg, mounts)
	if err != nil {
		return nil, err
	}
	c, err := s.store.Create(ctx, meta.Container{
		ID: id, Labels: s.labels(ns, req), Image: img.Name, Runtime: meta.Runtime{Name: rt},
		Spec: specJSON, Snapshotter: snName, SnapshotKey: id,
	})
	if err != nil {
		return nil, err
	}
	return &api.CreateContainerResponse{Container: convert.ContainerToProto(c)}, nil
}

// image returns the image record name (normalised as a pull names it)
// and its config for this host's platform.
func (s *containersService) image(ctx context.Context, name string) (meta.Image, ocispec.Image, error) {
	if r, err := reference.ParseNormalizedNamed(name); err == nil {
		name = r.String()
	}
	img, err := s.images.Get(ctx, name)
	if err != nil {
		return meta.Image{}, ocispec.Image{}, err
	}
	cfg, err := s.images.Config(ctx, img, image.DefaultPlatform())
	return img, cfg, err
}

// labels are the request's labels and the record's own: its group and
// its log file.
func (s *containersService) labels(ns string, req *api.CreateFromImageRequest) map[string]string {
	labels := maps.Clone(req.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelGroup] = req.GetId()
	if g := req.GetGroup(); g != "" {
		labels[LabelGroup] = g
	}
	labels[LabelLogPath] = s.logPath(ns, req.GetId())
	return labels
}

// checkRequest checks what can be checked before anything is made: the
// ID is free, the runtime binary exists, the mounts, the group; it returns
// the runtime and the CRI-shaped config of the request.
func (s *containersService) checkRequest(ctx context.Context, req *api.CreateFromImageRequest) (string, *runtime.ContainerConfig, error) {
	id := req.GetId()
	if _, err := s.store.Get(ctx, id); err == nil {
		return "", nil, fmt.Errorf("container %q: %w", id, errdefs.ErrAlreadyExists)
	}
	if g := req.GetGroup(); g != "" {
		if err := identifiers.Validate(g); err != nil {
			return "", nil, fmt.Errorf("group: %w", err)
		}
	}
	rt := req.GetRuntime()
	if rt == "" {
		rt = DefaultRuntime
	}
	if _, err := exec.LookPath(rt); err != nil {
		return "", nil, fmt.Errorf("runtime %q: no such binary: %w", rt, errdefs.ErrInvalidArgument)
	}
	cfg, err := criConfig(req)
	if err != nil {
		return "", nil, err
	}
	return rt, cfg, nil
}

// criConfig is the request in the shape of a CRI container config, for
// spec.Container: the args as CRI args (over the image's Cmd), env,
// mounts, tty, memory limit, the network mode and the default seccomp
// profile unless no_seccomp.
func criConfig(req *api.CreateFromImageRequest) (*runtime.ContainerConfig, error) {
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: req.GetId()},
		Image:    &runtime.ImageSpec{Image: req.GetImage()},
		Args:     req.GetArgs(),
		Tty:      req.GetTerminal(),
		Linux: &runtime.LinuxContainerConfig{
			SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
			},
		},
	}
	if !req.GetNoSeccomp() {
		// As docker run: the default profile, where the CRI's default
		// is none. It costs runc some 15 ms to load.
		cfg.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	}
	if req.GetHostNetwork() {
		cfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	}
	if m := req.GetMemoryLimit(); m != 0 {
		if m < 0 {
			return nil, fmt.Errorf("memory limit %d: negative: %w", m, errdefs.ErrInvalidArgument)
		}
		cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: m}
	}
	for _, kv := range req.GetEnv() {
		k, v, ok := splitEnv(kv)
		if !ok {
			return nil, fmt.Errorf("env %q: want KEY=VALUE: %w", kv, errdefs.ErrInvalidArgument)
		}
		cfg.Envs = append(cfg.Envs, &runtime.KeyValue{Key: k, Value: []byte(v)})
	}
	for i, m := range req.GetMounts() {
		cm, err := criMount(m)
		if err != nil {
			return nil, fmt.Errorf("mount %d: %w", i+1, err)
		}
		cfg.Mounts = append(cfg.Mounts, cm)
	}
	return cfg, nil
}

func splitEnv(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], i > 0
		}
	}
	return "", "", false
}

// criMount converts a bind mount of the request, whose source must exist.
func criMount(m *api.Mount) (*runtime.Mount, error) {
	if t := m.GetType(); t != "bind" {
		return nil, fmt.Errorf("type %q: only bind mounts: %w", t, errdefs.ErrInvalidArgument)
	}
	src, dst := m.GetSource(), m.GetDestination()
	if !filepath.IsAbs(src) || !path.IsAbs(dst) {
		return nil, fmt.Errorf("source %q, destination %q: both must be absolute paths: %w", src, dst, errdefs.ErrInvalidArgument)
	}
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("source %q: %v: %w", src, err, errdefs.ErrInvalidArgument)
	}
	out := &runtime.Mount{ContainerPath: dst, HostPath: src, Propagation: runtime.MountPropagation_PROPAGATION_PRIVATE}
	for _, o := range m.GetOptions() {
		switch o {
		case "ro", "readonly":
			out.Readonly = true
		case "rw", "bind", "rbind", "rprivate":
		case "rslave":
			out.Propagation = runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		case "rshared":
			out.Propagation = runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL
		default:
			return nil, fmt.Errorf("option %q: want ro, rw, rprivate, rslave or rshared: %w", o, errdefs.ErrInvalidArgument)
		}
	}
	return out, nil
}

// buildSpec builds the runtime-spec of a container without a pod: the
// image's users read from the prepared rootfs, its hostname its ID, its
// cgroup /cri-runtime/<namespace>@<id>: one level, as IDs are the user's
// and one named like a cgroup v1 file ("tasks") cannot be a directory
// beside it; '@' is in no identifier and no control file.
func (s *containersService) buildSpec(ctx context.Context, ns, id string, img *ocispec.ImageConfig, cfg *runtime.ContainerConfig, rootfs []snapshot.Mount) ([]byte, error) {
	host, err := s.host.get()
	if err != nil {
		return nil, err
	}
	var users *spec.UserDB
	if err := mount.WithTempMountIn(ctx, s.tempMounts, rootfs, func(root string) error {
		users, err = spec.ReadUserDB(root)
		return err
	}); err != nil {
		return nil, fmt.Errorf("container %q: image users: %w", id, err)
	}
	sandbox := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: id, Namespace: ns},
		Hostname: id,
		Linux:    &runtime.LinuxPodSandboxConfig{CgroupParent: "/cri-runtime"},
	}
	sp, err := spec.Container(img, cfg, sandbox, spec.ContainerOptions{
		ID: ns + "@" + id, SandboxID: id, Standalone: true, Users: users, Host: host,
	})
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	return json.Marshal(sp)
}
