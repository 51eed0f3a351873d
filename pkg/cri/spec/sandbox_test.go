package spec

import (
	"errors"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func pauseImage() *ocispec.ImageConfig {
	return &ocispec.ImageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535", Env: []string{"PATH=/bin"}}
}

func sandboxOptions() SandboxOptions {
	return SandboxOptions{
		ID: "sid", NetNSPath: "/run/netns/cni-1",
		Files:             SandboxFiles{Shm: "/s/shm", ResolvConf: "/s/resolv.conf", Hosts: "/s/hosts"},
		UnprivilegedPorts: true, UnprivilegedICMP: true,
	}
}

// TestSandboxDefault compares with containerd's pause spec: read-only
// rootfs, image args and user, no new privileges, OOM score -998, CPU
// shares 2, the pod's shm and resolv.conf bound read-only, the
// unprivileged port and ICMP sysctls.
func TestSandboxDefault(t *testing.T) {
	s, err := Sandbox(pauseImage(), testSandboxConfig(), sandboxOptions())
	wantErr(t, err, nil)
	p := s.Process
	if !slices.Equal(p.Args, []string{"/pause"}) || p.User.UID != 65535 || p.User.GID != 65535 || !p.NoNewPrivileges || *p.OOMScoreAdj != -998 || p.Cwd != "/" {
		t.Fatalf("process %s", toJSON(t, p))
	}
	if !slices.Equal(p.Env, []string{"PATH=/bin"}) || !slices.Equal(p.Capabilities.Bounding, DefaultCapabilities()) {
		t.Fatalf("env %q caps %q", p.Env, p.Capabilities.Bounding)
	}
	if !s.Root.Readonly || s.Hostname != "pod-host" {
		t.Fatalf("root %+v hostname %q", s.Root, s.Hostname)
	}
	l := s.Linux
	if want := "mount network=/run/netns/cni-1 uts ipc pid"; nsString(l.Namespaces) != want {
		t.Fatalf("namespaces %q, want %q", nsString(l.Namespaces), want)
	}
	if l.CgroupsPath != "/kubepods/pod-uid/sid" || *l.Resources.CPU.Shares != 2 || l.Seccomp != nil {
		t.Fatalf("linux %s", toJSON(t, l))
	}
	if l.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" || l.Sysctl["net.ipv4.ping_group_range"] != "0 2147483647" {
		t.Fatalf("sysctls %v", l.Sysctl)
	}
	shm, ok := findMount(s.Mounts, "/dev/shm")
	if !ok || shm.Source != "/s/shm" || !slices.Equal(shm.Options, []string{"rbind", "ro", "nosuid", "nodev", "noexec"}) {
		t.Fatalf("shm %+v", shm)
	}
	if _, ok := findMount(s.Mounts, "/etc/resolv.conf"); !ok {
		t.Fatal("no resolv.conf")
	}
	if _, ok := findMount(s.Mounts, "/etc/hosts"); ok {
		t.Fatal("hosts mounted in the pause container")
	}
	if s.Annotations[AnnotationContainerType] != "sandbox" || s.Annotations[AnnotationSandboxID] != "sid" {
		t.Fatalf("annotations %v", s.Annotations)
	}
}

