package cri

import (
	"strconv"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
)

// The metrics of ListPodSandboxMetrics are cAdvisor's container metrics:
// their names, help, types and labels, which kubelet serves on
// /metrics/cadvisor when PodAndContainerStatsFromCRI has it take them from
// the runtime instead of cAdvisor. Every metric has kubelet's labels of
// those metrics (metricLabels) and some a few of their own (a CPU, a
// device, an interface...).
//
// A pod's own metrics have container "" (as cAdvisor's pod cgroup):
// its network, read in its network namespace, and, when the pod has a
// cgroup parent of its own, the figures of that cgroup (every container
// of the pod together). Each running container has the figures of its
// cgroup, its processes, its writable layer and the image filesystem.
//
// Values are unsigned integers (the CRI's Metric has no other kind):
// seconds are whole seconds, as the other runtimes send them. A figure
// that cannot be told is left out rather than sent as a false 0: a
// ulimit that is unlimited (cAdvisor's -1), max usage on a kernel that
// keeps none. The timestamp is 0: everything is read when asked.

// metricLabels are the label keys of every metric, in the order of their
// values.
var metricLabels = []string{"container", "id", "image", "name", "namespace", "pod"}

// metricSample is what was read of one container, or one pod, for its
// metrics. A part that could not be read is nil and yields no metric.
type metricSample struct {
	labels  []string // values of metricLabels
	now     time.Time
	started time.Time // zero when unknown
	cgroup  *cgroups.Stats
	// v2 says the cgroup is on the unified hierarchy; pressure that it
	// has pressure stall information.
	v2, pressure bool
	processes    *cgroups.Processes
	// openFilesSoft is the soft RLIMIT_NOFILE of the container's init,
	// nil when unknown or unlimited.
	openFilesSoft *uint64
	fs            *fsSample
	io            []namedIODevice
	network       []netDev
}

// fsSample is the use of the image filesystem by a container's writable
// layer, and the filesystem's size and inodes.
type fsSample struct {
	device                  string
	usage, limit            uint64
	inodesTotal, inodesFree uint64
	hasUsage, hasStatfs     bool
}

type namedIODevice struct {
	name string
	cgroups.IODevice
}

// netDev is one interface of /proc/<pid>/net/dev.
type netDev struct {
	name                                    string
	rxBytes, rxPackets, rxErrors, rxDropped uint64
	txBytes, txPackets, txErrors, txDropped uint64
}

type metricValue struct {
	value  uint64
	labels []string // values of the metric's own label keys
}

// podMetric is one metric: its descriptor, and how its values are taken
// from a sample (none when the sample lacks what it needs).
type podMetric struct {
	name, help string
	typ        runtime.MetricType
	labels     []string // the metric's own label keys, after metricLabels
	values     func(s *metricSample) []metricValue
}

const (
	metricCounter = runtime.MetricType_COUNTER
	metricGauge   = runtime.MetricType_GAUGE
)

func oneValue(v uint64, labels ...string) []metricValue {
	return []metricValue{{value: v, labels: labels}}
}

// cgroupValue is a metric of one value read from the cgroup's stats.
func cgroupValue(f func(*cgroups.Stats) uint64) func(*metricSample) []metricValue {
	return func(s *metricSample) []metricValue {
		if s.cgroup == nil {
			return nil
		}
		return oneValue(f(s.cgroup))
	}
}

// cgroupValueIf is f's metric only if cond holds of the cgroup's stats.
func cgroupValueIf(cond func(*metricSample) bool, f func(*cgroups.Stats) uint64) func(*metricSample) []metricValue {
	return func(s *metricSample) []metricValue {
		if s.cgroup == nil || !cond(s) {
			return nil
		}
		return oneValue(f(s.cgroup))
	}
}

// hasQuota: cAdvisor sends the CFS metrics and the quota only for a
// cgroup with a CPU quota.
func hasQuota(s *metricSample) bool { return s.cgroup.Limits.CPUQuota != 0 }

const nanosPerSecond, microsPerSecond = uint64(time.Second), uint64(time.Second / time.Microsecond)

