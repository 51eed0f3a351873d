package server_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// taskEnv is a daemon with the busybox image pulled.
type taskEnv struct {
	d   *servertest.Daemon
	c   *client.Client
	ctx context.Context
	ref string
}

func newTaskEnv(t *testing.T) *taskEnv {
	t.Helper()
	tasktest.NeedRoot(t)
	d := servertest.Start(t, func(c *server.Config) { c.Image.ConfigPath = "" })
	host := imagetest.StartRegistry(t)
	imagetest.Push(t, host, "test/busybox", "v1", busyboxImage(t))
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "tasks"), 2*time.Minute)
	t.Cleanup(cancel)
	e := &taskEnv{d: d, c: d.Client, ctx: ctx, ref: host + "/test/busybox:v1"}
	t.Cleanup(e.removeAll) // before the daemon stops
	if _, err := e.c.Pull(ctx, e.ref); err != nil {
		t.Fatal(err)
	}
	return e
}

// removeAll kills and deletes what a failed test left: the shims outlive
// the daemon.
func (e *taskEnv) removeAll() {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "tasks"), time.Minute)
	defer cancel()
	tasks := e.c.Tasks()
	list, _ := tasks.List(ctx)
	for _, p := range list {
		_ = tasks.Kill(ctx, p.ContainerID, syscall.SIGKILL, client.KillOpts{All: true})
		_, _ = tasks.Wait(ctx, p.ContainerID, "")
		_, _ = tasks.Delete(ctx, p.ContainerID, "")
	}
	cs, _ := e.c.Containers().List(ctx)
	for _, c := range cs {
		_ = e.c.Containers().Delete(ctx, c.ID)
	}
	// The Manager stops an emptied shim once its events are delivered:
	// before the daemon stops, or the shim would outlive the test.
	for deadline := time.Now().Add(10 * time.Second); e.d.Server.Tasks().LiveShims() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// syncWriter is a buffer safe for the relay's writer and the test.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// run creates container id from the image, runs args attached with stdin
