package cri_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/server"
)

func sleeper(name string) *criapi.ContainerConfig {
	return &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: name}, Command: []string{"sleep", "inf"}}
}

// run runs the client of spec with stdin and returns its stdout, stderr
// and exit code.
func run(t *testing.T, spec clientSpec, stdin string) (string, string, int) {
	t.Helper()
	cmd := client(t, spec)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func (h *harness) execURL(t *testing.T, req *criapi.ExecRequest) string {
	t.Helper()
	resp, err := h.rs.Exec(context.Background(), req)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	return resp.GetUrl()
}

func (h *harness) attachURL(t *testing.T, req *criapi.AttachRequest) string {
	t.Helper()
	resp, err := h.rs.Attach(context.Background(), req)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return resp.GetUrl()
}

// Exec through the streaming server, over SPDY and WebSocket: stdin,
// separate stdout and stderr, exit codes, a terminal and its size.
func TestStreamingExec(t *testing.T) {
	h := newHarness(t)
	pod, podCfg := h.pod(t, "exec", false)
	id := h.container(t, pod, podCfg, sleeper("sleeper"))

	for _, ws := range []bool{false, true} {
		name := map[bool]string{false: "spdy", true: "websocket"}[ws]
		t.Run(name, func(t *testing.T) {
			u := h.execURL(t, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"head", "-n", "1"}, Stdin: true, Stdout: true})
			out, errs, code := run(t, clientSpec{URL: u, WebSocket: ws, Stdin: true, Stdout: true}, "hello\nnot read\n")
			if out != "hello\n" || code != 0 {
				t.Errorf("stdin to head: stdout %q, exit %d, stderr %q; want hello, 0", out, code, errs)
			}

			u = h.execURL(t, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Stdout: true, Stderr: true})
			out, errs, code = run(t, clientSpec{URL: u, WebSocket: ws, Stdout: true, Stderr: true}, "")
			if out != "out\n" || errs != "err\n" || code != 3 {
				t.Errorf("stdout %q, stderr %q, exit %d; want out, err, 3", out, errs, code)
			}

			// Over SPDY the terminal has the client's size from the
			// start: the process reads it before any resize could follow.
			// Over WebSocket the stdin sent first holds the size back
			// (one connection, in order) until the process runs.
			script := `n=0; until s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "${s%% *}" != 0 ]; do n=$((n+1)); sleep 0.1; done; ` +
				`echo "size:$s waited:$n"; read x; echo "got:$x"; exit 5`
			u = h.execURL(t, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", script}, Stdin: true, Stdout: true, Tty: true})
			out, errs, code = run(t, clientSpec{URL: u, WebSocket: ws, Stdin: true, Stdout: true, TTY: true, Size: []uint16{100, 40}}, "abc\n")
			want := "size:40 100 waited:0\r\n"
			if ws {
				want = "size:40 100 waited:"
			}
			if !strings.Contains(out, want) || !strings.Contains(out, "got:abc\r\n") || code != 5 {
				t.Errorf("terminal: stdout %q, exit %d, stderr %q; want %q, got:abc and 5", out, code, errs, want)
			}
		})
	}

	for _, bad := range []*criapi.ExecRequest{
		{ContainerId: id, Cmd: []string{"true"}},                                        // no stream
		{ContainerId: id, Cmd: []string{"true"}, Tty: true, Stdout: true, Stderr: true}, // a terminal has no stderr
		{ContainerId: id, Stdout: true},                                                 // no command
	} {
		if _, err := h.rs.Exec(context.Background(), bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Exec %v: %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := h.rs.Exec(context.Background(), &criapi.ExecRequest{ContainerId: "nosuch", Cmd: []string{"true"}, Stdout: true}); status.Code(err) != codes.NotFound {
		t.Errorf("Exec in a missing container: %v, want NotFound", err)
	}
	if len(h.execFIFOs(t)) != 0 {
		t.Errorf("exec FIFOs left: %v", h.execFIFOs(t))
	}
}

// lines collects the lines a client writes, for waiting on one.
type lines struct {
	mu  sync.Mutex
	all []string
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, strings.TrimRight(string(l.buf.Next(i+1)), "\r\n"))
	}
	return len(p), nil
}

func (l *lines) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.all {
		if x == s {
			return true
		}
	}
	return false
}

func (l *lines) wait(t *testing.T, s string) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		if l.has(s) {
			return ""
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		return fmt.Sprintf("no line %q in %q", s, l.all)
	})
}

