package task_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// TestCgroupMetrics runs a container with CPU, memory and pids limits that
// burns CPU past its quota, writes and reads with direct IO and listens on
// a socket, and checks that every figure the CRI's metrics are made of is
// read from its cgroup: the readers of each controller, not only the
// summary ContainerStats uses.
func TestCgroupMetrics(t *testing.T) {
	forRuntimes(t, func(t *testing.T, rt string) {
		e := newEnv(t)
		ctx := waitCtx(t)
		// An ID of its own: the cgroup path is made of it, and other test
		// binaries may run containers named c1 on this host at the same time.
		id := fmt.Sprintf("cgmetrics-%d", os.Getpid())
		spec := tasktest.Spec(id, "sh", "-c",
			"nc -l -p 7070 & dd if=/dev/zero of=/x bs=64k count=16 oflag=direct && dd if=/x of=/dev/null bs=64k iflag=direct && "+
				"dd if=/dev/zero of=/dev/shm/m bs=1M count=4 && while :; do :; done")
		period, quota, shares := uint64(100000), int64(10000), uint64(512)
		spec.Linux.Resources.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota, Shares: &shares}
		spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Reservation: ptr(int64(32 << 20))}
		spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: ptr(int64(100))}
		tk, err := e.m.Create(nsCtx(), "g1", task.CreateOpts{
			ID: id, Runtime: rt, Spec: tasktest.SpecJSON(t, spec), Rootfs: tasktest.OverlayRootfs(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer remove(t, tk)
		pid, err := tk.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cg, err := cgroups.Load(int(pid))
		if err != nil {
			t.Fatal(err)
		}
		countsIO := hostCountsBlockIO()
		var s *cgroups.Stats
		var p cgroups.Processes
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if s, err = cg.Stats(); err != nil {
				t.Fatal(err)
			}
			if p, err = cg.Processes(); err != nil {
				t.Fatal(err)
			}
			if s.CPU.ThrottledPeriods > 0 && s.Memory.Usage >= 4<<20 && (s.IO.ReadBytes > 0 || !countsIO) && p.Sockets > 0 {
				break
			}
		}
		t.Logf("stats %+v, processes %+v", *s, p)
		if s.CPU.UsageNanos == 0 || s.CPU.UserNanos+s.CPU.SystemNanos == 0 || s.CPU.Periods == 0 || s.CPU.ThrottledPeriods == 0 || s.CPU.ThrottledNanos == 0 {
			t.Errorf("cpu %+v: want usage and throttling at a tenth of a CPU", s.CPU)
		}
		if s.Limits.CPUPeriod != period || s.Limits.CPUQuota != uint64(quota) || s.Limits.CPUShares == 0 {
			t.Errorf("cpu limits %+v: want period %d, quota %d and shares", s.Limits, period, quota)
		}
		if s.Limits.CPUShares != shares && !cg.V2 {
			t.Errorf("cpu shares %d, want %d", s.Limits.CPUShares, shares)
		}
		m := s.Memory
		if m.Usage < 4<<20 || m.WorkingSet == 0 || m.MaxUsage < m.Usage && !cg.V2 || m.Limit != 64<<20 || m.Cache < 4<<20 ||
			m.RSS == 0 || m.TotalPgfault == 0 || m.Pgfault == 0 {
			t.Errorf("memory %+v: want usage, a working set, 4 MiB of shm, the limit, faults", m)
		}
		if s.Limits.MemoryReservation != 32<<20 && !cg.V2 {
			t.Errorf("memory reservation %d, want %d", s.Limits.MemoryReservation, 32<<20)
		}
		if s.Pids.Current < 2 || s.Pids.Limit != 100 {
			t.Errorf("pids %+v: want sh and nc, limit 100", s.Pids)
		}
		if !countsIO {
			t.Logf("io %+v: this host's block devices are not accounted to cgroups (its root counts nothing either)", s.IO)
		} else if s.IO.ReadBytes < 1<<20 || s.IO.WriteBytes < 1<<20 || s.IO.ReadOps == 0 || len(s.IO.Devices) == 0 {
			t.Errorf("io %+v: want 1 MiB written and read with direct IO", s.IO)
		}
		if p.Count < 2 || p.FDs < 3 || p.Sockets == 0 {
			t.Errorf("processes %+v: want sh and nc, their descriptors, nc's socket", p)
		}
		if cg.Unified != "" && s.Pressure.CPU.Some == 0 {
			t.Errorf("pressure %+v: want the CPU stall of a throttled container", s.Pressure)
		}
	})
}

// hostCountsBlockIO says whether the root cgroup accounts any block IO to
// a device: a virtual disk may not (blkio and io.stat list no device).
func hostCountsBlockIO() bool {
	for _, f := range []string{"/sys/fs/cgroup/blkio/blkio.throttle.io_service_bytes_recursive", "/sys/fs/cgroup/io.stat"} {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), ":") {
			return true
		}
	}
	return false
}
