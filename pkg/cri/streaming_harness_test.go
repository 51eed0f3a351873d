package cri_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	internalapi "k8s.io/cri-api/pkg/apis"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
	utilexec "k8s.io/utils/exec"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/cni/cnitest"
	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

// harness is a daemon with a CRI socket, a private CNI network, and a
// pause and a busybox image on a loopback registry, driven with
// k8s.io/cri-client as kubelet does.
type harness struct {
	d       *servertest.Daemon
	rs      internalapi.RuntimeService
	is      internalapi.ImageManagerService
	busybox string   // image reference
	pods    []string // to stop and remove at the end
}

func newHarness(t *testing.T, mutate ...func(*server.Config)) *harness {
	t.Helper()
	testenv.NeedRoot(t, "pods")
	env := cnitest.New(t)
	host := pushImages(t)
	cfg := servertest.Config(t)
	cfg.CNI = env.Config()
	cfg.Image.ConfigPath = ""
	cfg.CRI.SandboxImage = host + "/pause:test"
	for _, m := range mutate {
		m(&cfg)
	}
	h := &harness{busybox: host + "/busybox:test"}
	h.start(t, cfg)
	if _, err := h.is.PullImage(context.Background(), &criapi.ImageSpec{Image: h.busybox}, nil, nil); err != nil {
		t.Fatalf("pull busybox: %v", err)
	}
	return h
}

// start starts the daemon of cfg and connects the CRI clients. The pods
// are removed before it stops.
func (h *harness) start(t *testing.T, cfg server.Config) {
	t.Helper()
	h.d = servertest.StartWith(t, cfg)
	ctx := context.Background()
	var err error
	endpoint := "unix://" + cfg.CRI.Address
	if h.rs, err = remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(10 * time.Second).Build(ctx); err != nil {
		t.Fatal(err)
	}
	if h.is, err = remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(10 * time.Second).Build(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := len(h.pods) - 1; i >= 0; i-- {
			var err error
			for range 50 { // the pause's exit may not be final yet
				if err = h.rs.StopPodSandbox(ctx, h.pods[i]); status.Code(err) != codes.FailedPrecondition {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("StopPodSandbox: %v", err)
			}
			if err := h.rs.RemovePodSandbox(ctx, h.pods[i]); err != nil {
				t.Errorf("RemovePodSandbox: %v", err)
			}
		}
		h.pods = nil
	})
}

// restart stops the daemon and starts it again on the same directories.
func (h *harness) restart(t *testing.T) {
	t.Helper()
	if err := h.d.Stop(); err != nil {
		t.Fatal(err)
	}
	h.start(t, h.d.Config)
}

// pushImages starts a registry for t and pushes the images: pause (sleep
// inf) and busybox (with nc, httpd and stty).
func pushImages(t *testing.T) string {
	host := imagetest.StartRegistry(t)
	bb := imagetest.BusyboxLayer(t, image.CompressionGzip)
	extra := imagetest.NewLayer(t, image.CompressionGzip,
		imagetest.Symlink("bin/nc", "busybox"), imagetest.Symlink("bin/httpd", "busybox"), imagetest.Symlink("bin/stty", "busybox"))
	path := []string{"PATH=/bin"}
	pause := imagetest.Image{Layers: []imagetest.Layer{bb}, Config: ocispec.ImageConfig{Env: path, Entrypoint: []string{"/bin/sleep", "inf"}}}
	box := imagetest.Image{Layers: []imagetest.Layer{bb, extra}, Config: ocispec.ImageConfig{Env: path, Cmd: []string{"sh"}}}
	imagetest.Push(t, host, "pause", "test", pause.Build(t))
	imagetest.Push(t, host, "busybox", "test", box.Build(t))
	return host
}

// pod runs a pod sandbox.
func (h *harness) pod(t *testing.T, name string, hostNetwork bool) (string, *criapi.PodSandboxConfig) {
	t.Helper()
	cfg := &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: name, Namespace: "stream", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: t.TempDir(),
		Linux:        &criapi.LinuxPodSandboxConfig{},
	}
	if hostNetwork {
		cfg.Linux.SecurityContext = &criapi.LinuxSandboxSecurityContext{NamespaceOptions: &criapi.NamespaceOption{Network: criapi.NamespaceMode_NODE}}
	}
	ctx := context.Background()
	id, err := h.rs.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	h.pods = append(h.pods, id)
	eventually(t, 10*time.Second, func() string {
		st, err := h.rs.PodSandboxStatus(ctx, id, false)
		if err != nil {
			return err.Error()
		}
		if s := st.GetStatus().GetState(); s != criapi.PodSandboxState_SANDBOX_READY {
			return fmt.Sprintf("pod %s is %s", name, s)
		}
		return ""
	})
	return id, cfg
}

// container creates and starts a busybox container in the pod.
func (h *harness) container(t *testing.T, pod string, podCfg *criapi.PodSandboxConfig, cfg *criapi.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	if cfg.Metadata == nil {
		cfg.Metadata = &criapi.ContainerMetadata{Name: "c"}
	}
	cfg.Image = &criapi.ImageSpec{Image: h.busybox}
	cfg.LogPath = cfg.Metadata.Name + ".log"
	id, err := h.rs.CreateContainer(ctx, pod, cfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	eventually(t, 10*time.Second, func() string { // the create event may come later
		st, err := h.rs.ContainerStatus(ctx, id, false)
		if err != nil {
			return err.Error()
		}
		if s := st.GetStatus().GetState(); s != criapi.ContainerState_CONTAINER_CREATED {
			return fmt.Sprintf("container %s is %s", cfg.Metadata.Name, s)
		}
		return ""
	})
	if err := h.rs.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	eventually(t, 10*time.Second, func() string {
		st, err := h.rs.ContainerStatus(ctx, id, false)
		if err != nil {
			return err.Error()
		}
		if s := st.GetStatus().GetState(); s != criapi.ContainerState_CONTAINER_RUNNING {
			return fmt.Sprintf("container %s is %s", cfg.Metadata.Name, s)
		}
		return ""
	})
	return id
}

// execPids returns the processes of container id other than its init.
func (h *harness) execPids(t *testing.T, id string) []uint32 {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), namespaces.K8s)
	tk, err := h.d.Server.Tasks().Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := tk.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := tk.Pids(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, p := range ps {
		if p.Pid != st.Pid {
			out = append(out, p.Pid)
		}
	}
	return out
}

