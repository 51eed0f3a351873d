package task_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	code := m.Run()
	tasktest.Cleanup()
	os.Exit(code)
}

const testNS = "test"

func nsCtx() context.Context {
	return namespaces.WithNamespace(context.Background(), testNS)
}

// recorder keeps the events a Manager delivers.
type recorder struct {
	mu     sync.Mutex
	events []task.Event
	cond   *sync.Cond
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) onEvent(_ context.Context, ev task.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// waitFor waits for an event of topic about container id (and exec id).
func (r *recorder) waitFor(t *testing.T, topic, id, execID string) task.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	timer := time.AfterFunc(20*time.Second, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		for _, ev := range r.events {
			if ev.Topic == topic && ev.ID == id && ev.ExecID == execID {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s/%s; got %v", topic, id, execID, r.topics())
		}
		r.cond.Wait()
	}
}

func (r *recorder) topics() []string {
	var out []string
	for _, ev := range r.events {
		out = append(out, ev.Topic+":"+ev.ID+"/"+ev.ExecID)
	}
	return out
}

func (r *recorder) of(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.ID == id {
			out = append(out, strings.TrimPrefix(ev.Topic, "/tasks/")+"/"+ev.ExecID)
		}
	}
	return out
}

// env is one test's state directory and Manager.
type env struct {
	t     *testing.T
	state string
	rec   *recorder
	m     *task.Manager
}

// newEnv makes a state directory (short: the shim sockets live in it) and
// a Manager; at cleanup it checks that nothing is left.
func newEnv(t *testing.T) *env {
	tasktest.NeedRoot(t)
	state, err := os.MkdirTemp("", "crt")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, state: state}
	e.m = e.manager()
	t.Cleanup(func() {
		e.removeAll()
		e.checkClean() // the Manager stops the emptied shims
		e.m.Close()
		os.RemoveAll(state)
	})
	return e
}

func (e *env) manager() *task.Manager {
	e.rec = newRecorder()
	m, err := task.NewManager(task.Config{
		StateDir: e.state, ShimBinary: tasktest.ShimBinary(e.t), OnEvent: e.rec.onEvent,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// restart replaces the Manager, as a daemon restart does.
func (e *env) restart() []task.State {
	e.t.Helper()
	e.m.Close()
	e.m = e.manager()
	states, err := e.m.Restore(nsCtx())
	if err != nil {
		e.t.Fatal(err)
	}
	return states
}

// removeAll kills and deletes the tasks a failed test left.
func (e *env) removeAll() {
	ctx, cancel := context.WithTimeout(nsCtx(), 30*time.Second)
	defer cancel()
	states, _ := e.m.List(ctx)
	for _, st := range states {
		tk, err := e.m.Get(ctx, st.ID)
		if err != nil {
			continue
		}
		_ = tk.Kill(ctx, 9, task.KillOpts{All: true})
		_, _ = tk.Wait(ctx)
		_, _ = tk.Delete(ctx)
	}
}

// checkClean fails the test if a shim, a bundle, a mount or a cgroup of
// this environment is left.
func (e *env) checkClean() {
	t := e.t
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := e.leftovers()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left behind: %s", strings.Join(left, "; "))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) leftovers() []string {
	var left []string
	entries, _ := os.ReadDir(e.state)
	for _, en := range entries {
		sub, _ := os.ReadDir(filepath.Join(e.state, en.Name()))
		if len(sub) > 0 {
			left = append(left, fmt.Sprintf("%s/ holds %d entries", en.Name(), len(sub)))
		}
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if strings.Contains(s.Text(), e.state) {
				left = append(left, "mount "+strings.Fields(s.Text())[4])
			}
		}
		f.Close()
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), e.state) {
			left = append(left, "process "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return left
}

// cgroupGone says whether the memory cgroup of container id is gone.
func cgroupGone(id string) bool {
	for _, root := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(root, tasktest.CgroupParent, id)); err == nil {
			return false
		}
	}
	return true
}

// create creates a container running args with the busybox overlay
// rootfs, logging to a file in a temporary directory.
func (e *env) create(group, runtime, id string, args ...string) (*task.Task, string) {
	e.t.Helper()
	logPath := filepath.Join(e.t.TempDir(), id+".log")
	tk, err := e.m.Create(nsCtx(), group, task.CreateOpts{
		ID: id, Runtime: runtime, Spec: tasktest.SpecJSON(e.t, tasktest.Spec(id, args...)),
		Rootfs: tasktest.OverlayRootfs(e.t), IO: task.IO{LogPath: logPath},
	})
	if err != nil {
		e.t.Fatalf("create %s: %v", id, err)
	}
	return tk, logPath
}

// remove kills and deletes a task, whatever its state.
func remove(t *testing.T, tk *task.Task) {
	t.Helper()
	ctx := nsCtx()
	st, err := tk.State(ctx)
	if err != nil {
		t.Fatalf("state of %s: %v", tk.ID(), err)
	}
	if st.Status == shimapi.StatusPaused {
		if err := tk.Resume(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st.Status == shimapi.StatusRunning || st.Status == shimapi.StatusPaused {
		// It may have exited since: then the kill is refused.
		if err := tk.Kill(ctx, 9, task.KillOpts{All: true}); err != nil && !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("kill %s: %v", tk.ID(), err)
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := tk.Wait(wctx); err != nil {
			t.Fatalf("wait %s: %v", tk.ID(), err)
		}
	}
	if _, err := tk.Delete(ctx); err != nil {
		t.Fatalf("delete %s: %v", tk.ID(), err)
	}
}

// readLog returns the lines of a CRI log file.
func readLog(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// logContent returns the content of the CRI log lines (stream and tag
// kept), without their timestamps.
func logContent(t *testing.T, path string) []string {
	var out []string
	for _, line := range readLog(t, path) {
		parts := strings.SplitN(line, " ", 2)
		if len(parts) != 2 {
			t.Fatalf("log line %q: no timestamp", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, parts[1])
	}
	return out
}

func forRuntimes(t *testing.T, fn func(t *testing.T, runtime string)) {
	for _, rt := range tasktest.Runtimes(t) {
		t.Run(rt, func(t *testing.T) { fn(t, rt) })
	}
}