// attacher is a running attach client.
type attacher struct {
	cmd      *exec.Cmd
	in       io.WriteCloser
	out, err *lines
}

func (h *harness) attach(t *testing.T, spec clientSpec) *attacher {
	t.Helper()
	a := &attacher{cmd: client(t, spec), out: &lines{}, err: &lines{}}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.err
	if spec.Stdin {
		var err error
		if a.in, err = a.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *attacher) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(a.in, s); err != nil {
		t.Fatal(err)
	}
}

// exit waits for the client and returns its exit code.
func (a *attacher) exit(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return a.cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		t.Fatalf("the attach client did not end; stdout %q", a.out.all)
	}
	return -1
}

// Attach: several attachers at once see the output and share the
// stdin; a detach leaves the container running; stdin_once closes the
// container's stdin with the first attach; a terminal is resized; an
// exited container refuses attach.
func TestStreamingAttach(t *testing.T) {
	h := newHarness(t)
	pod, podCfg := h.pod(t, "attach", false)
	ctx := context.Background()

	t.Run("several attachers", func(t *testing.T) {
		echo := &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "echo"}, Stdin: true,
			Command: []string{"sh", "-c", `while read l; do echo "out:$l"; echo "err:$l" >&2; done`}}
		id := h.container(t, pod, podCfg, echo)
		both := &criapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true}
		a1 := h.attach(t, clientSpec{URL: h.attachURL(t, both), Stdin: true, Stdout: true, Stderr: true})
		watch := &criapi.AttachRequest{ContainerId: id, Stdout: true, Stderr: true}
		a2 := h.attach(t, clientSpec{URL: h.attachURL(t, watch), WebSocket: true, Stdout: true, Stderr: true})
		// Until the second attacher is in, its output may start anywhere.
		for i := 0; ; i++ {
			a1.send(t, fmt.Sprintf("%d\n", i))
			a1.out.wait(t, fmt.Sprintf("out:%d", i))
			if a2.out.has(fmt.Sprintf("out:%d", i)) {
				break
			}
			if i == 100 {
				t.Fatalf("the second attacher saw nothing: %q, stderr %q", a2.out.all, a2.err.all)
			}
			time.Sleep(100 * time.Millisecond)
		}
		a1.send(t, "both\n")
		for _, l := range []*lines{a1.out, a2.out} {
			l.wait(t, "out:both")
		}
		for _, l := range []*lines{a1.err, a2.err} {
			l.wait(t, "err:both")
		}
		// Without stdin_once, the end of an attacher's stdin is a detach.
		a1.in.Close()
		if code := a1.exit(t); code != 0 {
			t.Errorf("detach: exit %d, want 0", code)
		}
		a3 := h.attach(t, clientSpec{URL: h.attachURL(t, both), Stdin: true, Stdout: true, Stderr: true})
		a3.send(t, "after\n")
		a3.out.wait(t, "out:after")
		a2.out.wait(t, "out:after")
		if err := h.rs.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		for _, a := range []*attacher{a2, a3} {
			if code := a.exit(t); code != 0 {
				t.Errorf("attach at the container's exit: %d, want 0", code)
			}
		}
		if _, err := h.rs.Attach(ctx, watch); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("Attach to an exited container: %v, want FailedPrecondition", err)
		}
	})

	t.Run("stdin once", func(t *testing.T) {
		shell := &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "shell"}, Stdin: true, StdinOnce: true, Command: []string{"sh"}}
		id := h.container(t, pod, podCfg, shell)
		u := h.attachURL(t, &criapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
		out, errs, code := run(t, clientSpec{URL: u, Stdin: true, Stdout: true, Stderr: true}, "echo -n hello\n")
		if out != "hello" || errs != "" || code != 0 {
			t.Errorf("stdout %q, stderr %q, exit %d; want hello, nothing, 0", out, errs, code)
		}
		eventually(t, 10*time.Second, func() string {
			st, err := h.rs.ContainerStatus(ctx, id, false)
			if err != nil {
				return err.Error()
			}
			if s := st.GetStatus().GetState(); s != criapi.ContainerState_CONTAINER_EXITED {
				return fmt.Sprintf("the shell is %s after its stdin closed", s)
			}
			return ""
		})
	})

	t.Run("terminal", func(t *testing.T) {
		term := &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "term"}, Stdin: true, Tty: true,
			Command: []string{"sh", "-c", `while :; do stty size 2>/dev/null; sleep 0.2; done`}}
		id := h.container(t, pod, podCfg, term)
		u := h.attachURL(t, &criapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true})
		a := h.attach(t, clientSpec{URL: u, Stdin: true, Stdout: true, TTY: true, Size: []uint16{90, 30}})
		a.out.wait(t, "30 90")
	})
}

