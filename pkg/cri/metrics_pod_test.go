package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
)

// cadvisorMetrics are the container metrics kubelet serves from cAdvisor
// that the upstream conformance suite (cri-tools 1.37) expects of a
// runtime's ListMetricDescriptors.
var cadvisorMetrics = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
	"container_cpu_cfs_throttled_seconds_total", "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
	"container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
	"container_fs_writes_bytes_total", "container_fs_writes_total", "container_hugetlb_max_usage_bytes",
	"container_hugetlb_usage_bytes", "container_last_seen", "container_memory_cache", "container_memory_failcnt",
	"container_memory_failures_total", "container_memory_kernel_usage", "container_memory_mapped_file",
	"container_memory_max_usage_bytes", "container_memory_rss", "container_memory_swap", "container_memory_usage_bytes",
	"container_memory_working_set_bytes", "container_network_receive_bytes_total", "container_network_receive_errors_total",
	"container_network_receive_packets_dropped_total", "container_network_receive_packets_total",
	"container_network_transmit_bytes_total", "container_network_transmit_errors_total",
	"container_network_transmit_packets_dropped_total", "container_network_transmit_packets_total",
	"container_oom_events_total", "container_pressure_cpu_stalled_seconds_total", "container_pressure_cpu_waiting_seconds_total",
	"container_pressure_io_stalled_seconds_total", "container_pressure_io_waiting_seconds_total",
	"container_pressure_memory_stalled_seconds_total", "container_pressure_memory_waiting_seconds_total",
	"container_processes", "container_sockets", "container_spec_cpu_period", "container_spec_cpu_quota",
	"container_spec_cpu_shares", "container_spec_memory_limit_bytes", "container_spec_memory_reservation_limit_bytes",
	"container_spec_memory_swap_limit_bytes", "container_start_time_seconds", "container_threads", "container_threads_max",
	"container_ulimits_soft",
}

func TestMetricDescriptors(t *testing.T) {
	descs := metricDescriptors()
	byName := map[string]*runtime.MetricDescriptor{}
	for _, d := range descs {
		if byName[d.Name] != nil {
			t.Errorf("%s described twice", d.Name)
		}
		byName[d.Name] = d
		if d.Help == "" || !slices.Equal(d.LabelKeys[:len(metricLabels)], metricLabels) {
			t.Errorf("%s: help %q, label keys %v", d.Name, d.Help, d.LabelKeys)
		}
	}
	for _, name := range cadvisorMetrics {
		if byName[name] == nil {
			t.Errorf("%s is not described", name)
		}
	}
	for name, extra := range map[string][]string{
		"container_cpu_usage_seconds_total":     {"cpu"},
		"container_memory_failures_total":       {"failure_type", "scope"},
		"container_fs_usage_bytes":              {"device"},
		"container_blkio_device_usage_total":    {"device", "major", "minor", "operation"},
		"container_network_receive_bytes_total": {"interface"},
		"container_hugetlb_usage_bytes":         {"pagesize"},
		"container_ulimits_soft":                {"ulimit"},
		"container_memory_rss":                  nil,
	} {
		if got := byName[name].LabelKeys[len(metricLabels):]; !slices.Equal(got, extra) {
			t.Errorf("%s: own label keys %v, want %v", name, got, extra)
		}
	}
}

