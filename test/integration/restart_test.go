package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// manyContainers is how many containers the restart tests run.
const manyContainers = 20

// ticker is the command of the restart tests' containers: a line every
// 50 ms, numbered.
var ticker = []string{"sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"}

// startMany starts manyContainers tickers (c0...) and one container,
// "waiter", that exits 42 once the file go exists in the directory it
// returns; it returns the log file of each ticker.
func startMany(t *testing.T, e *runEnv) (logs map[string]string, dir string) {
	t.Helper()
	dir = t.TempDir()
	logs = map[string]string{}
	for i := 0; i < manyContainers; i++ {
		id := fmt.Sprintf("c%d", i)
		e.mustRun(append([]string{"run", "-d", e.ref, id}, ticker...)...)
		logs[id] = e.info(id).Labels["cri-runtime.io/log-path"]
	}
	e.mustRun("run", "-d", "--mount", "type=bind,src="+dir+",dst=/sig", e.ref, "waiter",
		"sh", "-c", "while [ ! -e /sig/go ]; do sleep 0.05; done; exit 42")
	return logs, dir
}

// logLines counts the lines of a CRI log file.
func logLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestKill9DaemonContainersKeepLogging: with the daemon SIGKILLed, the
// containers run on and their output keeps reaching their log files.
func TestKill9DaemonContainersKeepLogging(t *testing.T) {
	e := newRunEnv(t, "kill9")
	logs, _ := startMany(t, e)
	e.signal(syscall.SIGKILL)
	counts := map[string]int{}
	for id, p := range logs {
		counts[id] = logLines(t, p)
	}
	// A tick every 50 ms: 3 more lines each, within 5 s on a loaded host
	// (the other suites run beside this one; 500 ms was once too short).
	deadline := time.Now().Add(5 * time.Second)
	for id, p := range logs {
		n := logLines(t, p)
		for ; n < counts[id]+3 && time.Now().Before(deadline); n = logLines(t, p) {
			time.Sleep(50 * time.Millisecond)
		}
		if n < counts[id]+3 {
			t.Errorf("%s: %d log lines when the daemon died, %d 5 s later", id, counts[id], n)
		}
	}
	b, _ := os.ReadFile(logs["c0"])
	if !strings.Contains(string(b), " stdout F tick 1\n") {
		t.Errorf("log of c0 not in the CRI format: %q", b)
	}
	e.start() // for the cleanup
}

// TestRestartRestoresTasks: after a kill -9 and a restart, every container
// is listed with its state and pid, an exec into one works, and the one
// that exited while the daemon was down has its real exit code.
func TestRestartRestoresTasks(t *testing.T) {
	e := newRunEnv(t, "restart")
	logs, dir := startMany(t, e)
	before := e.tasks()
	waiterPid := e.waitTask("waiter", "running").Pid
	e.signal(syscall.SIGKILL)

	// The waiter exits while the daemon is down.
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !isZombie(int(waiterPid)); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the waiter did not exit")
		}
	}
	e.start()
	after := e.tasks()
	for id := range logs {
		b, a := before[id], after[id]
		if a.Status != "running" || a.Pid == 0 || a.Pid != b.Pid {
			t.Errorf("%s after the restart: %+v, before: %+v", id, a, b)
		}
		if st := e.info(id).Status; st.State != "running" || st.Pid != b.Pid {
			t.Errorf("%s: containers info %+v", id, st)
		}
	}
	w := after["waiter"]
	if w.Status != "stopped" || w.Exit == nil || w.Exit.Status != 42 {
		t.Errorf("waiter after the restart: %+v, want stopped with exit 42", w)
	}
	if st := e.info("waiter").Status; st.State != "exited" || st.ExitCode != 42 {
		t.Errorf("waiter: containers info %+v", st)
	}
	if out := e.mustRun("tasks", "exec", "--exec-id", "after", "c7", "sh", "-c", "echo hello from $(hostname)"); out != "hello from c7\n" {
		t.Errorf("exec after the restart: %q", out)
	}
	// The restored shims still follow: a kill is reported.
	e.mustRun("tasks", "kill", "--signal", "KILL", "c3")
	if ti := e.waitTask("c3", "stopped"); ti.Exit == nil || ti.Exit.Status != 137 {
		t.Errorf("c3 after its kill: %+v", ti)
	}
	for deadline := time.Now().Add(10 * time.Second); e.info("c3").Status.State != "exited"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("c3: containers info %+v after its exit", e.info("c3").Status)
		}
	}
}

// TestKill9ShimReportsExited: the containers of a shim that was SIGKILLed
// are reported exited (ShimGone), and their processes, cgroups, mounts and
// directories are gone; the other containers run on.
func TestKill9ShimReportsExited(t *testing.T) {
	e := newRunEnv(t, "shimkill")
	for _, id := range []string{"g1", "g2"} {
		e.mustRun(append([]string{"run", "-d", "--group", "pod", e.ref, id}, ticker...)...)
	}
	e.mustRun(append([]string{"run", "-d", e.ref, "other"}, ticker...)...)
	pids := []int{int(e.waitTask("g1", "running").Pid), int(e.waitTask("g2", "running").Pid)}
	if ti := e.tasks()["g2"]; ti.Group != "pod" {
		t.Fatalf("g2 in group %q, want pod", ti.Group)
	}
	b, err := os.ReadFile(filepath.Join(e.state, "tasks", e.ns, "pod", "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	shim, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g1", "g2"} {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			st := e.info(id).Status
			if st.State == "exited" {
				if st.Reason != "ShimGone" || st.ExitCode != 255 {
					t.Errorf("%s: %+v, want exited 255 ShimGone", id, st)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v 20s after its shim died", id, st)
			}
		}
	}
	tasks := e.tasks()
	if _, ok := tasks["g1"]; ok {
		t.Errorf("g1 still listed: %+v", tasks["g1"])
	}
	if tasks["other"].Status != "running" {
		t.Errorf("other: %+v", tasks["other"])
	}
	for _, pid := range append(pids, shim) {
		if !isZombie(pid) {
			t.Errorf("pid %d still runs", pid)
		}
	}
	var left []string
	for _, id := range []string{"g1", "g2"} {
		cg, _ := filepath.Glob("/sys/fs/cgroup/*/cri-runtime/" + e.ns + "@" + id)
		left = append(left, cg...)
	}
	if _, err := os.Stat(filepath.Join(e.state, "tasks", e.ns, "pod")); !os.IsNotExist(err) {
		left = append(left, "the shim's directory")
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), filepath.Join(e.state, "tasks", e.ns, "pod")+"/") {
		left = append(left, "rootfs mounts")
	}
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	e.mustRun("containers", "rm", "g1", "g2")
	e.mustRun("containers", "rm", "--force", "other")
	if left := e.leftovers("g1", "g2", "other"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
