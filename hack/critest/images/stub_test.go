package images

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stubAs links the stub under name in a fresh directory and returns the
// command running it with args, with that directory as PATH.
func stubAs(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	buildStub(t)
	dir := t.TempDir()
	if err := os.Symlink(stubPath, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, name), args...)
	cmd.Args[0] = name // as a runtime runs an image's command
	cmd.Env = []string{"PATH=" + dir}
	return cmd
}

// freePort is a loopback address with a port free right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs cmd and waits until addr answers GET / with 200.
func startServer(t *testing.T, cmd *exec.Cmd, addr string) string {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET / = %s", resp.Status)
			}
			return string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer on %s: %v", cmd.Args[0], addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopWithSignal sends sig to cmd and checks that it exits 0 in time.
func stopWithSignal(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s after %v: %v, want exit 0", cmd.Args[0], sig, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s still runs 10s after %v", cmd.Args[0], sig)
	}
}

// TestStubNginx: what critest checks of nginx: the page, the pid file, the
// master process title in the cmdline and the process name.
func TestStubNginx(t *testing.T) {
	addr := freePort(t)
	pidFile := filepath.Join(t.TempDir(), "nginx.pid")
	cmd := stubAs(t, "nginx", "-listen", addr, "-pid", pidFile, "-g", "daemon off;")
	var out bytes.Buffer
	cmd.Stdout = &out
	if body := startServer(t, cmd, addr); !strings.Contains(body, "Welcome to nginx!") {
		t.Errorf("page %q", body)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if b, err := os.ReadFile(pidFile); err != nil || string(b) != pid+"\n" {
		t.Errorf("pid file %q, %v; want %s", b, err, pid)
	}
	cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), "master process") {
		t.Errorf("cmdline %q, %v; want master process", cmdline, err)
	}
	if comm, err := os.ReadFile("/proc/" + pid + "/comm"); err != nil || string(comm) != "nginx\n" {
		t.Errorf("process name %q, %v; want nginx (pidof nginx)", comm, err)
	}
	stopWithSignal(t, cmd, syscall.SIGTERM)
}

// TestStubHTTPD: the page, and "httpd" in its log.
func TestStubHTTPD(t *testing.T) {
	addr := freePort(t)
	cmd := stubAs(t, "httpd", "-listen", addr, "-DFOREGROUND")
	var log bytes.Buffer
	cmd.Stderr = &log
	if body := startServer(t, cmd, addr); !strings.Contains(body, "It works!") {
		t.Errorf("page %q", body)
	}
	stopWithSignal(t, cmd, syscall.SIGTERM)
	if !strings.Contains(log.String(), "httpd") {
		t.Errorf("log %q has no httpd", log.String())
	}
}

// TestStubPause: pause waits, and exits 0 on SIGTERM.
func TestStubPause(t *testing.T) {
	cmd := stubAs(t, "pause")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("pause exited early: %v", err)
	}
	stopWithSignal(t, cmd, syscall.SIGTERM)
}

func TestStubNNP(t *testing.T) {
	out, err := stubAs(t, "nnp").Output()
	if want := fmt.Sprintf("Effective uid: %d\n", os.Geteuid()); err != nil || string(out) != want {
		t.Errorf("nnp: %q, %v; want %q", out, err, want)
	}
}

func TestStubPgrep(t *testing.T) {
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	out, err := stubAs(t, "pgrep", "^sleep$").Output()
	if err != nil || !strings.Contains("\n"+string(out), "\n"+strconv.Itoa(sleep.Process.Pid)+"\n") {
		t.Errorf("pgrep sleep: %q, %v; want pid %d", out, err, sleep.Process.Pid)
	}
	out, err = stubAs(t, "pgrep", "^no-such-process-name$").Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || len(out) != 0 {
		t.Errorf("pgrep of nothing: %q, %v; want no output, exit 1", out, err)
	}
}

func TestStubIpcs(t *testing.T) {
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatalf("shmget: %v", err)
	}
	defer func() { _, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil) }()
	out, err := stubAs(t, "ipcs", "-m").Output()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == strconv.Itoa(id) {
			found = f[4] == "4096"
		}
	}
	if !found {
		t.Errorf("ipcs -m has no segment %d of 4096 bytes:\n%s", id, out)
	}
}
