// Package critest is the project's own CRI conformance suite: the built
// daemon (internal/crinode) driven through k8s.io/cri-client, the client
// kubelet uses, the way kubelet does: its call order, its deadlines and its
// retries. It covers what the upstream critest leaves out: kubelet's
// retries of slow creates, restarts of the daemon in the middle of a pod's
// life, many pods at once, and that nothing is left behind.
package critest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/crinode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

func TestMain(m *testing.M) { os.Exit(crinode.Main(m)) }

// A pod's life in kubelet's order: run, pull, create, start, status,
// exec, logs, stop, remove.
func TestPodLifecycle(t *testing.T) {
	n := crinode.New(t, "")
	ctx := context.Background()
	podID, ctrID := n.StartPod(ctx, "life", "sh", "-c", "trap 'exit 143' TERM; echo hello; sleep 3600 & wait")
	st, err := n.RT.PodSandboxStatus(ctx, podID, false)
	if err != nil || st.GetStatus().GetState() != runtime.PodSandboxState_SANDBOX_READY || st.GetStatus().GetNetwork().GetIp() == "" {
		t.Fatalf("pod status: %+v, %v", st.GetStatus(), err)
	}
	cs, err := n.RT.ContainerStatus(ctx, ctrID, false)
	if err != nil || cs.GetStatus().GetState() != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container status: %+v, %v", cs.GetStatus(), err)
	}
	out, _, err := n.RT.ExecSync(ctx, ctrID, []string{"hostname"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(out)) != "life" {
		t.Fatalf("exec hostname: %q, %v", out, err)
	}
	waitFor(t, 10*time.Second, func() error {
		b, err := os.ReadFile(cs.GetStatus().GetLogPath())
		if err != nil || !strings.Contains(string(b), " stdout F hello\n") {
			return fmt.Errorf("log %q, %v", b, err)
		}
		return nil
	})
	if err := n.RT.StopContainer(ctx, ctrID, 1); err != nil {
		t.Fatal(err)
	}
	cs, _ = n.RT.ContainerStatus(ctx, ctrID, false)
	// The shell, PID 1 of its own PID namespace (kubelet's default), ends
	// on the stop signal: 128 + SIGTERM.
	if st := cs.GetStatus(); st.GetState() != runtime.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 143 || st.GetStopSignal() != runtime.Signal_SIGNAL_SIGTERM {
		t.Fatalf("after stop: %+v", cs.GetStatus())
	}
	if err := n.RT.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := n.RT.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if pods, _ := n.RT.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Fatalf("pods left: %v", pods)
	}
}

// slowRunc is a runtime handler whose runtime sleeps before every create
// while a marker file exists: a slow RunPodSandbox or CreateContainer.
func slowRunc(t *testing.T) (extra, marker string) {
	dir := t.TempDir()
	marker = filepath.Join(dir, "slow")
	script := filepath.Join(dir, "slow-runc")
	body := fmt.Sprintf("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = create ] && [ -e %q ] && sleep 3; done\nexec runc \"$@\"\n", marker)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("[cri.runtimes.slow]\n  binary = %q\n", script), marker
}

// kubelet's deadline expires during a slow RunPodSandbox: the pod is
// made anyway, and kubelet's retries get its ID, never "name is
// reserved", and there is one pod.
func TestRetryOfSlowRunPodSandboxGetsTheSamePod(t *testing.T) {
	extra, marker := slowRunc(t)
	n := crinode.New(t, extra)
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	short, err := remote.NewRemoteRuntimeService(context.Background(), "unix://"+n.Socket(), time.Second, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	pc := n.PodConfig("slow")
	// A shared PID namespace: the pod has a pause, which the slow runtime
	// creates.
	pc.Linux.SecurityContext.NamespaceOptions.Pid = runtime.NamespaceMode_POD
	ctx := context.Background()
	var id string
	var deadlines int
	for attempt := 0; attempt < 20 && id == ""; attempt++ {
		got, err := short.RunPodSandbox(ctx, pc, "slow")
		switch status.Code(unwrap(err)) {
		case codes.OK:
			id = got
		case codes.DeadlineExceeded:
			deadlines++
		default:
			t.Fatalf("retry %d: %v (kubelet would retry forever on this)", attempt, err)
		}
	}
	if id == "" || deadlines == 0 {
		t.Fatalf("id %q after %d deadlines", id, deadlines)
	}
	pods, err := n.RT.ListPodSandbox(ctx, nil)
	if err != nil || len(pods) != 1 || pods[0].Id != id || pods[0].State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pods: %+v, %v; want one ready pod %s", pods, err, id)
	}
	// A container create slower than kubelet's deadline: the same.
	if _, err := n.Img.PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, pc); err != nil {
		t.Fatal(err)
	}
	cc := n.ContainerConfig("c", "sleep", "3600")
	var cid string
	for attempt := 0; attempt < 20 && cid == ""; attempt++ {
		got, err := short.CreateContainer(ctx, id, cc, pc)
		switch status.Code(unwrap(err)) {
		case codes.OK:
			cid = got
		case codes.DeadlineExceeded:
		default:
			t.Fatalf("create retry %d: %v", attempt, err)
		}
	}
	ctrs, err := n.RT.ListContainers(ctx, nil)
	if err != nil || len(ctrs) != 1 || ctrs[0].Id != cid {
		t.Fatalf("containers: %+v, %v; want one %s", ctrs, err, cid)
	}
}

