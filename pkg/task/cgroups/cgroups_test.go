package cgroups

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

const hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 31 0:38 /sub /mnt/cg\040x rw,relatime - cgroup2 cgroup2 rw
`

const v2Mountinfo = `25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
`

func TestParseHybridAndV2(t *testing.T) {
	v1, unified, err := mountPoints(strings.NewReader(hybridMountinfo))
	if err != nil || unified != "/sys/fs/cgroup/unified" || v1["memory"] != "/sys/fs/cgroup/memory" || v1["name=systemd"] != "/sys/fs/cgroup/systemd" {
		t.Fatalf("%v %q %v", v1, unified, err)
	}
	cg, err := parse(strings.NewReader("4:memory:/test/c1\n2:cpuacct:/test/c1\n1:name=systemd:/test/c1\n0::/test/c1\n"), v1, unified)
	if err != nil || cg.V2 || cg.MemoryDir() != "/sys/fs/cgroup/memory/test/c1" || cg.Dirs["cpuacct"] != "/sys/fs/cgroup/cpuacct/test/c1" ||
		cg.Dirs["systemd"] != "/sys/fs/cgroup/systemd/test/c1" || cg.Unified != "/sys/fs/cgroup/unified/test/c1" {
		t.Fatalf("hybrid: %+v %v", cg, err)
	}
	v1, unified, _ = mountPoints(strings.NewReader(v2Mountinfo))
	cg, err = parse(strings.NewReader("0::/kubepods/c1\n"), v1, unified)
	if err != nil || !cg.V2 || cg.MemoryDir() != "/sys/fs/cgroup/kubepods/c1" {
		t.Fatalf("v2: %+v %v", cg, err)
	}
	if _, err := parse(strings.NewReader("3:cpu:/x\n"), map[string]string{"cpu": "/c"}, ""); !errdefs.IsNotFound(err) {
		t.Fatalf("no memory controller: %v", err)
	}
	cg, err = parse(strings.NewReader("4:memory:/test/c1\n0::/\n"), map[string]string{"memory": "/sys/fs/cgroup/memory"}, "/sys/fs/cgroup/unified")
	if err != nil || cg.Unified != "" {
		t.Errorf("hybrid, left at the root of cgroup2: %+v %v, want no unified directory (its pressure is the host's)", cg, err)
	}
	if p := cg.Parent(); p.Dirs["memory"] != "/sys/fs/cgroup/memory/test" || p.Unified != "" {
		t.Errorf("parent %+v", p)
	}
	if unescapeMount(`/mnt/cg\040x`) != "/mnt/cg x" {
		t.Error(unescapeMount(`/mnt/cg\040x`))
	}
}

func writeTree(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestStatsV1(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"cpuacct/cpuacct.usage":                           "5000000\n",
		"cpuacct/cpuacct.stat":                            "user 3\nsystem 1\n",
		"cpu/cpu.stat":                                    "nr_periods 10\nnr_throttled 4\nthrottled_time 12345\nnr_bursts 0\n",
		"cpu/cpu.shares":                                  "512\n",
		"cpu/cpu.cfs_period_us":                           "100000\n",
		"cpu/cpu.cfs_quota_us":                            "-1\n",
		"memory/memory.usage_in_bytes":                    "10485760\n",
		"memory/memory.max_usage_in_bytes":                "20971520\n",
		"memory/memory.limit_in_bytes":                    "9223372036854771712\n",
		"memory/memory.soft_limit_in_bytes":               "9223372036854771712\n",
		"memory/memory.memsw.limit_in_bytes":              "67108864\n",
		"memory/memory.memsw.usage_in_bytes":              "10489856\n",
		"memory/memory.failcnt":                           "7\n",
		"memory/memory.kmem.usage_in_bytes":               "65536\n",
		"memory/memory.stat":                              "cache 1\npgfault 5\npgmajfault 1\ntotal_cache 4194304\ntotal_rss 6291456\ntotal_inactive_file 1048576\ntotal_mapped_file 8192\ntotal_pgfault 50\ntotal_pgmajfault 2\n",
		"memory/memory.oom_control":                       "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"pids/pids.current":                               "3\n",
		"pids/pids.max":                                   "max\n",
		"blkio/blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 200\n8:16 Read 1\n8:0 Total 300\nTotal 301\n",
		"blkio/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\n",
		"hugetlb/hugetlb.2MB.usage_in_bytes":              "2097152\n",
		"hugetlb/hugetlb.2MB.max_usage_in_bytes":          "4194304\n",
		"hugetlb/hugetlb.2MB.failcnt":                     "1\n",
		"hugetlb/hugetlb.2MB.rsvd.usage_in_bytes":         "0\n",
		"hugetlb/hugetlb.1GB.usage_in_bytes":              "0\n",
	})
	cg := &Cgroup{Dirs: map[string]string{}}
	for _, c := range []string{"cpuacct", "cpu", "memory", "pids", "blkio", "hugetlb"} {
		cg.Dirs[c] = filepath.Join(dir, c)
	}
	s, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Time: s.Time,
		CPU:  CPUStats{UsageNanos: 5000000, UserNanos: 30e6, SystemNanos: 10e6, Periods: 10, ThrottledPeriods: 4, ThrottledNanos: 12345},
		Memory: MemoryStats{Usage: 10 << 20, WorkingSet: 9 << 20, RSS: 6 << 20, Cache: 4 << 20, InactiveFile: 1 << 20,
			MappedFile: 8192, Kernel: 65536, Swap: 4096, MaxUsage: 20 << 20, Failcnt: 7, OOMKills: 2,
			Pgfault: 5, Pgmajfault: 1, TotalPgfault: 50, TotalPgmajfault: 2},
		Pids: PidsStats{Current: 3},
		IO: IOStats{ReadBytes: 101, WriteBytes: 200, ReadOps: 1, WriteOps: 2, Devices: []IODevice{
			{Major: 8, Minor: 0, ReadBytes: 100, WriteBytes: 200, ReadOps: 1, WriteOps: 2}, {Major: 8, Minor: 16, ReadBytes: 1}}},
		Hugetlb: []HugetlbStats{{PageSize: "1GB"}, {PageSize: "2MB", Usage: 2 << 20, MaxUsage: 4 << 20, Failcnt: 1}},
		Limits:  Limits{CPUShares: 512, CPUPeriod: 100000, MemorySwapLimit: 64 << 20},
	}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("stats %+v\nwant  %+v", *s, want)
	}
	if n, err := cg.OOMKills(); err != nil || n != 2 {
		t.Errorf("oom kills %d, %v", n, err)
	}
	os.RemoveAll(cg.Dirs["memory"])
	if _, err := cg.Stats(); !errdefs.IsNotFound(err) {
		t.Errorf("stats of a removed cgroup: %v", err)
	}
}

func TestStatsV2(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"cpu.stat":              "usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 9\nnr_throttled 3\nthrottled_usec 11\n",
		"cpu.max":               "20000 100000\n",
		"cpu.weight":            "100\n",
		"cpu.pressure":          "some avg10=0.00 avg60=0.00 avg300=0.00 total=41\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=17\n",
		"memory.pressure":       "some avg10=0.00 avg60=0.00 avg300=0.00 total=3\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2\n",
		"io.pressure":           "some avg10=1.00 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4\n",
		"memory.current":        "3000\n",
		"memory.peak":           "4000\n",
		"memory.max":            "16777216\n",
		"memory.min":            "1024\n",
		"memory.swap.current":   "100\n",
		"memory.swap.max":       "max\n",
		"memory.stat":           "anon 2000\nfile 1000\ninactive_file 500\nfile_mapped 300\nkernel 800\nkernel_stack 16\npgfault 40\npgmajfault 4\n",
		"memory.events":         "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n",
		"pids.current":          "2\n",
		"pids.max":              "100\n",
		"io.stat":               "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=0 rios=1 wios=0\n",
		"hugetlb.2MB.current":   "2097152\n",
		"hugetlb.2MB.max":       "max\n",
		"hugetlb.2MB.events":    "max 3\n",
		"hugetlb.2MB.rsvd.max":  "max\n",
		"hugetlb.1GB.current":   "0\n",
		"hugetlb.1GB.events":    "max 0\n",
		"hugetlb.1GB.numa_stat": "total=0 N0=0\n",
	})
	s, err := (&Cgroup{V2: true, Unified: dir}).Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Time: s.Time,
		CPU:  CPUStats{UsageNanos: 7000, UserNanos: 5000, SystemNanos: 2000, Periods: 9, ThrottledPeriods: 3, ThrottledNanos: 11000},
		Memory: MemoryStats{Usage: 3000, WorkingSet: 2500, Limit: 16 << 20, RSS: 2000, Cache: 1000, InactiveFile: 500,
			MappedFile: 300, Kernel: 800, Swap: 100, MaxUsage: 4000, Failcnt: 9, OOMKills: 1,
			Pgfault: 40, Pgmajfault: 4, TotalPgfault: 40, TotalPgmajfault: 4},
		Pids: PidsStats{Current: 2, Limit: 100},
		IO: IOStats{ReadBytes: 15, WriteBytes: 20, ReadOps: 2, WriteOps: 2, Devices: []IODevice{
			{Major: 8, Minor: 0, ReadBytes: 10, WriteBytes: 20, ReadOps: 1, WriteOps: 2}, {Major: 8, Minor: 16, ReadBytes: 5, ReadOps: 1}}},
		Hugetlb: []HugetlbStats{{PageSize: "1GB"}, {PageSize: "2MB", Usage: 2 << 20, Failcnt: 3}},
		// cpu.weight 100, the default, is 2597 shares in cAdvisor's conversion.
		Limits:   Limits{CPUShares: 2 + 99*262142/9999, CPUQuota: 20000, CPUPeriod: 100000, MemoryReservation: 1024},
		Pressure: Pressure{CPU: PSI{Some: 41, Full: 17}, Memory: PSI{Some: 3, Full: 2}, IO: PSI{Some: 5, Full: 4}},
	}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("stats %+v\nwant  %+v", *s, want)
	}
}

func TestLoadSelf(t *testing.T) {
	cg, err := Load(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg.MemoryDir()); err != nil {
		t.Errorf("memory dir of this process: %v", err)
	}
	if _, err := Load(1 << 30); !errdefs.IsNotFound(err) {
		t.Errorf("a pid that does not exist: %v", err)
	}
}

// TestForPath: the cgroup of a path is that path under the root of every
// hierarchy, whether it exists or not.
func TestForPath(t *testing.T) {
	self, err := Load(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cg, err := ForPath("/cri-runtime-test/forpath")
	if err != nil {
		t.Fatal(err)
	}
	if cg.V2 != self.V2 {
		t.Errorf("V2 %v, this process's cgroup %v", cg.V2, self.V2)
	}
	for ctrl, d := range self.Dirs {
		root := strings.TrimSuffix(d, mustReadCgroupPath(t, ctrl))
		if want := filepath.Join(root, "cri-runtime-test/forpath"); cg.Dirs[ctrl] != want {
			t.Errorf("%s: %q, want %q", ctrl, cg.Dirs[ctrl], want)
		}
	}
	if cg.Unified != "" && filepath.Base(cg.Unified) != "forpath" {
		t.Errorf("unified %q", cg.Unified)
	}
	if cg.V2 && cg.Unified == "" {
		t.Errorf("v2 without a unified directory: %+v", cg)
	}
	if !cg.NamedFor("forpath") {
		t.Errorf("not named for forpath: %+v", cg)
	}
	for _, bad := range []string{"", "/", "relative/x", "/a/../b", "/a/"} {
		if _, err := ForPath(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ForPath(%q): %v, want InvalidArgument", bad, err)
		}
	}
}

// mustReadCgroupPath is this process's cgroup path on the v1 hierarchy of
// ctrl, from /proc/self/cgroup.
func mustReadCgroupPath(t *testing.T, ctrl string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if strings.TrimPrefix(c, "name=") == ctrl {
				return parts[2]
			}
		}
	}
	t.Fatalf("no %s in /proc/self/cgroup", ctrl)
	return ""
}

func TestProcesses(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	self := strconv.Itoa(os.Getpid())
	// This process is listed twice, in the cgroup and in a child, and a
	// pid that does not exist counts without descriptors.
	dir := writeTree(t, map[string]string{
		"cgroup.procs":       self + "\n",
		"child/cgroup.procs": self + "\n1073741824\n",
	})
	p, err := (&Cgroup{Dirs: map[string]string{"pids": dir, "memory": "/nonexistent"}}).Processes()
	if err != nil {
		t.Fatal(err)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	if p.Count != 3 || p.FDs < 2*uint64(len(fds))-4 || p.Sockets < 2 {
		t.Errorf("processes %+v: want 3, about %d descriptors and 2 sockets or more", p, 2*len(fds))
	}
	if _, err := (&Cgroup{V2: true, Unified: filepath.Join(dir, "gone")}).Processes(); !errdefs.IsNotFound(err) {
		t.Errorf("processes of a removed cgroup: %v", err)
	}
}
