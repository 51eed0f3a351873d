package spec

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// procNS is the namespace file of a process.
func procNS(pid uint32, ns string) string { return fmt.Sprintf("/proc/%d/ns/%s", pid, ns) }

// checkUserns refuses user namespaces, which no handler supports yet.
func checkUserns(field string, ns *runtime.NamespaceOption) error {
	if u := ns.GetUsernsOptions(); u != nil && u.GetMode() != runtime.NamespaceMode_NODE {
		return fmt.Errorf("%s.userns_options mode %s: user namespaces: %w", field, u.GetMode(), errdefs.ErrNotImplemented)
	}
	return nil
}

// containerNamespaces are the namespaces of a workload container: its own
// mount namespace; the pod's network, IPC and UTS namespaces (none of them
// when the pod uses the host's); its PID namespace by mode: the pod's
// (POD), its own (CONTAINER), the host's (NODE) or another container's
// (TARGET); a cgroup namespace of its own on cgroup v2 unless privileged.
func containerNamespaces(cfg *runtime.ContainerConfig, opts ContainerOptions, privileged bool) ([]specs.LinuxNamespace, error) {
	const field = "linux.security_context.namespace_options"
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if err := checkUserns(field, ns); err != nil {
		return nil, err
	}
	if opts.Standalone {
		return standaloneNamespaces(ns, opts.Host.CgroupV2 && !privileged)
	}
	out := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	needPause := false
	// pod is the path of the pod's namespace ns: pinned is the file it is
	// pinned on, "" if the pause holds it.
	pod := func(pinned, ns string) string {
		if pinned != "" {
			return pinned
		}
		needPause = true
		return procNS(opts.SandboxPID, ns)
	}
	if ns.GetNetwork() != runtime.NamespaceMode_NODE {
		out = append(out, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: pod(opts.NetNSPath, "net")},
			specs.LinuxNamespace{Type: specs.UTSNamespace, Path: pod(opts.UTSPath, "uts")})
	}
	if ns.GetIpc() != runtime.NamespaceMode_NODE {
		out = append(out, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: pod(opts.IPCPath, "ipc")})
	}
	switch m := ns.GetPid(); m {
	case runtime.NamespaceMode_POD:
		if opts.NoPause {
			out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace})
			break
		}
		out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: pod("", "pid")})
	case runtime.NamespaceMode_CONTAINER:
		out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace})
	case runtime.NamespaceMode_TARGET:
		if opts.TargetPID == 0 {
			return nil, fmt.Errorf("%s.target_id %q: no process to join: %w", field, ns.GetTargetId(), errdefs.ErrInvalidArgument)
		}
		out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: procNS(opts.TargetPID, "pid")})
	case runtime.NamespaceMode_NODE:
	default:
		return nil, fmt.Errorf("%s.pid %d: unknown mode: %w", field, m, errdefs.ErrInvalidArgument)
	}
	if needPause && opts.SandboxPID == 0 {
		return nil, fmt.Errorf("sandbox %q: no pause process to join: %w", opts.SandboxID, errdefs.ErrFailedPrecondition)
	}
	if opts.Host.CgroupV2 && !privileged {
		out = append(out, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return out, nil
}

// standaloneNamespaces are the namespaces of a container without a pod:
// new ones where a pod's would be joined (TARGET has no pod to look in).
func standaloneNamespaces(ns *runtime.NamespaceOption, cgroupNS bool) ([]specs.LinuxNamespace, error) {
	const field = "linux.security_context.namespace_options"
	out := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if ns.GetNetwork() != runtime.NamespaceMode_NODE {
		out = append(out, specs.LinuxNamespace{Type: specs.NetworkNamespace}, specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	if ns.GetIpc() != runtime.NamespaceMode_NODE {
		out = append(out, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	switch m := ns.GetPid(); m {
	case runtime.NamespaceMode_POD, runtime.NamespaceMode_CONTAINER:
		out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace})
	case runtime.NamespaceMode_NODE:
	default:
		return nil, fmt.Errorf("%s.pid %s: a container without a pod has no target: %w", field, m, errdefs.ErrInvalidArgument)
	}
	if cgroupNS {
		out = append(out, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return out, nil
}

// sandboxNamespaces are the namespaces of the pause container: new ones
// for everything the pod owns, the given network namespace file, none for
// what it shares with the host. The pod's UTS namespace goes with its
// network namespace.
func sandboxNamespaces(cfg *runtime.PodSandboxConfig, netns string) ([]specs.LinuxNamespace, error) {
	const field = "linux.security_context.namespace_options"
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if err := checkUserns(field, ns); err != nil {
		return nil, err
	}
	out := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	for _, m := range []struct {
		name string
		mode runtime.NamespaceMode
	}{{"network", ns.GetNetwork()}, {"ipc", ns.GetIpc()}} {
		if m.mode != runtime.NamespaceMode_POD && m.mode != runtime.NamespaceMode_NODE {
			return nil, fmt.Errorf("%s.%s %s: a pod's namespace is POD or NODE: %w", field, m.name, m.mode, errdefs.ErrInvalidArgument)
		}
	}
	if m := ns.GetPid(); m == runtime.NamespaceMode_TARGET {
		return nil, fmt.Errorf("%s.pid %s: a pod's PID namespace is POD, CONTAINER or NODE: %w", field, m, errdefs.ErrInvalidArgument)
	}
	if ns.GetNetwork() == runtime.NamespaceMode_POD {
		if netns == "" {
			return nil, fmt.Errorf("sandbox network namespace: none given for a pod network: %w", errdefs.ErrFailedPrecondition)
		}
		out = append(out, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns},
			specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	if ns.GetIpc() == runtime.NamespaceMode_POD {
		out = append(out, specs.LinuxNamespace{Type: specs.IPCNamespace})
	}
	// CONTAINER: each container has its own, and so has the pause.
	if ns.GetPid() != runtime.NamespaceMode_NODE {
		out = append(out, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	return out, nil
}
