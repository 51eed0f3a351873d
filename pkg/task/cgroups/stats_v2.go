package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func (c *Cgroup) statsV2(s *Stats) error {
	d := c.Unified
	if _, err := os.Stat(d); err != nil {
		return fmt.Errorf("cgroup %s: %w", d, notFound(err))
	}
	kv := readKeyValues(filepath.Join(d, "cpu.stat"))
	s.CPU.UsageNanos = kv["usage_usec"] * 1000
	s.CPU.UserNanos = kv["user_usec"] * 1000
	s.CPU.SystemNanos = kv["system_usec"] * 1000
	s.CPU.Periods, s.CPU.ThrottledPeriods, s.CPU.ThrottledNanos = kv["nr_periods"], kv["nr_throttled"], kv["throttled_usec"]*1000
	cpuLimitsV2(d, &s.Limits)
	memoryV2(d, s)
	s.Pids.Current = readUint(filepath.Join(d, "pids.current"))
	s.Pids.Limit = readUint(filepath.Join(d, "pids.max"))
	s.IO = ioStatV2(filepath.Join(d, "io.stat"))
	s.Hugetlb = hugetlb(d, "current", func(dir, size string) HugetlbStats {
		p := filepath.Join(dir, "hugetlb."+size+".")
		return HugetlbStats{PageSize: size, Usage: readUint(p + "current"),
			Failcnt: readKeyValues(p + "events")["max"]}
	})
	return nil
}

func memoryV2(d string, s *Stats) {
	m := &s.Memory
	m.Usage = readUint(filepath.Join(d, "memory.current"))
	m.MaxUsage = readUint(filepath.Join(d, "memory.peak"))
	m.Limit = readUint(filepath.Join(d, "memory.max"))
	m.Swap = readUint(filepath.Join(d, "memory.swap.current"))
	kv := readKeyValues(filepath.Join(d, "memory.stat"))
	m.RSS = kv["anon"]
	m.Cache = kv["file"]
	m.InactiveFile = kv["inactive_file"]
	m.MappedFile = kv["file_mapped"]
	if k, ok := kv["kernel"]; ok {
		m.Kernel = k
	} else {
		m.Kernel = kv["kernel_stack"] + kv["slab"] + kv["sock"] + kv["percpu"]
	}
	m.Pgfault, m.Pgmajfault = kv["pgfault"], kv["pgmajfault"]
	m.TotalPgfault, m.TotalPgmajfault = m.Pgfault, m.Pgmajfault
	ev := readKeyValues(filepath.Join(d, "memory.events"))
	m.OOMKills, m.Failcnt = ev["oom_kill"], ev["max"]
	s.Limits.MemoryReservation = readUint(filepath.Join(d, "memory.min"))
	s.Limits.MemorySwapLimit = readUint(filepath.Join(d, "memory.swap.max"))
}

// cpuLimitsV2 reads cpu.max ("max 100000" or "20000 100000") and
// cpu.weight, converted to v1 shares the way cAdvisor does (the inverse
// of kubelet's shares → weight).
func cpuLimitsV2(d string, l *Limits) {
	if b, err := os.ReadFile(filepath.Join(d, "cpu.max")); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l.CPUQuota, _ = strconv.ParseUint(f[0], 10, 64) // "max" reads as 0
			l.CPUPeriod, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	if w := readUint(filepath.Join(d, "cpu.weight")); w > 0 {
		l.CPUShares = 2 + (w-1)*262142/9999
	}
}

// ioStatV2 reads "MAJ:MIN rbytes=N wbytes=N rios=N wios=N ..." lines.
func ioStatV2(path string) IOStats {
	var s IOStats
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		dev := device(&s.Devices, f[0])
		if dev == nil {
			continue
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rbytes":
				dev.ReadBytes += n
			case "wbytes":
				dev.WriteBytes += n
			case "rios":
				dev.ReadOps += n
			case "wios":
				dev.WriteOps += n
			}
		}
	}
	s.sum()
	return s
}
