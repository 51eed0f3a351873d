// Package integration runs the built cri-runtime criRuntime: the daemon as a
// child process in temporary directories, and the CLI against it. It
// tests what only a real process shows: signals, kill -9 in the middle of
// a write, restart, exit codes and messages.
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/client"
)

// criRuntime is the path of the cri-runtime binary built for this run.
var criRuntime string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cri-runtime-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	criRuntime = filepath.Join(dir, "cri-runtime")
	// The daemon starts the shim it finds next to its executable.
	build := exec.Command("go", "build", "-o", dir, "github.com/cri-runtime/cri-runtime/cmd/cri-runtime", "github.com/cri-runtime/cri-runtime/cmd/cri-runtime-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as the README builds them
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		return 1
	}
	return m.Run()
}

// syncBuffer is a bytes.Buffer safe for a writing child and a reading test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// daemon is a cri-runtime serve child process and its directories, which
// outlive the process so that it can be restarted on them.
type daemon struct {
	t                    *testing.T
	root, state, address string

	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's result, once exited is closed
}

func newDaemon(t *testing.T) *daemon {
	t.Helper()
	dir := t.TempDir()
	// Socket paths are limited to ~108 bytes: a short directory of its own.
	sockDir, err := os.MkdirTemp("", "crt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	d := &daemon{t: t, root: filepath.Join(dir, "root"), state: filepath.Join(sockDir, "state"), address: filepath.Join(sockDir, "mgmt.sock")}
	t.Cleanup(func() {
		if d.cmd != nil && !d.hasExited() {
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() && d.stderr != nil {
			t.Logf("daemon stderr:\n%s", d.stderr)
		}
	})
	return d
}

func (d *daemon) hasExited() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// start runs `cri-runtime serve` with extra args and waits until its
// socket answers.
func (d *daemon) start(extra ...string) {
	d.t.Helper()
	args := append([]string{"serve", "--root", d.root, "--state", d.state, "--address", d.address, "--metrics-address", "",
		"--cri-address", filepath.Join(filepath.Dir(d.address), "cri.sock")}, extra...)
	d.cmd = exec.Command(criRuntime, args...)
	d.stderr = &syncBuffer{}
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := client.New(context.Background(), d.address)
		if err == nil {
			_, err = c.Namespaces().List(context.Background())
			c.Close()
			if err == nil {
				return
			}
		}
		if d.hasExited() {
			d.t.Fatalf("daemon exited at start: %v\n%s", d.err, d.stderr)
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon not answering on %s: %v\n%s", d.address, err, d.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig and waits for the daemon to exit, returning its exit
// code.
func (d *daemon) signal(sig syscall.Signal) int {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.t.Fatalf("daemon still running 30s after %v", sig)
	}
	var exitErr *exec.ExitError
	if errors.As(d.err, &exitErr) {
		return exitErr.ExitCode()
	}
	if d.err != nil {
		d.t.Fatal(d.err)
	}
	return 0
}

// stop stops the daemon with SIGTERM and requires a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	if code := d.signal(syscall.SIGTERM); code != 0 {
		d.t.Fatalf("daemon exit code %d after SIGTERM\n%s", code, d.stderr)
	}
}

// result is what one CLI run gave.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the CLI against the daemon in namespace ns, with stdin.
func (d *daemon) cli(stdin io.Reader, ns string, args ...string) result {
	d.t.Helper()
	cmd := exec.Command(criRuntime, append([]string{"--address", d.address, "-n", ns}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	switch {
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		d.t.Fatalf("cri-runtime %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs the CLI and requires success.
func (d *daemon) ok(stdin io.Reader, ns string, args ...string) string {
	d.t.Helper()
	r := d.cli(stdin, ns, args...)
	if r.code != 0 {
		d.t.Fatalf("cri-runtime %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs the CLI and requires a failure whose message on stderr has
// every one of want.
func (d *daemon) fails(stdin io.Reader, ns string, args []string, want ...string) result {
	d.t.Helper()
	r := d.cli(stdin, ns, args...)
	if r.code == 0 {
		d.t.Fatalf("cri-runtime %s succeeded, want a failure with %q\n%s", strings.Join(args, " "), want, r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "cri-runtime: ") || strings.Count(r.stderr, "\n") != 1 {
		d.t.Errorf("cri-runtime %s: stderr %q: want one line starting with \"cri-runtime: \"", strings.Join(args, " "), r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			d.t.Errorf("cri-runtime %s: stderr %q lacks %q", strings.Join(args, " "), r.stderr, w)
		}
	}
	return r
}