// After a restart the daemon no longer holds the stdio of the containers
// made before: attach is refused with a clear error, exec still works.
func TestStreamingAttachAfterRestart(t *testing.T) {
	h := newHarness(t)
	pod, podCfg := h.pod(t, "restart", false)
	// Not a reader of its stdin: the shim's stdin FIFO sees EOF when the
	// daemon exits.
	id := h.container(t, pod, podCfg, &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "c"}, Stdin: true, Command: []string{"sleep", "inf"}})
	h.restart(t)
	_, err := h.rs.Attach(context.Background(), &criapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "restarted") {
		t.Errorf("Attach after a restart: %v, want FailedPrecondition saying why", err)
	}
	u := h.execURL(t, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"echo", "still"}, Stdout: true})
	if out, _, code := run(t, clientSpec{URL: u, Stdout: true}, ""); out != "still\n" || code != 0 {
		t.Errorf("exec after a restart: %q, %d", out, code)
	}
}

// A client that goes mid-exec, by dying, cancelling or through the idle
// timeout, leaves no exec process, FIFO or goroutine behind.
func TestStreamingClientGone(t *testing.T) {
	h := newHarness(t, func(c *server.Config) { c.CRI.StreamIdleTimeout = gc.Duration(3 * time.Second) })
	pod, podCfg := h.pod(t, "gone", false)
	id := h.container(t, pod, podCfg, sleeper("sleeper"))
	for _, tc := range []struct {
		name  string
		spec  clientSpec
		kill  bool
		quiet bool // no traffic: the idle timeout ends it
	}{
		{name: "killed spdy", spec: clientSpec{Stdin: true, Stdout: true}, kill: true},
		{name: "killed websocket tty", spec: clientSpec{WebSocket: true, Stdin: true, Stdout: true, TTY: true}, kill: true},
		{name: "cancelled", spec: clientSpec{Stdin: true, Stdout: true, TTY: true, CancelAfter: 2 * time.Second}},
		{name: "idle", spec: clientSpec{Stdout: true}, quiet: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := []string{"sh", "-c", "while :; do echo tick; sleep 1; done"}
			if tc.quiet {
				cmd = []string{"sleep", "1000"}
			}
			u := h.execURL(t, &criapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdin: tc.spec.Stdin, Stdout: true, Tty: tc.spec.TTY})
			tc.spec.URL = u
			c := client(t, tc.spec)
			out, err := c.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if tc.spec.Stdin {
				if _, err := c.StdinPipe(); err != nil { // kept open
					t.Fatal(err)
				}
			}
			start := time.Now()
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			if !tc.quiet {
				if l := readLine(t, bufio.NewReader(out), 10*time.Second); l != "tick" {
					t.Fatalf("first line %q", l)
				}
			}
			eventually(t, 10*time.Second, func() string {
				if len(h.execPids(t, id)) == 0 {
					return "the exec process did not start"
				}
				return ""
			})
			if tc.kill {
				c.Process.Signal(syscall.SIGKILL)
			}
			go io.Copy(io.Discard, out)
			c.Wait()
			if tc.quiet && time.Since(start) < 3*time.Second {
				t.Errorf("the idle stream ended after %s, before the 3s idle timeout", time.Since(start))
			}
			eventually(t, 15*time.Second, func() string {
				if p := h.execPids(t, id); len(p) != 0 {
					return fmt.Sprintf("exec processes left: %v", p)
				}
				if f := h.execFIFOs(t); len(f) != 0 {
					return fmt.Sprintf("exec FIFOs left: %v", f)
				}
				if g := streamGoroutines(); len(g) != 0 {
					return fmt.Sprintf("stream goroutines left:\n%s", strings.Join(g, "\n\n"))
				}
				return ""
			})
		})
	}
}

