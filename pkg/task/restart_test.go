package task_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

const ticker = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done"

// TestShimsOutliveKilledDaemon starts containers from a stand-in daemon,
// kills it with SIGKILL, and checks that the containers keep writing
// their logs; a new Manager then restores them, with the exit of one that
// ended while no daemon ran.
func TestShimsOutliveKilledDaemon(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		job := helperBase(t, e, rt)
		const running = 20
		for i := 0; i < running; i++ {
			job.Containers = append(job.Containers, helperContainer{ID: fmt.Sprintf("c%d", i), Group: fmt.Sprintf("g%d", i%5), Args: []string{"sh", "-c", ticker}})
		}
		job.Containers = append(job.Containers, helperContainer{ID: "short", Group: "g0", Args: []string{"sh", "-c", "sleep 2; exit 5"}})
		startAndKillHelper(t, job)

		for _, c := range job.Containers[:running] {
			path := filepath.Join(job.WorkDir, c.ID+".log")
			n := logLines(path)
			waitForLines(t, path, n+5)
		}
		eventually(t, `"short" exits while no daemon runs`, func() bool { return alive(shortPid(t, e)) == false })

		states := e.restart()
		byID := map[string]task.State{}
		for _, st := range states {
			byID[st.ID] = st
		}
		ctx := waitCtx(t)
		for _, c := range job.Containers[:running] {
			st := byID[c.ID]
			if st.Status != shimapi.StatusRunning || st.Pid == 0 || st.Group != c.Group {
				t.Errorf("%s restored as %+v", c.ID, st)
			}
			if got, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.Pid)); err != nil || !bytes.HasPrefix(got, []byte("sh\x00")) {
				t.Errorf("%s: pid %d is not the container's shell: %q", c.ID, st.Pid, got)
			}
		}
		if st := byID["short"]; st.Status != shimapi.StatusStopped || st.Exit == nil || st.Exit.Status != 5 {
			t.Errorf("short restored as %+v, want stopped with status 5", st)
		}
		ev := e.rec.waitFor(t, shimapi.TopicExit, "short", "")
		if !ev.Replayed || ev.Exit.Status != 5 {
			t.Errorf("replayed exit %+v", ev)
		}

		tk, err := e.m.Get(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		p, err := tk.Exec(ctx, "e1", execSpec("hostname"), task.IO{Stdout: &out})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if exit, err := p.Wait(ctx); err != nil || exit.Status != 0 || out.String() != "c1\n" {
			t.Errorf("exec after restore: %+v %v %q", exit, err, out.String())
		}
		for _, c := range job.Containers {
			tk, err := e.m.Get(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			remove(t, tk)
		}
	})
}

// TestShimKilled kills a shim with SIGKILL: its containers are reported
// exited with ReasonShimGone, and their processes, mounts, cgroups and
// directories are gone.
func TestShimKilled(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		var pids []int
		for _, id := range []string{"c1", "c2"} {
			tk, _ := e.create("g1", rt, id, "sh", "-c", ticker)
			pid, err := tk.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, int(pid))
		}
		other, _ := e.create("g2", rt, "other", "sleep", "1000")
		if _, err := other.Start(ctx); err != nil {
			t.Fatal(err)
		}
		shimPid := readShimPid(t, e, "g1")
		if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"c1", "c2"} {
			ev := e.rec.waitFor(t, shimapi.TopicExit, id, "")
			if ev.Exit == nil || ev.Exit.Reason != shimapi.ReasonShimGone || ev.Exit.Status != task.ExitStatusShimGone {
				t.Errorf("%s: exit %+v, want ShimGone", id, ev.Exit)
			}
			e.rec.waitFor(t, shimapi.TopicDelete, id, "")
			if !cgroupGone(id) {
				t.Errorf("%s: cgroup left", id)
			}
			if _, err := e.m.Get(ctx, id); !errdefs.IsNotFound(err) {
				t.Errorf("%s: still a task: %v", id, err)
			}
		}
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("container process %d survived its shim", pid)
			}
		}
		eventually(t, "the group directory is removed", func() bool {
			_, err := os.Stat(shimapi.GroupDir(e.state, testNS, "g1"))
			return os.IsNotExist(err)
		})
		// The other group's shim is untouched, and the group can be used again.
		if st, err := other.State(ctx); err != nil || st.Status != shimapi.StatusRunning {
			t.Errorf("other group: %+v, %v", st, err)
		}
		again, _ := e.create("g1", rt, "c1", "true")
		if _, err := again.Start(ctx); err != nil {
			t.Fatal(err)
		}
		remove(t, again)
		remove(t, other)
	})
}

// TestRestoreAfterShimDiedWhileDaemonDown: the shim dies while no daemon
// runs; Restore reports its containers exited and cleans up after them.
func TestRestoreAfterShimDiedWhileDaemonDown(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		tk, _ := e.create("g1", rt, "c1", "sleep", "1000")
		pid, err := tk.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e.m.Close()
		if err := syscall.Kill(readShimPid(t, e, "g1"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		states := e.restart()
		if len(states) != 1 || states[0].ID != "c1" || states[0].Exit == nil || states[0].Exit.Reason != shimapi.ReasonShimGone {
			t.Fatalf("restored %+v", states)
		}
		e.rec.waitFor(t, shimapi.TopicExit, "c1", "")
		if alive(int(pid)) {
			t.Errorf("container process %d survived", pid)
		}
		if !cgroupGone("c1") {
			t.Error("cgroup left")
		}
		if _, err := e.m.Get(ctx, "c1"); !errdefs.IsNotFound(err) {
			t.Errorf("still a task: %v", err)
		}
	})
}

func readShimPid(t *testing.T, e *env, group string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(shimapi.GroupDir(e.state, testNS, group), shimapi.PidFile))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// alive says whether process pid still runs (a zombie does not) after a
// few seconds: killed processes are reaped by whoever inherited them.
func alive(pid int) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// pid (comm) state ...: the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	return true
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting until %s", what)
			return
		}
	}
}

// shortPid reads the pid of container "short" from its bundle.
func shortPid(t *testing.T, e *env) int {
	b, err := os.ReadFile(filepath.Join(shimapi.GroupDir(e.state, testNS, "g0"), "short", "init.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
