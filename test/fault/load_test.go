package fault

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
)

// long reports whether the long mode runs (CRI_RUNTIME_FAULT_LONG=1):
// the full sizes, too slow for CI.
func long() bool { return os.Getenv("CRI_RUNTIME_FAULT_LONG") != "" }

// usage is what the daemon holds: goroutines, open files, resident memory.
type usage struct {
	goroutines, fds int
	rssKiB          int
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d MiB RSS", u.goroutines, u.fds, u.rssKiB>>10)
}

// measure reads the daemon's usage from /proc and its /metrics.
func measure(t *testing.T, n *crinode.Node) usage {
	t.Helper()
	var u usage
	pid := n.Pid()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	u.fds = len(fds)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			u.rssKiB, _ = strconv.Atoi(strings.Fields(v)[0])
		}
	}
	resp, err := http.Get("http://" + n.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			u.goroutines, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return u
}

// settled waits for the daemon's usage to come back near base: its
// goroutines and fds to their count, its memory within slack.
func settled(t *testing.T, n *crinode.Node, base usage, slackKiB int) usage {
	t.Helper()
	var u usage
	deadline := time.Now().Add(30 * time.Second)
	for {
		u = measure(t, n)
		if u.goroutines <= base.goroutines+5 && u.fds <= base.fds+5 && u.rssKiB <= base.rssKiB+slackKiB {
			return u
		}
		if time.Now().After(deadline) {
			t.Errorf("the daemon did not come back to its baseline: %v, baseline %v", u, base)
			return u
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Many RunPodSandbox calls at once, then many pods on the node, then all
// removed: every call succeeds, and the daemon's goroutines, open files
// and memory come back to their baseline.
func TestLoadPods(t *testing.T) {
	burst, total := 100, 100
	var opts []crinode.Opt
	if long() {
		total = 500
		opts = append(opts, crinode.WithWideNetwork()) // a /24 holds 253 pods
	}
	n := crinode.New(t, "", opts...)
	ctx := context.Background()
	if _, err := n.Img.PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, nil); err != nil {
		t.Fatal(err)
	}
	// A first pod warms the daemon (its pause image, its caches).
	pod0, _ := n.StartPod(ctx, "warm", "sleep", "3600")
	if err := n.RT.StopPodSandbox(ctx, pod0); err != nil {
		t.Fatal(err)
	}
	if err := n.RT.RemovePodSandbox(ctx, pod0); err != nil {
		t.Fatal(err)
	}
	base := measure(t, n)
	start := time.Now()
	runPods(t, n, 0, burst, burst)
	t.Logf("%d RunPodSandbox and container starts at once: %v", burst, time.Since(start))
	start = time.Now()
	runPods(t, n, burst, total-burst, 20)
	t.Logf("%d pods on the node (%v for the last %d, 20 at a time); daemon: %v", total, time.Since(start), total-burst, measure(t, n))
	if t.Failed() {
		return
	}
	start = time.Now()
	pods, err := n.RT.ListPodSandbox(ctx, nil)
	if err != nil || len(pods) != total {
		t.Fatalf("%d pods listed, %v; want %d", len(pods), err, total)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for _, p := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := n.RT.StopPodSandbox(ctx, p.Id); err != nil {
				t.Error(err)
			}
			if err := n.RT.RemovePodSandbox(ctx, p.Id); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d pods removed in %v", total, time.Since(start))
	after := settled(t, n, base, 64<<10)
	t.Logf("daemon: baseline %v, after %v", base, after)
}

// runPods starts count pods with a container each, at most parallel at a
// time, named from first on.
func runPods(t *testing.T, n *crinode.Node, first, count, parallel int) {
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := first; i < first+count; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := fmt.Sprintf("load-%d", i)
			pc := n.PodConfig(name)
			id, err := n.RT.RunPodSandbox(ctx, pc, "")
			if err != nil {
				t.Errorf("%s: RunPodSandbox: %v", name, err)
				return
			}
			cid, err := n.RT.CreateContainer(ctx, id, n.ContainerConfig("c", "sleep", "3600"), pc)
			if err == nil {
				err = n.RT.StartContainer(ctx, cid)
			}
			if err != nil {
				t.Errorf("%s: container: %v", name, err)
			}
		}()
	}
	wg.Wait()
}

// Many ExecSync calls with a 1 s timeout against a command that never
// closes its output: each one returns at its deadline with
// DeadlineExceeded, the process is killed, and the daemon's goroutines,
// open files and memory come back to their baseline.
func TestExecSyncTimeouts(t *testing.T) {
	calls, parallel := 1000, 50
	if long() {
		calls = 10000
	}
	n := crinode.New(t, "")
	ctx := context.Background()
	_, ctrID := n.StartPod(ctx, "execs", "sleep", "3600")
	if _, _, err := n.RT.ExecSync(ctx, ctrID, []string{"true"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	base := measure(t, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	var mu sync.Mutex
	var slowest time.Duration
	start := time.Now()
	for i := range calls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			t0 := time.Now()
			// sleep holds the exec's stdout open for an hour.
			_, _, err := n.RT.ExecSync(ctx, ctrID, []string{"sleep", "3600"}, time.Second)
			d := time.Since(t0)
			// kubelet's client turns DeadlineExceeded into this.
			if !errors.Is(err, remote.ErrCommandTimedOut) {
				t.Errorf("exec %d: %v, want the command timed out", i, err)
			}
			mu.Lock()
			slowest = max(slowest, d)
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("%d ExecSync with a 1 s timeout, %d at a time: %v; slowest call %v", calls, parallel, time.Since(start), slowest)
	// The call returns once the exec is killed at its deadline; its
	// reap goes on behind it. An exec whose runtime is still starting it
	// at the deadline is killed once started (the call waits for that,
	// up to the daemon's reap bound of 10 s: a start the caller gives up
	// is undone by the shim, but waiting for it keeps a storm of timed-out
	// probes from piling up runtime execs without end). 50 runc execs at
	// once on 2 loaded cores took up to 10 s to start.
	if slowest > 12*time.Second {
		t.Errorf("an ExecSync with a 1 s timeout took %v", slowest)
	}
	// The killed exec processes are gone from the container.
	waitFor(t, 10*time.Second, func() error {
		out, _, err := n.RT.ExecSync(ctx, ctrID, []string{"ps", "-o", "pid,stat,args"}, 10*time.Second)
		if err != nil || strings.Count(string(out), "sleep 3600") != 1 {
			return fmt.Errorf("processes in the container: %s, %v (want one sleep: its own)", out, err)
		}
		return nil
	})
	after := settled(t, n, base, 64<<10)
	t.Logf("daemon: baseline %v, after %v", base, after)
}