// fullSample has every part a container's sample can have.
func fullSample() *metricSample {
	openFiles := uint64(1024)
	return &metricSample{
		labels: []string{"app", "c1", "busybox", "k8s_app_pod_ns_uid_0", "ns", "pod"},
		now:    time.Unix(2000, 0), started: time.Unix(1000, 500),
		cgroup: &cgroups.Stats{
			CPU: cgroups.CPUStats{UsageNanos: 2_500_000_000, UserNanos: 1_900_000_000, SystemNanos: 600_000_000,
				Periods: 30, ThrottledPeriods: 7, ThrottledNanos: 3_100_000_000},
			Memory: cgroups.MemoryStats{Usage: 10 << 20, WorkingSet: 9 << 20, Limit: 64 << 20, RSS: 6 << 20, Cache: 4 << 20,
				MappedFile: 1 << 20, Kernel: 1 << 19, Swap: 1 << 18, MaxUsage: 12 << 20, Failcnt: 3, OOMKills: 1,
				Pgfault: 100, Pgmajfault: 2, TotalPgfault: 150, TotalPgmajfault: 4},
			Pids:    cgroups.PidsStats{Current: 5, Limit: 100},
			Hugetlb: []cgroups.HugetlbStats{{PageSize: "2MB", Usage: 2 << 20, MaxUsage: 4 << 20, Failcnt: 1}},
			Limits: cgroups.Limits{CPUShares: 512, CPUQuota: 20000, CPUPeriod: 100000,
				MemoryReservation: 32 << 20, MemorySwapLimit: 128 << 20},
			Pressure: cgroups.Pressure{CPU: cgroups.PSI{Some: 7_500_000, Full: 2_000_000}},
		},
		pressure:      true,
		processes:     &cgroups.Processes{Count: 2, FDs: 9, Sockets: 1},
		openFilesSoft: &openFiles,
		fs:            &fsSample{device: "/dev/vda", usage: 8192, limit: 1 << 30, inodesTotal: 1000, inodesFree: 600, hasUsage: true, hasStatfs: true},
		io:            []namedIODevice{{name: "/dev/vda", IODevice: cgroups.IODevice{Major: 254, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, ReadOps: 1, WriteOps: 2}}},
		network:       []netDev{{name: "eth0", rxBytes: 1456, rxPackets: 16, txBytes: 472, txPackets: 6, rxDropped: 1, txErrors: 2}},
	}
}

// series renders metrics as "name{extra label values} value", the base
// labels checked apart.
func series(t *testing.T, s *metricSample) map[string]uint64 {
	t.Helper()
	keys := map[string]int{}
	for _, d := range metricDescriptors() {
		keys[d.Name] = len(d.LabelKeys)
	}
	out := map[string]uint64{}
	for _, m := range s.metrics() {
		if len(m.LabelValues) != keys[m.Name] {
			t.Errorf("%s: %d label values for %d keys", m.Name, len(m.LabelValues), keys[m.Name])
			continue
		}
		if !slices.Equal(m.LabelValues[:len(s.labels)], s.labels) || m.Timestamp != 0 {
			t.Errorf("%s: labels %v, timestamp %d", m.Name, m.LabelValues, m.Timestamp)
		}
		k := m.Name + "{" + strings.Join(m.LabelValues[len(s.labels):], ",") + "}"
		if _, dup := out[k]; dup {
			t.Errorf("%s sent twice", k)
		}
		out[k] = m.GetValue().GetValue()
	}
	return out
}

