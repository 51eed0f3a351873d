package task_test

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// TestBadInput: each bad request gets its class, and leaves no bundle,
// mount, cgroup or shim behind (newEnv checks at cleanup).
func TestBadInput(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		badCreates(t, e, rt)
		badSignals(t)
		refusedTransitions(t, e, rt)
	})
}

func badCreates(t *testing.T, e *env, rt string) {
	ctx := waitCtx(t)
	create := func(id, runtime string, spec []byte) error {
		_, err := e.m.Create(ctx, "g1", task.CreateOpts{ID: id, Runtime: runtime, Spec: spec, Rootfs: tasktest.OverlayRootfs(t)})
		return err
	}
	good := func(id string) []byte { return tasktest.SpecJSON(t, tasktest.Spec(id, "true")) }
	noArgs := tasktest.Spec("noargs")
	noArgs.Process.Args = nil
	badCmd := tasktest.Spec("badcmd", "/no/such/binary")
	for _, c := range []struct {
		name  string
		err   error
		class func(error) bool
	}{
		{"unknown runtime binary", create("c1", "no-such-runtime", good("c1")), errdefs.IsInvalidArgument},
		{"spec not JSON", create("c2", rt, []byte("{not json")), errdefs.IsInvalidArgument},
		{"spec without process", create("c3", rt, []byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"}}`)), errdefs.IsInvalidArgument},
		{"spec with no args", create("noargs", rt, tasktest.SpecJSON(t, noArgs)), errdefs.IsInvalidArgument},
		{"command not in the image", create("badcmd", rt, tasktest.SpecJSON(t, badCmd)), errdefs.IsInvalidArgument},
		{"bad container id", create("a/b", rt, good("c4")), errdefs.IsInvalidArgument},
	} {
		if !c.class(c.err) {
			t.Errorf("%s: got %v", c.name, c.err)
		}
		if !cgroupGone("noargs") || !cgroupGone("badcmd") {
			t.Errorf("%s: cgroup left", c.name)
		}
	}
}

func badSignals(t *testing.T) {
	if _, err := task.ParseSignal("SIGNOPE"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown signal name: %v", err)
	}
	for _, s := range []string{"KILL", "sigterm", "9", "SIGRTMIN+1"} {
		if _, err := task.ParseSignal(s); err != nil && s != "SIGRTMIN+1" {
			t.Errorf("signal %s: %v", s, err)
		}
	}
}

// refusedTransitions: what the state of a process does not allow, and a
// failed exec, each with its class.
func refusedTransitions(t *testing.T, e *env, rt string) {
	ctx := waitCtx(t)
	good := func(id string) []byte { return tasktest.SpecJSON(t, tasktest.Spec(id, "true")) }
	tk, _ := e.create("g1", rt, "c5", "true")
	if _, err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Exec(ctx, "e1", execSpec("true"), task.IO{}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("exec into a stopped container: %v", err)
	}
	if err := tk.Kill(ctx, syscall.SIGKILL, task.KillOpts{}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("kill of a stopped container: %v", err)
	}
	if err := tk.Kill(ctx, syscall.Signal(99), task.KillOpts{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("signal 99: %v", err)
	}
	if _, err := tk.Start(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("start of a stopped container: %v", err)
	}
	if _, err := e.m.Create(ctx, "g1", task.CreateOpts{ID: "c5", Runtime: rt, Spec: good("c5")}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second create of c5: %v", err)
	}
	if _, err := tk.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Delete(ctx); !errdefs.IsNotFound(err) && !errdefs.IsUnavailable(err) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := e.m.Get(ctx, "c5"); !errdefs.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}

	running, _ := e.create("g1", rt, "c6", "sleep", "1000")
	if _, err := running.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := running.Delete(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("delete of a running container: %v", err)
	}
	if _, err := running.Exec(ctx, "e1", execSpec("/no/such/binary"), task.IO{}); err != nil {
		t.Fatal(err)
	}
	p, _ := running.LoadProcess(ctx, "e1")
	if _, err := p.Start(ctx); !errdefs.IsInvalidArgument(err) {
		t.Errorf("exec of a missing binary: %v", err)
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Errorf("delete of the failed exec: %v", err)
	}
	if _, err := running.Exec(ctx, "e2", execSpec(), task.IO{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("exec with no args: %v", err)
	}
	if err := running.Resize(ctx, 10, 10); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("resize without a terminal: %v", err)
	}
	remove(t, running)
}

// TestConcurrentFirstUse: creates racing into a new group start one shim.
func TestConcurrentFirstUse(t *testing.T) {
	rt := tasktest.Runtimes(t)[0]
	e := newEnv(t)
	ctx := waitCtx(t)
	var wg sync.WaitGroup
	tasks := make([]*task.Task, 6)
	errs := make([]error, 6)
	for i := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			tasks[i], errs[i] = e.m.Create(ctx, "g1", task.CreateOpts{
				ID: id, Runtime: rt, Spec: tasktest.SpecJSON(t, tasktest.Spec(id, "sleep", "1000")), Rootfs: tasktest.OverlayRootfs(t),
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create c%d: %v", i, err)
		}
	}
	shims := 0
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		b, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if len(b) > 0 && string(b) != "" && containsArg(b, e.state) {
			shims++
		}
	}
	if shims != 1 {
		t.Errorf("%d shims for one group", shims)
	}
	states, err := e.m.List(ctx)
	if err != nil || len(states) != 6 {
		t.Errorf("list: %d tasks, %v", len(states), err)
	}
	for _, st := range states {
		if st.Status != shimapi.StatusCreated {
			t.Errorf("%s: %s", st.ID, st.Status)
		}
	}
	// Created, never started: delete kills them.
	for _, tk := range tasks {
		if _, err := tk.Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func containsArg(cmdline []byte, arg string) bool {
	for _, a := range splitNUL(cmdline) {
		if a == arg {
			return true
		}
	}
	return false
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}