// Port-forward into the pod's network namespace, and the host's for a
// host-network pod: HTTP to busybox httpd, a half-closed echo through
// nc, a port nobody listens on; the forward ends with its client.
func TestStreamingPortForward(t *testing.T) {
	h := newHarness(t)
	pod, podCfg := h.pod(t, "pf", false)
	web := `mkdir -p /tmp/www && echo hello-pf > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`
	h.container(t, pod, podCfg, &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "web"}, Command: []string{"sh", "-c", web}})
	h.container(t, pod, podCfg, &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "echo"}, Command: []string{"nc", "-l", "-p", "9000", "-e", "cat"}})
	// Holds its connection open whatever the client does.
	h.container(t, pod, podCfg, &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "hold"}, Command: []string{"nc", "-l", "-p", "9001", "-e", "sleep", "1000"}})

	resp, err := h.rs.PortForward(context.Background(), &criapi.PortForwardRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatal(err)
	}
	pf := h.portForward(t, resp.GetUrl(), "0:8080", "0:9000", "0:9001")
	get(t, pf.ports[0], "hello-pf\n")

	// The client's half-close reaches cat, whose exit ends the copy.
	eventually(t, 20*time.Second, func() string {
		conn, err := net.Dial("tcp", pf.ports[1])
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		io.WriteString(conn, "ping\n")
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(conn)
		if string(b) != "ping\n" {
			return fmt.Sprintf("echo through nc: %q, %v", b, err)
		}
		return ""
	})

	// A forwarded connection that the pod holds open ends when the
	// client dies.
	hold, err := net.Dial("tcp", pf.ports[2])
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	eventually(t, 20*time.Second, func() string {
		if g := streamGoroutines(); !strings.Contains(strings.Join(g, ""), "cri.forward(") {
			return "no forward running for the open connection"
		}
		return ""
	})
	pf.cmd.Process.Signal(syscall.SIGKILL)
	pf.cmd.Wait()
	noStreams(t)

	// Nobody listens: the connection ends, and the client too (kubectl
	// ends a port-forward at the first error).
	resp, err = h.rs.PortForward(context.Background(), &criapi.PortForwardRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatal(err)
	}
	pf = h.portForward(t, resp.GetUrl(), "0:9999")
	conn, err := net.Dial("tcp", pf.ports[0])
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(conn); len(b) != 0 || err != nil {
		t.Errorf("a port nobody listens on: %q, %v; want an empty read", b, err)
	}
	conn.Close()
	pf.cmd.Wait()
	noStreams(t)

	t.Run("host network", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		hpod, hcfg := h.pod(t, "pf-host", true)
		web := fmt.Sprintf(`mkdir -p /tmp/www && echo hello-host > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:%d -h /tmp/www`, port)
		h.container(t, hpod, hcfg, &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "web"}, Command: []string{"sh", "-c", web}})
		resp, err := h.rs.PortForward(context.Background(), &criapi.PortForwardRequest{PodSandboxId: hpod})
		if err != nil {
			t.Fatal(err)
		}
		pf := h.portForward(t, resp.GetUrl(), fmt.Sprintf("0:%d", port))
		get(t, pf.ports[0], "hello-host\n")
	})

	if _, err := h.rs.PortForward(context.Background(), &criapi.PortForwardRequest{PodSandboxId: pod, Port: []int32{70000}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("PortForward to port 70000: %v, want InvalidArgument", err)
	}
}

// noStreams waits until no goroutine serves a stream.
func noStreams(t *testing.T) {
	t.Helper()
	eventually(t, 10*time.Second, func() string {
		if g := streamGoroutines(); len(g) != 0 {
			return fmt.Sprintf("stream goroutines left:\n%s", strings.Join(g, "\n\n"))
		}
		return ""
	})
}

// forwarder is a running port-forward client.
type forwarder struct {
	cmd   *exec.Cmd
	ports []string // local host:port, in the order asked
}

func (h *harness) portForward(t *testing.T, url string, ports ...string) *forwarder {
	t.Helper()
	f := &forwarder{cmd: client(t, clientSpec{Op: "portforward", URL: url, Ports: ports})}
	if _, err := f.cmd.StdinPipe(); err != nil { // its end stops the client
		t.Fatal(err)
	}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	f.cmd.Stderr = &errb
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := readLine(t, bufio.NewReader(out), 10*time.Second)
	fields := strings.Fields(line)
	if len(fields) != len(ports)+1 || fields[0] != "ready" {
		t.Fatalf("port-forward client: %q, stderr %q", line, errb.String())
	}
	for _, p := range fields[1:] {
		f.ports = append(f.ports, net.JoinHostPort("127.0.0.1", p))
	}
	return f
}

// get waits until GET http://addr/index.html answers body.
func get(t *testing.T, addr, body string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	eventually(t, 20*time.Second, func() string {
		resp, err := c.Get("http://" + addr + "/index.html")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != body || err != nil {
			return fmt.Sprintf("GET %s: %s %q %v", addr, resp.Status, b, err)
		}
		return ""
	})
}
