package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func (c *Cgroup) statsV1(s *Stats) error {
	mem := c.Dirs["memory"]
	if _, err := os.Stat(mem); err != nil {
		return fmt.Errorf("memory cgroup %s: %w", mem, notFound(err))
	}
	if d, ok := c.Dirs["cpuacct"]; ok {
		s.CPU.UsageNanos = readUint(filepath.Join(d, "cpuacct.usage"))
		kv := readKeyValues(filepath.Join(d, "cpuacct.stat"))
		s.CPU.UserNanos = kv["user"] * uint64(time.Second/userHZ)
		s.CPU.SystemNanos = kv["system"] * uint64(time.Second/userHZ)
	}
	if d, ok := c.Dirs["cpu"]; ok {
		kv := readKeyValues(filepath.Join(d, "cpu.stat"))
		s.CPU.Periods, s.CPU.ThrottledPeriods, s.CPU.ThrottledNanos = kv["nr_periods"], kv["nr_throttled"], kv["throttled_time"]
		s.Limits.CPUShares = readUint(filepath.Join(d, "cpu.shares"))
		s.Limits.CPUPeriod = readUint(filepath.Join(d, "cpu.cfs_period_us"))
		s.Limits.CPUQuota = readUint(filepath.Join(d, "cpu.cfs_quota_us")) // -1 (none) reads as 0
	}
	memoryV1(mem, s)
	if d, ok := c.Dirs["pids"]; ok {
		s.Pids.Current = readUint(filepath.Join(d, "pids.current"))
		s.Pids.Limit = readUint(filepath.Join(d, "pids.max"))
	}
	if d, ok := c.Dirs["blkio"]; ok {
		s.IO = blkioV1(filepath.Join(d, "blkio.throttle.io_service_bytes_recursive"),
			filepath.Join(d, "blkio.throttle.io_serviced_recursive"))
	}
	if d, ok := c.Dirs["hugetlb"]; ok {
		s.Hugetlb = hugetlb(d, "usage_in_bytes", func(dir, size string) HugetlbStats {
			p := filepath.Join(dir, "hugetlb."+size+".")
			return HugetlbStats{PageSize: size, Usage: readUint(p + "usage_in_bytes"),
				MaxUsage: readUint(p + "max_usage_in_bytes"), Failcnt: readUint(p + "failcnt")}
		})
	}
	return nil
}

func memoryV1(dir string, s *Stats) {
	m := &s.Memory
	m.Usage = readUint(filepath.Join(dir, "memory.usage_in_bytes"))
	m.MaxUsage = readUint(filepath.Join(dir, "memory.max_usage_in_bytes"))
	m.Limit = readUint(filepath.Join(dir, "memory.limit_in_bytes"))
	m.Failcnt = readUint(filepath.Join(dir, "memory.failcnt"))
	m.Kernel = readUint(filepath.Join(dir, "memory.kmem.usage_in_bytes"))
	// memsw files exist only with swap accounting on.
	if sw := readUint(filepath.Join(dir, "memory.memsw.usage_in_bytes")); sw > m.Usage {
		m.Swap = sw - m.Usage
	}
	kv := readKeyValues(filepath.Join(dir, "memory.stat"))
	m.RSS = kv["total_rss"]
	m.Cache = kv["total_cache"]
	m.InactiveFile = kv["total_inactive_file"]
	m.MappedFile = kv["total_mapped_file"]
	m.Pgfault, m.Pgmajfault = kv["pgfault"], kv["pgmajfault"]
	m.TotalPgfault, m.TotalPgmajfault = kv["total_pgfault"], kv["total_pgmajfault"]
	m.OOMKills = readKeyValues(filepath.Join(dir, "memory.oom_control"))["oom_kill"]
	s.Limits.MemoryReservation = readUint(filepath.Join(dir, "memory.soft_limit_in_bytes"))
	s.Limits.MemorySwapLimit = readUint(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
}

// blkioV1 reads the "MAJ:MIN Read|Write N" lines of the two blkio files.
func blkioV1(bytesFile, opsFile string) IOStats {
	var s IOStats
	read := func(path string, get func(d *IODevice) (read, write *uint64)) {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || (f[1] != "Read" && f[1] != "Write") {
				continue
			}
			d := device(&s.Devices, f[0])
			if d == nil {
				continue
			}
			v, _ := strconv.ParseUint(f[2], 10, 64)
			r, w := get(d)
			if f[1] == "Read" {
				*r += v
			} else {
				*w += v
			}
		}
	}
	read(bytesFile, func(d *IODevice) (*uint64, *uint64) { return &d.ReadBytes, &d.WriteBytes })
	read(opsFile, func(d *IODevice) (*uint64, *uint64) { return &d.ReadOps, &d.WriteOps })
	s.sum()
	return s
}

// hugetlb reads the figures of each huge page size that dir has a
// hugetlb.<size>.<file> for.
func hugetlb(dir, file string, read func(dir, size string) HugetlbStats) []HugetlbStats {
	entries, _ := os.ReadDir(dir)
	var out []HugetlbStats
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "hugetlb.")
		if !ok {
			continue
		}
		if size, ok := strings.CutSuffix(rest, "."+file); ok && !strings.Contains(size, ".") {
			out = append(out, read(dir, size))
		}
	}
	return out
}
