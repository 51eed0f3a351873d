package spec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// CgroupDriver is how cgroup paths are written for the OCI runtime.
type CgroupDriver string

const (
	// Cgroupfs paths are directories: "<parent>/<id>".
	Cgroupfs CgroupDriver = "cgroupfs"
	// Systemd paths are "<slice>:<prefix>:<id>", a scope in a slice.
	Systemd CgroupDriver = "systemd"
)

// KernelVersion is the host kernel's "major.minor"; zero is unknown.
type KernelVersion struct {
	Major, Minor uint64
}

// atLeast reports whether k is known and at least major.minor.
func (k KernelVersion) atLeast(major, minor uint64) bool {
	if k.Major == 0 {
		return false
	}
	return k.Major > major || (k.Major == major && k.Minor >= minor)
}

// Host is what the translation needs to know about the machine. DetectHost
// fills it; tests write it by hand.
type Host struct {
	// CgroupV2 is a unified hierarchy: cgroup namespaces for containers,
	// Resources.Unified accepted.
	CgroupV2 bool
	// SwapAccounting: the memory controller limits swap (memory.memsw on
	// v1, memory.swap.max on v2). Without it no swap limit is written.
	SwapAccounting bool
	// Hugetlb: the hugetlb controller exists. Without it hugepage limits
	// are dropped, as containerd does by default.
	Hugetlb bool
	// AppArmor: the kernel enforces AppArmor. Without it, any AppArmor
	// profile but unconfined is refused.
	AppArmor bool
	// Capabilities is every capability a container can be given (those of
	// the kernel that the daemon holds), the set of a privileged container
	// or of add ["ALL"]; nil means AllCapabilities().
	Capabilities []string
	// OOMScoreAdjMin, when set, is the lowest oom_score_adj the runtime
	// can give (the daemon's own, when it lacks CAP_SYS_RESOURCE): a lower
	// one is raised to it, as containerd's restrict_oom_score_adj does.
	OOMScoreAdjMin *int
	// NOFILEMax, when not zero, is the highest RLIMIT_NOFILE the runtime
	// can give (the daemon's own hard limit, when it lacks
	// CAP_SYS_RESOURCE): higher limits are lowered to it.
	NOFILEMax uint64
	// Kernel decides the minKernel rules of seccomp profiles.
	Kernel KernelVersion
	// Hostname is the node's, the HOSTNAME of containers of a pod without
	// one of its own.
	Hostname string
}

// Runtime is the configuration of one runtime handler (runc, crun).
type Runtime struct {
	// CgroupDriver; "" is Cgroupfs.
	CgroupDriver CgroupDriver
	// SystemdPrefix is the scope prefix of the systemd driver; "" is
	// DefaultSystemdPrefix.
	SystemdPrefix string
	// DefaultCgroupParent is used when the pod gives no cgroup_parent; ""
	// is "/cri-runtime" (cgroupfs) or "system.slice" (systemd).
	DefaultCgroupParent string
	// Capabilities of an unprivileged container before the request's add
	// and drop; nil is DefaultCapabilities().
	Capabilities []string
	// Rlimits of every container process; nil is DefaultRlimits(), an
	// empty non-nil list sets none (the shim's own are inherited).
	Rlimits []specs.POSIXRlimit
	// RecursiveReadOnlyMounts: the runtime supports the "rro" mount option
	// (runc 1.1 does not); without it recursive_read_only is refused.
	RecursiveReadOnlyMounts bool
	// AppArmorProfile is the profile of RuntimeDefault, loaded by the
	// caller; "" is DefaultAppArmorProfile.
	AppArmorProfile string
}

// DefaultSystemdPrefix is the systemd scope prefix: "cri-runtime-<id>.scope".
const DefaultSystemdPrefix = "cri-runtime"

// DefaultAppArmorProfile names the AppArmor profile of RuntimeDefault.
const DefaultAppArmorProfile = "cri-runtime-default"

