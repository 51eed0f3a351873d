package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/image"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// runEnv is a daemon, a loopback registry with a busybox image, and the
// namespace of the test's containers.
type runEnv struct {
	*daemon
	t   *testing.T
	ns  string
	ref string
}

// newRunEnv starts a daemon and pushes the busybox image (with stty and
// tty, for the terminal tests) to a registry on loopback; the image is
// pulled by the first run.
func newRunEnv(t *testing.T, ns string) *runEnv {
	t.Helper()
	tasktest.NeedRoot(t)
	host := imagetest.StartRegistry(t)
	built := imagetest.Image{
		Platform: image.DefaultPlatform(),
		Layers: []imagetest.Layer{
			imagetest.BusyboxLayer(t, image.CompressionGzip),
			imagetest.NewLayer(t, image.CompressionGzip, imagetest.Symlink("bin/stty", "busybox"), imagetest.Symlink("bin/tty", "busybox")),
		},
		Config: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "FROM_IMAGE=yes"}},
	}.Build(t)
	imagetest.Push(t, host, "test/busybox", "v1", built)
	e := &runEnv{daemon: newDaemon(t), t: t, ns: ns, ref: host + "/test/busybox:v1"}
	e.start()
	t.Cleanup(e.removeAll) // registered last: runs before the daemon is killed
	return e
}

// removeAll removes what a failed test left: the shims outlive the daemon.
func (e *runEnv) removeAll() {
	if e.hasExited() {
		return
	}
	for _, id := range strings.Fields(e.cli(nil, e.ns, "containers", "ls", "-q").stdout) {
		e.cli(nil, e.ns, "containers", "rm", "--force", id)
	}
	// The daemon stops an emptied shim once its events are delivered:
	// before it is killed, or the shim would outlive the test.
	for deadline := time.Now().Add(10 * time.Second); len(shimPids(e.ns)) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs the CLI in the test's namespace.
func (e *runEnv) run(args ...string) result { e.t.Helper(); return e.cli(nil, e.ns, args...) }

// command is the CLI in the test's namespace, to start.
func (e *runEnv) command(args ...string) *exec.Cmd {
	return exec.Command(criRuntime, append([]string{"--address", e.address, "-n", e.ns}, args...)...)
}

// mustRun runs the CLI and requires success.
func (e *runEnv) mustRun(args ...string) string { e.t.Helper(); return e.ok(nil, e.ns, args...) }

// containerInfo is what `containers info` says of a container.
type containerInfo struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels"`
	Status struct {
		State    string `json:"state"`
		Pid      uint32 `json:"pid"`
		ExitCode int32  `json:"exitCode"`
		Reason   string `json:"reason"`
	} `json:"status"`
}

func (e *runEnv) info(id string) containerInfo {
	e.t.Helper()
	var ci containerInfo
	if err := json.Unmarshal([]byte(e.mustRun("containers", "info", id)), &ci); err != nil {
		e.t.Fatal(err)
	}
	return ci
}

// taskInfo is one task as `tasks ls -o json` lists it.
type taskInfo struct {
	ContainerID string `json:"containerID"`
	Group       string `json:"group"`
	Pid         uint32 `json:"pid"`
	Status      string `json:"status"`
	Exit        *struct {
		Status uint32 `json:"status"`
		Reason string `json:"reason"`
	} `json:"exit"`
}

func (e *runEnv) tasks() map[string]taskInfo {
	e.t.Helper()
	var list []taskInfo
	if err := json.Unmarshal([]byte(e.mustRun("-o", "json", "tasks", "ls")), &list); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]taskInfo{}
	for _, ti := range list {
		out[ti.ContainerID] = ti
	}
	return out
}

