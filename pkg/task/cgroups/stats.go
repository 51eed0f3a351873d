package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
	// Hugetlb has one entry per huge page size the host has.
	Hugetlb []HugetlbStats
	// Limits are what the cgroup is configured with.
	Limits Limits
	// Pressure is the cgroup's pressure stall information: on the
	// cgroup2 hierarchy only (a hybrid host's included), zero elsewhere.
	Pressure Pressure
}

// CPUStats is CPU time consumed, in nanoseconds, and CFS bandwidth
// control: how many enforcement periods elapsed while the cgroup had
// runnable tasks, in how many it was throttled, and for how long.
type CPUStats struct {
	UsageNanos       uint64
	UserNanos        uint64
	SystemNanos      uint64
	Periods          uint64
	ThrottledPeriods uint64
	ThrottledNanos   uint64
}

// MemoryStats is memory use, in bytes, and counts of memory events.
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
	MappedFile   uint64
	// Kernel is kernel memory charged to the cgroup (v1 kmem; v2 the
	// "kernel" figure of memory.stat, or its stacks and slab before 5.18).
	Kernel uint64
	// Swap is swap in use (v1: memsw usage less usage, with swap
	// accounting on).
	Swap uint64
	// MaxUsage is the high-water mark of Usage (v2: memory.peak, kernel
	// 5.19 or later).
	MaxUsage uint64
	// Failcnt counts how often usage hit the limit (v1 memory.failcnt,
	// v2 the "max" event).
	Failcnt  uint64
	OOMKills uint64
	// Page faults (all, major) of this cgroup's own tasks, and of the
	// whole hierarchy below it. cgroup v2 counts hierarchically only: both
	// pairs are the same.
	Pgfault, Pgmajfault           uint64
	TotalPgfault, TotalPgmajfault uint64
}

// PidsStats counts tasks.
type PidsStats struct {
	Current uint64
	// Limit is 0 when unlimited.
	Limit uint64
}

// IOStats is block IO, summed over devices, and per device.
type IOStats struct {
	ReadBytes  uint64
	WriteBytes uint64
	ReadOps    uint64
	WriteOps   uint64
	Devices    []IODevice
}

// IODevice is the block IO of one device.
type IODevice struct {
	Major, Minor uint32
	ReadBytes    uint64
	WriteBytes   uint64
	ReadOps      uint64
	WriteOps     uint64
}

// HugetlbStats is the use of one huge page size, in bytes. MaxUsage is 0
// on cgroup v2, which keeps no high-water mark.
type HugetlbStats struct {
	// PageSize as cgroupfs names it: "2MB", "1GB".
	PageSize string
	Usage    uint64
	MaxUsage uint64
	Failcnt  uint64
}

// Limits are the configured limits of a cgroup; 0 is "none".
type Limits struct {
	// CPUShares is the relative CPU weight in cgroup v1 shares (v2's
	// cpu.weight is converted back, as kubelet converted it).
	CPUShares uint64
	// CPUQuota is the CPU time allowed per CPUPeriod, in microseconds.
	CPUQuota  uint64
	CPUPeriod uint64
	// MemoryReservation is the soft limit (v1) or memory.min (v2).
	MemoryReservation uint64
	// MemorySwapLimit is memory plus swap on v1, swap alone on v2.
	MemorySwapLimit uint64
}

// Pressure is the pressure stall information of a cgroup.
type Pressure struct {
	CPU, Memory, IO PSI
}

// PSI is the total time, in microseconds, that some task (Some) or all
// tasks (Full) of the cgroup were stalled on a resource.
type PSI struct {
	Some, Full uint64
}

// userHZ is the unit of cpuacct.stat (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

// unlimited is the smallest number read as "no limit": v1 reports an
// unlimited cgroup as the largest page-aligned int64.
const unlimited = 1 << 62

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
	if c.Unified != "" {
		s.Pressure = Pressure{
			CPU:    readPSI(c.Unified + "/cpu.pressure"),
			Memory: readPSI(c.Unified + "/memory.pressure"),
			IO:     readPSI(c.Unified + "/io.pressure"),
		}
	}
	return s, nil
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%v: %w", err, errdefs.ErrNotFound)
	}
	return err
}

// readUint reads a file holding one number; "max", "-1", numbers of
// "unlimited" size and errors read as 0.
func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if v >= unlimited {
		return 0
	}
	return v
}

func readKeyValues(path string) map[string]uint64 {
	b, _ := os.ReadFile(path)
	return keyValues(b)
}

// readPSI reads a *.pressure file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=1234
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=567
func readPSI(path string) PSI {
	var p PSI
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				n, _ := strconv.ParseUint(v, 10, 64)
				switch f[0] {
				case "some":
					p.Some = n
				case "full":
					p.Full = n
				}
			}
		}
	}
	return p
}

// device returns the entry of d for "MAJ:MIN", adding it if needed.
func device(d *[]IODevice, majMin string) *IODevice {
	maj, min, ok := strings.Cut(majMin, ":")
	if !ok {
		return nil
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return nil
	}
	for i := range *d {
		if (*d)[i].Major == uint32(ma) && (*d)[i].Minor == uint32(mi) {
			return &(*d)[i]
		}
	}
	*d = append(*d, IODevice{Major: uint32(ma), Minor: uint32(mi)})
	return &(*d)[len(*d)-1]
}

// sum fills the totals of s from its devices.
func (s *IOStats) sum() {
	for _, d := range s.Devices {
		s.ReadBytes += d.ReadBytes
		s.WriteBytes += d.WriteBytes
		s.ReadOps += d.ReadOps
		s.WriteOps += d.WriteOps
	}
}
