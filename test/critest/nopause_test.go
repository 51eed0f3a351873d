package critest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/internal/crinode"
)

// A pod that shares no PID namespace runs no pause container: its IPC
// and UTS namespaces are pinned on files. Its containers share them, see
// its hostname and sysctls, and it stays ready through a daemon restart,
// until it is stopped; then nothing of it is left (the node's cleanup
// checks the mounts). A pod sharing its PID namespace still has a pause,
// its PID 1.
func TestPodWithoutPause(t *testing.T) {
	// A cgroup parent, as kubelet's: the pod's stats are its cgroup's.
	// Removed after the node's cleanup (cleanups run last first), once
	// the pods' cgroups under it are gone.
	parent := crinode.CgroupParent(t, "nopause")
	n := crinode.New(t, "")
	ctx := context.Background()
	pc := n.PodConfig("nopause")
	pc.Linux.Sysctls = map[string]string{"kernel.shmmax": "1000000", "net.core.somaxconn": "1234"}
	pc.Linux.CgroupParent = parent
	podID, err := n.RT.RunPodSandbox(ctx, pc, "")
	if err != nil {
		t.Fatal(err)
	}
	if pid := podPid(t, n, podID); pid != 0 {
		t.Fatalf("pod %s has a pause process, pid %v", podID, pid)
	}
	if _, err := n.Img.PullImage(ctx, &runtime.ImageSpec{Image: n.Busybox}, nil, pc); err != nil {
		t.Fatal(err)
	}
	start := func(name string) string {
		id, err := n.RT.CreateContainer(ctx, podID, n.ContainerConfig(name, "sleep", "3600"), pc)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.RT.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	c1, c2 := start("c1"), start("c2")
	// Stats and metrics of the pod, read through its containers.
	ps, err := n.RT.PodSandboxStats(ctx, podID)
	if err != nil || ps.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || ps.GetLinux().GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("pod stats: %+v, %v", ps.GetLinux(), err)
	}
	if names := podMetricNames(t, n, podID); !names["container_network_receive_bytes_total"] || !names["container_memory_working_set_bytes"] {
		t.Errorf("pod metrics: %v, want the pod's network and cgroup figures", names)
	}
	want := map[string]string{
		"hostname":                                          "nopause",
		"cat /proc/sys/kernel/shmmax":                       "1000000",
		"cat /proc/sys/net/core/somaxconn":                  "1234",
		"cat /proc/sys/net/ipv4/ip_unprivileged_port_start": "0",
	}
	for cmd, w := range want {
		if got := execOut(t, n, c1, cmd); got != w {
			t.Errorf("%s in the pod: %q, want %q", cmd, got, w)
		}
	}
	for _, ns := range []string{"ipc", "uts", "net"} {
		a, b := execOut(t, n, c1, "readlink /proc/self/ns/"+ns), execOut(t, n, c2, "readlink /proc/self/ns/"+ns)
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if a != b || a == host {
			t.Errorf("%s namespace: %q and %q in the containers, %q on the host: want one of the pod's own", ns, a, b, host)
		}
	}
	if got := execOut(t, n, c1, "cat /proc/sys/kernel/shmmax"); got == hostSysctl(t, "kernel/shmmax") {
		t.Errorf("kernel.shmmax of the pod is the host's")
	}

	// A restart keeps the pod ready, and a new container joins its
	// namespaces.
	n.Stop()
	n.Start()
	st, err := n.RT.PodSandboxStatus(ctx, podID, false)
	if err != nil || st.GetStatus().GetState() != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod after a restart: %v, %v", st.GetStatus().GetState(), err)
	}
	c3 := start("c3")
	if a, b := execOut(t, n, c1, "readlink /proc/self/ns/ipc"), execOut(t, n, c3, "readlink /proc/self/ns/ipc"); a != b {
		t.Errorf("ipc namespace after a restart: %q, %q", a, b)
	}

	if err := n.RT.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	st, err = n.RT.PodSandboxStatus(ctx, podID, false)
	if err != nil || st.GetStatus().GetState() != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pod after stop: %v, %v", st.GetStatus().GetState(), err)
	}
	for _, m := range crinode.MountsUnder(t, n.SockDir) {
		if strings.Contains(m, podID) && !strings.Contains(m, "/tasks/") {
			t.Errorf("a mount of the pod is left after its stop: %s", m)
		}
	}
	if err := n.RT.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}

	// Shared PID namespace: a pause, PID 1 of the pod.
	pc = n.PodConfig("sharedpid")
	pc.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
	podID, err = n.RT.RunPodSandbox(ctx, pc, "")
	if err != nil {
		t.Fatal(err)
	}
	if podPid(t, n, podID) == 0 {
		t.Fatalf("pod %s sharing its PID namespace has no pause", podID)
	}
	cc := n.ContainerConfig("c", "sleep", "3600")
	cc.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
	id, err := n.RT.CreateContainer(ctx, podID, cc, pc)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.RT.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The test pause image is sleep. runc start returns before the
	// pause's runc init has exec'd it: on a loaded machine, PID 1 may
	// still be runc init for a moment.
	waitFor(t, 10*time.Second, func() error {
		if got := execOut(t, n, id, "cat /proc/1/cmdline | tr '\\0' ' '"); !strings.HasPrefix(got, "/bin/sleep") {
			return fmt.Errorf("PID 1 of a pod sharing its PID namespace: %q, want the pause", got)
		}
		return nil
	})
}

// podPid is the pid of the pod's pause, from its verbose status; 0 if
// none.
func podPid(t *testing.T, n *crinode.Node, id string) float64 {
	t.Helper()
	st, err := n.RT.PodSandboxStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("verbose info %q: %v", st.GetInfo(), err)
	}
	pid, _ := info["pid"].(float64)
	return pid
}

// execOut runs sh -c cmd in the container and returns its output, trimmed.
func execOut(t *testing.T, n *crinode.Node, id, cmd string) string {
	t.Helper()
	out, stderr, err := n.RT.ExecSync(context.Background(), id, []string{"sh", "-c", cmd}, 10*time.Second)
	if err != nil {
		t.Fatalf("exec %q in %s: %v (%s)", cmd, id, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

func hostSysctl(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("/proc/sys", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// podMetricNames are the names of the pod-level metrics (container "")
// ListPodSandboxMetrics reports for pod id.
func podMetricNames(t *testing.T, n *crinode.Node, id string) map[string]bool {
	t.Helper()
	ms, err := n.RT.ListPodSandboxMetrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, pm := range ms {
		if pm.GetPodSandboxId() == id {
			for _, m := range pm.GetMetrics() {
				out[m.GetName()] = true
			}
		}
	}
	return out
}
