package cgroups

import (
	"os"
	"path/filepath"
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
		"memory/memory.usage_in_bytes":                    "10485760\n",
		"memory/memory.limit_in_bytes":                    "9223372036854771712\n",
		"memory/memory.stat":                              "cache 1\ntotal_cache 4194304\ntotal_rss 6291456\ntotal_inactive_file 1048576\n",
		"memory/memory.oom_control":                       "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"pids/pids.current":                               "3\n",
		"pids/pids.max":                                   "max\n",
		"blkio/blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 200\n8:16 Read 1\n8:0 Total 300\nTotal 301\n",
		"blkio/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\n",
	})
	cg := &Cgroup{Dirs: map[string]string{}}
	for _, c := range []string{"cpuacct", "memory", "pids", "blkio"} {
		cg.Dirs[c] = filepath.Join(dir, c)
	}
	s, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU.UsageNanos != 5000000 || s.CPU.UserNanos != 30e6 || s.CPU.SystemNanos != 10e6 {
		t.Errorf("cpu %+v", s.CPU)
	}
	if s.Memory.Usage != 10<<20 || s.Memory.WorkingSet != 9<<20 || s.Memory.Limit != 0 || s.Memory.RSS != 6<<20 || s.Memory.Cache != 4<<20 || s.Memory.OOMKills != 2 {
		t.Errorf("memory %+v", s.Memory)
	}
	if s.Pids.Current != 3 || s.Pids.Limit != 0 {
		t.Errorf("pids %+v", s.Pids)
	}
	if s.IO.ReadBytes != 101 || s.IO.WriteBytes != 200 || s.IO.ReadOps != 1 || s.IO.WriteOps != 2 {
		t.Errorf("io %+v", s.IO)
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
		"cpu.stat":       "usage_usec 7\nuser_usec 5\nsystem_usec 2\n",
		"memory.current": "3000\n",
		"memory.max":     "16777216\n",
		"memory.stat":    "anon 2000\nfile 1000\ninactive_file 500\n",
		"memory.events":  "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n",
		"pids.current":   "2\n",
		"pids.max":       "100\n",
		"io.stat":        "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=0 rios=1 wios=0\n",
	})
	s, err := (&Cgroup{V2: true, Unified: dir}).Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		CPU:    CPUStats{UsageNanos: 7000, UserNanos: 5000, SystemNanos: 2000},
		Memory: MemoryStats{Usage: 3000, WorkingSet: 2500, Limit: 16 << 20, RSS: 2000, Cache: 1000, InactiveFile: 500, OOMKills: 1},
		Pids:   PidsStats{Current: 2, Limit: 100},
		IO:     IOStats{ReadBytes: 15, WriteBytes: 20, ReadOps: 2, WriteOps: 2},
	}
	want.Time = s.Time
	if *s != want {
		t.Errorf("stats %+v\nwant %+v", *s, want)
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
