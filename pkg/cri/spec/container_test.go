package spec

import (
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func nsString(ns []specs.LinuxNamespace) string {
	var out []string
	for _, n := range ns {
		s := string(n.Type)
		if n.Path != "" {
			s += "=" + n.Path
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestContainerDefault checks a default container field by field against
// what containerd 2.x's CRI plugin writes for the same request (its
// cgroup path, namespaces, process and security defaults), where our
// choices differ the comment says why.
func TestContainerDefault(t *testing.T) {
	s, err := buildContainer(t, nil)
	wantErr(t, err, nil)
	p := s.Process
	if !slices.Equal(p.Args, []string{"/bin/entry", "arg1"}) || p.Cwd != "/work" || p.Terminal {
		t.Fatalf("process %+v", p)
	}
	if !slices.Equal(p.Env, []string{"PATH=/image/bin", "HOSTNAME=pod-host", "IMAGE=1", "HOME=/root"}) {
		t.Fatalf("env %q", p.Env)
	}
	if p.User.UID != 0 || p.User.GID != 0 || !slices.Equal(p.User.AdditionalGids, []uint32{10}) {
		t.Fatalf("user %+v", p.User)
	}
	if !slices.Equal(p.Capabilities.Bounding, DefaultCapabilities()) || len(p.Capabilities.Ambient) != 0 {
		t.Fatalf("caps %+v", p.Capabilities)
	}
	// containerd leaves no_new_privs off unless asked, and sets no
	// AppArmor profile on a kernel without it.
	if p.NoNewPrivileges || p.ApparmorProfile != "" || p.OOMScoreAdj != nil {
		t.Fatalf("process security %+v", p)
	}
	// containerd drops every rlimit for CRI containers (they inherit its
	// own); we write the value that containerd's unit gives them.
	if !equalJSON(t, p.Rlimits, DefaultRlimits()) {
		t.Fatalf("rlimits %+v", p.Rlimits)
	}
	if s.Root.Path != "rootfs" || s.Root.Readonly || s.Hostname != "" {
		t.Fatalf("root %+v hostname %q", s.Root, s.Hostname)
	}
	l := s.Linux
	// No namespace options read as POD for all (the enum's zero), as in
	// containerd: the pod's PID namespace too. kubelet sends CONTAINER.
	if want := "mount network=/run/netns/cni-1 uts=/proc/42/ns/uts ipc=/proc/42/ns/ipc pid=/proc/42/ns/pid"; nsString(l.Namespaces) != want {
		t.Fatalf("namespaces %q, want %q", nsString(l.Namespaces), want)
	}
	if l.CgroupsPath != "/kubepods/pod-uid/cid" || l.Seccomp != nil || l.RootfsPropagation != "" || len(l.Sysctl) != 0 {
		t.Fatalf("linux %s", toJSON(t, l))
	}
	if !slices.Equal(l.MaskedPaths, DefaultMaskedPaths()) || !slices.Equal(l.ReadonlyPaths, DefaultReadonlyPaths()) {
		t.Fatalf("masked %q readonly %q", l.MaskedPaths, l.ReadonlyPaths)
	}
	if s.Annotations[AnnotationContainerType] != "container" || s.Annotations[AnnotationSandboxID] != "sid" || s.Annotations[AnnotationName] != "c1" {
		t.Fatalf("annotations %v", s.Annotations)
	}
	if s.Version != SpecVersion {
		t.Fatalf("version %q", s.Version)
	}
}

func TestContainer(t *testing.T) {
	type mod = func(img *ocispec.ImageConfig, c *runtime.ContainerConfig, s *runtime.PodSandboxConfig, o *ContainerOptions)
	for _, tc := range []struct {
		name  string
		mod   mod
		check func(t *testing.T, s *specs.Spec)
		err   error
	}{
		{name: "privileged", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, s *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).Privileged, s.Linux.SecurityContext.Privileged = true, true
			sc(c).Seccomp = &runtime.SecurityProfile{}
			sc(c).Capabilities = &runtime.Capability{DropCapabilities: []string{"ALL"}}
			o.Host.CgroupV2 = true
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Capabilities.Bounding, AllCapabilities()) || s.Linux.Seccomp != nil ||
				s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil || strings.Contains(nsString(s.Linux.Namespaces), "cgroup") {
				t.Fatalf("privileged spec %s", toJSON(t, s.Linux))
			}
			sys, _ := findMount(s.Mounts, "/sys")
			cg, _ := findMount(s.Mounts, "/sys/fs/cgroup")
			if !slices.Contains(sys.Options, "rw") || !slices.Contains(cg.Options, "rw") {
				t.Fatalf("sysfs %v cgroup %v", sys.Options, cg.Options)
			}
		}},
		{name: "privileged in an unprivileged pod", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			sc(c).Privileged = true
		}, err: errdefs.ErrInvalidArgument},
		{name: "host capabilities bound privileged", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, s *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).Privileged, s.Linux.SecurityContext.Privileged = true, true
			o.Host.Capabilities = CapabilitiesUpTo(37)
		}, check: func(t *testing.T, s *specs.Spec) {
			if len(s.Process.Capabilities.Bounding) != 38 {
				t.Fatalf("%d caps", len(s.Process.Capabilities.Bounding))
			}
		}},
		{name: "cgroup namespace on v2", mod: func(_ *ocispec.ImageConfig, _ *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			o.Host.CgroupV2 = true
		}, check: func(t *testing.T, s *specs.Spec) {
			if !strings.HasSuffix(nsString(s.Linux.Namespaces), " cgroup") {
				t.Fatalf("namespaces %q", nsString(s.Linux.Namespaces))
			}
		}},
		{name: "host network, ipc and pid", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE}
		}, check: func(t *testing.T, s *specs.Spec) {
			if nsString(s.Linux.Namespaces) != "mount" {
				t.Fatalf("namespaces %q", nsString(s.Linux.Namespaces))
			}
		}},
		{name: "pod pid namespace and netns from the pause", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}
			o.NetNSPath = ""
		}, check: func(t *testing.T, s *specs.Spec) {
			if want := "mount network=/proc/42/ns/net uts=/proc/42/ns/uts ipc=/proc/42/ns/ipc pid=/proc/42/ns/pid"; nsString(s.Linux.Namespaces) != want {
				t.Fatalf("namespaces %q", nsString(s.Linux.Namespaces))
			}
		}},
		{name: "own pid namespace", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}
		}, check: func(t *testing.T, s *specs.Spec) {
			if want := "mount network=/run/netns/cni-1 uts=/proc/42/ns/uts ipc=/proc/42/ns/ipc pid"; nsString(s.Linux.Namespaces) != want {
				t.Fatalf("namespaces %q", nsString(s.Linux.Namespaces))
			}
		}},
		{name: "target pid namespace", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "other"}
			o.TargetPID = 77
		}, check: func(t *testing.T, s *specs.Spec) {
			if !strings.HasSuffix(nsString(s.Linux.Namespaces), " pid=/proc/77/ns/pid") {
				t.Fatalf("namespaces %q", nsString(s.Linux.Namespaces))
			}
		}},
		{name: "target without a pid", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "other"}
		}, err: errdefs.ErrInvalidArgument},
		{name: "standalone: namespaces of its own, its hostname", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}
			o.Standalone, o.SandboxPID, o.NetNSPath = true, 0, ""
		}, check: func(t *testing.T, s *specs.Spec) {
			if want := "mount network uts ipc pid"; nsString(s.Linux.Namespaces) != want || s.Hostname != "pod-host" {
				t.Fatalf("namespaces %q hostname %q", nsString(s.Linux.Namespaces), s.Hostname)
			}
		}},
		{name: "standalone on the host network: the host's name", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_CONTAINER}
			o.Standalone, o.SandboxPID = true, 0
		}, check: func(t *testing.T, s *specs.Spec) {
			if want := "mount ipc pid"; nsString(s.Linux.Namespaces) != want || s.Hostname != "" {
				t.Fatalf("namespaces %q hostname %q", nsString(s.Linux.Namespaces), s.Hostname)
			}
		}},
		{name: "standalone has no target", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "x"}
			o.Standalone, o.TargetPID = true, 7
		}, err: errdefs.ErrInvalidArgument},
		{name: "standalone with a bad hostname", mod: func(_ *ocispec.ImageConfig, _ *runtime.ContainerConfig, s *runtime.PodSandboxConfig, o *ContainerOptions) {
			s.Hostname, o.Standalone = "a/b", true
		}, err: errdefs.ErrInvalidArgument},
		{name: "no pause to join", mod: func(_ *ocispec.ImageConfig, _ *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			o.SandboxPID = 0
		}, err: errdefs.ErrFailedPrecondition},
		{name: "pod without a pause: its pinned namespaces", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}
			o.SandboxPID, o.IPCPath, o.UTSPath, o.NoPause = 0, "/run/pod/ipcns", "/run/pod/utsns", true
		}, check: func(t *testing.T, s *specs.Spec) {
			if want := "mount network=/run/netns/cni-1 uts=/run/pod/utsns ipc=/run/pod/ipcns pid"; nsString(s.Linux.Namespaces) != want {
				t.Fatalf("namespaces %q", nsString(s.Linux.Namespaces))
			}
		}},
		{name: "pod without a pause: POD pid is a namespace of its own", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}
			o.SandboxPID, o.IPCPath, o.UTSPath, o.NoPause = 0, "/run/pod/ipcns", "/run/pod/utsns", true
		}, check: func(t *testing.T, s *specs.Spec) {
			if want := "mount network=/run/netns/cni-1 uts=/run/pod/utsns ipc=/run/pod/ipcns pid"; nsString(s.Linux.Namespaces) != want {
				t.Fatalf("namespaces %q", nsString(s.Linux.Namespaces))
			}
		}},
		{name: "user namespaces", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			sc(c).NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}}
		}, err: errdefs.ErrNotImplemented},
		{name: "tty, read-only rootfs, no_new_privs, user by name", mod: func(img *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			c.Tty, c.Stdin = true, true
			sc(c).ReadonlyRootfs, sc(c).NoNewPrivs, sc(c).RunAsUsername = true, true, "alice"
		}, check: func(t *testing.T, s *specs.Spec) {
			p := s.Process
			if !p.Terminal || !s.Root.Readonly || !p.NoNewPrivileges || p.User.UID != 1000 || !slices.Contains(p.Env, "HOME=/home/alice") {
				t.Fatalf("process %+v root %+v", p, s.Root)
			}
		}},
		{name: "resources and oom score", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			c.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 24, OomScoreAdj: 500, CpuShares: 2}
		}, check: func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			if *r.Memory.Limit != 1<<24 || *r.Memory.Swap != 1<<24 || *r.CPU.Shares != 2 || *s.Process.OOMScoreAdj != 500 || len(r.Devices) != 1 {
				t.Fatalf("resources %s oom %v", toJSON(t, r), s.Process.OOMScoreAdj)
			}
		}},
		{name: "systemd cgroup", mod: func(_ *ocispec.ImageConfig, _ *runtime.ContainerConfig, s *runtime.PodSandboxConfig, o *ContainerOptions) {
			s.Linux.CgroupParent = "kubepods-pod1.slice"
			o.Runtime.CgroupDriver = Systemd
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.CgroupsPath != "kubepods-pod1.slice:cri-runtime:cid" {
				t.Fatalf("cgroups path %q", s.Linux.CgroupsPath)
			}
		}},
		{name: "runtime default seccomp sees added caps", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			sc(c).Seccomp = &runtime.SecurityProfile{}
			sc(c).Capabilities = &runtime.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
		}, check: func(t *testing.T, s *specs.Spec) {
			found := false
			for _, r := range s.Linux.Seccomp.Syscalls {
				found = found || slices.Contains(r.Names, "mount")
			}
			if !found {
				t.Fatal("mount not allowed with CAP_SYS_ADMIN")
			}
		}},
		{name: "no hostname in the pod: the node's", mod: func(_ *ocispec.ImageConfig, _ *runtime.ContainerConfig, s *runtime.PodSandboxConfig, _ *ContainerOptions) {
			s.Hostname = ""
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Contains(s.Process.Env, "HOSTNAME=node") {
				t.Fatalf("env %q", s.Process.Env)
			}
		}},
		{name: "open files within the host's limit", mod: func(_ *ocispec.ImageConfig, _ *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			o.Host.NOFILEMax = 20000
		}, check: func(t *testing.T, s *specs.Spec) {
			if r := s.Process.Rlimits; len(r) != 1 || r[0].Hard != 20000 || r[0].Soft != 20000 {
				t.Fatalf("rlimits %+v", r)
			}
		}},
		{name: "runtime rlimits", mod: func(_ *ocispec.ImageConfig, _ *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
			o.Runtime.Rlimits = []specs.POSIXRlimit{}
			o.RootfsPath = "/abs/rootfs"
		}, check: func(t *testing.T, s *specs.Spec) {
			if len(s.Process.Rlimits) != 0 || s.Root.Path != "/abs/rootfs" {
				t.Fatalf("rlimits %v root %v", s.Process.Rlimits, s.Root)
			}
		}},
		{name: "nil configs", mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, _ *ContainerOptions) {
			*c = runtime.ContainerConfig{Command: []string{"/x"}}
		}, check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Process.Args, []string{"/x"}) {
				t.Fatalf("args %q", s.Process.Args)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := buildContainer(t, tc.mod)
			wantErr(t, err, tc.err)
			if err == nil && tc.check != nil {
				tc.check(t, s)
			}
		})
	}
	if _, err := Container(nil, nil, nil, ContainerOptions{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("nil config: %v", err)
	}
}