// and returns its exit, stdout and stderr. The task and the container are
// deleted after.
func (e *taskEnv) run(t *testing.T, rt, id, stdin string, args ...string) (client.Exit, string, string) {
	t.Helper()
	if _, err := e.c.Containers().CreateFromImage(e.ctx, client.ImageContainer{ID: id, Image: e.ref, Runtime: rt, Args: args}); err != nil {
		t.Fatal(err)
	}
	tasks := e.c.Tasks()
	if _, _, err := tasks.Create(e.ctx, id, client.CreateTaskOpts{Stdin: true, Stdout: true, Stderr: true}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncWriter
	a, err := tasks.Attach(e.ctx, id, "", client.Streams{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Start(e.ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	exit, err := a.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Delete(e.ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Containers().Delete(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	return exit, stdout.String(), stderr.String()
}

// snapshotDirs are the directories of the overlay snapshots on disk.
func (e *taskEnv) snapshotDirs(t *testing.T) []string {
	t.Helper()
	return dirEntries(t, filepath.Join(e.d.Config.Root, "snapshots", "overlayfs", "snapshots"))
}

func TestTasksRunAttached(t *testing.T) {
	e := newTaskEnv(t)
	before := e.snapshotDirs(t)
	for _, rt := range tasktest.Runtimes(t) {
		t.Run(rt, func(t *testing.T) {
			exit, out, errOut := e.run(t, rt, "c-"+rt, "from stdin\n", "sh", "-c", "cat; echo out; echo err >&2; exit 3")
			if exit.Status != 3 || out != "from stdin\nout\n" || errOut != "err\n" {
				t.Fatalf("exit %+v, stdout %q, stderr %q", exit, out, errOut)
			}
		})
	}
	// Each container's snapshot went with it, and its log file.
	if after := e.snapshotDirs(t); len(after) != len(before) {
		t.Errorf("snapshot directories %v, before the runs %v", after, before)
	}
	if logs := dirEntries(t, filepath.Join(e.d.Config.Root, "logs", "tasks")); len(logs) != 0 {
		t.Errorf("logs left: %v", logs)
	}
}

func TestTasksLifecycle(t *testing.T) {
	e := newTaskEnv(t)
	for _, rt := range tasktest.Runtimes(t) {
		t.Run(rt, func(t *testing.T) { lifecycle(t, e, rt) })
	}
}

func lifecycle(t *testing.T, e *taskEnv, rt string) {
	id := "life-" + rt
	ctx, tasks := e.ctx, e.c.Tasks()
	if _, err := e.c.Containers().CreateFromImage(ctx, client.ImageContainer{ID: id, Image: e.ref, Runtime: rt, Args: []string{"sh", "-c", "echo started; sleep 1000; exit 9"}, MemoryLimit: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	_, logPath, err := tasks.Create(ctx, id, client.CreateTaskOpts{})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := tasks.Start(ctx, id, "")
	if err != nil || pid == 0 {
		t.Fatalf("start: %d, %v", pid, err)
	}
	// The status writer saw it start.
	waitFor(t, func() bool {
		c, err := e.c.Containers().Get(ctx, id)
		return err == nil && c.Status.State.String() == "running" && c.Status.Pid == pid
	})
	if err := e.c.Containers().Delete(ctx, id); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("delete of a container with a task: %v", err)
	}
	execRelayed(t, e, id)
	pids, err := tasks.Pids(ctx, id)
	if err != nil || len(pids) != 2 {
		t.Fatalf("pids %v, %v", pids, err)
	}
	m, err := tasks.Metrics(ctx, id)
	if err != nil || m.MemoryLimit != 64<<20 || m.PidsCurrent != 2 || m.MemoryUsage == 0 {
		t.Fatalf("metrics %+v, %v", m, err)
	}
	if err := tasks.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if p, err := tasks.Get(ctx, id, ""); err != nil || p.Status != "paused" {
		t.Fatalf("paused: %+v %v", p, err)
	}
	if err := tasks.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The sleep, by its pid: sh, pid 1 of the container, goes on.
	var sleep uint32
	for _, p := range pids {
		if p.Pid != pid {
			sleep = p.Pid
		}
	}
	if err := tasks.Kill(ctx, id, syscall.SIGKILL, client.KillOpts{Pid: sleep}); err != nil {
		t.Fatal(err)
	}
	exit, err := tasks.Wait(ctx, id, "")
	if err != nil || exit.Status != 9 {
		t.Fatalf("exit %+v, %v, want 9: sh goes on after its sleep is killed", exit, err)
	}
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), " stdout F started\n") {
		t.Errorf("log %q: %q, %v", logPath, b, err)
	}
	if _, err := tasks.Delete(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if c, err := e.c.Containers().Get(ctx, id); err != nil || c.Status.State.String() != "exited" || c.Status.ExitCode != 9 {
		t.Fatalf("status %+v, %v", c.Status, err)
	}
	if err := e.c.Containers().Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log after the container's delete: %v", err)
	}
}

// execRelayed runs an exec in container id with a relayed stdout and
// extra env.
func execRelayed(t *testing.T, e *taskEnv, id string) {
	t.Helper()
	ctx, tasks := e.ctx, e.c.Tasks()
	if err := tasks.Exec(ctx, id, "e1", client.ExecOpts{Args: []string{"sh", "-c", "echo $FOO; exit 5"}, Env: []string{"FOO=bar"}, Stdout: true}); err != nil {
		t.Fatal(err)
	}
	var out syncWriter
	a, err := tasks.Attach(ctx, id, "e1", client.Streams{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.Start(ctx, id, "e1"); err != nil {
		t.Fatal(err)
	}
	if exit, err := a.Wait(); err != nil || exit.Status != 5 || out.String() != "bar\n" {
		t.Fatalf("exec: %+v %v, output %q", exit, err, out.String())
	}
	if _, err := tasks.Delete(ctx, id, "e1"); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
	}
}

// TestTaskMetrics: live shims, start latency and exits by reason, each
// exit counted once, on /metrics.
func TestTaskMetrics(t *testing.T) {
	e := newTaskEnv(t)
	// Exits: Completed, Error, and an OOM kill.
	e.run(t, "runc", "ok", "", "true")
	e.run(t, "runc", "three", "", "sh", "-c", "exit 3")
	if _, err := e.c.Containers().CreateFromImage(e.ctx, client.ImageContainer{ID: "oom", Image: e.ref, MemoryLimit: 16 << 20,
		Args: []string{"sh", "-c", "a=x; while true; do a=$a$a; done"}}); err != nil {
		t.Fatal(err)
	}
	tasks := e.c.Tasks()
	for _, id := range []string{"oom", "sleeper"} {
		if id == "sleeper" {
			if _, err := e.c.Containers().CreateFromImage(e.ctx, client.ImageContainer{ID: id, Image: e.ref, Args: []string{"sleep", "1000"}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := tasks.Create(e.ctx, id, client.CreateTaskOpts{}); err != nil {
			t.Fatal(err)
		}
		if _, err := tasks.Start(e.ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	if exit, err := tasks.Wait(e.ctx, "oom", ""); err != nil || exit.Reason != "OOMKilled" {
		t.Fatalf("oom: %+v, %v", exit, err)
	}
	// Two live shims: the OOM-killed one's (its task is not deleted) and
	// the sleeper's.
	waitFor(t, func() bool { return strings.Contains(scrape(t, e.d), "\ncri_runtime_task_shims 2\n") })
	body := scrape(t, e.d)
	for _, want := range []string{
		`cri_runtime_task_exits_total{reason="Completed"} 1`,
		`cri_runtime_task_exits_total{reason="Error"} 1`,
		`cri_runtime_task_exits_total{reason="OOMKilled"} 1`,
		"cri_runtime_task_start_seconds_count 4\n",
		`cri_runtime_task_start_seconds_bucket{le="10"} 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
