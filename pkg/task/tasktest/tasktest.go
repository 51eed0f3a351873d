// Package tasktest holds what the tests of tasks share: the shim binary
// built once per test binary, a busybox-static root filesystem, runtime
// specs for it, and the OCI runtimes that work on this host.
package tasktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/pkg/mount"
)

// CgroupParent is the cgroup under which test containers are created.
const CgroupParent = "/cri-runtime-test"

// NeedRoot skips a test that is not run as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: runs real containers")
	}
}

var shimOnce struct {
	sync.Once
	dir, path string
	err       error
}

// ShimBinary builds cmd/cri-runtime-shim once per test binary and returns
// its path. Call Cleanup from TestMain to remove it.
func ShimBinary(t testing.TB) string {
	t.Helper()
	shimOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		shimOnce.dir, shimOnce.err = os.MkdirTemp("", "cri-runtime-shim-bin")
		if shimOnce.err != nil {
			return
		}
		shimOnce.path = filepath.Join(shimOnce.dir, "cri-runtime-shim")
		cmd := exec.Command("go", "build", "-o", shimOnce.path, "./cmd/cri-runtime-shim")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			shimOnce.err = fmt.Errorf("go build cri-runtime-shim: %v: %s", err, out)
		}
	})
	if shimOnce.err != nil {
		t.Fatal(shimOnce.err)
	}
	return shimOnce.path
}

var rootfsOnce struct {
	sync.Once
	dir string
	err error
}

// Rootfs returns a read-only-by-convention busybox-static root filesystem
// shared by the tests of this binary: /bin/busybox and its applet links.
func Rootfs(t testing.TB) string {
	t.Helper()
	rootfsOnce.Do(func() {
		rootfsOnce.dir, rootfsOnce.err = buildRootfs()
	})
	if rootfsOnce.err != nil {
		t.Skipf("busybox rootfs: %v", rootfsOnce.err)
	}
	return rootfsOnce.dir
}

func buildRootfs() (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("ldd", bb).CombinedOutput(); err == nil && !bytes.Contains(out, []byte("not a dynamic")) {
		return "", fmt.Errorf("%s is not static (apt-get install busybox-static)", bb)
	}
	dir, err := os.MkdirTemp("", "cri-runtime-rootfs")
	if err != nil {
		return "", err
	}
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		return "", err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return "", err
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			_ = os.Symlink("busybox", filepath.Join(dir, "bin", applet))
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte(passwd), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// Cleanup removes what this package built; call it from TestMain.
func Cleanup() {
	if shimOnce.dir != "" {
		os.RemoveAll(shimOnce.dir)
	}
	if rootfsOnce.dir != "" {
		os.RemoveAll(rootfsOnce.dir)
	}
}

// OverlayRootfs returns overlay mounts with Rootfs as the lower layer and
// an upper layer in a temporary directory of t.
func OverlayRootfs(t testing.TB) []mount.Mount {
	lower := Rootfs(t)
	dir := t.TempDir()
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work,
	}}}
}

// Spec returns a runtime-spec for container id running args, in the
// shape of `runc spec`: its own namespaces, the default capabilities,
// masked and read-only paths, and the cgroup CgroupParent/id. Its root is
// "rootfs" (the shim's mount point when the rootfs is given as mounts).
func Spec(id string, args ...string) *specs.Spec {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"}
	return &specs.Spec{
		// The spec version the runtimes installed here know (crun 1.8
		// refuses a newer one).
		Version: "1.0.2",
		Process: &specs.Process{
			Args: args, Cwd: "/",
			Env: []string{"PATH=/bin", "HOME=/root", "TERM=xterm"},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: id,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: CgroupParent + "/" + id,
			Resources:   &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// SpecJSON is Spec as config.json bytes.
func SpecJSON(t testing.TB, s *specs.Spec) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Runtimes returns the OCI runtimes installed here that can run a
// container on this host's cgroups. crun 1.8 refuses a hybrid host whose
// cgroup2 hierarchy has controllers ("drop all controllers from
// cgroupv2"); that is said in the log, and crun left out.
func Runtimes(t testing.TB) []string {
	var out []string
	for _, rt := range []string{"runc", "crun"} {
		if _, err := exec.LookPath(rt); err != nil {
			missing(t, "runtime %s: not installed", rt)
			continue
		}
		if rt == "crun" && hybridWithV2Controllers() {
			missing(t, "runtime crun: left out: cgroup v1/v2 hybrid host whose cgroup2 hierarchy has controllers "+
				"(crun 1.8 refuses it; hack/deps.sh mounts the v1 hugetlb hierarchy to move hugetlb off cgroup2)")
			continue
		}
		out = append(out, rt)
	}
	if len(out) == 0 {
		testenv.Missing(t, "no OCI runtime installed")
	}
	return out
}

// missing logs that a runtime is left out, or fails the test under
// CRI_RUNTIME_TEST_STRICT: CI proves both runtimes.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if testenv.Strict() {
		t.Fatalf(format, args...)
	}
	t.Logf(format, args...)
}

func hybridWithV2Controllers() bool {
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	return err == nil && len(bytes.TrimSpace(b)) > 0
}
