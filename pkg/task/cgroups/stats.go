package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Stats are the resource figures of one cgroup at one time. A figure the
// host does not provide (no controller, no file) is 0.
type Stats struct {
	Time   time.Time
	CPU    CPUStats
	Memory MemoryStats
	Pids   PidsStats
	IO     IOStats
}

// CPUStats is CPU time consumed, in nanoseconds.
type CPUStats struct {
	UsageNanos  uint64
	UserNanos   uint64
	SystemNanos uint64
}

// MemoryStats is memory use, in bytes.
type MemoryStats struct {
	Usage uint64
	// WorkingSet is Usage less the inactive file cache: what kubelet
	// evicts on.
	WorkingSet uint64
	// Limit is 0 when unlimited.
	Limit        uint64
	RSS          uint64 // anonymous memory
	Cache        uint64 // page cache
	InactiveFile uint64
	OOMKills     uint64
}

// PidsStats counts tasks.
type PidsStats struct {
	Current uint64
	// Limit is 0 when unlimited.
	Limit uint64
}

// IOStats is block IO, summed over devices.
type IOStats struct {
	ReadBytes  uint64
	WriteBytes uint64
	ReadOps    uint64
	WriteOps   uint64
}

// userHZ is the unit of cpuacct.stat (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

// Stats reads the statistics of the cgroup.
func (c *Cgroup) Stats() (*Stats, error) {
	s := &Stats{Time: time.Now()}
	var err error
	if c.V2 {
		err = c.statsV2(s)
	} else {
		err = c.statsV1(s)
	}
	if err != nil {
		return nil, err
	}
	if s.Memory.Usage > s.Memory.InactiveFile {
		s.Memory.WorkingSet = s.Memory.Usage - s.Memory.InactiveFile
	}
	return s, nil
}

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
	s.Memory.Usage = readUint(filepath.Join(mem, "memory.usage_in_bytes"))
	// An unlimited v1 cgroup reports a huge page-aligned number.
	if l := readUint(filepath.Join(mem, "memory.limit_in_bytes")); l < 1<<62 {
		s.Memory.Limit = l
	}
	kv := readKeyValues(filepath.Join(mem, "memory.stat"))
	s.Memory.RSS = kv["total_rss"]
	s.Memory.Cache = kv["total_cache"]
	s.Memory.InactiveFile = kv["total_inactive_file"]
	s.Memory.OOMKills = readKeyValues(filepath.Join(mem, "memory.oom_control"))["oom_kill"]
	if d, ok := c.Dirs["pids"]; ok {
		s.Pids.Current = readUint(filepath.Join(d, "pids.current"))
		s.Pids.Limit = readUint(filepath.Join(d, "pids.max"))
	}
	if d, ok := c.Dirs["blkio"]; ok {
		s.IO = blkioV1(filepath.Join(d, "blkio.throttle.io_service_bytes_recursive"),
			filepath.Join(d, "blkio.throttle.io_serviced_recursive"))
	}
	return nil
}

func (c *Cgroup) statsV2(s *Stats) error {
	d := c.Unified
	if _, err := os.Stat(d); err != nil {
		return fmt.Errorf("cgroup %s: %w", d, notFound(err))
	}
	kv := readKeyValues(filepath.Join(d, "cpu.stat"))
	s.CPU.UsageNanos = kv["usage_usec"] * 1000
	s.CPU.UserNanos = kv["user_usec"] * 1000
	s.CPU.SystemNanos = kv["system_usec"] * 1000
	s.Memory.Usage = readUint(filepath.Join(d, "memory.current"))
	s.Memory.Limit = readUint(filepath.Join(d, "memory.max"))
	kv = readKeyValues(filepath.Join(d, "memory.stat"))
	s.Memory.RSS = kv["anon"]
	s.Memory.Cache = kv["file"]
	s.Memory.InactiveFile = kv["inactive_file"]
	s.Memory.OOMKills = readKeyValues(filepath.Join(d, "memory.events"))["oom_kill"]
	s.Pids.Current = readUint(filepath.Join(d, "pids.current"))
	s.Pids.Limit = readUint(filepath.Join(d, "pids.max"))
	s.IO = ioStatV2(filepath.Join(d, "io.stat"))
	return nil
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%v: %w", err, errdefs.ErrNotFound)
	}
	return err
}

// readUint reads a file holding one number; "max" and errors read as 0.
func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

func readKeyValues(path string) map[string]uint64 {
	b, _ := os.ReadFile(path)
	return keyValues(b)
}

// blkioV1 sums "MAJ:MIN Read|Write N" lines of the two blkio files.
func blkioV1(bytesFile, opsFile string) IOStats {
	var s IOStats
	sum := func(path string, read, write *uint64) {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			v, _ := strconv.ParseUint(f[2], 10, 64)
			switch f[1] {
			case "Read":
				*read += v
			case "Write":
				*write += v
			}
		}
	}
	sum(bytesFile, &s.ReadBytes, &s.WriteBytes)
	sum(opsFile, &s.ReadOps, &s.WriteOps)
	return s
}

// ioStatV2 sums "MAJ:MIN rbytes=N wbytes=N rios=N wios=N ..." lines.
func ioStatV2(path string) IOStats {
	var s IOStats
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		for _, kv := range strings.Fields(line) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rbytes":
				s.ReadBytes += n
			case "wbytes":
				s.WriteBytes += n
			case "rios":
				s.ReadOps += n
			case "wios":
				s.WriteOps += n
			}
		}
	}
	return s
}