// podMetrics are the metrics ListMetricDescriptors describes and
// ListPodSandboxMetrics sends, in cAdvisor's groups.
var podMetrics = joinMetrics(timeMetrics, cpuMetrics, memoryMetrics, specMetrics, processMetrics,
	hugetlbMetrics, pressureMetrics, fsMetrics, diskIOMetrics, networkMetrics)

func joinMetrics(groups ...[]podMetric) []podMetric {
	var out []podMetric
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

var timeMetrics = []podMetric{
	{"container_last_seen", "Last time a container was seen by the exporter", metricGauge, nil,
		func(s *metricSample) []metricValue { return oneValue(uint64(s.now.Unix())) }},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", metricGauge, nil,
		func(s *metricSample) []metricValue {
			if s.started.IsZero() {
				return nil
			}
			return oneValue(uint64(s.started.Unix()))
		}},
}

var cpuMetrics = []podMetric{
	// kubelet has cAdvisor sum the CPUs: one value, cpu "total".
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", metricCounter, []string{"cpu"},
		func(s *metricSample) []metricValue {
			if s.cgroup == nil {
				return nil
			}
			return oneValue(s.cgroup.CPU.UsageNanos/nanosPerSecond, "total")
		}},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", metricCounter, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.CPU.UserNanos / nanosPerSecond })},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", metricCounter, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.CPU.SystemNanos / nanosPerSecond })},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", metricCounter, nil,
		cgroupValueIf(hasQuota, func(c *cgroups.Stats) uint64 { return c.CPU.Periods })},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", metricCounter, nil,
		cgroupValueIf(hasQuota, func(c *cgroups.Stats) uint64 { return c.CPU.ThrottledPeriods })},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", metricCounter, nil,
		cgroupValueIf(hasQuota, func(c *cgroups.Stats) uint64 { return c.CPU.ThrottledNanos / nanosPerSecond })},
}

var memoryMetrics = []podMetric{
	{"container_memory_cache", "Number of bytes of page cache memory.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.Cache })},
	{"container_memory_rss", "Size of RSS in bytes.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.RSS })},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.Kernel })},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.MappedFile })},
	{"container_memory_swap", "Container swap usage in bytes.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.Swap })},
	{"container_memory_failcnt", "Number of memory usage hits limits", metricCounter, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.Failcnt })},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.Usage })},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", metricGauge, nil,
		cgroupValueIf(func(s *metricSample) bool { return s.cgroup.Memory.MaxUsage != 0 }, func(c *cgroups.Stats) uint64 { return c.Memory.MaxUsage })},
	{"container_memory_working_set_bytes", "Current working set in bytes.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.WorkingSet })},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", metricCounter, []string{"failure_type", "scope"},
		func(s *metricSample) []metricValue {
			if s.cgroup == nil {
				return nil
			}
			m := s.cgroup.Memory
			return []metricValue{
				{m.Pgfault, []string{"pgfault", "container"}}, {m.Pgmajfault, []string{"pgmajfault", "container"}},
				{m.TotalPgfault, []string{"pgfault", "hierarchy"}}, {m.TotalPgmajfault, []string{"pgmajfault", "hierarchy"}},
			}
		}},
	{"container_oom_events_total", "Count of out of memory events observed for the container", metricCounter, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.OOMKills })},
}

