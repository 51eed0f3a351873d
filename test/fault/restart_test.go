package fault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
)

// The daemon restarts with 100 pods running: from its start to the moment
// it lists every pod ready and every container running takes under 2 s.
func TestRestartWithManyPods(t *testing.T) {
	pods := 100
	n := crinode.New(t, "")
	ctx := context.Background()
	if _, err := n.Img.PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, nil); err != nil {
		t.Fatal(err)
	}
	runPods(t, n, 0, pods, 20)
	if t.Failed() {
		return
	}
	n.Stop()
	start := time.Now()
	n.Start()
	var ready time.Duration
	for {
		ps, err1 := n.RT.ListPodSandbox(ctx, &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}})
		cs, err2 := n.RT.ListContainers(ctx, &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}})
		if err1 == nil && err2 == nil && len(ps) == pods && len(cs) == pods {
			ready = time.Since(start)
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("after 30 s: %d pods ready (%v), %d containers running (%v), want %d", len(ps), err1, len(cs), err2, pods)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("restart to ready with %d pods: %v", pods, ready)
	if ready > 2*time.Second {
		t.Errorf("restart to ready with %d pods took %v, over 2 s", pods, ready)
	}
}

// The daemon is stopped (SIGTERM) in the middle of a slow RunPodSandbox:
// kubelet's retry, against the restarted daemon, gets a ready pod, and
// there is one.
func TestGracefulRestartMidCreate(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "slow-runc")
	body := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = create ] && sleep 3; done\nexec runc \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	n := crinode.New(t, fmt.Sprintf("[cri.runtimes.slow]\n  binary = %q\n", script))
	pc := n.PodConfig("midcreate")
	var wg sync.WaitGroup
	var id string
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		id, err = kubeletRun(n, pc)
	}()
	time.Sleep(time.Second) // the create is in runc create
	n.Stop()
	n.Start()
	wg.Wait()
	if err != nil {
		t.Fatalf("kubelet's retries: %v", err)
	}
	ctx := context.Background()
	pods, lerr := n.RT.ListPodSandbox(ctx, nil)
	if lerr != nil || len(pods) != 1 || pods[0].Id != id || pods[0].State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pods: %+v, %v; want one ready pod %s", pods, lerr, id)
	}
}

// kubeletRun is RunPodSandbox as kubelet calls it: a fresh connection per
// attempt (kubelet's reconnects to the socket), retried while the daemon
// is away or the call's deadline ends.
func kubeletRun(n *crinode.Node, pc *runtime.PodSandboxConfig) (string, error) {
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rt, err := remote.NewRemoteRuntimeService(ctx, "unix://"+n.Socket(), 30*time.Second, nil, false)
		if err == nil {
			var id string
			id, err = rt.RunPodSandbox(ctx, pc, "slow")
			if err == nil {
				return id, nil
			}
		}
		switch status.Code(cause(err)) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		default:
			return "", err
		}
		if time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