// execFIFOs returns the FIFO directories of exec processes the daemon
// holds.
func (h *harness) execFIFOs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(h.d.Config.State, "tasks", "fifo"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), "-exec-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// streamGoroutines returns the stacks of the goroutines serving streams
// in this (the daemon's) process.
func streamGoroutines() []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range []string{"cri.(*Service).streamExec", "cri.(*Service).attach", "cri.forward", "cri.(*stdinMux).copyFrom",
			"cri.(*subscriber).run", "cri.(*containerIO).session", "cri.forwardResize"} {
			if strings.Contains(g, "/pkg/"+fn+"(") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// eventually polls cond until it returns "" or the timeout, and fails t
// with its last answer.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The client process: the test binary run again with clientEnv set, as
// kubectl would be, from outside the daemon's process.

const clientEnv = "CRI_RUNTIME_STREAM_CLIENT"

// clientSpec says what the client process does.
type clientSpec struct {
	Op        string   `json:"op"` // exec (also attach) or portforward
	URL       string   `json:"url"`
	WebSocket bool     `json:"ws,omitempty"`
	Stdin     bool     `json:"stdin,omitempty"`
	Stdout    bool     `json:"stdout,omitempty"`
	Stderr    bool     `json:"stderr,omitempty"`
	TTY       bool     `json:"tty,omitempty"`
	Size      []uint16 `json:"size,omitempty"`  // width, height
	Ports     []string `json:"ports,omitempty"` // local:remote
	// CancelAfter cancels the stream's context after that long.
	CancelAfter time.Duration `json:"cancelAfter,omitempty"`
}

// client starts the client process of spec; its stdin, stdout and stderr
// are the stream's.
func client(t *testing.T, spec clientSpec) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStreamClientProcess$")
	cmd.Env = append(os.Environ(), clientEnv+"="+string(b))
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// TestStreamClientProcess is the client process of the streaming tests,
// not a test.
func TestStreamClientProcess(t *testing.T) {
	spec := os.Getenv(clientEnv)
	if spec == "" {
		t.Skip("the client process of the streaming tests")
	}
	var s clientSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(125)
	}
	ctx := context.Background()
	if s.CancelAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.CancelAfter)
		defer cancel()
	}
	err := s.run(ctx)
	var exitErr utilexec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &exitErr):
		os.Exit(exitErr.ExitStatus())
	default:
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(125)
	}
}

func (s clientSpec) run(ctx context.Context) error {
	u, err := url.Parse(s.URL)
	if err != nil {
		return err
	}
	cfg := &restclient.Config{}
	if s.Op == "portforward" {
		return s.portForward(ctx, u, cfg)
	}
	var e remotecommand.Executor
	if s.WebSocket {
		e, err = remotecommand.NewWebSocketExecutorForProtocols(cfg, "GET", s.URL, "v4.channel.k8s.io")
	} else {
		e, err = remotecommand.NewSPDYExecutor(cfg, "POST", u)
	}
	if err != nil {
		return err
	}
	opts := remotecommand.StreamOptions{Tty: s.TTY}
	if s.Stdin {
		opts.Stdin = os.Stdin
	}
	if s.Stdout {
		opts.Stdout = os.Stdout
	}
	if s.Stderr {
		opts.Stderr = os.Stderr
	}
	if len(s.Size) == 2 {
		opts.TerminalSizeQueue = &oneSize{size: &remotecommand.TerminalSize{Width: s.Size[0], Height: s.Size[1]}}
	}
	return e.StreamWithContext(ctx, opts)
}

// portForward forwards s.Ports, prints "ready LOCAL..." and runs until
// its stdin ends.
func (s clientSpec) portForward(ctx context.Context, u *url.URL, cfg *restclient.Config) error {
	tr, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return err
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.New(dialer, s.Ports, stop, ready, io.Discard, os.Stderr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		return err
	}
	ports, err := pf.GetPorts()
	if err != nil {
		return err
	}
	fmt.Print("ready")
	for _, p := range ports {
		fmt.Printf(" %d", p.Local)
	}
	fmt.Println()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// oneSize is a terminal size queue that gives one size, then none.
type oneSize struct {
	mu   sync.Mutex
	size *remotecommand.TerminalSize
}

func (q *oneSize) Next() *remotecommand.TerminalSize {
	q.mu.Lock()
	s := q.size
	q.size = nil
	q.mu.Unlock()
	if s == nil {
		select {} // no more sizes: the queue ends with the process
	}
	return s
}

// readLine reads one line of r with a timeout.
func readLine(t *testing.T, r *bufio.Reader, timeout time.Duration) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	c := make(chan res, 1)
	go func() {
		s, err := r.ReadString('\n')
		c <- res{s, err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("read line: %q, %v", r.s, r.err)
		}
		return strings.TrimRight(r.s, "\r\n")
	case <-time.After(timeout):
		t.Fatalf("no line after %s", timeout)
	}
	return ""
}