// specMetrics are the cgroup's limits, 0 for none (cAdvisor's value for
// an unlimited memory limit).
var specMetrics = []podMetric{
	{"container_spec_cpu_period", "CPU period of the container.", metricGauge, nil,
		cgroupValueIf(func(s *metricSample) bool { return s.cgroup.Limits.CPUPeriod != 0 }, func(c *cgroups.Stats) uint64 { return c.Limits.CPUPeriod })},
	{"container_spec_cpu_quota", "CPU quota of the container.", metricGauge, nil,
		cgroupValueIf(hasQuota, func(c *cgroups.Stats) uint64 { return c.Limits.CPUQuota })},
	{"container_spec_cpu_shares", "CPU share of the container.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Limits.CPUShares })},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Memory.Limit })},
	{"container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Limits.MemoryReservation })},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Limits.MemorySwapLimit })},
}

var processMetrics = []podMetric{
	{"container_processes", "Number of processes running inside the container.", metricGauge, nil,
		func(s *metricSample) []metricValue {
			if s.processes == nil {
				return nil
			}
			return oneValue(s.processes.Count)
		}},
	{"container_file_descriptors", "Number of open file descriptors for the container.", metricGauge, nil,
		func(s *metricSample) []metricValue {
			if s.processes == nil {
				return nil
			}
			return oneValue(s.processes.FDs)
		}},
	{"container_sockets", "Number of open sockets for the container.", metricGauge, nil,
		func(s *metricSample) []metricValue {
			if s.processes == nil {
				return nil
			}
			return oneValue(s.processes.Sockets)
		}},
	{"container_threads", "Number of threads running inside the container", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Pids.Current })},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", metricGauge, nil,
		cgroupValue(func(c *cgroups.Stats) uint64 { return c.Pids.Limit })},
	{"container_ulimits_soft", "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice", metricGauge, []string{"ulimit"},
		func(s *metricSample) []metricValue {
			if s.openFilesSoft == nil {
				return nil
			}
			return oneValue(*s.openFilesSoft, "max_open_files")
		}},
}

func hugetlbValues(f func(h cgroups.HugetlbStats) uint64, v1Only bool) func(*metricSample) []metricValue {
	return func(s *metricSample) []metricValue {
		if s.cgroup == nil || v1Only && s.v2 {
			return nil
		}
		var out []metricValue
		for _, h := range s.cgroup.Hugetlb {
			out = append(out, metricValue{f(h), []string{h.PageSize}})
		}
		return out
	}
}

var hugetlbMetrics = []podMetric{
	{"container_hugetlb_failcnt", "Number of hugepage usage hits limits", metricCounter, []string{"pagesize"},
		hugetlbValues(func(h cgroups.HugetlbStats) uint64 { return h.Failcnt }, false)},
	{"container_hugetlb_usage_bytes", "Current hugepage usage in bytes", metricGauge, []string{"pagesize"},
		hugetlbValues(func(h cgroups.HugetlbStats) uint64 { return h.Usage }, false)},
	// cgroup v2 keeps no high-water mark of huge pages.
	{"container_hugetlb_max_usage_bytes", "Maximum hugepage usage recorded in bytes", metricGauge, []string{"pagesize"},
		hugetlbValues(func(h cgroups.HugetlbStats) uint64 { return h.MaxUsage }, true)},
}

func pressureValue(f func(p cgroups.Pressure) uint64) func(*metricSample) []metricValue {
	return cgroupValueIf(func(s *metricSample) bool { return s.pressure }, func(c *cgroups.Stats) uint64 { return f(c.Pressure) / microsPerSecond })
}

var pressureMetrics = []podMetric{
	{"container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", metricCounter, nil,
		pressureValue(func(p cgroups.Pressure) uint64 { return p.CPU.Full })},
	{"container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", metricCounter, nil,
		pressureValue(func(p cgroups.Pressure) uint64 { return p.CPU.Some })},
	{"container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", metricCounter, nil,
		pressureValue(func(p cgroups.Pressure) uint64 { return p.Memory.Full })},
	{"container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", metricCounter, nil,
		pressureValue(func(p cgroups.Pressure) uint64 { return p.Memory.Some })},
	{"container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", metricCounter, nil,
		pressureValue(func(p cgroups.Pressure) uint64 { return p.IO.Full })},
	{"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", metricCounter, nil,
		pressureValue(func(p cgroups.Pressure) uint64 { return p.IO.Some })},
}

func fsValues(f func(fs *fsSample) uint64, needUsage bool) func(*metricSample) []metricValue {
	return func(s *metricSample) []metricValue {
		if s.fs == nil || needUsage && !s.fs.hasUsage || !needUsage && !s.fs.hasStatfs {
			return nil
		}
		return oneValue(f(s.fs), s.fs.device)
	}
}

var fsMetrics = []podMetric{
	{"container_fs_inodes_free", "Number of available Inodes", metricGauge, []string{"device"},
		fsValues(func(fs *fsSample) uint64 { return fs.inodesFree }, false)},
	{"container_fs_inodes_total", "Number of Inodes", metricGauge, []string{"device"},
		fsValues(func(fs *fsSample) uint64 { return fs.inodesTotal }, false)},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", metricGauge, []string{"device"},
		fsValues(func(fs *fsSample) uint64 { return fs.limit }, false)},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", metricGauge, []string{"device"},
		fsValues(func(fs *fsSample) uint64 { return fs.usage }, true)},
}

