package spec

import (
	"encoding/json"
	"errors"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// testPasswd and testGroup are the user database of the test image.
const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
nohome:x:1002:1002:::/bin/sh
evil:x:4294967296:0::/:/bin/sh
evilgid:x:1003:2147483648::/:/bin/sh
newline:x:1004:1004::/home/new
line:/bin/sh
`

const testGroup = `root:x:0:
users:x:100:alice,bob
alice:x:1000:alice
wheel:x:10:alice,root
audio:x:29:bob
big:x:2147483648:mallory
mallory:x:1005:
`

func testUsers() *UserDB {
	return &UserDB{Passwd: ParsePasswd([]byte(testPasswd)), Group: ParseGroup([]byte(testGroup))}
}

func testImage() *ocispec.ImageConfig {
	return &ocispec.ImageConfig{
		Entrypoint: []string{"/bin/entry"},
		Cmd:        []string{"arg1"},
		Env:        []string{"PATH=/image/bin", "IMAGE=1"},
		WorkingDir: "/work",
	}
}

func testContainerConfig() *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "c1"},
		Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}},
	}
}

func testSandboxConfig() *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "pod", Uid: "uid", Namespace: "ns"},
		Hostname: "pod-host",
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent:    "/kubepods/pod-uid",
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{}},
		},
	}
}

func testOptions() ContainerOptions {
	return ContainerOptions{
		ID: "cid", SandboxID: "sid", SandboxPID: 42, NetNSPath: "/run/netns/cni-1",
		Files: SandboxFiles{Hosts: "/s/hosts", ResolvConf: "/s/resolv.conf", Hostname: "/s/hostname", Shm: "/s/shm"},
		Users: testUsers(),
		Devices: func(p string) ([]specs.LinuxDevice, error) {
			switch p {
			case "/dev/fuse":
				return []specs.LinuxDevice{{Path: p, Type: "c", Major: 10, Minor: 229}}, nil
			case "/dev/snd":
				return []specs.LinuxDevice{{Path: "/dev/snd/timer", Type: "c", Major: 116, Minor: 33}, {Path: "/dev/snd/seq", Type: "c", Major: 116, Minor: 1}}, nil
			case "/dev":
				return []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}, {Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232}}, nil
			}
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "device %q: no such file", p)
		},
		Host: Host{Hugetlb: true, SwapAccounting: true, Kernel: KernelVersion{6, 1}, Hostname: "node"},
	}
}

// buildContainer builds a spec from the test defaults changed by mod.
func buildContainer(t *testing.T, mod func(img *ocispec.ImageConfig, c *runtime.ContainerConfig, s *runtime.PodSandboxConfig, o *ContainerOptions)) (*specs.Spec, error) {
	t.Helper()
	img, c, s, o := testImage(), testContainerConfig(), testSandboxConfig(), testOptions()
	if mod != nil {
		mod(img, c, s, &o)
	}
	return Container(img, c, s, o)
}

func sc(c *runtime.ContainerConfig) *runtime.LinuxContainerSecurityContext {
	return c.Linux.SecurityContext
}

// wantErr checks that err is of class (nil: no error).
func wantErr(t *testing.T, err error, class error) {
	t.Helper()
	switch {
	case class == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case class != nil && err == nil:
		t.Fatalf("no error, want %v", class)
	case class != nil && !errors.Is(err, class):
		t.Fatalf("error %q is not %v", err, class)
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	return toJSON(t, a) == toJSON(t, b)
}
