package cri

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// ListMetricDescriptors describes the metrics of ListPodSandboxMetrics:
// cAdvisor's container metrics (metrics_pod.go).
func (s *Service) ListMetricDescriptors(ctx context.Context, req *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	return &runtime.ListMetricDescriptorsResponse{Descriptors: metricDescriptors()}, nil
}

// metricsParallel is how many pods ListPodSandboxMetrics reads at once:
// the reading is files of /proc and cgroupfs, and a walk of each writable
// layer.
const metricsParallel = 4

// ListPodSandboxMetrics returns the metrics of each ready pod and of its
// running containers, read now.
func (s *Service) ListPodSandboxMetrics(ctx context.Context, req *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	sandboxes, err := s.db.Sandboxes().List(ctx)
	if err != nil {
		return nil, err
	}
	containers, err := s.db.Containers().List(ctx)
	if err != nil {
		return nil, err
	}
	bySandbox := map[string][]meta.Container{}
	for _, c := range containers {
		bySandbox[c.SandboxID] = append(bySandbox[c.SandboxID], c)
	}
	now := time.Now()
	imageFS := statImageFS(s.root)
	out := make([]*runtime.PodSandboxMetrics, len(sandboxes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(metricsParallel)
	for i, sb := range sandboxes {
		if podState(sb.Status) != runtime.PodSandboxState_SANDBOX_READY {
			continue
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			pod, err := decodePod(sb)
			if err != nil {
				klog.FromContext(ctx).V(4).Info("Pod metrics: undecodable record", "sandbox", sb.ID, "err", err)
				return nil
			}
			out[i] = s.podMetrics(gctx, pod, bySandbox[sb.ID], now, imageFS)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	resp := &runtime.ListPodSandboxMetricsResponse{}
	for _, m := range out {
		if m != nil {
			resp.PodMetrics = append(resp.PodMetrics, m)
		}
	}
	return resp, nil
}

// podMetrics are the metrics of pod and of its running containers.
func (s *Service) podMetrics(ctx context.Context, pod podRecord, containers []meta.Container, now time.Time, imageFS fsSample) *runtime.PodSandboxMetrics {
	log := klog.FromContext(ctx).WithValues("sandbox", pod.ID)
	md := pod.config.GetMetadata()
	sample := &metricSample{now: now, started: pod.Status.StartedAt,
		labels: []string{"", pod.ID, "", pod.Labels[LabelName], md.GetNamespace(), md.GetName()}}
	if pid, err := s.podPid(ctx, pod.ID, containers); err != nil {
		log.V(4).Info("Pod metrics: no process in the pod", "err", err)
	} else {
		if pod.config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtime.NamespaceMode_NODE {
			if sample.network, err = readNetDev(pid); err != nil {
				log.V(4).Info("Pod metrics: network", "err", err)
			}
		}
		if cg := podCgroup(pid, pod.info.CgroupParent); cg != nil {
			if err := sample.readCgroup(cg); err != nil {
				log.V(4).Info("Pod metrics: pod cgroup", "err", err)
			}
		}
	}
	out := &runtime.PodSandboxMetrics{PodSandboxId: pod.ID, Metrics: sample.metrics()}
	for _, mc := range containers {
		if mc.Status.State != meta.StateRunning && mc.Status.State != meta.StatePaused {
			continue
		}
		c, err := decodeContainer(mc)
		if err != nil {
			continue
		}
		cs, err := s.containerSample(ctx, c, md, now, imageFS)
		if err != nil {
			log.V(4).Info("Pod metrics: container", "container", c.ID, "err", err)
			continue
		}
		out.ContainerMetrics = append(out.ContainerMetrics, &runtime.ContainerMetrics{ContainerId: c.ID, Metrics: cs.metrics()})
	}
	return out
}

// containerSample reads what the metrics of a running container are made
// of: its cgroup, its processes, its writable layer.
func (s *Service) containerSample(ctx context.Context, c containerRecord, pod *runtime.PodSandboxMetadata, now time.Time, imageFS fsSample) (*metricSample, error) {
	pid, err := s.runningPid(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	cg, err := cgroups.Load(pid)
	if err != nil {
		return nil, err
	}
	sample := &metricSample{now: now, started: c.Status.StartedAt, labels: []string{
		c.config.GetMetadata().GetName(), c.ID, c.info.ImageName, c.Labels[LabelName], pod.GetNamespace(), pod.GetName()}}
	if err := sample.readCgroup(cg); err != nil {
		return nil, err
	}
	if n, ok := openFilesSoftLimit(pid); ok {
		sample.openFilesSoft = &n
	}
	fs := imageFS
	if sn := s.db.Snapshotter(c.Snapshotter); sn != nil {
		if u, err := sn.Usage(ctx, c.SnapshotKey); err == nil {
			fs.usage, fs.hasUsage = uint64(u.Size), true
		}
	}
	sample.fs = &fs
	return sample, nil
}

// podPid is a process in the namespaces and under the cgroup of the pod:
// its pause or, in a pod without one, a running container's init.
func (s *Service) podPid(ctx context.Context, podID string, containers []meta.Container) (int, error) {
	pid, err := s.runningPid(ctx, podID)
	if err == nil || !errdefs.IsNotFound(err) {
		return pid, err
	}
	return s.containerPid(ctx, podID, containers)
}

// containerPid is the init of a running container of the pod, for a pod
// without a pause.
func (s *Service) containerPid(ctx context.Context, podID string, containers []meta.Container) (int, error) {
	for _, c := range containers {
		if c.Status.State == meta.StateRunning || c.Status.State == meta.StatePaused {
			if pid, err := s.runningPid(ctx, c.ID); err == nil {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("pod %s: no running process: %w", podID, errdefs.ErrNotFound)
}

// runningPid is the pid of the init process of a running (or paused)
// task, as its shim says.
func (s *Service) runningPid(ctx context.Context, id string) (int, error) {
	t, err := s.tasks.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	st, err := t.State(ctx)
	if err != nil {
		return 0, err
	}
	if st.Status != shimapi.StatusRunning && st.Status != shimapi.StatusPaused || st.Pid == 0 {
		return 0, fmt.Errorf("task %s is %s: %w", id, st.Status, errdefs.ErrFailedPrecondition)
	}
	return int(st.Pid), nil
}

// podCgroup is the cgroup of a pod whose pause is pid: the pod's cgroup
// parent, found above the pause's cgroup (a runtime may put a process in
// a sub-cgroup of its own) by its last element, which is the slice's name
// with the systemd driver. A pod without a cgroup parent has no cgroup of
// its own: nil.
func podCgroup(pid int, parent string) *cgroups.Cgroup {
	if parent == "" {
		return nil
	}
	cg, err := cgroups.Load(pid)
	if err != nil {
		return nil
	}
	want := path.Base(parent)
	for range 3 {
		cg = cg.Parent()
		if filepath.Base(cg.MemoryDir()) == want {
			return cg
		}
	}
	return nil
}

// readCgroup reads the stats and processes of cg into the sample.
func (sample *metricSample) readCgroup(cg *cgroups.Cgroup) error {
	st, err := cg.Stats()
	if err != nil {
		return err
	}
	sample.cgroup, sample.v2, sample.pressure = st, cg.V2, cg.Unified != ""
	if p, err := cg.Processes(); err == nil {
		sample.processes = &p
	}
	for _, d := range st.IO.Devices {
		sample.io = append(sample.io, namedIODevice{name: blockDeviceName(d.Major, d.Minor), IODevice: d})
	}
	return nil
}

// statImageFS is the size and inodes of the filesystem of the daemon's
// root, where the writable layers are.
func statImageFS(root string) fsSample {
	fs := fsSample{device: root}
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err == nil {
		fs.device = blockDeviceName(unix.Major(st.Dev), unix.Minor(st.Dev))
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(root, &sfs); err == nil {
		fs.limit = sfs.Blocks * uint64(sfs.Bsize)
		fs.inodesTotal, fs.inodesFree, fs.hasStatfs = sfs.Files, sfs.Ffree, true
	}
	return fs
}

// blockDeviceName is /dev/<name> of a block device, "major:minor" for one
// sysfs does not know (the anonymous device of an overlay or tmpfs).
func blockDeviceName(major, minor uint32) string {
	majMin := fmt.Sprintf("%d:%d", major, minor)
	b, err := os.ReadFile("/sys/dev/block/" + majMin + "/uevent")
	if err != nil {
		return majMin
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "DEVNAME="); ok && name != "" {
			return "/dev/" + name
		}
	}
	return majMin
}

// openFilesSoftLimit is the soft RLIMIT_NOFILE of pid, from its limits
// file; false when it cannot be read or is unlimited.
func openFilesSoftLimit(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		// Max open files            1024                 1048576              files
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				return 0, false
			}
			n, err := strconv.ParseUint(f[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// readNetDev reads the interfaces of the network namespace of pid but the
// loopback, from /proc/<pid>/net/dev.
func readNetDev(pid int) ([]netDev, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseNetDev(f)
}

func parseNetDev(r io.Reader) ([]netDev, error) {
	var out []netDev
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" {
			continue // the two header lines, the loopback
		}
		fields := strings.Fields(rest)
		if len(fields) < 16 {
			continue
		}
		var v [16]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(fields[i], 10, 64)
		}
		out = append(out, netDev{name: name,
			rxBytes: v[0], rxPackets: v[1], rxErrors: v[2], rxDropped: v[3],
			txBytes: v[8], txPackets: v[9], txErrors: v[10], txDropped: v[11]})
	}
	return out, sc.Err()
}