func diskIOValues(f func(d namedIODevice) uint64) func(*metricSample) []metricValue {
	return func(s *metricSample) []metricValue {
		var out []metricValue
		for _, d := range s.io {
			out = append(out, metricValue{f(d), []string{d.name}})
		}
		return out
	}
}

var diskIOMetrics = []podMetric{
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read", metricCounter, []string{"device"},
		diskIOValues(func(d namedIODevice) uint64 { return d.ReadBytes })},
	{"container_fs_reads_total", "Cumulative count of reads completed", metricCounter, []string{"device"},
		diskIOValues(func(d namedIODevice) uint64 { return d.ReadOps })},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written", metricCounter, []string{"device"},
		diskIOValues(func(d namedIODevice) uint64 { return d.WriteBytes })},
	{"container_fs_writes_total", "Cumulative count of writes completed", metricCounter, []string{"device"},
		diskIOValues(func(d namedIODevice) uint64 { return d.WriteOps })},
	{"container_blkio_device_usage_total", "Blkio Device bytes usage", metricCounter, []string{"device", "major", "minor", "operation"},
		func(s *metricSample) []metricValue {
			var out []metricValue
			for _, d := range s.io {
				ma, mi := strconv.FormatUint(uint64(d.Major), 10), strconv.FormatUint(uint64(d.Minor), 10)
				out = append(out, metricValue{d.ReadBytes, []string{d.name, ma, mi, "Read"}},
					metricValue{d.WriteBytes, []string{d.name, ma, mi, "Write"}})
			}
			return out
		}},
}

func netValues(f func(n netDev) uint64) func(*metricSample) []metricValue {
	return func(s *metricSample) []metricValue {
		var out []metricValue
		for _, n := range s.network {
			out = append(out, metricValue{f(n), []string{n.name}})
		}
		return out
	}
}

var networkMetrics = []podMetric{
	{"container_network_receive_bytes_total", "Cumulative count of bytes received", metricCounter, []string{"interface"},
		netValues(func(n netDev) uint64 { return n.rxBytes })},
	{"container_network_receive_packets_total", "Cumulative count of packets received", metricCounter, []string{"interface"},
		netValues(func(n netDev) uint64 { return n.rxPackets })},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", metricCounter, []string{"interface"},
		netValues(func(n netDev) uint64 { return n.rxDropped })},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", metricCounter, []string{"interface"},
		netValues(func(n netDev) uint64 { return n.rxErrors })},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", metricCounter, []string{"interface"},
		netValues(func(n netDev) uint64 { return n.txBytes })},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted", metricCounter, []string{"interface"},
		netValues(func(n netDev) uint64 { return n.txPackets })},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", metricCounter, []string{"interface"},
		netValues(func(n netDev) uint64 { return n.txDropped })},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", metricCounter, []string{"interface"},
		netValues(func(n netDev) uint64 { return n.txErrors })},
}

// metricDescriptors describes podMetrics.
func metricDescriptors() []*runtime.MetricDescriptor {
	out := make([]*runtime.MetricDescriptor, 0, len(podMetrics))
	for _, m := range podMetrics {
		keys := append(append([]string(nil), metricLabels...), m.labels...)
		out = append(out, &runtime.MetricDescriptor{Name: m.name, Help: m.help, LabelKeys: keys})
	}
	return out
}

// metrics translates a sample into the metrics it has values for.
func (s *metricSample) metrics() []*runtime.Metric {
	var out []*runtime.Metric
	for _, m := range podMetrics {
		for _, v := range m.values(s) {
			labels := make([]string, 0, len(s.labels)+len(v.labels))
			out = append(out, &runtime.Metric{Name: m.name, MetricType: m.typ,
				LabelValues: append(append(labels, s.labels...), v.labels...), Value: &runtime.UInt64Value{Value: v.value}})
		}
	}
	return out
}
