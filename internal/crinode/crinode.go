// Package crinode runs the built daemon as a node runs it, for the
// project's end-to-end suites (test/critest, test/fault): a private CNI
// network, a registry on loopback with a pause and a busybox image, and
// kubelet's own CRI clients (k8s.io/cri-client) on its socket. It checks,
// when a test ends, that nothing of its pods is left behind.
package crinode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/cri-runtime/cri-runtime/pkg/cni/cnitest"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// binDir holds cri-runtime and cri-runtime-shim, built by Main.
var binDir string

// Main builds the daemon and its shim, runs the tests and removes the
// binaries: call it from TestMain.
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cri-runtime-node-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir, "github.com/cri-runtime/cri-runtime/cmd/cri-runtime", "github.com/cri-runtime/cri-runtime/cmd/cri-runtime-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as the README builds them
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// node is a daemon as kubelet sees it: its CRI socket, clients with
// kubelet's per-call deadline, the images a pod needs and its network.
type Node struct {
	T        *testing.T
	Dir      string // root and config
	SockDir  string // short: sockets, state
	config   string
	Net      *cnitest.Env
	Registry string
	Pause    string // the pause image reference
	Busybox  string // a busybox image reference
	// RT and Img are kubelet's clients of the running daemon; Start
	// replaces them. Tests that restart the daemon while other goroutines
	// call it use Runtime and Images instead.
	RT      internalapi.RuntimeService
	Img     internalapi.ImageManagerService
	Timeout time.Duration // the clients' per-call deadline
	// Metrics is the host:port of the daemon's /metrics and /healthz.
	Metrics string
	root    string // the daemon's root
	logDir  string // where pods' log directories are; "" is under Dir
	netOpts []cnitest.Opt

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	exited chan struct{}
}

// New starts a daemon with a private network and registry. extra is
// appended to its config file, after its last table, [cni]: keys of
// [cni], or tables of their own ([cri.runtimes.x], say).
func New(t *testing.T, extra string, opts ...Opt) *Node {
	t.Helper()
	n := &Node{T: t, Dir: t.TempDir(), Timeout: 2 * time.Minute}
	n.root = filepath.Join(n.Dir, "root")
	for _, o := range opts {
		o(n)
	}
	var err error
	if n.SockDir, err = os.MkdirTemp("", "crc"); err != nil {
		t.Fatal(err)
	}
	n.Net = cnitest.New(t, n.netOpts...)
	n.Metrics = freeAddr(t)
	n.Registry = imagetest.StartRegistry(t)
	busybox := imagetest.BusyboxLayer(t, image.CompressionGzip)
	pause := imagetest.Image{Layers: []imagetest.Layer{busybox},
		Config: ocispec.ImageConfig{Entrypoint: []string{"/bin/sleep", "2147483647"}}}.Build(t)
	imagetest.Push(t, n.Registry, "test/pause", "1", pause)
	n.Pause = n.Registry + "/test/pause:1"
	bb := imagetest.Image{Layers: []imagetest.Layer{busybox},
		Config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}}}.Build(t)
	imagetest.Push(t, n.Registry, "test/busybox", "1", bb)
	n.Busybox = n.Registry + "/test/busybox:1"
	cfg := n.Net.Config()
	n.config = filepath.Join(n.Dir, "config.toml")
	verbosity := 0 // CRI_RUNTIME_TEST_DAEMON_V: the daemons' log verbosity
	if v, err := strconv.Atoi(os.Getenv("CRI_RUNTIME_TEST_DAEMON_V")); err == nil {
		verbosity = v
	}
	body := fmt.Sprintf(`root = %q
state = %q
shim_binary = %q
[grpc]
  address = %q
[metrics]
  address = %q
[log]
  verbosity = %d
[image]
  config_path = ""
[cri]
  address = %q
  sandbox_image = %q
[cni]
  conf_dir = %q
  bin_dirs = [%q, %q]
  netns_dir = %q
  cache_dir = %q
%s`, n.root, filepath.Join(n.SockDir, "state"), filepath.Join(binDir, "cri-runtime-shim"),
		filepath.Join(n.SockDir, "mgmt.sock"), n.Metrics, verbosity, n.Socket(), n.Pause,
		cfg.ConfDir, cfg.BinDirs[0], cfg.BinDirs[1], cfg.NetNSDir, cfg.CacheDir, extra)
	if err := os.WriteFile(n.config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.cleanup)
	n.Start()
	return n
}

// Pid is the daemon's process ID.
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd.Process.Pid
}

