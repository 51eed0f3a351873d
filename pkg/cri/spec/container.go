package spec

import (
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Container returns the runtime-spec of a workload container built from
// its image config, the CRI container config and the config of its pod.
// It is pure: everything it needs from the host is in opts. The log path
// and stdin are the shim's business and not in the spec; the stop signal
// is StopSignal's. The image's VOLUME list is ignored: kubelet mounts what
// a pod needs (containerd would make an anonymous directory for each).
func Container(image *ocispec.ImageConfig, cfg *runtime.ContainerConfig, sandbox *runtime.PodSandboxConfig, opts ContainerOptions) (*specs.Spec, error) {
	if cfg == nil || sandbox == nil {
		return nil, fmt.Errorf("container config and its pod's config: both required: %w", errdefs.ErrInvalidArgument)
	}
	if image == nil {
		image = &ocispec.ImageConfig{}
	}
	if err := ValidateKeys("labels", cfg.GetLabels()); err != nil {
		return nil, err
	}
	if err := ValidateKeys("annotations", cfg.GetAnnotations()); err != nil {
		return nil, err
	}
	sc := cfg.GetLinux().GetSecurityContext()
	privileged := sc.GetPrivileged()
	if privileged && !sandbox.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, fmt.Errorf("linux.security_context.privileged: the pod is not privileged: %w", errdefs.ErrInvalidArgument)
	}
	process, err := containerProcess(image, cfg, sandbox, opts, privileged)
	if err != nil {
		return nil, err
	}
	linux, err := containerLinux(cfg, sandbox, opts, privileged, process.Capabilities.Bounding)
	if err != nil {
		return nil, err
	}
	mounts, propagation, err := containerMounts(cfg, opts.Files, privileged, opts.Runtime)
	if err != nil {
		return nil, err
	}
	linux.RootfsPropagation = propagation
	hostname := ""
	if opts.Standalone && sc.GetNamespaceOptions().GetNetwork() != runtime.NamespaceMode_NODE {
		// Its own UTS namespace: nobody else names it.
		hostname = sandbox.GetHostname()
		if strings.ContainsAny(hostname, "/\x00\n") {
			return nil, fmt.Errorf("hostname %q: not a host name: %w", hostname, errdefs.ErrInvalidArgument)
		}
	}
	return &specs.Spec{
		Version:  SpecVersion,
		Root:     &specs.Root{Path: rootfsPath(opts.RootfsPath), Readonly: sc.GetReadonlyRootfs()},
		Process:  process,
		Hostname: hostname,
		Mounts:   mounts,
		Linux:    linux,
		Annotations: map[string]string{
			AnnotationContainerType: "container",
			AnnotationSandboxID:     opts.SandboxID,
			AnnotationName:          cfg.GetMetadata().GetName(),
		},
	}, nil
}

func rootfsPath(p string) string {
	if p == "" {
		return "rootfs"
	}
	return p
}

// containerProcess is the process part: args, env, cwd, user, tty,
// capabilities, rlimits, no_new_privs, AppArmor and OOM score.
func containerProcess(image *ocispec.ImageConfig, cfg *runtime.ContainerConfig, sandbox *runtime.PodSandboxConfig, opts ContainerOptions, privileged bool) (*specs.Process, error) {
	sc := cfg.GetLinux().GetSecurityContext()
	args, err := processArgs(cfg, image)
	if err != nil {
		return nil, err
	}
	user, home, err := containerUser(image, cfg, opts.Users)
	if err != nil {
		return nil, err
	}
	hostname := sandbox.GetHostname()
	if hostname == "" {
		hostname = opts.Host.Hostname
	}
	env, err := containerEnv(image, cfg, hostname, home)
	if err != nil {
		return nil, err
	}
	cwd, err := workingDir(cfg, image)
	if err != nil {
		return nil, err
	}
	all := opts.Host.Capabilities
	if all == nil {
		all = AllCapabilities()
	}
	var caps *specs.LinuxCapabilities
	if privileged {
		caps = capSet(all, nil)
	} else {
		defaults := opts.Runtime.Capabilities
		if defaults == nil {
			defaults = DefaultCapabilities()
		}
		if caps, err = capabilities(sc.GetCapabilities(), defaults, all); err != nil {
			return nil, err
		}
	}
	aa, err := apparmorProfile(sc, privileged, opts.Host, opts.Runtime)
	if err != nil {
		return nil, err
	}
	p := &specs.Process{
		Terminal: cfg.GetTty(), User: user, Args: args, Env: env, Cwd: cwd,
		Capabilities: caps, Rlimits: rlimits(opts.Runtime, opts.Host),
		NoNewPrivileges: sc.GetNoNewPrivs(), ApparmorProfile: aa,
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		if p.OOMScoreAdj, err = oomScoreAdj("linux.resources.oom_score_adj", r.GetOomScoreAdj(), opts.Host); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// containerLinux is the Linux part: namespaces, cgroup path and resources,
// devices, seccomp, masked and read-only paths.
func containerLinux(cfg *runtime.ContainerConfig, sandbox *runtime.PodSandboxConfig, opts ContainerOptions, privileged bool, bounding []string) (*specs.Linux, error) {
	sc := cfg.GetLinux().GetSecurityContext()
	namespaces, err := containerNamespaces(cfg, opts, privileged)
	if err != nil {
		return nil, err
	}
	cgroups, err := CgroupsPath(sandbox.GetLinux().GetCgroupParent(), opts.ID, opts.Runtime)
	if err != nil {
		return nil, err
	}
	resources, err := linuxResources("linux.resources", cfg.GetLinux().GetResources(), opts.Host)
	if err != nil {
		return nil, err
	}
	devices, rules, err := containerDevices(cfg, privileged, opts.Devices)
	if err != nil {
		return nil, err
	}
	resources.Devices = rules
	filter, err := seccompFilter("linux.security_context.seccomp", sc.GetSeccomp(), sc.GetSeccompProfilePath(), privileged, opts.SeccompProfile, bounding, opts.Host)
	if err != nil {
		return nil, err
	}
	masked, err := procPaths("linux.security_context.masked_paths", sc.GetMaskedPaths(), DefaultMaskedPaths(), privileged)
	if err != nil {
		return nil, err
	}
	readonly, err := procPaths("linux.security_context.readonly_paths", sc.GetReadonlyPaths(), DefaultReadonlyPaths(), privileged)
	if err != nil {
		return nil, err
	}
	return &specs.Linux{
		Namespaces: namespaces, CgroupsPath: cgroups, Resources: resources,
		Devices: devices, Seccomp: filter, MaskedPaths: masked, ReadonlyPaths: readonly,
	}, nil
}