// unwrap returns the gRPC status error inside err, which cri-client may
// wrap.
func unwrap(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := status.FromError(e); ok {
			return e
		}
	}
	return err
}

// The daemon is killed in the middle of its pods' lives: the containers
// run on, their output still reaches the logs, and the restarted daemon
// lists them with their state, execs into them, and shows the real exit
// code of one that exited while it was down.
func TestDaemonRestartMidPodLife(t *testing.T) {
	n := crinode.New(t, "")
	ctx := context.Background()
	_, runner := n.StartPod(ctx, "runner", "sh", "-c", "while true; do echo tick; sleep 0.2; done")
	_, quitter := n.StartPod(ctx, "quitter", "sh", "-c", "read x < /proc/self/fd/0 2>/dev/null; sleep 2; exit 7")
	cs, _ := n.RT.ContainerStatus(ctx, runner, false)
	logPath := cs.GetStatus().GetLogPath()
	n.Kill9()
	size := fileSize(t, logPath)
	waitFor(t, 10*time.Second, func() error {
		if s := fileSize(t, logPath); s <= size {
			return fmt.Errorf("log stopped growing at %d bytes with the daemon down", s)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // the quitter exits while the daemon is down
	n.Start()
	cs, err := n.RT.ContainerStatus(ctx, runner, false)
	if err != nil || cs.GetStatus().GetState() != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("runner after restart: %+v, %v", cs.GetStatus(), err)
	}
	out, _, err := n.RT.ExecSync(ctx, runner, []string{"echo", "again"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(out)) != "again" {
		t.Fatalf("exec after restart: %q, %v", out, err)
	}
	waitFor(t, 10*time.Second, func() error {
		cs, err := n.RT.ContainerStatus(ctx, quitter, false)
		if err != nil || cs.GetStatus().GetState() != runtime.ContainerState_CONTAINER_EXITED || cs.GetStatus().GetExitCode() != 7 {
			return fmt.Errorf("quitter: %+v, %v", cs.GetStatus(), err)
		}
		return nil
	})
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func waitFor(t *testing.T, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Many pods at once, each with a container: all ready and running, with
// distinct IPs; stopped and removed, they leave nothing behind (the
// node's cleanup checks netns, IPs, veths, mounts and shims).
func TestManyPodsInParallel(t *testing.T) {
	pods := 50
	if testing.Short() {
		pods = 10
	}
	n := crinode.New(t, "")
	ctx := context.Background()
	if _, err := n.Img.PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ips := make([]string, pods)
	errs := make(chan error, pods)
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("par-%d", i)
			pc := n.PodConfig(name)
			id, err := n.RT.RunPodSandbox(ctx, pc, "")
			if err != nil {
				errs <- fmt.Errorf("%s: run: %w", name, err)
				return
			}
			cid, err := n.RT.CreateContainer(ctx, id, n.ContainerConfig("c", "sleep", "3600"), pc)
			if err == nil {
				err = n.RT.StartContainer(ctx, cid)
			}
			if err != nil {
				errs <- fmt.Errorf("%s: container: %w", name, err)
				return
			}
			st, err := n.RT.PodSandboxStatus(ctx, id, false)
			if err != nil {
				errs <- err
				return
			}
			ips[i] = st.GetStatus().GetNetwork().GetIp()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	seen := map[string]bool{}
	for _, ip := range ips {
		if ip == "" || seen[ip] {
			t.Fatalf("pod IPs not distinct: %q", ips)
		}
		seen[ip] = true
	}
	ctrs, err := n.RT.ListContainers(ctx, &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}})
	if err != nil || len(ctrs) != pods {
		t.Fatalf("%d running containers, %v; want %d", len(ctrs), err, pods)
	}
	// Stopped and removed in parallel, as kubelet does on a drain.
	podsList, _ := n.RT.ListPodSandbox(ctx, nil)
	var wg2 sync.WaitGroup
	for _, p := range podsList {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			if err := n.RT.StopPodSandbox(ctx, p.Id); err != nil {
				t.Error(err)
			}
			if err := n.RT.RemovePodSandbox(ctx, p.Id); err != nil {
				t.Error(err)
			}
		}()
	}
	wg2.Wait()
}