func TestSampleMetrics(t *testing.T) {
	got := series(t, fullSample())
	want := map[string]uint64{
		"container_last_seen{}":                                    2000,
		"container_start_time_seconds{}":                           1000,
		"container_cpu_usage_seconds_total{total}":                 2,
		"container_cpu_user_seconds_total{}":                       1,
		"container_cpu_system_seconds_total{}":                     0,
		"container_cpu_cfs_periods_total{}":                        30,
		"container_cpu_cfs_throttled_periods_total{}":              7,
		"container_cpu_cfs_throttled_seconds_total{}":              3,
		"container_memory_cache{}":                                 4 << 20,
		"container_memory_rss{}":                                   6 << 20,
		"container_memory_kernel_usage{}":                          1 << 19,
		"container_memory_mapped_file{}":                           1 << 20,
		"container_memory_swap{}":                                  1 << 18,
		"container_memory_failcnt{}":                               3,
		"container_memory_usage_bytes{}":                           10 << 20,
		"container_memory_max_usage_bytes{}":                       12 << 20,
		"container_memory_working_set_bytes{}":                     9 << 20,
		"container_memory_failures_total{pgfault,container}":       100,
		"container_memory_failures_total{pgmajfault,container}":    2,
		"container_memory_failures_total{pgfault,hierarchy}":       150,
		"container_memory_failures_total{pgmajfault,hierarchy}":    4,
		"container_oom_events_total{}":                             1,
		"container_spec_cpu_period{}":                              100000,
		"container_spec_cpu_quota{}":                               20000,
		"container_spec_cpu_shares{}":                              512,
		"container_spec_memory_limit_bytes{}":                      64 << 20,
		"container_spec_memory_reservation_limit_bytes{}":          32 << 20,
		"container_spec_memory_swap_limit_bytes{}":                 128 << 20,
		"container_processes{}":                                    2,
		"container_file_descriptors{}":                             9,
		"container_sockets{}":                                      1,
		"container_threads{}":                                      5,
		"container_threads_max{}":                                  100,
		"container_ulimits_soft{max_open_files}":                   1024,
		"container_hugetlb_failcnt{2MB}":                           1,
		"container_hugetlb_usage_bytes{2MB}":                       2 << 20,
		"container_hugetlb_max_usage_bytes{2MB}":                   4 << 20,
		"container_pressure_cpu_stalled_seconds_total{}":           2,
		"container_pressure_cpu_waiting_seconds_total{}":           7,
		"container_pressure_memory_stalled_seconds_total{}":        0,
		"container_pressure_memory_waiting_seconds_total{}":        0,
		"container_pressure_io_stalled_seconds_total{}":            0,
		"container_pressure_io_waiting_seconds_total{}":            0,
		"container_fs_inodes_free{/dev/vda}":                       600,
		"container_fs_inodes_total{/dev/vda}":                      1000,
		"container_fs_limit_bytes{/dev/vda}":                       1 << 30,
		"container_fs_usage_bytes{/dev/vda}":                       8192,
		"container_fs_reads_bytes_total{/dev/vda}":                 4096,
		"container_fs_reads_total{/dev/vda}":                       1,
		"container_fs_writes_bytes_total{/dev/vda}":                8192,
		"container_fs_writes_total{/dev/vda}":                      2,
		"container_blkio_device_usage_total{/dev/vda,254,0,Read}":  4096,
		"container_blkio_device_usage_total{/dev/vda,254,0,Write}": 8192,
		"container_network_receive_bytes_total{eth0}":              1456,
		"container_network_receive_packets_total{eth0}":            16,
		"container_network_receive_packets_dropped_total{eth0}":    1,
		"container_network_receive_errors_total{eth0}":             0,
		"container_network_transmit_bytes_total{eth0}":             472,
		"container_network_transmit_packets_total{eth0}":           6,
		"container_network_transmit_packets_dropped_total{eth0}":   0,
		"container_network_transmit_errors_total{eth0}":            2,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %d (sent %v), want %d", k, g, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s sent, not expected", k)
		}
	}
	// Every described metric has a value for a sample that has every part.
	names := map[string]bool{}
	for k := range got {
		names[k[:strings.IndexByte(k, '{')]] = true
	}
	for _, d := range metricDescriptors() {
		if !names[d.Name] {
			t.Errorf("%s has no value", d.Name)
		}
	}
}

// TestSampleMetricsLeftOut: what cannot be told is not sent as a 0.
func TestSampleMetricsLeftOut(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *metricSample)
		absent []string
	}{
		{"no CPU quota: no CFS figures (cAdvisor's rule)", func(s *metricSample) { s.cgroup.Limits.CPUQuota = 0 },
			[]string{"container_cpu_cfs_periods_total{}", "container_cpu_cfs_throttled_periods_total{}",
				"container_cpu_cfs_throttled_seconds_total{}", "container_spec_cpu_quota{}"}},
		{"a kernel that keeps no max usage", func(s *metricSample) { s.cgroup.Memory.MaxUsage = 0 },
			[]string{"container_memory_max_usage_bytes{}"}},
		{"cgroup v2 keeps no huge page max", func(s *metricSample) { s.v2 = true },
			[]string{"container_hugetlb_max_usage_bytes{2MB}"}},
		{"no pressure stall information", func(s *metricSample) { s.pressure = false },
			[]string{"container_pressure_cpu_stalled_seconds_total{}", "container_pressure_io_waiting_seconds_total{}"}},
		{"an unlimited or unreadable ulimit", func(s *metricSample) { s.openFilesSoft = nil },
			[]string{"container_ulimits_soft{max_open_files}"}},
		{"a writable layer whose usage could not be read", func(s *metricSample) { s.fs.hasUsage = false },
			[]string{"container_fs_usage_bytes{/dev/vda}"}},
		{"no start time", func(s *metricSample) { s.started = time.Time{} },
			[]string{"container_start_time_seconds{}"}},
	} {
		s := fullSample()
		tc.change(s)
		got := series(t, s)
		for _, k := range tc.absent {
			if _, ok := got[k]; ok {
				t.Errorf("%s: %s sent", tc.name, k)
			}
		}
		if _, ok := got["container_memory_usage_bytes{}"]; !ok {
			t.Errorf("%s: the rest is not sent", tc.name)
		}
	}
	// A pod without a cgroup of its own (no cgroup parent) has its
	// network and times only.
	pod := &metricSample{labels: []string{"", "p1", "", "k8s_POD_pod_ns_uid_0", "ns", "pod"}, now: time.Unix(2000, 0),
		network: []netDev{{name: "eth0", rxBytes: 1}}}
	got := series(t, pod)
	if len(got) != 9 || got["container_network_receive_bytes_total{eth0}"] != 1 || got["container_last_seen{}"] != 2000 {
		t.Errorf("pod metrics %v: want last seen and 8 network metrics", got)
	}
}

