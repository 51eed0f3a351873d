package spec

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// DefaultRlimits returns the rlimits of every container process: 1048576
// open files (the kernel's default nr_open), what containerd's CRI
// containers inherit from its systemd unit, written down so that a
// container does not depend on how the daemon was started.
func DefaultRlimits() []specs.POSIXRlimit {
	return []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1048576, Soft: 1048576}}
}

// rlimits is the runtime's list, or the default, within what the host
// can give.
func rlimits(rt Runtime, host Host) []specs.POSIXRlimit {
	out := DefaultRlimits()
	if rt.Rlimits != nil {
		out = append([]specs.POSIXRlimit{}, rt.Rlimits...)
	}
	for i := range out {
		if out[i].Type == "RLIMIT_NOFILE" && host.NOFILEMax != 0 {
			out[i].Hard = min(out[i].Hard, host.NOFILEMax)
			out[i].Soft = min(out[i].Soft, host.NOFILEMax)
		}
	}
	return out
}

// CgroupsPath returns the cgroup of a container or sandbox id under the
// pod's cgroup parent: "<parent>/<id>" for cgroupfs (an absolute parent),
// "<slice>:<prefix>:<id>" for systemd (a parent that is a slice name). An
// empty parent is the runtime's default.
func CgroupsPath(parent, id string, rt Runtime) (string, error) {
	if id == "" || strings.ContainsAny(id, "/:\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("id %q: not a valid cgroup name: %w", id, errdefs.ErrInvalidArgument)
	}
	const field = "linux.cgroup_parent"
	switch rt.CgroupDriver {
	case Cgroupfs, "":
		if parent == "" {
			parent = rt.DefaultCgroupParent
		}
		if parent == "" {
			parent = "/cri-runtime"
		}
		if !path.IsAbs(parent) || strings.IndexByte(parent, 0) >= 0 || path.Clean(parent) != parent {
			return "", fmt.Errorf("%s %q: not a clean absolute path (cgroupfs driver): %w", field, parent, errdefs.ErrInvalidArgument)
		}
		return path.Join(parent, id), nil
	case Systemd:
		if parent == "" {
			parent = rt.DefaultCgroupParent
		}
		if parent == "" {
			parent = "system.slice"
		}
		if !strings.HasSuffix(parent, ".slice") || strings.ContainsAny(parent, "/:\x00") {
			return "", fmt.Errorf("%s %q: not a slice name like kubepods.slice (systemd driver): %w", field, parent, errdefs.ErrInvalidArgument)
		}
		prefix := rt.SystemdPrefix
		if prefix == "" {
			prefix = DefaultSystemdPrefix
		}
		return parent + ":" + prefix + ":" + id, nil
	}
	return "", fmt.Errorf("cgroup driver %q: not cgroupfs or systemd: %w", rt.CgroupDriver, errdefs.ErrInvalidArgument)
}

// pageSize is a hugepage size as the CRI writes it ("2MB", "1GB").
var pageSize = regexp.MustCompile(`^[1-9][0-9]*(KB|MB|GB|TB|PB)$`)

// linuxResources converts the request's resources. Zero values are unset.
// Without swap accounting no swap limit is written; with it, a memory limit
// without a swap limit also limits swap to the same value (no swap), as
// containerd does. Hugepage limits are dropped on a host without the
// hugetlb controller; a unified map needs cgroup v2.
func linuxResources(field string, r *runtime.LinuxContainerResources, host Host) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}
	if r == nil {
		return out, nil
	}
	for _, v := range []struct {
		name string
		val  int64
	}{
		{"cpu_period", r.GetCpuPeriod()}, {"cpu_shares", r.GetCpuShares()},
		{"memory_limit_in_bytes", r.GetMemoryLimitInBytes()},
	} {
		if v.val < 0 {
			return nil, fmt.Errorf("%s.%s %d: negative: %w", field, v.name, v.val, errdefs.ErrInvalidArgument)
		}
	}
	if q := r.GetCpuQuota(); q < -1 {
		return nil, fmt.Errorf("%s.cpu_quota %d: below -1: %w", field, q, errdefs.ErrInvalidArgument)
	}
	if s := r.GetMemorySwapLimitInBytes(); s < -1 {
		return nil, fmt.Errorf("%s.memory_swap_limit_in_bytes %d: below -1: %w", field, s, errdefs.ErrInvalidArgument)
	}
	cpu := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if p := uint64(r.GetCpuPeriod()); p != 0 {
		cpu.Period = &p
	}
	if q := r.GetCpuQuota(); q != 0 {
		cpu.Quota = &q
	}
	if s := uint64(r.GetCpuShares()); s != 0 {
		cpu.Shares = &s
	}
	if *cpu != (specs.LinuxCPU{}) {
		out.CPU = cpu
	}
	if err := checkCPUList(field+".cpuset_cpus", cpu.Cpus); err != nil {
		return nil, err
	}
	if err := checkCPUList(field+".cpuset_mems", cpu.Mems); err != nil {
		return nil, err
	}
	mem := &specs.LinuxMemory{}
	if l := r.GetMemoryLimitInBytes(); l != 0 {
		mem.Limit = &l
		if host.SwapAccounting && r.GetMemorySwapLimitInBytes() == 0 {
			mem.Swap = &l
		}
	}
	if s := r.GetMemorySwapLimitInBytes(); s != 0 && host.SwapAccounting {
		mem.Swap = &s
	}
	if mem.Limit != nil || mem.Swap != nil {
		out.Memory = mem
	}
	for i, h := range r.GetHugepageLimits() {
		if !pageSize.MatchString(h.GetPageSize()) {
			return nil, fmt.Errorf("%s.hugepage_limits[%d].page_size %q: not like 2MB or 1GB: %w", field, i, h.GetPageSize(), errdefs.ErrInvalidArgument)
		}
		if host.Hugetlb {
			out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	if u := r.GetUnified(); len(u) > 0 {
		if !host.CgroupV2 {
			return nil, fmt.Errorf("%s.unified: the host has cgroup v1, no unified hierarchy: %w", field, errdefs.ErrInvalidArgument)
		}
		for k, v := range u {
			if k == "" || strings.ContainsAny(k, "/\x00") || strings.HasPrefix(k, ".") || !strings.Contains(k, ".") || strings.IndexByte(v, 0) >= 0 {
				return nil, fmt.Errorf("%s.unified %q: not a cgroup v2 file name: %w", field, k, errdefs.ErrInvalidArgument)
			}
		}
		out.Unified = maps.Clone(u)
	}
	return out, nil
}

// checkCPUList checks a cpuset list ("0-3,7").
func checkCPUList(field, s string) error {
	if s == "" {
		return nil
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		_, ok1 := parseID(lo)
		_, ok2 := parseID(hi)
		if !ok1 || (isRange && !ok2) {
			return fmt.Errorf("%s %q: not a list like 0-3,7: %w", field, s, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// oomScoreAdj checks the request's oom_score_adj and raises it to the
// host's floor.
func oomScoreAdj(field string, v int64, host Host) (*int, error) {
	if v < -1000 || v > 1000 {
		return nil, fmt.Errorf("%s %d: out of range [-1000, 1000]: %w", field, v, errdefs.ErrInvalidArgument)
	}
	i := int(v)
	if host.OOMScoreAdjMin != nil && i < *host.OOMScoreAdjMin {
		i = *host.OOMScoreAdjMin
	}
	return &i, nil
}

// Resources converts the resources of an UpdateContainerResources, as a
// create converts those of its config.
func Resources(r *runtime.LinuxContainerResources, host Host) (*specs.LinuxResources, error) {
	return linuxResources("linux", r, host)
}