// DeviceLookup returns the device nodes at a host path: one for a device
// node, every node below it for a directory. Path in each is the host
// path. HostDevices is the implementation that reads /dev.
type DeviceLookup func(hostPath string) ([]specs.LinuxDevice, error)

// SandboxFiles are the host files a pod shares with its containers,
// prepared by the caller. An empty path is not mounted.
type SandboxFiles struct {
	Hosts      string // bound on /etc/hosts
	ResolvConf string // bound on /etc/resolv.conf
	Hostname   string // bound on /etc/hostname
	// Shm is the pod's /dev/shm: a tmpfs the caller mounted, or "/dev/shm"
	// of the host for a pod in the host IPC namespace.
	Shm string
}

// ContainerOptions are the inputs of Container that are not in the CRI
// request or the image.
type ContainerOptions struct {
	// ID of the container: the leaf of its cgroup path.
	ID string
	// SandboxID of its pod, for the annotations.
	SandboxID string
	// RootfsPath is Root.Path: absolute, or relative to the bundle;
	// "" is "rootfs".
	RootfsPath string
	// SandboxPID is the pause process: the container joins its IPC and
	// UTS namespaces, its network namespace when NetNSPath is "", and its
	// PID namespace when the pod shares one.
	SandboxPID uint32
	// Standalone is a container with no pod around it (the management
	// CLI's `run`): what a pod would share, the network (with the UTS),
	// IPC and POD-mode PID namespaces, are new namespaces of its own, and
	// its hostname is the pod config's. SandboxPID and NetNSPath are
	// unused; NODE modes still mean the host's.
	Standalone bool
	// NetNSPath is the pod's network namespace (a bind-mounted file); ""
	// joins /proc/<SandboxPID>/ns/net.
	NetNSPath string
	// IPCPath and UTSPath are the pod's pinned IPC and UTS namespaces,
	// when it has no pause; "" joins the pause's.
	IPCPath, UTSPath string
	// NoPause is set for a pod without a pause, whose config shares no
	// PID namespace: a container asking for the pod's (POD) gets one of
	// its own.
	NoPause bool
	// TargetPID is the process whose PID namespace a TARGET container
	// joins (the caller resolves target_id).
	TargetPID uint32
	// Files of the pod to mount.
	Files SandboxFiles
	// Users is the image's user database (ReadUserDB); nil resolves only
	// numeric users.
	Users *UserDB
	// Devices finds the nodes of the request's devices, and of all of /dev
	// for a privileged container; nil refuses devices.
	Devices DeviceLookup
	// SeccompProfile is the content of the Localhost profile the caller
	// read from ContainerSeccompPath.
	SeccompProfile []byte
	Host           Host
	Runtime        Runtime
}

// SandboxOptions are the inputs of Sandbox that are not in the CRI request
// or the pause image.
type SandboxOptions struct {
	// ID of the sandbox: the leaf of the pause container's cgroup path.
	ID string
	// RootfsPath as in ContainerOptions.
	RootfsPath string
	// NetNSPath is the pod's network namespace; "" with host network.
	NetNSPath string
	// Files of the pod: Shm and ResolvConf are mounted in the pause
	// container too.
	Files SandboxFiles
	// Users and SeccompProfile as in ContainerOptions.
	Users          *UserDB
	SeccompProfile []byte
	// UnprivilegedPorts sets net.ipv4.ip_unprivileged_port_start=0 and
	// UnprivilegedICMP net.ipv4.ping_group_range="0 2147483647" in a pod
	// network namespace, unless the pod sets them (containerd's defaults
	// are both on).
	UnprivilegedPorts bool
	UnprivilegedICMP  bool
	Host              Host
	Runtime           Runtime
}

// SpecVersion is the runtime-spec version the specs declare: the oldest
// that has every field written here. crun before 1.9 refuses any version
// but 1.0.x, and runc 1.1 implements 1.0.2.
const SpecVersion = "1.0.2"
