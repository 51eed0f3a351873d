package integration

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

func TestTasksVerbs(t *testing.T) {
	e := newRunEnv(t, "verbs")
	for _, rt := range tasktest.Runtimes(t) {
		t.Run(rt, func(t *testing.T) { taskVerbs(t, e, rt) })
	}
}

// processes is `tasks ps -o json`.
func (e *runEnv) processes(id string) map[uint32]string {
	e.t.Helper()
	var list []struct {
		Pid    uint32 `json:"pid"`
		ExecID string `json:"execID"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("-o", "json", "tasks", "ps", id)), &list); err != nil {
		e.t.Fatal(err)
	}
	out := map[uint32]string{}
	for _, p := range list {
		out[p.Pid] = p.ExecID
	}
	return out
}

func taskVerbs(t *testing.T, e *runEnv, rt string) {
	id := "v-" + rt
	e.mustRun("run", "-d", "--runtime", rt, e.ref, id, "sh", "-c", "echo started; while true; do sleep 1; done")
	ti := e.waitTask(id, "running")
	if ti.Pid == 0 || ti.Group != id {
		t.Fatalf("task %+v: want a pid, in a group of its own", ti)
	}
	if out := e.mustRun("tasks", "ls"); !strings.Contains(out, "ID") || !strings.Contains(out, id+"  ") || !strings.Contains(out, strconv.Itoa(int(ti.Pid))) {
		t.Fatalf("tasks ls:\n%s", out)
	}
	if _, ok := e.processes(id)[ti.Pid]; !ok {
		t.Fatalf("tasks ps lacks the init pid %d", ti.Pid)
	}
	// An exec, attached: its output and exit code.
	if r := e.run("tasks", "exec", "--exec-id", "e1", id, "sh", "-c", "echo in $FROM_IMAGE; exit 4"); r.code != 4 || r.stdout != "in yes\n" {
		t.Fatalf("exec: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	// An exec in the background, then killed by its pid.
	e.mustRun("tasks", "exec", "-d", "--exec-id", "sl", id, "sleep", "1000")
	var sleep uint32
	for pid, exec := range e.processes(id) {
		if exec == "sl" {
			sleep = pid
		}
	}
	if sleep == 0 {
		t.Fatalf("tasks ps lacks the exec sl: %v", e.processes(id))
	}
	e.mustRun("tasks", "kill", "--signal", "KILL", "--pid", strconv.Itoa(int(sleep)), id)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, ok := e.processes(id)[sleep]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still in the container after its SIGKILL", sleep)
		}
	}
	e.mustRun("tasks", "rm", "--exec-id", "sl", id)

	e.mustRun("tasks", "pause", id)
	e.waitTask(id, "paused")
	if st := e.info(id).Status; st.State != "paused" {
		t.Errorf("containers info while paused: %+v", st)
	}
	e.mustRun("tasks", "resume", id)
	e.waitTask(id, "running")

	var m struct {
		MemoryUsage uint64 `json:"memoryUsage"`
		PidsCurrent uint64 `json:"pidsCurrent"`
		CPUUsage    uint64 `json:"cpuUsageNanos"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("-o", "json", "tasks", "metrics", id)), &m); err != nil {
		t.Fatal(err)
	}
	if m.MemoryUsage == 0 || m.PidsCurrent < 1 || m.CPUUsage == 0 {
		t.Errorf("metrics %+v", m)
	}
	if out := e.mustRun("tasks", "metrics", id); !strings.Contains(out, "MEMORY") {
		t.Errorf("tasks metrics:\n%s", out)
	}

	// sh is pid 1 of its namespace: SIGTERM, which it does not handle,
	// does nothing; SIGKILL ends it.
	e.mustRun("tasks", "kill", "--signal", "KILL", id)
	if ti := e.waitTask(id, "stopped"); ti.Exit == nil || ti.Exit.Status != 137 {
		t.Fatalf("task after SIGKILL: %+v", ti)
	}
	e.mustRun("tasks", "rm", id)
	if st := e.info(id).Status; st.State != "exited" || st.ExitCode != 137 {
		t.Errorf("containers info after the kill: %+v", st)
	}
	e.mustRun("containers", "rm", id)
	if left := e.leftovers(id); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestBadInputLeavesNothing: each bad request fails with its class, and