// freeAddr returns a loopback host:port free now.
//
// The port is below the kernel's ephemeral range: the daemon binds it
// again at each restart, and a port of that range, free while the daemon
// is down, can meanwhile become some connection's local port (a restart
// of TestKillUnderLoad failed with "address already in use").
func freeAddr(t *testing.T) string {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	const first = 10000
	if low <= first+1000 {
		t.Fatalf("the ephemeral port range starts at %d: no room below it for the daemon's ports", low)
	}
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", first+rand.IntN(low-first))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// Runtime returns the runtime client of the daemon running now.
func (n *Node) Runtime() internalapi.RuntimeService {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.RT
}

// Images returns the image client of the daemon running now.
func (n *Node) Images() internalapi.ImageManagerService {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.Img
}

// Root is the daemon's root directory.
func (n *Node) Root() string { return n.root }

func (n *Node) logDirOr() string {
	if n.logDir != "" {
		return n.logDir
	}
	return filepath.Join(n.Dir, "pods")
}

// Opt changes how New sets the node up.
type Opt func(*Node)

// WithRoot puts the daemon's root directory at dir (on a small
// filesystem, say).
func WithRoot(dir string) Opt { return func(n *Node) { n.root = dir } }

// WithWideNetwork gives the node's network a /23 (cnitest.WithWideSubnet),
// for more pods than a /24 holds.
func WithWideNetwork() Opt {
	return func(nd *Node) { nd.netOpts = append(nd.netOpts, cnitest.WithWideSubnet()) }
}

// WithLogDir puts the pods' log directories under dir.
func WithLogDir(dir string) Opt { return func(n *Node) { n.logDir = dir } }

func (n *Node) Socket() string { return filepath.Join(n.SockDir, "cri.sock") }

// start runs the daemon and connects kubelet's clients.
func (n *Node) Start() {
	n.T.Helper()
	n.mu.Lock()
	n.cmd = exec.Command(filepath.Join(binDir, "cri-runtime"), "serve", "--config", n.config)
	n.stderr = &bytes.Buffer{}
	n.cmd.Stderr = &lockedWriter{mu: &n.mu, w: n.stderr}
	if f := os.Getenv("CRI_RUNTIME_TEST_DAEMON_LOG"); f != "" {
		// Every daemon's log appended to a file: a test that restarts
		// the daemon keeps only the last one's in memory.
		lf, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			n.mu.Unlock()
			n.T.Fatal(err)
		}
		fmt.Fprintf(lf, "==== daemon started %s\n", time.Now().Format(time.RFC3339Nano))
		n.cmd.Stderr = io.MultiWriter(n.cmd.Stderr, lf)
		n.T.Cleanup(func() { lf.Close() })
	}
	if err := n.cmd.Start(); err != nil {
		n.mu.Unlock()
		n.T.Fatal(err)
	}
	exited := make(chan struct{})
	n.exited = exited
	cmd := n.cmd
	n.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rt, err := remote.NewRemoteRuntimeService(ctx, "unix://"+n.Socket(), n.Timeout, nil, false)
		if err == nil {
			if _, err = rt.Version(ctx, "v1"); err == nil {
				n.mu.Lock()
				n.RT = rt
				n.mu.Unlock()
				break
			}
		}
		select {
		case <-exited:
			n.T.Fatalf("daemon exited at start:\n%s", n.Logs())
		default:
		}
		if time.Now().After(deadline) {
			n.T.Fatalf("CRI socket does not answer: %v\n%s", err, n.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	img, err := remote.NewRemoteImageService(ctx, "unix://"+n.Socket(), n.Timeout, nil, false)
	if err != nil {
		n.T.Fatal(err)
	}
	n.mu.Lock()
	n.Img = img
	n.mu.Unlock()
}

// kill9 kills the daemon with SIGKILL: its shims and containers live on.
func (n *Node) Kill9() {
	n.T.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	_ = cmd.Process.Kill()
	<-exited
}

// stop stops the daemon with SIGTERM.
func (n *Node) Stop() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (n *Node) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stderr.String()
}

// cleanup removes every pod (as kubelet would before a node drains), stops
// the daemon and checks that nothing is left: no netns, no IP, no veth, no
// shim, no mount under the daemon's directories.
func (n *Node) cleanup() {
	t := n.T
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ids []string
	if n.RT != nil {
		if ctrs, err := n.RT.ListContainers(ctx, nil); err == nil {
			for _, c := range ctrs {
				ids = append(ids, c.Id)
			}
		}
		if pods, err := n.RT.ListPodSandbox(ctx, nil); err == nil {
			for _, p := range pods {
				ids = append(ids, p.Id)
				_ = n.RT.StopPodSandbox(ctx, p.Id)
				if err := n.RT.RemovePodSandbox(ctx, p.Id); err != nil {
					t.Errorf("remove pod %s: %v", p.Id, err)
				}
			}
		}
	}
	n.Stop()
	if t.Failed() {
		t.Logf("daemon log:\n%s", tail(n.Logs(), 60))
	}
	n.Net.AssertClean(t)
	for _, dir := range []string{n.Dir, n.SockDir} {
		if m := MountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left under %s: %q", dir, m)
		}
	}
	CheckCgroups(t, ids)
	if shims := processes(t, "cri-runtime-shim", n.SockDir); len(shims) > 0 {
		t.Errorf("shims left: %v", shims)
	}
	os.RemoveAll(n.SockDir)
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// MountsUnder lists the mount points under dir.
func MountsUnder(t *testing.T, dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// processes lists the pids of the processes named name whose command
// line mentions arg.
func processes(t *testing.T, name, arg string) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == name && strings.Contains(string(b), arg) {
			out = append(out, e.Name())
		}
	}
	return out
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// podConfig is the config kubelet sends for a pod named name.
func (n *Node) PodConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "critest", Uid: name + "-uid", Attempt: 0},
		Hostname:     name,
		LogDirectory: filepath.Join(n.logDirOr(), name),
		Labels:       map[string]string{"app": name},
		// kubelet's namespaces for a pod that does not share its
		// process namespace: the CRI's zero value is POD.
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}},
	}
}

