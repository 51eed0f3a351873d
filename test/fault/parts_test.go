package fault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
)

// A pod's shim is killed with SIGKILL: its containers are reported
// exited, and the pod stops and goes without leaks (the node's cleanup
// checks netns, IPs, mounts, shims and cgroups).
func TestShimKilled(t *testing.T) {
	n := crinode.New(t, "")
	ctx := context.Background()
	podID, ctrID := n.StartPod(ctx, "shimkill", "sleep", "3600")
	shims := shimsOf(t, n, podID)
	if len(shims) != 1 {
		t.Fatalf("shims of pod %s: %v", podID, shims)
	}
	if err := syscall.Kill(shims[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The daemon sees its connection to the shim end and reports the
	// container exited with the reason.
	waitFor(t, 20*time.Second, func() error {
		st, err := n.RT.ContainerStatus(ctx, ctrID, false)
		if err != nil {
			return err
		}
		if s := st.GetStatus(); s.GetState() != runtime.ContainerState_CONTAINER_EXITED || s.GetReason() != "ShimGone" {
			return fmt.Errorf("container after its shim died: %v %q", s.GetState(), s.GetReason())
		}
		return nil
	})
	if err := n.RT.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := n.RT.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
}

// shimsOf returns the pids of the shims of the pod id.
func shimsOf(t *testing.T, n *crinode.Node, id string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), "cri-runtime-shim") || !strings.Contains(string(b), id) || !strings.Contains(string(b), n.SockDir) {
			continue
		}
		pid, _ := strconv.Atoi(e.Name())
		out = append(out, pid)
	}
	return out
}

// A CNI plugin that hangs on ADD past the call's deadline: the call fails
// with the deadline's class, the undo steps run (nothing leaks), and once
// the plugin is well again kubelet's retry makes the pod.
func TestCNIHangsOnAdd(t *testing.T) {
	n := crinode.New(t, "  plugin_timeout = \"2s\"\n") // a key of [cni], the last table
	marker := n.Net.Hang(t, "bridge", "ADD")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pc := n.PodConfig("cnihang")
	_, err := n.RT.RunPodSandbox(ctx, pc, "")
	if c := status.Code(cause(err)); c != codes.Unavailable && c != codes.DeadlineExceeded {
		t.Fatalf("RunPodSandbox with a hung plugin: %v, want Unavailable or DeadlineExceeded", err)
	}
	if pods, _ := n.RT.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Fatalf("a pod left by the failed start: %+v", pods)
	}
	n.Net.AssertClean(t)
	os.Remove(marker)
	if _, err := n.RT.RunPodSandbox(ctx, pc, ""); err != nil {
		t.Fatalf("retry once the plugin is well: %v", err)
	}
}

// A CNI plugin that fails on DEL: StopPodSandbox fails with a clear error
// and keeps the pod attached (nothing is leaked behind the failure); once
// the plugin is well, the retry detaches it.
func TestCNIFailsOnDel(t *testing.T) {
	n := crinode.New(t, "")
	marker := filepath.Join(t.TempDir(), "fail-del")
	n.Net.WrapPlugin(t, "bridge", fmt.Sprintf(`if [ "$CNI_COMMAND" = DEL ] && [ -e %q ]; then echo '{"cniVersion":"1.0.0","code":11,"msg":"injected DEL failure"}'; exit 1; fi`, marker))
	ctx := context.Background()
	podID, _ := n.StartPod(ctx, "cnidel", "sleep", "3600")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := n.RT.StopPodSandbox(ctx, podID)
	if err == nil || !strings.Contains(err.Error(), "injected DEL failure") {
		t.Fatalf("StopPodSandbox with DEL failing: %v, want the plugin's error", err)
	}
	os.Remove(marker)
	if err := n.RT.StopPodSandbox(ctx, podID); err != nil {
		t.Fatalf("retry of the stop: %v", err)
	}
	if err := n.RT.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
}

// The OCI runtime fails half-way through a container's create: the call
// fails with the runtime's error, the undo steps remove the record, the
// rootfs and the task, and the retry, with the runtime well, succeeds.
func TestRuntimeFailsDuringCreate(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "fail")
	script := filepath.Join(dir, "failing-runc")
	// runc create makes the container's state and cgroup, then this
	// wrapper kills it: a create failed half-way.
	body := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do
  if [ "$a" = create ] && [ -e %q ]; then
    runc "$@"; echo "injected failure after create" >&2; exit 1
  fi
done
exec runc "$@"
`, marker)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	n := crinode.New(t, fmt.Sprintf("[cri.runtimes.failing]\n  binary = %q\n", script))
	ctx := context.Background()
	pc := n.PodConfig("rtfail")
	podID, err := n.RT.RunPodSandbox(ctx, pc, "failing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Img.PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, pc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cc := n.ContainerConfig("c", "sleep", "3600")
	_, err = n.RT.CreateContainer(ctx, podID, cc, pc)
	if err == nil || !strings.Contains(err.Error(), "failing-runc") {
		t.Fatalf("CreateContainer with the runtime failing: %v, want an error naming the runtime", err)
	}
	if ctrs, _ := n.RT.ListContainers(ctx, nil); len(ctrs) != 0 {
		t.Fatalf("containers left by the failed create: %+v", ctrs)
	}
	os.Remove(marker)
	cid, err := n.RT.CreateContainer(ctx, podID, cc, pc)
	if err != nil {
		t.Fatalf("retry with the runtime well: %v", err)
	}
	if err := n.RT.StartContainer(ctx, cid); err != nil {
		t.Fatal(err)
	}
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