func TestSandbox(t *testing.T) {
	type mod = func(img *ocispec.ImageConfig, c *runtime.PodSandboxConfig, o *SandboxOptions)
	for _, tc := range []struct {
		name  string
		mod   mod
		check func(t *testing.T, s *specs.Spec)
		err   error
	}{
		{name: "host network, ipc, pid", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, o *SandboxOptions) {
			c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE}
			o.NetNSPath = ""
		}, check: func(t *testing.T, s *specs.Spec) {
			if nsString(s.Linux.Namespaces) != "mount" || s.Hostname != "" || len(s.Linux.Sysctl) != 0 {
				t.Fatalf("namespaces %q hostname %q sysctls %v", nsString(s.Linux.Namespaces), s.Hostname, s.Linux.Sysctl)
			}
		}},
		{name: "pod sysctls win over the defaults", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024", "kernel.shmmax": "65536"}
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "1024" || s.Linux.Sysctl["kernel.shmmax"] != "65536" {
				t.Fatalf("sysctls %v", s.Linux.Sysctl)
			}
		}},
		{name: "sysctl outside the pod's namespaces", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Linux.Sysctls = map[string]string{"kernel.panic": "1"}
		}, err: errdefs.ErrInvalidArgument},
		{name: "net sysctl with host network", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}
			c.Linux.Sysctls = map[string]string{"net.core.somaxconn": "1024"}
		}, err: errdefs.ErrInvalidArgument},
		{name: "user and groups from the pod", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Linux.SecurityContext.RunAsUser, c.Linux.SecurityContext.RunAsGroup = i64(1234), i64(5678)
			c.Linux.SecurityContext.SupplementalGroups = []int64{3, 1}
		}, check: func(t *testing.T, s *specs.Spec) {
			u := s.Process.User
			if u.UID != 1234 || u.GID != 5678 || !slices.Equal(u.AdditionalGids, []uint32{1, 3}) {
				t.Fatalf("user %+v", u)
			}
		}},
		{name: "privileged with runtime default seccomp", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Linux.SecurityContext.Privileged = true
			c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{}
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || len(s.Process.Capabilities.Bounding) != len(AllCapabilities()) {
				t.Fatalf("privileged pause %s", toJSON(t, s.Linux))
			}
		}},
		{name: "runtime default seccomp", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{}
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp == nil || !slices.Equal(s.Linux.MaskedPaths, DefaultMaskedPaths()) {
				t.Fatalf("pause %s", toJSON(t, s.Linux))
			}
		}},
		{name: "systemd cgroup", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, o *SandboxOptions) {
			c.Linux.CgroupParent = "kubepods-besteffort-podx.slice"
			o.Runtime.CgroupDriver = Systemd
		}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.CgroupsPath != "kubepods-besteffort-podx.slice:cri-runtime:sid" {
				t.Fatalf("cgroups path %q", s.Linux.CgroupsPath)
			}
		}},
		{name: "pod network without a netns", mod: func(_ *ocispec.ImageConfig, _ *runtime.PodSandboxConfig, o *SandboxOptions) {
			o.NetNSPath = ""
		}, err: errdefs.ErrFailedPrecondition},
		// CONTAINER (each container its own, as critest's ContainerPID
		// spec runs it) is accepted; TARGET names no container of a pod.
		{name: "target pid mode for a pod", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET}
		}, err: errdefs.ErrInvalidArgument},
		{name: "user namespaces", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}}
		}, err: errdefs.ErrNotImplemented},
		{name: "pause image without a command", mod: func(img *ocispec.ImageConfig, _ *runtime.PodSandboxConfig, _ *SandboxOptions) {
			img.Entrypoint = nil
		}, err: errdefs.ErrInvalidArgument},
		{name: "pause user by name needs the passwd", mod: func(img *ocispec.ImageConfig, _ *runtime.PodSandboxConfig, _ *SandboxOptions) {
			img.User = "nobody"
		}, err: errdefs.ErrInvalidArgument},
		{name: "bad hostname", mod: func(_ *ocispec.ImageConfig, c *runtime.PodSandboxConfig, _ *SandboxOptions) {
			c.Hostname = "a\nb"
		}, err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, c, o := pauseImage(), testSandboxConfig(), sandboxOptions()
			tc.mod(img, c, &o)
			s, err := Sandbox(img, c, o)
			wantErr(t, err, tc.err)
			if err == nil && tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

// A pod without a pause is checked as Sandbox checks a pod, and its
// sysctls get the same defaults; a pod sharing its PID namespace needs a
// pause.
func TestPodWithoutPause(t *testing.T) {
	pod := func(mod func(*runtime.PodSandboxConfig)) *runtime.PodSandboxConfig {
		c := &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{
			Sysctls:         map[string]string{"kernel.shmmax": "1"},
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}},
		}}
		if mod != nil {
			mod(c)
		}
		return c
	}
	opts := SandboxOptions{ID: "sid", NetNSPath: "/run/netns/x", UnprivilegedPorts: true}
	got, err := PodWithoutPause(pod(nil), opts)
	if err != nil || len(got) != 2 || got["kernel.shmmax"] != "1" || got["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Fatalf("sysctls %v, %v", got, err)
	}
	for name, c := range map[string]struct {
		cfg *runtime.PodSandboxConfig
		err error
	}{
		"shared pid": {pod(func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
		}), errdefs.ErrInvalidArgument},
		"net sysctl, host": {pod(func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
			c.Linux.Sysctls["net.core.somaxconn"] = "1"
		}), errdefs.ErrInvalidArgument},
		"bad label": {pod(func(c *runtime.PodSandboxConfig) { c.Labels = map[string]string{"": "x"} }), errdefs.ErrInvalidArgument},
		"user namespace": {pod(func(c *runtime.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}
		}), errdefs.ErrNotImplemented},
		"nil": {nil, errdefs.ErrInvalidArgument},
	} {
		if _, err := PodWithoutPause(c.cfg, opts); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", name, err, c.err)
		}
	}
}
