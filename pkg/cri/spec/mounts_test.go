package spec

import (
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func findMount(ms []specs.Mount, dst string) (specs.Mount, bool) {
	for _, m := range ms {
		if m.Destination == dst {
			return m, true
		}
	}
	return specs.Mount{}, false
}

func destinations(ms []specs.Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Destination)
	}
	return out
}

func TestContainerMountsDefault(t *testing.T) {
	s, err := buildContainer(t, nil)
	wantErr(t, err, nil)
	want := []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm"}
	if got := destinations(s.Mounts); !slices.Equal(got, want) {
		t.Fatalf("mounts %q, want %q", got, want)
	}
	shm, _ := findMount(s.Mounts, "/dev/shm")
	if shm.Source != "/s/shm" || !slices.Equal(shm.Options, []string{"rbind", "rprivate", "rw"}) {
		t.Fatalf("shm %+v", shm)
	}
	hosts, _ := findMount(s.Mounts, "/etc/hosts")
	if hosts.Source != "/s/hosts" || !slices.Equal(hosts.Options, []string{"rbind", "rprivate", "rw"}) {
		t.Fatalf("hosts %+v", hosts)
	}
	sys, _ := findMount(s.Mounts, "/sys")
	if !slices.Contains(sys.Options, "ro") {
		t.Fatalf("sysfs %+v not read-only", sys)
	}
	if s.Linux.RootfsPropagation != "" {
		t.Fatalf("rootfs propagation %q", s.Linux.RootfsPropagation)
	}
}