func TestParseNetDev(t *testing.T) {
	const netDevFile = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    1296      16    1    2    0     0          0         0      698       9    3    4    0     0       0          0
 net1: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0
`
	got, err := parseNetDev(strings.NewReader(netDevFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []netDev{
		{name: "eth0", rxBytes: 1296, rxPackets: 16, rxErrors: 1, rxDropped: 2, txBytes: 698, txPackets: 9, txErrors: 3, txDropped: 4},
		{name: "net1", rxBytes: 5, rxPackets: 1, txBytes: 7, txPackets: 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("interfaces %+v\nwant %+v", got, want)
	}
}

// TestHostSources reads the host's own files as the metrics do: this
// process's open files limit, the block device of the root filesystem,
// this process's network namespace.
func TestHostSources(t *testing.T) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	n, ok := openFilesSoftLimit(os.Getpid())
	if rl.Cur != unix.RLIM_INFINITY && (!ok || n != rl.Cur) {
		t.Errorf("open files soft limit %d, %v: want %d", n, ok, rl.Cur)
	}
	if _, ok := openFilesSoftLimit(1 << 30); ok {
		t.Error("the limit of a pid that does not exist")
	}
	fs := statImageFS("/")
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	majMin := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	if _, err := os.Stat("/sys/dev/block/" + majMin); err == nil && !strings.HasPrefix(fs.device, "/dev/") {
		t.Errorf("device of / is %q, want /dev/<name> of block device %s", fs.device, majMin)
	}
	if !fs.hasStatfs || fs.limit == 0 || fs.inodesTotal == 0 && fs.inodesFree == 0 {
		t.Errorf("image filesystem %+v: want its size and inodes", fs)
	}
	if blockDeviceName(0, 0) != "0:0" {
		t.Errorf("an unknown device is named %q", blockDeviceName(0, 0))
	}
	// This process stands for a pause: the cgroup above its own is found
	// by the last element of the cgroup parent, as cgroupfs and systemd
	// name it.
	self, err := cgroups.Load(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	above := filepath.Dir(self.MemoryDir())
	for _, parent := range []string{"/kubepods/" + filepath.Base(above), filepath.Base(above)} {
		if cg := podCgroup(os.Getpid(), parent); cg == nil || cg.MemoryDir() != above {
			t.Errorf("pod cgroup of parent %q: %+v, want %s", parent, cg, above)
		}
	}
	if cg := podCgroup(os.Getpid(), "/no-such-parent"); cg != nil {
		t.Errorf("pod cgroup of a parent that holds no such pause: %+v", cg)
	}
	if cg := podCgroup(os.Getpid(), ""); cg != nil {
		t.Errorf("a pod without a cgroup parent has a cgroup: %+v", cg)
	}
	if _, err := readNetDev(os.Getpid()); err != nil {
		t.Errorf("network of this process: %v", err)
	}
}
