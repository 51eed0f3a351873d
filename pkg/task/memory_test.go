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
// attach): goroutines (the shim connection's reader, its events follower,
// the reaper of the shim, the two output copies), no OS thread (the
// reaper waits on a pidfd in the netpoller, not in waitid), and no
// output buffer while the container is silent.
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
	if goroutines > 5 {
		t.Errorf("%.1f goroutines per pod, want at most 5", goroutines)
	}
	if threads > 0.25 {
		t.Errorf("%.2f OS threads per pod, want none", threads)
	}
	if heap > 24<<10 {
		t.Errorf("%d bytes of live heap per pod, want at most 24 KiB", heap)
	}
}

// TestOutputCopiedWhole: the daemon's copies of a process's output, which
// take a buffer only when there is output to read, pass output of many
// reads and waits (more than a buffer, less than the shim's sink holds:
// nothing may be dropped) whole and in order, on stdout and stderr.
func TestOutputCopiedWhole(t *testing.T) {
	e := newEnv(t)
	ctx := waitCtx(t)
	tk, _ := e.create("g1", tasktest.Runtimes(t)[0], "c1", "sleep", "1000")
	defer remove(t, tk)
	if _, err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// 20000 numbered lines on each stream, about 150 KB.
	script := `i=0; while [ $i -lt 20000 ]; do echo "line $i"; echo "err $i" >&2; i=$((i+1)); done`
	var out, errOut bytes.Buffer
	p, err := tk.Exec(ctx, "e1", execSpec("sh", "-c", script), task.IO{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if exit, err := p.Wait(ctx); err != nil || exit.Status != 0 {
		t.Fatalf("exec exit %+v, %v", exit, err)
	}
	var wantOut, wantErr strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&wantOut, "line %d\n", i)
		fmt.Fprintf(&wantErr, "err %d\n", i)
	}
	if out.String() != wantOut.String() || errOut.String() != wantErr.String() {
		t.Errorf("stdout %d bytes, stderr %d, want %d and %d, the lines in order", out.Len(), errOut.Len(), wantOut.Len(), wantErr.Len())
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}
