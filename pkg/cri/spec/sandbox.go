package spec

import (
	"fmt"
	"maps"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// DefaultShmSize is the size of a pod's /dev/shm tmpfs, as containerd's.
const DefaultShmSize = 64 << 20

// ShmMountData is the tmpfs data of a pod's /dev/shm of size bytes, for the
// caller that mounts it (with MS_NOSUID|MS_NODEV|MS_NOEXEC).
func ShmMountData(size int64) string { return fmt.Sprintf("mode=1777,size=%d", size) }

// Sandbox OOM score and CPU shares: the pause container is the last a
// memory-starved node should kill, and needs next to no CPU (containerd's).
const (
	sandboxOOMScoreAdj = -998
	sandboxCPUShares   = 2
)

// Sandbox returns the runtime-spec of a pod's pause container from the
// pause image's config and the pod's config. It owns the pod's namespaces
// (a network namespace is the file the caller made), has a read-only
// rootfs, the pod's hostname, sysctls and security context (run_as_user,
// run_as_group, supplemental groups, privileged, seccomp; SELinux is
// ignored). The pod's overhead and resources size the pod's cgroup, which
// kubelet makes; they are not the pause container's. DNS, hosts and
// hostname are files, mounted in the containers.
func Sandbox(image *ocispec.ImageConfig, cfg *runtime.PodSandboxConfig, opts SandboxOptions) (*specs.Spec, error) {
	if cfg == nil {
		return nil, fmt.Errorf("pod sandbox config: required: %w", errdefs.ErrInvalidArgument)
	}
	if image == nil || (len(image.Entrypoint) == 0 && len(image.Cmd) == 0) {
		return nil, fmt.Errorf("pause image: no entrypoint nor cmd: %w", errdefs.ErrInvalidArgument)
	}
	if err := ValidateKeys("labels", cfg.GetLabels()); err != nil {
		return nil, err
	}
	if err := ValidateKeys("annotations", cfg.GetAnnotations()); err != nil {
		return nil, err
	}
	sc := cfg.GetLinux().GetSecurityContext()
	privileged := sc.GetPrivileged()
	process, err := sandboxProcess(image, cfg, opts, privileged)
	if err != nil {
		return nil, err
	}
	linux, err := sandboxLinux(cfg, opts, privileged, process.Capabilities.Bounding)
	if err != nil {
		return nil, err
	}
	hostNetwork := sc.GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
	hostname := ""
	if !hostNetwork {
		hostname = cfg.GetHostname()
	}
	if strings.ContainsAny(hostname, "/\x00\n") {
		return nil, fmt.Errorf("hostname %q: not a host name: %w", hostname, errdefs.ErrInvalidArgument)
	}
	return &specs.Spec{
		Version:  SpecVersion,
		Root:     &specs.Root{Path: rootfsPath(opts.RootfsPath), Readonly: true},
		Process:  process,
		Hostname: hostname,
		Mounts:   sandboxMounts(opts.Files, privileged),
		Linux:    linux,
		Annotations: map[string]string{
			AnnotationContainerType: "sandbox",
			AnnotationSandboxID:     opts.ID,
			AnnotationName:          cfg.GetMetadata().GetName(),
		},
	}, nil
}

// sandboxProcess is the pause process: the image's entrypoint and cmd and
// env, the pod's user, the default capabilities (all when privileged), no
// new privileges and a low OOM score.
func sandboxProcess(image *ocispec.ImageConfig, cfg *runtime.PodSandboxConfig, opts SandboxOptions, privileged bool) (*specs.Process, error) {
	args := append(append([]string{}, image.Entrypoint...), image.Cmd...)
	user, err := sandboxUser(image, cfg, opts.Users)
	if err != nil {
		return nil, err
	}
	var e envSet
	k, v, _ := strings.Cut(DefaultPathEnv, "=")
	if err := e.set("default env", k, v); err != nil {
		return nil, err
	}
	if err := e.setImage(image.Env); err != nil {
		return nil, err
	}
	cwd, err := workingDir(&runtime.ContainerConfig{}, image)
	if err != nil {
		return nil, err
	}
	caps := opts.Runtime.Capabilities
	if caps == nil {
		caps = DefaultCapabilities()
	}
	if privileged {
		if caps = opts.Host.Capabilities; caps == nil {
			caps = AllCapabilities()
		}
	}
	oom, err := oomScoreAdj("sandbox oom_score_adj", sandboxOOMScoreAdj, opts.Host)
	if err != nil {
		return nil, err
	}
	return &specs.Process{
		User: user, Args: args, Env: e.list, Cwd: cwd,
		Capabilities: capSet(caps, nil), Rlimits: rlimits(opts.Runtime, opts.Host),
		NoNewPrivileges: true, OOMScoreAdj: oom,
	}, nil
}

// sandboxLinux is the Linux part of the pause container.
func sandboxLinux(cfg *runtime.PodSandboxConfig, opts SandboxOptions, privileged bool, bounding []string) (*specs.Linux, error) {
	sc := cfg.GetLinux().GetSecurityContext()
	namespaces, err := sandboxNamespaces(cfg, opts.NetNSPath)
	if err != nil {
		return nil, err
	}
	cgroups, err := CgroupsPath(cfg.GetLinux().GetCgroupParent(), opts.ID, opts.Runtime)
	if err != nil {
		return nil, err
	}
	sysctls, err := SandboxSysctls(cfg, opts.UnprivilegedPorts, opts.UnprivilegedICMP)
	if err != nil {
		return nil, err
	}
	filter, err := seccompFilter("linux.security_context.seccomp", sc.GetSeccomp(), sc.GetSeccompProfilePath(), privileged, opts.SeccompProfile, bounding, opts.Host)
	if err != nil {
		return nil, err
	}
	shares := uint64(sandboxCPUShares)
	linux := &specs.Linux{
		Namespaces: namespaces, CgroupsPath: cgroups, Sysctl: sysctls, Seccomp: filter,
		Resources: &specs.LinuxResources{
			CPU:     &specs.LinuxCPU{Shares: &shares},
			Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		},
	}
	if !privileged {
		linux.MaskedPaths, linux.ReadonlyPaths = DefaultMaskedPaths(), DefaultReadonlyPaths()
	}
	return linux, nil
}

// SandboxSysctls are the sysctls of a pod, validated: its own, and, in a
// pod network namespace, net.ipv4.ip_unprivileged_port_start=0
// (unprivilegedPorts) and net.ipv4.ping_group_range="0 2147483647"
// (unprivilegedICMP) unless it sets them. The pause's runtime sets them,
// or, in a pod without a pause, the daemon in the pinned namespaces.
func SandboxSysctls(cfg *runtime.PodSandboxConfig, unprivilegedPorts, unprivilegedICMP bool) (map[string]string, error) {
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	hostNetwork := ns.GetNetwork() == runtime.NamespaceMode_NODE
	sysctls := maps.Clone(cfg.GetLinux().GetSysctls())
	if err := ValidateSysctls(sysctls, hostNetwork, ns.GetIpc() == runtime.NamespaceMode_NODE); err != nil {
		return nil, err
	}
	if !hostNetwork {
		sysctls = withDefault(sysctls, unprivilegedPorts, "net.ipv4.ip_unprivileged_port_start", "0")
		sysctls = withDefault(sysctls, unprivilegedICMP, "net.ipv4.ping_group_range", "0 2147483647")
	}
	return sysctls, nil
}

// withDefault sets key to value in m when on and m does not have it.
func withDefault(m map[string]string, on bool, key, value string) map[string]string {
	if !on {
		return m
	}
	if _, ok := m[key]; ok {
		return m
	}
	if m == nil {
		m = map[string]string{}
	}
	m[key] = value
	return m
}

// sandboxMounts are the default mounts with the pod's /dev/shm and
// resolv.conf bound read-only in place of the container's own.
func sandboxMounts(files SandboxFiles, privileged bool) []specs.Mount {
	bindRO := []string{"rbind", "ro", "nosuid", "nodev", "noexec"}
	var out []specs.Mount
	for _, m := range defaultMounts(privileged) {
		if m.Destination == devShm && files.Shm != "" {
			continue
		}
		out = append(out, m)
	}
	if files.Shm != "" {
		out = append(out, specs.Mount{Destination: devShm, Type: "bind", Source: files.Shm, Options: bindRO})
	}
	if files.ResolvConf != "" {
		out = append(out, specs.Mount{Destination: etcResolvConf, Type: "bind", Source: files.ResolvConf, Options: bindRO})
	}
	return out
}

// NeedsPause reports whether a pod needs a pause container: one that
// shares a PID namespace among its containers needs a PID 1 to hold it.
// Other pods can do with pinned namespaces (PodWithoutPause).
func NeedsPause(cfg *runtime.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtime.NamespaceMode_POD
}

// PodWithoutPause checks the config of a pod that runs no pause container
// as Sandbox would (labels, annotations, namespace modes, cgroup parent,
// sysctls) and returns the sysctls to set in its namespaces. What only
// the pause process would use (its user, seccomp profile, capabilities)
// is not read.
func PodWithoutPause(cfg *runtime.PodSandboxConfig, opts SandboxOptions) (map[string]string, error) {
	if cfg == nil {
		return nil, fmt.Errorf("pod sandbox config: required: %w", errdefs.ErrInvalidArgument)
	}
	if NeedsPause(cfg) {
		return nil, fmt.Errorf("pod shares its PID namespace: it needs a pause container: %w", errdefs.ErrInvalidArgument)
	}
	if err := ValidateKeys("labels", cfg.GetLabels()); err != nil {
		return nil, err
	}
	if err := ValidateKeys("annotations", cfg.GetAnnotations()); err != nil {
		return nil, err
	}
	if _, err := sandboxNamespaces(cfg, opts.NetNSPath); err != nil {
		return nil, err
	}
	if _, err := CgroupsPath(cfg.GetLinux().GetCgroupParent(), opts.ID, opts.Runtime); err != nil {
		return nil, err
	}
	return SandboxSysctls(cfg, opts.UnprivilegedPorts, opts.UnprivilegedICMP)
}
