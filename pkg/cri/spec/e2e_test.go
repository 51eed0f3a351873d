package spec

import (
	"bytes"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The end-to-end test runs the generated specs with the real runc and
// crun: a pause container from Sandbox in its own network namespace, then
// workload containers from Container joined to it. It keeps the pure
// package honest: a spec the runtimes refuse fails here.

const e2eCgroupParent = "/cri-runtime-spec-test"

// busyboxRootfs makes a rootfs holding the static busybox, its applets,
// and an /etc/passwd and /etc/group with a user "app".
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed")
	}
	if f, err := elf.Open(bb); err != nil {
		t.Skip(err)
	} else {
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Skip("busybox is not static (apt install busybox-static)")
			}
		}
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/app"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:App:/home/app:/bin/sh\n")
	write(t, filepath.Join(root, "etc/group"), "root:x:0:\napp:x:1234:\nextra:x:4321:app\n")
	return root
}

func randomID(t *testing.T, what string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("crispec-%s-%d-%s", what, os.Getpid(), hex.EncodeToString(b))
}

// writeBundle writes config.json for s in a new bundle directory.
func writeBundle(t *testing.T, s *specs.Spec) string {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "config.json"), string(b))
	return dir
}

// ociRuntime runs one runtime binary with its own state directory.
type ociRuntime struct {
	bin   string
	state string
}

func (r ociRuntime) cmd(args ...string) *exec.Cmd {
	return exec.Command(r.bin, append([]string{"--root", r.state}, args...)...)
}

// run runs a container in the foreground and returns its output and exit
// code; it is deleted after.
func (r ociRuntime) run(t *testing.T, id string, s *specs.Spec) (string, int) {
	t.Helper()
	bundle := writeBundle(t, s)
	t.Cleanup(func() { r.cmd("delete", "-f", id).Run() })
	cmd := r.cmd("run", "--bundle", bundle, id)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s run %s: %v", r.bin, id, err)
		}
		return out.String(), code
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s run %s: timed out; output %s", r.bin, id, out.String())
	}
	return "", -1
}

// startDetached starts the pause container in the background and returns
// its pid.
func (r ociRuntime) startDetached(t *testing.T, id string, s *specs.Spec) uint32 {
	t.Helper()
	bundle := writeBundle(t, s)
	t.Cleanup(func() {
		r.cmd("kill", id, "KILL").Run()
		for i := 0; i < 50 && r.cmd("delete", id).Run() != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		r.cmd("delete", "-f", id).Run()
	})
	// The detached container keeps the stdio it is given: a file, not a
	// pipe this test would wait on.
	logf, err := os.Create(filepath.Join(t.TempDir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := r.cmd("run", "-d", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("%s run -d %s: %v: %s", r.bin, id, err, out)
	}
	out, err := r.cmd("state", id).Output()
	if err != nil {
		t.Fatalf("%s state %s: %v", r.bin, id, err)
	}
	var st struct{ Pid uint32 }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		t.Fatalf("state %s: %v", out, err)
	}
	// crun run -d returns before its child has exec'd the process.
	comm := filepath.Base(s.Process.Args[0])
	for i := 0; ; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", st.Pid))
		if strings.TrimSpace(string(b)) == comm {
			break
		}
		if i == 250 {
			t.Fatalf("pid %d is %q, not %q, after 5s", st.Pid, b, comm)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return st.Pid
}

// capMask is the /proc/<pid>/status CapEff of caps.
func capMask(caps []string) string {
	var m uint64
	for _, c := range caps {
		m |= 1 << slices.Index(knownCapabilities, c)
	}
	return fmt.Sprintf("%016x", m)
}

func TestRuntimesRunSpecs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	host, err := DetectHost()
	if err != nil {
		t.Fatal(err)
	}
	rootfs := busyboxRootfs(t)
	users, err := ReadUserDB(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"runc", "crun"} {
		t.Run(bin, func(t *testing.T) {
			path, err := exec.LookPath(bin)
			if err != nil {
				t.Skipf("%s not installed", bin)
			}
			runPod(t, ociRuntime{bin: path, state: t.TempDir()}, host, rootfs, users)
		})
	}
}

// newNetns makes a network namespace for the pod and removes it after.
func newNetns(t *testing.T) string {
	t.Helper()
	name := randomID(t, "ns")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	return "/run/netns/" + name
}

// removeCgroupParent removes the test's cgroup parent from every hierarchy.
func removeCgroupParent(t *testing.T, host Host) {
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + e2eCgroupParent)
		if host.CgroupV2 {
			dirs = []string{"/sys/fs/cgroup" + e2eCgroupParent}
		}
		for _, d := range dirs {
			os.Remove(d)
		}
	})
}