// leaves no container, task, snapshot, cgroup, shim or lease.
func TestBadInputLeavesNothing(t *testing.T) {
	e := newRunEnv(t, "bad")
	e.mustRun("pull", "-q", e.ref)
	before := e.snapshotDirs()
	missing := strings.Replace(e.ref, "test/busybox:v1", "test/none:nope", 1)
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"run", "--runtime", "no-such-runtime", e.ref, "b1", "true"}, 125, []string{"no-such-runtime", "invalid argument"}},
		{[]string{"run", missing, "b2", "true"}, 125, []string{"test/none:nope", "not found"}},
		{[]string{"run", "--mount", "bogus", e.ref, "b3", "true"}, 125, []string{"bogus", "invalid argument"}},
		{[]string{"run", "--mount", "type=bind,src=/no/such/dir,dst=/x", e.ref, "b4", "true"}, 125, []string{"/no/such/dir", "invalid argument"}},
		{[]string{"run", "--mount", "type=bind,src=/tmp,dst=/x,options=sideways", e.ref, "b4", "true"}, 125, []string{"sideways", "invalid argument"}},
		{[]string{"run", e.ref, "b5", "/no/such/binary"}, 125, []string{"/no/such/binary", "invalid argument"}},
		{[]string{"run", "--memory", "lots", e.ref, "b5", "true"}, 125, []string{"lots", "invalid argument"}},
		{[]string{"tasks", "kill", "--signal", "SIGNOPE", "b6"}, 1, []string{"SIGNOPE", "invalid argument"}},
		{[]string{"tasks", "exec", "--exec-id", "x", "b7", "true"}, 125, []string{`"b7"`, "not found"}},
	} {
		r := e.fails(nil, e.ns, c.args, c.want...)
		if r.code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, r.code, c.code)
		}
	}
	// Exec into a container that has stopped.
	e.mustRun("run", "-d", e.ref, "b8", "true")
	e.waitTask("b8", "stopped")
	if r := e.fails(nil, e.ns, []string{"tasks", "exec", "--exec-id", "x", "b8", "true"}, "failed precondition"); r.code != 125 {
		t.Errorf("exec into a stopped container: exit %d", r.code)
	}
	e.mustRun("containers", "rm", "b8")

	if got := e.snapshotDirs(); strings.Join(got, " ") != strings.Join(before, " ") {
		t.Errorf("snapshot directories %v, want the image's %v", got, before)
	}
	if left := e.leftovers("b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if out := e.mustRun("leases", "ls", "-q"); out != "" {
		t.Errorf("leases left: %q", out)
	}
}

// TestCheckpointRestore checkpoints a running container with CRIU, stops
// it, and restores it: its output goes on in the same log file. It skips
// where `criu check` fails, saying why (on the kernel of this project's
// test VM, CRIU cannot read the vdso).
func TestCheckpointRestore(t *testing.T) {
	tasktest.NeedRoot(t)
	if _, err := exec.LookPath("criu"); err != nil {
		testenv.Missing(t, "criu is not installed (Debian package criu): %v", err)
	}
	if out, err := exec.Command("criu", "check").CombinedOutput(); err != nil {
		t.Skipf("criu does not work on this kernel: `criu check`: %s", strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
	}
	e := newRunEnv(t, "criu")
	for _, rt := range tasktest.Runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			id := "cr-" + rt
			e.mustRun(append([]string{"run", "-d", "--runtime", rt, e.ref, id}, ticker...)...)
			logPath := e.info(id).Labels["cri-runtime.io/log-path"]
			time.Sleep(300 * time.Millisecond)
			image := filepath.Join(t.TempDir(), "image")
			e.mustRun("tasks", "checkpoint", "--exit", "--image-path", image, id)
			e.waitTask(id, "stopped")
			e.mustRun("tasks", "rm", id)
			n := logLines(t, logPath)
			e.mustRun("tasks", "restore", "--image-path", image, id)
			e.waitTask(id, "running")
			time.Sleep(300 * time.Millisecond)
			if m := logLines(t, logPath); m < n+3 {
				t.Errorf("log: %d lines at the restore, %d after", n, m)
			}
			e.mustRun("containers", "rm", "--force", id)
		})
	}
}
