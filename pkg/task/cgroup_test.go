package task_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// TestDeleteRemovesTheCgroupTheRuntimeLeft puts a process from outside
// the container into its cgroup, as processes still exiting on a busy
// host are, so that the runtime's delete cannot remove the cgroup: runc
// then fails, but removes its state, and a second delete found no
// container and left the empty cgroup for good (TestKillUnderLoad left
// two in 200 kills). The delete must end with the cgroup gone, and the
// process in it, the container's own cgroup, killed.
func TestDeleteRemovesTheCgroupTheRuntimeLeft(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := nsCtx()
		tk, dirs, straggler := startWithStraggler(t, e, "g1", rt, "cgleft-"+rt)
		if err := tk.Kill(ctx, 9, task.KillOpts{}); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := tk.Wait(wctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tk.Delete(ctx); err != nil {
			// What kubelet does with a failed remove: try again.
			t.Logf("first delete: %v", err)
			if _, err := tk.Delete(ctx); err != nil {
				t.Fatalf("second delete: %v", err)
			}
		}
		checkCgroupRemoved(t, dirs, straggler)
	})
}

// TestDeadShimCleanupRemovesTheCgroupTheRuntimeLeft is the same with the
// shim killed: the daemon cleans up after it, and the runtime's delete
// cannot remove the cgroup there either. The daemon's cleanup used to
// leave it, with the process in it running.
func TestDeadShimCleanupRemovesTheCgroupTheRuntimeLeft(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		id := "cgdead-" + rt
		_, dirs, straggler := startWithStraggler(t, e, "g1", rt, id)
		if err := syscall.Kill(readShimPid(t, e, "g1"), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		ev := e.rec.waitFor(t, shimapi.TopicExit, id, "")
		if ev.Exit == nil || ev.Exit.Reason != shimapi.ReasonShimGone {
			t.Errorf("exit %+v, want ShimGone", ev.Exit)
		}
		e.rec.waitFor(t, shimapi.TopicDelete, id, "")
		checkCgroupRemoved(t, dirs, straggler)
		eventually(t, "the group directory is removed", func() bool {
			_, err := os.Stat(shimapi.GroupDir(e.state, testNS, "g1"))
			return os.IsNotExist(err)
		})
	})
}

// startWithStraggler starts a container and moves a process from outside
// it into its own cgroup directories, which it returns with the process.
func startWithStraggler(t *testing.T, e *env, group, rt, id string) (*task.Task, []string, *exec.Cmd) {
	t.Helper()
	tk, _ := e.create(group, rt, id, "sleep", "1000")
	pid, err := tk.Start(nsCtx())
	if err != nil {
		t.Fatal(err)
	}
	cg, err := cgroups.Load(int(pid))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, d := range append(mapValues(cg.Dirs), cg.Unified) {
		if d != "" && filepath.Base(d) == id {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("container %s has no cgroup of its own: %+v", id, cg)
	}
	straggler := exec.Command("sleep", "1000")
	if err := straggler.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = straggler.Process.Kill() })
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(straggler.Process.Pid)), 0o644); err != nil {
			t.Fatalf("move a process into %s: %v", d, err)
		}
	}
	return tk, dirs, straggler
}

// checkCgroupRemoved checks that dirs are gone and straggler was killed.
func checkCgroupRemoved(t *testing.T, dirs []string, straggler *exec.Cmd) {
	t.Helper()
	var left []string
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			left = append(left, d)
		}
	}
	if len(left) > 0 {
		t.Errorf("cgroup left after delete: %s", strings.Join(left, ", "))
	}
	waited := make(chan error, 1)
	go func() { waited <- straggler.Wait() }()
	select {
	case err := <-waited:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("the process in the container's cgroup: %v, want killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the process in the container's cgroup still runs")
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