// waitTask waits until the task of id has status.
func (e *runEnv) waitTask(id, status string) taskInfo {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ti, ok := e.tasks()[id]
		if ok && ti.Status == status {
			return ti
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s: %+v (listed: %v), want %s", id, ti, ok, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// snapshotDirs are the overlay snapshots on disk.
func (e *runEnv) snapshotDirs() []string {
	e.t.Helper()
	es, _ := os.ReadDir(filepath.Join(e.root, "snapshots", "overlayfs", "snapshots"))
	var out []string
	for _, x := range es {
		out = append(out, x.Name())
	}
	return out
}

// leftovers lists what containers of the test's namespace left: cgroups,
// shim processes, shim directories, rootfs mounts, containers, tasks.
// A shim left empty stops on its own, just after the call that emptied
// it: what is left is looked at again for a few seconds before it counts.
func (e *runEnv) leftovers(ids ...string) []string {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := e.leftoversNow(ids...)
		if len(out) == 0 || time.Now().After(deadline) {
			return out
		}
	}
}

func (e *runEnv) leftoversNow(ids ...string) []string {
	e.t.Helper()
	var out []string
	for _, id := range ids {
		cg, _ := filepath.Glob("/sys/fs/cgroup/*/cri-runtime/" + e.ns + "@" + id)
		out = append(out, cg...)
	}
	if pids := shimPids(e.ns); len(pids) > 0 {
		out = append(out, fmt.Sprintf("shims %v", pids))
	}
	groups, _ := os.ReadDir(filepath.Join(e.state, "tasks", e.ns))
	for _, g := range groups {
		out = append(out, "shim directory "+g.Name())
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, filepath.Join(e.state, "tasks", e.ns)+"/") {
			out = append(out, "mount "+line)
		}
	}
	if s := e.mustRun("containers", "ls", "-q"); s != "" {
		out = append(out, "containers "+s)
	}
	if s := e.mustRun("tasks", "ls", "-q"); s != "" {
		out = append(out, "tasks "+s)
	}
	return out
}

