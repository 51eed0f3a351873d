package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/cni"
	"github.com/cri-runtime/cri-runtime/pkg/cri/spec"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/sandbox"
)

// RunPodSandbox starts a pod: validate, reserve the name (a retry with
// the same name waits for, or is given, the result of the first call),
// then the steps of sandbox.Manager.Run. It returns once the pod is
// ready: its pause runs, or, in a pod without one, its namespaces are
// pinned.
func (s *Service) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return nil, fmt.Errorf("pod sandbox metadata: name, namespace and uid are required: %w", errdefs.ErrInvalidArgument)
	}
	handler, binary, err := s.cfg.binary(req.GetRuntimeHandler())
	if err != nil {
		return nil, err
	}
	name := podName(md)
	start := time.Now()
	id, err := s.pods.Do(ctx, name, time.Duration(s.cfg.CreateTimeout), func(ctx context.Context, stage sandbox.Stage) (string, error) {
		return s.runPod(ctx, name, cfg, handler, binary, stage)
	})
	if err != nil {
		if errdefs.IsDeadlineExceeded(err) || errdefs.IsCanceled(err) {
			klog.FromContext(ctx).Info("RunPodSandbox left before its end; the pod goes on for the retry", "pod", name, "err", err)
		}
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Pod started", "pod", name, "sandbox", id, "elapsed", time.Since(start))
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// runPod is one pod's start, run by the in-flight table.
func (s *Service) runPod(ctx context.Context, name string, cfg *runtime.PodSandboxConfig, handler, binary string, stage sandbox.Stage) (string, error) {
	if existing, err := s.podByName(ctx, name); err == nil {
		switch {
		case podState(existing.Status) == runtime.PodSandboxState_SANDBOX_READY:
			return existing.ID, nil // an earlier attempt finished it
		case existing.Status.StartedAt.IsZero():
			// An earlier attempt that a crash cut before the pause ran:
			// remove it and start again.
			if err := s.removePod(ctx, existing.ID); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("pod %q exists, as sandbox %s, and is not ready: stop and remove it first: %w", name, existing.ID, errdefs.ErrAlreadyExists)
		}
	} else if !errdefs.IsNotFound(err) {
		return "", err
	}
	id := newID()
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	hostNetwork := ns.GetNetwork() == runtime.NamespaceMode_NODE
	hostIPC := ns.GetIpc() == runtime.NamespaceMode_NODE
	paths := s.sandboxes.Paths(id, hostNetwork, hostIPC)
	opts := spec.SandboxOptions{
		ID: id, NetNSPath: paths.NetNS,
		Files:             spec.SandboxFiles{Hosts: paths.Hosts, ResolvConf: paths.Resolv, Hostname: paths.Hostname, Shm: paths.Shm},
		UnprivilegedPorts: true, UnprivilegedICMP: true,
		Host: s.host, Runtime: s.runtimeOptions(handler),
	}
	sb := sandbox.Spec{
		ID:            id,
		RuntimeBinary: binary,
		HostNetwork:   hostNetwork,
		HostIPC:       hostIPC,
		ShmSize:       spec.DefaultShmSize,
		Network:       podNetwork(cfg),
	}
	info := podInfo{RuntimeHandler: handler, CgroupParent: cfg.GetLinux().GetCgroupParent()}
	var err error
	if s.cfg.DropInfraContainer && !spec.NeedsPause(cfg) {
		sb.NoPause = true
		if sb.Sysctls, err = spec.PodWithoutPause(cfg, opts); err != nil {
			return "", err
		}
	} else if err := s.pauseSpec(ctx, cfg, opts, &sb, &info, stage); err != nil {
		return "", err
	}
	files, err := podFiles(cfg, hostNetwork, s.host.Hostname)
	if err != nil {
		return "", err
	}
	sb.Hostname, sb.Hosts, sb.Resolv = files.hostname, files.hosts, files.resolv
	ext, err := extensions(cfg, info)
	if err != nil {
		return "", err
	}
	sb.Record = meta.Sandbox{Labels: recordLabels(cfg.GetLabels(), name), Runtime: meta.Runtime{Name: handler}, Spec: sb.OCISpec, Extensions: ext}
	if err := s.sandboxes.Run(ctx, sb, stage); err != nil {
		return "", err
	}
	return id, nil
}

// pauseSpec fills in the pause container of sb: its image (pulled if
// missing), rootfs chain and runtime-spec.
func (s *Service) pauseSpec(ctx context.Context, cfg *runtime.PodSandboxConfig, opts spec.SandboxOptions, sb *sandbox.Spec, info *podInfo, stage sandbox.Stage) error {
	stage("image")
	pause, chainID, err := s.pauseImage(ctx)
	if err != nil {
		return err
	}
	imgCfg, err := s.imageConfig(ctx, pause)
	if err != nil {
		return err
	}
	if opts.SeccompProfile, err = readSeccompProfile(spec.SandboxSeccompPath(cfg)); err != nil {
		return err
	}
	ociSpec, err := spec.Sandbox(&imgCfg.Config, cfg, opts)
	if err != nil {
		return err
	}
	if sb.OCISpec, err = json.Marshal(ociSpec); err != nil {
		return err
	}
	sb.ChainID, info.PauseImage = chainID.String(), pause.ConfigDigest.String()
	return nil
}

// runtimeOptions are the spec options of the runtime handler.
func (s *Service) runtimeOptions(handler string) spec.Runtime {
	return spec.Runtime{CgroupDriver: spec.CgroupDriver(s.cfg.CgroupDriver), RecursiveReadOnlyMounts: s.features[handler].RecursiveReadOnlyMounts}
}

// pauseImage returns the sandbox image, pulled if missing, and the chain
// ID of its layers.
func (s *Service) pauseImage(ctx context.Context) (meta.Image, digest.Digest, error) {
	imgs, err := s.lookupImage(ctx, s.cfg.SandboxImage)
	if errdefs.IsNotFound(err) {
		var img meta.Image
		if img, err = s.images.Pull(ctx, s.cfg.SandboxImage); err != nil {
			return meta.Image{}, "", fmt.Errorf("sandbox image %q: %w", s.cfg.SandboxImage, err)
		}
		imgs = []meta.Image{img}
	} else if err != nil {
		return meta.Image{}, "", err
	}
	chainID, err := s.chainID(ctx, imgs[0])
	return imgs[0], chainID, err
}

// chainID returns the chain ID of img's layers: its top snapshot.
func (s *Service) chainID(ctx context.Context, img meta.Image) (digest.Digest, error) {
	diffIDs, err := image.DiffIDs(ctx, s.db.ContentStore(), img.Target, image.Only(image.DefaultPlatform()))
	if err != nil {
		return "", fmt.Errorf("image %q: %w", img.Name, err)
	}
	return image.ChainID(diffIDs), nil
}

// podNetwork is what CNI is told of a pod.
func podNetwork(cfg *runtime.PodSandboxConfig) cni.PodOptions {
	md := cfg.GetMetadata()
	o := cni.PodOptions{Namespace: md.GetNamespace(), Name: md.GetName(), UID: md.GetUid(),
		CgroupPath: cfg.GetLinux().GetCgroupParent(), Annotations: cfg.GetAnnotations()}
	for _, p := range cfg.GetPortMappings() {
		o.PortMappings = append(o.PortMappings, cni.PortMapping{
			HostPort: p.GetHostPort(), ContainerPort: p.GetContainerPort(),
			Protocol: strings.ToLower(p.GetProtocol().String()), HostIP: p.GetHostIp(),
		})
	}
	if d := cfg.GetDnsConfig(); d != nil {
		o.DNS = &cni.DNSConfig{Servers: d.GetServers(), Searches: d.GetSearches(), Options: d.GetOptions()}
	}
	return o
}

// files are the contents of a pod's hostname, hosts and resolv.conf.
type files struct{ hostname, hosts, resolv []byte }

// podFiles returns the files of a pod: its hostname (the node's for a pod
// on the host's network without one); the host's /etc/hosts on the host's
// network, else a minimal one (kubelet manages the containers' own);
// resolv.conf from the DNS config, else the host's.
func podFiles(cfg *runtime.PodSandboxConfig, hostNetwork bool, nodeName string) (files, error) {
	var f files
	hostname := cfg.GetHostname()
	if hostname == "" {
		hostname = nodeName
	}
	f.hostname = []byte(hostname + "\n")
	if hostNetwork {
		b, err := os.ReadFile("/etc/hosts")
		if err != nil && !os.IsNotExist(err) {
			return f, fmt.Errorf("host /etc/hosts: %w", err)
		}
		f.hosts = b
	} else {
		f.hosts = []byte("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	}
	d := cfg.GetDnsConfig()
	if d == nil || (len(d.GetServers()) == 0 && len(d.GetSearches()) == 0 && len(d.GetOptions()) == 0) {
		b, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !os.IsNotExist(err) {
			return f, fmt.Errorf("host /etc/resolv.conf: %w", err)
		}
		f.resolv = b
		return f, nil
	}
	var b strings.Builder
	for _, srv := range d.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", srv)
	}
	if len(d.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.GetSearches(), " "))
	}
	if len(d.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.GetOptions(), " "))
	}
	f.resolv = []byte(b.String())
	return f, nil
}

// podByName returns the sandbox kubelet named name; NotFound if none.
func (s *Service) podByName(ctx context.Context, name string) (meta.Sandbox, error) {
	list, err := s.db.Sandboxes().List(ctx, fmt.Sprintf("labels.%q==%q", LabelName, name))
	if err != nil {
		return meta.Sandbox{}, err
	}
	if len(list) == 0 {
		return meta.Sandbox{}, fmt.Errorf("pod %q: %w", name, errdefs.ErrNotFound)
	}
	return list[0], nil
}

// readSeccompProfile reads a Localhost seccomp profile; "" is none.
func readSeccompProfile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %q: %w", path, errors.Join(err, errdefs.ErrInvalidArgument))
	}
	return b, nil
}