func runPod(t *testing.T, rt ociRuntime, host Host, rootfs string, users *UserDB) {
	removeCgroupParent(t, host)
	files := t.TempDir()
	write(t, filepath.Join(files, "resolv.conf"), "nameserver 192.0.2.53\n")
	write(t, filepath.Join(files, "hostname"), "spec-pod\n")
	write(t, filepath.Join(files, "hosts"), "127.0.0.1 localhost spec-pod\n")
	podFiles := SandboxFiles{ResolvConf: filepath.Join(files, "resolv.conf"), Hostname: filepath.Join(files, "hostname"), Hosts: filepath.Join(files, "hosts")}
	pod := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "e2e"},
		Hostname: "spec-pod",
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent: e2eCgroupParent,
			Sysctls:      map[string]string{"net.ipv4.ip_forward": "1"},
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				Privileged: true,
				Seccomp:    &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
				NamespaceOptions: &runtime.NamespaceOption{
					Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_POD, Ipc: runtime.NamespaceMode_POD,
				},
			},
		},
	}
	pauseID := randomID(t, "pause")
	pauseSpec, err := Sandbox(&ocispec.ImageConfig{Entrypoint: []string{"/bin/sleep", "3600"}}, pod,
		SandboxOptions{ID: pauseID, RootfsPath: rootfs, NetNSPath: newNetns(t), Files: podFiles, Host: host, UnprivilegedPorts: true})
	if err != nil {
		t.Fatal(err)
	}
	pausePID := rt.startDetached(t, pauseID, pauseSpec)

	for _, tc := range e2eCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &runtime.ContainerConfig{
				Metadata: &runtime.ContainerMetadata{Name: tc.name},
				Command:  []string{"/bin/sh", "-c", tc.script},
				Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}},
			}
			image := &ocispec.ImageConfig{Env: []string{"PATH=/bin"}}
			tc.mod(image, cfg)
			id := randomID(t, "c")
			s, err := Container(image, cfg, pod, ContainerOptions{
				ID: id, SandboxID: pauseID, RootfsPath: rootfs, SandboxPID: pausePID,
				Files: podFiles, Users: users, Devices: HostDevices, Host: host,
			})
			if err != nil {
				t.Fatal(err)
			}
			out, code := rt.run(t, id, s)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, want := range tc.want(s) {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

type e2eCase struct {
	name   string
	script string
	mod    func(*ocispec.ImageConfig, *runtime.ContainerConfig)
	code   int
	want   func(*specs.Spec) []string
}

func e2eCases() []e2eCase {
	status := `grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; `
	return []e2eCase{
		{name: "default", script: status + `id -u; hostname; cat /etc/resolv.conf; echo HOME=$HOME; cat /proc/sys/net/ipv4/ip_forward; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; echo pid1=$(cat /proc/1/comm)`,
			mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
			},
			want: func(s *specs.Spec) []string {
				return []string{"CapEff:\t" + capMask(DefaultCapabilities()), "Seccomp:\t2", "NoNewPrivs:\t0", "\n0\n", "spec-pod", "192.0.2.53", "HOME=/root", "\n1\n0\n", "pid1=sleep"}
			}},
		{name: "privileged", script: status + `ls /dev/null /dev/zero >/dev/null && echo devices-ok; d=$(mktemp -d) && mount -t tmpfs t $d && echo mount-ok && umount $d && rmdir $d; grep -w /sys /proc/mounts`,
			mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Privileged = true
				c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
			},
			want: func(s *specs.Spec) []string {
				return []string{"CapEff:\t" + capMask(s.Process.Capabilities.Bounding), "Seccomp:\t0", "devices-ok", "mount-ok", "sysfs /sys sysfs rw"}
			}},
		{name: "read-only rootfs", script: `touch /x 2>&1; echo rc=$?; echo ok 2>&1 > /etc/hosts; echo rc=$?; echo ok > /dev/shm/z && echo shm-written`,
			mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.ReadonlyRootfs = true
			},
			want: func(*specs.Spec) []string {
				// The pod's files are read-only with the rootfs, as in
				// containerd; /dev/shm stays writable.
				return []string{"/x: Read-only file system\nrc=1\n", "/etc/hosts: Read-only file system\nrc=1\n", "shm-written"}
			}},
		{name: "user by name", script: `id -u; id -g; id -G; echo HOME=$HOME; ` + status,
			mod: func(img *ocispec.ImageConfig, c *runtime.ContainerConfig) {
				img.User = "app"
				c.Linux.SecurityContext.SupplementalGroups = []int64{555}
				c.Linux.SecurityContext.NoNewPrivs = true
			},
			want: func(*specs.Spec) []string {
				return []string{"1234\n1234\n", "4321", "555", "HOME=/home/app", "CapEff:\t0000000000000000", "NoNewPrivs:\t1"}
			}},
		{name: "caps add and drop", script: status + `chown 1:1 /tmp 2>&1; echo rc=$?`,
			mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Capabilities = &runtime.Capability{AddCapabilities: []string{"NET_ADMIN", "sys_ptrace"}, DropCapabilities: []string{"CAP_CHOWN", "MKNOD"}}
			},
			want: func(s *specs.Spec) []string {
				want := slices.DeleteFunc(append(DefaultCapabilities(), "CAP_NET_ADMIN", "CAP_SYS_PTRACE"), func(c string) bool { return c == "CAP_CHOWN" || c == "CAP_MKNOD" })
				return []string{"CapEff:\t" + capMask(want), "Operation not permitted", "rc=1"}
			}},
		{name: "memory limit", script: `cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max`,
			mod: func(_ *ocispec.ImageConfig, c *runtime.ContainerConfig) {
				c.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 32 << 20, CpuShares: 256}
			},
			want: func(*specs.Spec) []string { return []string{strconv.Itoa(32 << 20)} }},
		{name: "exit code and stop", script: `exit 7`, code: 7,
			mod:  func(*ocispec.ImageConfig, *runtime.ContainerConfig) {},
			want: func(*specs.Spec) []string { return nil }},
	}
}