func TestContainerMounts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mounts      []*runtime.Mount
		readonly    bool
		rro         bool
		dst         string
		want        specs.Mount
		propagation string
		err         error
	}{
		{name: "private rw", mounts: []*runtime.Mount{{ContainerPath: "/data", HostPath: "/host/data"}}, dst: "/data",
			want: specs.Mount{Destination: "/data", Type: "bind", Source: "/host/data", Options: []string{"rbind", "rprivate", "rw"}}},
		{name: "read-only", mounts: []*runtime.Mount{{ContainerPath: "/data/", HostPath: "/host/data/", Readonly: true}}, dst: "/data",
			want: specs.Mount{Destination: "/data", Type: "bind", Source: "/host/data", Options: []string{"rbind", "rprivate", "ro"}}},
		{name: "host to container is rslave", mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}}, dst: "/d",
			want: specs.Mount{Destination: "/d", Type: "bind", Source: "/h", Options: []string{"rbind", "rslave", "rw"}}, propagation: "rslave"},
		{name: "bidirectional is rshared", mounts: []*runtime.Mount{
			{ContainerPath: "/a", HostPath: "/ha", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			{ContainerPath: "/d", HostPath: "/h", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			{ContainerPath: "/b", HostPath: "/hb", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		}, dst: "/d", want: specs.Mount{Destination: "/d", Type: "bind", Source: "/h", Options: []string{"rbind", "rshared", "rw"}}, propagation: "rshared"},
		{name: "mount options", mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", MountOptions: []string{"noexec", "nosuid"}}}, dst: "/d",
			want: specs.Mount{Destination: "/d", Type: "bind", Source: "/h", Options: []string{"rbind", "rprivate", "rw", "noexec", "nosuid"}}},
		{name: "selinux relabel ignored", mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", SelinuxRelabel: true}}, dst: "/d",
			want: specs.Mount{Destination: "/d", Type: "bind", Source: "/h", Options: []string{"rbind", "rprivate", "rw"}}},
		{name: "image volume is ro", mounts: []*runtime.Mount{{ContainerPath: "/img", HostPath: "/snap/view", Image: &runtime.ImageSpec{Image: "sha256:abc"}}}, dst: "/img",
			want: specs.Mount{Destination: "/img", Type: "bind", Source: "/snap/view", Options: []string{"rbind", "rprivate", "ro"}}},
		{name: "recursive read-only", rro: true, mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", Readonly: true, RecursiveReadOnly: true}}, dst: "/d",
			want: specs.Mount{Destination: "/d", Type: "bind", Source: "/h", Options: []string{"rbind", "rprivate", "rro"}}},
		{name: "request overrides the pod's hosts file", mounts: []*runtime.Mount{{ContainerPath: "/etc/hosts", HostPath: "/kubelet/hosts"}}, dst: "/etc/hosts",
			want: specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: "/kubelet/hosts", Options: []string{"rbind", "rprivate", "rw"}}},
		{name: "pod files read-only with a read-only rootfs", readonly: true, dst: "/etc/resolv.conf",
			want: specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: "/s/resolv.conf", Options: []string{"rbind", "rprivate", "ro"}}},
		{name: "request replaces default proc", mounts: []*runtime.Mount{{ContainerPath: "/proc", HostPath: "/hp"}}, dst: "/proc",
			want: specs.Mount{Destination: "/proc", Type: "bind", Source: "/hp", Options: []string{"rbind", "rprivate", "rw"}}},
		{name: "relative destination", mounts: []*runtime.Mount{{ContainerPath: "data", HostPath: "/h"}}, err: errdefs.ErrInvalidArgument},
		{name: "empty destination", mounts: []*runtime.Mount{{HostPath: "/h"}}, err: errdefs.ErrInvalidArgument},
		{name: "relative host path", mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "h"}}, err: errdefs.ErrInvalidArgument},
		{name: "image volume not resolved", mounts: []*runtime.Mount{{ContainerPath: "/d", Image: &runtime.ImageSpec{Image: "x"}}}, err: errdefs.ErrInvalidArgument},
		{name: "unknown propagation", mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", Propagation: 9}}, err: errdefs.ErrInvalidArgument},
		{name: "bad mount option", mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", MountOptions: []string{"rshared"}}}, err: errdefs.ErrInvalidArgument},
		{name: "rro on rw mount", rro: true, mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", RecursiveReadOnly: true}}, err: errdefs.ErrInvalidArgument},
		{name: "rro with rslave", rro: true, mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", Readonly: true, RecursiveReadOnly: true, Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}}, err: errdefs.ErrInvalidArgument},
		{name: "rro unsupported by the runtime", mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", Readonly: true, RecursiveReadOnly: true}}, err: errdefs.ErrFailedPrecondition},
		{name: "id-mapped mount", mounts: []*runtime.Mount{{ContainerPath: "/d", HostPath: "/h", UidMappings: []*runtime.IDMapping{{Length: 1}}}}, err: errdefs.ErrNotImplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := buildContainer(t, func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
				c.Mounts = tc.mounts
				sc(c).ReadonlyRootfs = tc.readonly
				o.Runtime.RecursiveReadOnlyMounts = tc.rro
			})
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			got, ok := findMount(s.Mounts, tc.dst)
			if !ok || got.Source != tc.want.Source || got.Type != tc.want.Type || !slices.Equal(got.Options, tc.want.Options) {
				t.Fatalf("mount %s = %+v, want %+v", tc.dst, got, tc.want)
			}
			if s.Linux.RootfsPropagation != tc.propagation {
				t.Fatalf("rootfs propagation %q, want %q", s.Linux.RootfsPropagation, tc.propagation)
			}
			if s.Root.Readonly != tc.readonly {
				t.Fatalf("root readonly %v", s.Root.Readonly)
			}
		})
	}
}

// TestContainerMountsOrder: request mounts go by depth (a parent before
// its children), defaults below a requested /dev go.
func TestContainerMountsOrder(t *testing.T) {
	s, err := buildContainer(t, func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig, _ *runtime.PodSandboxConfig, o *ContainerOptions) {
		c.Mounts = []*runtime.Mount{
			{ContainerPath: "/a/b/c", HostPath: "/1"}, {ContainerPath: "/a", HostPath: "/2"},
			{ContainerPath: "/a/b", HostPath: "/3"}, {ContainerPath: "/dev", HostPath: "/dev"},
		}
		o.Files = SandboxFiles{}
	})
	wantErr(t, err, nil)
	want := []string{"/proc", "/sys", "/sys/fs/cgroup", "/a", "/dev", "/a/b", "/a/b/c"}
	if got := destinations(s.Mounts); !slices.Equal(got, want) {
		t.Fatalf("mounts %q, want %q", got, want)
	}
}
