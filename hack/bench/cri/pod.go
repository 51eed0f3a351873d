package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podNamespace is the Kubernetes namespace of the bench's pods, and the
// value of their benchLabel: what cleanup looks for.
const (
	podNamespace = "podbench"
	benchLabel   = "podbench"
)

// The process of the container: a shell that exits on the stop signal at
// once (PID 1 of its PID namespace ignores signals it does not handle),
// so that StopContainer times the stop, not the grace period. It logs
// readyLine once it handles the signal: the bench waits for it (untimed)
// before a teardown, which would else wait out the grace period when the
// signal comes first.
var command = []string{"sh", "-c", "trap 'exit 0' TERM; echo " + readyLine + "; sleep 2147483647 & wait"}

const readyLine = "podbench-ready"

// The paths kubelet masks and makes read-only in a container that is not
// privileged (the defaults of its security context).
var (
	maskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// runtimeUnderTest is one CRI endpoint, through kubelet's clients.
type runtimeUnderTest struct {
	name  string
	rt    internalapi.RuntimeService
	img   internalapi.ImageManagerService
	image string // the container image
	dir   string // kubelet's side: pod log and data directories
	// cpuFile is the CPU usage file of the runtime's cgroup; "" unknown.
	cpuFile string
	// procsFile is the cgroup.procs of the runtime's cgroup and
	// daemonPID its daemon: the memory figures; "" and 0 unknown.
	procsFile string
	daemonPID int
}

// pod is one pod of the bench as kubelet would run it.
type pod struct {
	cfg     *runtime.PodSandboxConfig
	ctr     *runtime.ContainerConfig
	id      string // sandbox
	ctrID   string
	podDir  string
	logPath string // the container's log
}

// newPod writes kubelet's side of a pod (its data directory, the
// container's /etc/hosts and termination log) and returns the configs
// kubelet would send for it.
func (r *runtimeUnderTest) newPod(name string) (*pod, error) {
	uid := randomUID()
	podDir := filepath.Join(r.dir, "pods", uid)
	logDir := filepath.Join(r.dir, "log", podNamespace+"_"+name+"_"+uid)
	hosts := filepath.Join(podDir, "etc-hosts")
	termLog := filepath.Join(podDir, "containers", "main", randomUID()[:8])
	// kubelet makes the pod's log directory and the container's in it.
	for _, d := range []string{filepath.Join(logDir, "main"), filepath.Dir(termLog)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n::1\tlocalhost\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(termLog, nil, 0o666); err != nil {
		return nil, err
	}
	ns := &runtime.NamespaceOption{Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD}
	labels := map[string]string{
		"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": podNamespace, "io.kubernetes.pod.uid": uid,
		benchLabel: podNamespace,
	}
	cfg := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: podNamespace, Uid: uid},
		Hostname:     name,
		LogDirectory: logDir,
		DnsConfig: &runtime.DNSConfig{Servers: []string{"10.96.0.10"},
			Searches: []string{podNamespace + ".svc.cluster.local", "svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}},
		Labels:      labels,
		Annotations: map[string]string{"kubernetes.io/config.source": "api", "kubernetes.io/config.seen": time.Now().Format(time.RFC3339Nano)},
		Linux: &runtime.LinuxPodSandboxConfig{
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: ns,
				Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}},
		},
	}
	ctrLabels := map[string]string{"io.kubernetes.container.name": "main"}
	for k, v := range labels {
		ctrLabels[k] = v
	}
	ctr := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "main"},
		Image:    &runtime.ImageSpec{Image: r.image, UserSpecifiedImage: r.image},
		Command:  command,
		Envs: []*runtime.KeyValue{{Key: "KUBERNETES_SERVICE_HOST", Value: []byte("10.96.0.1")}, {Key: "KUBERNETES_SERVICE_PORT", Value: []byte("443")},
			{Key: "KUBERNETES_PORT", Value: []byte("tcp://10.96.0.1:443")}},
		Mounts: []*runtime.Mount{
			{ContainerPath: "/etc/hosts", HostPath: hosts},
			{ContainerPath: "/dev/termination-log", HostPath: termLog},
		},
		Labels: ctrLabels,
		Annotations: map[string]string{"io.kubernetes.container.restartCount": "0",
			"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
		LogPath: "main/0.log",
		Linux: &runtime.LinuxContainerConfig{
			Resources: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuShares: 2, OomScoreAdj: 1000},
			SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: ns,
				Seccomp:     &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined},
				MaskedPaths: maskedPaths, ReadonlyPaths: readonlyPaths},
		},
	}
	return &pod{cfg: cfg, ctr: ctr, podDir: podDir, logPath: filepath.Join(logDir, ctr.LogPath)}, nil
}

func randomUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// timer records the calls of a phase into rec (none when nil).
type timer struct {
	rec   *recorder
	round int
}

func (t timer) add(metric string, d time.Duration) {
	if t.rec != nil {
		t.rec.add(metric, t.round, d)
	}
}