// shimPids are the live shims of namespace ns (zombies excluded).
func shimPids(ns string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), "cri-runtime-shim\x00") || !strings.Contains(string(b), "\x00-namespace\x00"+ns+"\x00") {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		if !isZombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// isZombie reports whether pid is gone or a zombie (this test VM's init
// does not reap orphans).
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

func TestRunExitCodesAndStreams(t *testing.T) {
	e := newRunEnv(t, "run")
	before := []string{}
	for _, rt := range tasktest.Runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			id := "codes-" + rt
			r := e.cli(strings.NewReader("from stdin\n"), e.ns, "run", "--rm", "--runtime", rt, "--env", "X=1", e.ref, id,
				"sh", "-c", `cat; echo "out $X $FROM_IMAGE $(hostname)"; echo err >&2; exit 3`)
			if r.code != 3 || r.stdout != "from stdin\nout 1 yes "+id+"\n" || !strings.HasSuffix(r.stderr, "err\n") {
				t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			if len(before) == 0 {
				before = e.snapshotDirs() // after the pull: the image's layers
			}
			// --rm freed its snapshot, its cgroup, its shim.
			if got := e.snapshotDirs(); strings.Join(got, " ") != strings.Join(before, " ") {
				t.Errorf("snapshot directories %v, want the image's %v", got, before)
			}
			if left := e.leftovers(id); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestRunKeepsTheContainerWithoutRm(t *testing.T) {
	e := newRunEnv(t, "keep")
	if r := e.run("run", e.ref, "kept", "sh", "-c", "exit 7"); r.code != 7 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	ci := e.info("kept")
	if ci.Status.State != "exited" || ci.Status.ExitCode != 7 || ci.Status.Reason != "Error" {
		t.Fatalf("status %+v", ci.Status)
	}
	logPath := ci.Labels["cri-runtime.io/log-path"]
	if _, err := os.Stat(logPath); err != nil {
		t.Fatalf("log %q: %v", logPath, err)
	}
	if out := e.mustRun("containers", "ls"); !strings.Contains(out, "kept") || !strings.Contains(out, "exited (7)") {
		t.Fatalf("containers ls:\n%s", out)
	}
	e.fails(nil, e.ns, []string{"run", e.ref, "kept", "true"}, `"kept"`, "already exists")
	e.mustRun("containers", "rm", "kept")
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Errorf("log after rm: %v", err)
	}
	if left := e.leftovers("kept"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestRunMountsAndHostNetwork(t *testing.T) {
	e := newRunEnv(t, "mounts")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := "type=bind,src=" + dir + ",dst=/data,options=ro"
	r := e.run("run", "--rm", "--mount", ro, e.ref, "ro", "sh", "-c", "cat /data/f; touch /data/x")
	if r.code == 0 || r.stdout != "host file\n" || !strings.Contains(r.stderr, "Read-only file system") {
		t.Fatalf("read-only mount: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	rw := "type=bind,src=" + dir + ",dst=/data"
	e.mustRun("run", "--rm", "--mount", rw, e.ref, "rw", "touch", "/data/x")
	if _, err := os.Stat(filepath.Join(dir, "x")); err != nil {
		t.Fatalf("read-write mount: %v", err)
	}
	host, _ := os.Hostname()
	if out := e.mustRun("run", "--rm", "--net-host", e.ref, "hostnet", "hostname"); out != host+"\n" {
		t.Errorf("--net-host: hostname %q, want the host's %q", out, host)
	}
	// Its own network namespace: loopback only.
	if out := e.mustRun("run", "--rm", e.ref, "ownnet", "cat", "/proc/net/dev"); strings.Count(out, ":") != 1 || !strings.Contains(out, "lo:") {
		t.Errorf("own network namespace:\n%s", out)
	}
}

// TestRunTerminal: run -t and tasks exec -t give the process a terminal of
// its own, sized as the CLI's from the start, and pass on the exit code.
func TestRunTerminal(t *testing.T) {
	e := newRunEnv(t, "tty")
	for _, rt := range tasktest.Runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			id := "term-" + rt
			out, code := e.inTerminal(t, "run", "--rm", "-t", "--runtime", rt, e.ref, id, "sh", "-c", "tty; stty size; exit 2")
			if code != 2 || !strings.Contains(out, "/dev/pts/0") || !strings.Contains(out, "33 111") {
				t.Fatalf("run -t: exit %d, output %q: want the container's own pty, sized as this one", code, out)
			}
			e.mustRun("run", "-d", "--runtime", rt, e.ref, id, "sleep", "1000")
			// crun's exec does not size the pty before the process runs (runc's
			// does): the shim sizes it as soon as it holds it, a moment later.
			waitSize := `n=0; until s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "${s%% *}" != 0 ]; do ` +
				`n=$((n+1)); [ $n -gt 40 ] && break; sleep 0.05; done; echo "size:$s"`
			out, code = e.inTerminal(t, "tasks", "exec", "-t", "--exec-id", "t1", id, "sh", "-c", "tty; "+waitSize+"; exit 3")
			if code != 3 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "size:33 111") {
				t.Fatalf("tasks exec -t: exit %d, output %q: want a pty sized as this one", code, out)
			}
			e.mustRun("containers", "rm", "--force", id)
		})
	}
}

// inTerminal runs the CLI on a new 33x111 pseudo-terminal and returns
// what it printed there and its exit code.
func (e *runEnv) inTerminal(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ptm, pts := openPty(t)
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 111}); err != nil {
		t.Fatal(err)
	}
	cmd := e.command(args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	var out strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := ptm.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break // EIO once the CLI, the last holder of the slave, exits
		}
	}
	cmd.Wait()
	return out.String(), cmd.ProcessState.ExitCode()
}

// openPty opens a pseudo-terminal pair.
func openPty(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ptm, pts
}

// TestRunOOM: a container over its 16 MiB limit is OOM-killed, and says so.
func TestRunOOM(t *testing.T) {
	e := newRunEnv(t, "oom")
	for _, rt := range tasktest.Runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			id := "oom-" + rt
			// A string that doubles until the cgroup kills the shell.
			e.mustRun("run", "-d", "--runtime", rt, "--memory", "16m", e.ref, id, "sh", "-c", "a=x; while true; do a=$a$a; done")
			ti := e.waitTask(id, "stopped")
			if ti.Exit == nil || ti.Exit.Status != 137 || ti.Exit.Reason != "OOMKilled" {
				t.Fatalf("task %+v, want exit 137 OOMKilled", ti)
			}
			if out := e.mustRun("tasks", "ls"); !strings.Contains(out, "stopped (exit 137, OOMKilled)") {
				t.Errorf("tasks ls:\n%s", out)
			}
			e.mustRun("tasks", "rm", id)
			if st := e.info(id).Status; st.State != "exited" || st.ExitCode != 137 || st.Reason != "OOMKilled" {
				t.Errorf("containers info: %+v", st)
			}
			e.mustRun("containers", "rm", id)
		})
	}
}
