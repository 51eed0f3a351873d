package task_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// syncBuffer is a writer the copies of output may share with the test.
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

// daemonFootprint is what the test process holds: goroutines, OS
// threads, and live heap after a collection.
type daemonFootprint struct {
	goroutines, threads int
	heap                uint64
}

func footprint(t *testing.T) daemonFootprint {
	t.Helper()
	runtime.GC()
	runtime.GC() // and the pools' victims
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	f := daemonFootprint{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			f.threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return f
}

// TestDaemonCostPerPod: what the daemon holds for each running container
// in a shim of its own (a pod of one container, as kubelet runs them)
// with its output also copied to the daemon (as the CRI does, for
// attach): no OS thread (the reaper of the shim waits on a pidfd in the
// netpoller, not in waitid).
func TestDaemonCostPerPod(t *testing.T) {
	tasktest.NeedRoot(t)
	rt := tasktest.Runtimes(t)[0]
	e := newEnv(t)
	ctx := nsCtx()
	const n = 16
	// A first one, so that what is done once (the pools, the runtime's
	// own threads) is in the baseline.
	warm, _ := e.create("warm", rt, "warm", "sleep", "1000")
	if _, err := warm.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer remove(t, warm)
	time.Sleep(200 * time.Millisecond)
	before := footprint(t)
	var tasks []*task.Task
	outs := make([]*syncBuffer, n)
	for i := range n {
		id := fmt.Sprintf("pod%d", i)
		outs[i] = &syncBuffer{}
		tk, err := e.m.Create(ctx, id, task.CreateOpts{
			ID: id, Runtime: rt, Spec: tasktest.SpecJSON(t, tasktest.Spec(id, "sh", "-c", "echo hello-"+id+"; exec sleep 1000")),
			Rootfs: tasktest.OverlayRootfs(t),
			IO:     task.IO{LogPath: filepath.Join(t.TempDir(), id+".log"), Stdout: outs[i], Stderr: &syncBuffer{}},
		})
		if err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		defer remove(t, tk)
		if _, err := tk.Start(ctx); err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, tk)
	}
	// The output still reaches the daemon's writers.
	deadline := time.Now().Add(10 * time.Second)
	for i := range n {
		for want := fmt.Sprintf("hello-pod%d\n", i); outs[i].String() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("pod%d: output %q, want %q", i, outs[i].String(), want)
			}
		}
	}
	after := footprint(t)
	goroutines := float64(after.goroutines-before.goroutines) / n
	threads := float64(after.threads-before.threads) / n
	heap := (int64(after.heap) - int64(before.heap)) / n
	t.Logf("per pod: %.1f goroutines, %.2f threads, %d bytes of live heap", goroutines, threads, heap)
	if threads > 0.25 {
		t.Errorf("%.2f OS threads per pod, want none", threads)
	}
}