func (t timer) call(metric string, fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%s: %w", metric, err)
	}
	t.add(metric, d)
	return d, nil
}

// start starts p in kubelet's order: RunPodSandbox, PodSandboxStatus (for
// the pod's IPs), then for its container ImageStatus (kubelet's
// EnsureImageExists; the image was pulled before), CreateContainer,
// StartContainer. It returns the time of RunPodSandbox and of the whole.
func (r *runtimeUnderTest) start(ctx context.Context, p *pod, t timer) (run, total time.Duration, err error) {
	begin := time.Now()
	if run, err = t.call(mRun, func() (err error) {
		p.id, err = r.rt.RunPodSandbox(ctx, p.cfg, "")
		return err
	}); err != nil {
		return 0, 0, err
	}
	if _, err = t.call(mPodStatus, func() error {
		st, err := r.rt.PodSandboxStatus(ctx, p.id, false)
		if err == nil && st.GetStatus().GetNetwork().GetIp() == "" {
			err = fmt.Errorf("pod %s has no IP", p.id)
		}
		return err
	}); err != nil {
		return 0, 0, err
	}
	if _, err = t.call(mImage, func() error {
		st, err := r.img.ImageStatus(ctx, p.ctr.Image, false)
		if err == nil && st.GetImage() == nil {
			err = fmt.Errorf("image %s is not present: pull it first", r.image)
		}
		return err
	}); err != nil {
		return 0, 0, err
	}
	create, err := t.call(mCreate, func() (err error) {
		p.ctrID, err = r.rt.CreateContainer(ctx, p.id, p.ctr, p.cfg)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	startCtr, err := t.call(mStart, func() error { return r.rt.StartContainer(ctx, p.ctrID) })
	if err != nil {
		return 0, 0, err
	}
	t.add(mCreateStrt, create+startCtr)
	return run, time.Since(begin), nil
}

// waitReady waits until p's container logged readyLine: it handles the
// stop signal.
func (p *pod) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		b, err := os.ReadFile(p.logPath)
		if err == nil && bytes.Contains(b, []byte(readyLine)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container %s did not log %q in %s: %v", p.ctrID, readyLine, p.logPath, err)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// stop tears p down in kubelet's order: StopContainer (its grace period),
// StopPodSandbox, then, as kubelet's garbage collection does,
// RemoveContainer and RemovePodSandbox. It returns the time of the whole
// (from after waitReady, untimed), and removes kubelet's side of the pod.
func (r *runtimeUnderTest) stop(ctx context.Context, p *pod, t timer) (time.Duration, error) {
	if err := p.waitReady(ctx); err != nil {
		return 0, err
	}
	begin := time.Now()
	steps := []struct {
		metric string
		fn     func() error
	}{
		{mStopCtr, func() error { return r.rt.StopContainer(ctx, p.ctrID, 30) }},
		{mStopPod, func() error { return r.rt.StopPodSandbox(ctx, p.id) }},
		{mRemoveCtr, func() error { return r.rt.RemoveContainer(ctx, p.ctrID) }},
		{mRemovePod, func() error { return r.rt.RemovePodSandbox(ctx, p.id) }},
	}
	for _, s := range steps {
		if _, err := t.call(s.metric, s.fn); err != nil {
			return 0, err
		}
	}
	total := time.Since(begin)
	return total, os.RemoveAll(p.podDir)
}

// ensureImage pulls ref when the runtime lacks it, as kubelet does
// before a container's create; the bench does it before the timings.
func (r *runtimeUnderTest) ensureImage(ctx context.Context, ref string) error {
	spec := &runtime.ImageSpec{Image: ref}
	st, err := r.img.ImageStatus(ctx, spec, false)
	if err != nil {
		return fmt.Errorf("%s: ImageStatus %s: %w", r.name, ref, err)
	}
	if st.GetImage() != nil {
		return nil
	}
	if _, err := r.img.PullImage(ctx, spec, nil, nil); err != nil {
		return fmt.Errorf("%s: PullImage %s: %w", r.name, ref, err)
	}
	return nil
}

// removeAll stops and removes every pod of the bench left on the runtime
// (after a failure): best effort.
func (r *runtimeUnderTest) removeAll(ctx context.Context) {
	pods, err := r.rt.ListPodSandbox(ctx, &runtime.PodSandboxFilter{LabelSelector: map[string]string{benchLabel: podNamespace}})
	if err != nil {
		return
	}
	for _, p := range pods {
		ctrs, _ := r.rt.ListContainers(ctx, &runtime.ContainerFilter{PodSandboxId: p.Id})
		for _, c := range ctrs {
			_ = r.rt.StopContainer(ctx, c.Id, 0)
			_ = r.rt.RemoveContainer(ctx, c.Id)
		}
		_ = r.rt.StopPodSandbox(ctx, p.Id)
		_ = r.rt.RemovePodSandbox(ctx, p.Id)
	}
}