// containerConfig is the config of a busybox container running cmd.
func (n *Node) ContainerConfig(name string, cmd ...string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: n.Busybox},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux:    &runtime.LinuxContainerConfig{},
	}
}

// startPod runs a pod and a container in it, in kubelet's order, and
// returns their IDs.
func (n *Node) StartPod(ctx context.Context, name string, cmd ...string) (podID, ctrID string) {
	n.T.Helper()
	pc := n.PodConfig(name)
	podID, err := n.RT.RunPodSandbox(ctx, pc, "")
	if err != nil {
		n.T.Fatalf("RunPodSandbox %s: %v", name, err)
	}
	if _, err := n.Img.PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, pc); err != nil {
		n.T.Fatalf("PullImage: %v", err)
	}
	ctrID, err = n.RT.CreateContainer(ctx, podID, n.ContainerConfig("c", cmd...), pc)
	if err != nil {
		n.T.Fatalf("CreateContainer %s: %v", name, err)
	}
	if err := n.RT.StartContainer(ctx, ctrID); err != nil {
		n.T.Fatalf("StartContainer %s: %v", name, err)
	}
	return podID, ctrID
}

// CheckCgroups fails t if a cgroup of any of ids (containers and pods, by
// the default cgroup parent of the cgroupfs driver) is left, in any v1
// hierarchy or in the unified one.
func CheckCgroups(t *testing.T, ids []string) {
	t.Helper()
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/cri-runtime")
	if _, err := os.Stat("/sys/fs/cgroup/cri-runtime"); err == nil {
		roots = append(roots, "/sys/fs/cgroup/cri-runtime")
	}
	for _, root := range roots {
		for _, id := range ids {
			if _, err := os.Stat(filepath.Join(root, id)); err == nil {
				t.Errorf("cgroup %s left", filepath.Join(root, id))
			}
		}
	}
}

// CgroupParent returns a cgroup parent of t's own, as kubelet gives each
// pod one, and removes it from every hierarchy when t ends. Call it
// before New: cleanups run last first, and the node's must have removed
// the pods' cgroups under it. One that cannot be removed fails t.
func CgroupParent(t *testing.T, name string) string {
	t.Helper()
	parent := fmt.Sprintf("/cri-runtime-test-%s-%d", name, os.Getpid())
	t.Cleanup(func() {
		for _, d := range cgroupDirs(parent) {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				t.Errorf("cgroup parent left: %v", err)
			}
		}
	})
	return parent
}

// CheckCgroupParent fails t if any cgroup is left under parent, in any v1
// hierarchy or in the unified one: what CheckCgroups cannot see, the
// cgroups of containers no call reported.
func CheckCgroupParent(t *testing.T, parent string) {
	t.Helper()
	for _, d := range cgroupDirs(parent) {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.IsDir() {
				t.Errorf("cgroup %s left", filepath.Join(d, e.Name()))
			}
		}
	}
}

// cgroupDirs are the directories of the cgroup path p in every hierarchy.
func cgroupDirs(p string) []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + p) // v1, and unified/ on a hybrid host
	if _, err := os.Stat("/sys/fs/cgroup" + p); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup"+p) // v2 only
	}
	return dirs
}
