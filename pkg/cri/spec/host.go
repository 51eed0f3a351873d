package spec

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DetectHost reads what the translation needs to know about this machine:
// the cgroup version and controllers, AppArmor, the kernel's capabilities,
// version and hostname. The caller calls it once and keeps the result.
func DetectHost() (Host, error) {
	var h Host
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil {
		return Host{}, fmt.Errorf("cgroup file system: %w", err)
	}
	h.CgroupV2 = fs.Type == unix.CGROUP2_SUPER_MAGIC
	if h.CgroupV2 {
		controllers, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		h.Hugetlb = strings.Contains(" "+strings.TrimSpace(string(controllers))+" ", " hugetlb ")
		h.SwapAccounting = exists(filepath.Join("/sys/fs/cgroup", ownCgroupV2(), "memory.swap.max"))
	} else {
		h.Hugetlb = exists("/sys/fs/cgroup/hugetlb")
		h.SwapAccounting = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	}
	enabled, _ := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	h.AppArmor = bytes.HasPrefix(enabled, []byte("Y")) && exists("/sys/kernel/security/apparmor")
	if err := detectCapabilities(&h); err != nil {
		return Host{}, err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		h.Kernel = ParseKernelVersion(unix.ByteSliceToString(uts.Release[:]))
	}
	name, err := os.Hostname()
	if err != nil {
		return Host{}, fmt.Errorf("hostname: %w", err)
	}
	h.Hostname = name
	return h, nil
}

// detectCapabilities sets the capabilities a container may have: those of
// the kernel (cap_last_cap) that this process holds, effective and in its
// bounding set, since a runtime it starts cannot grant more. Without
// CAP_SYS_RESOURCE, the oom_score_adj of a container cannot go below this
// process's own, which becomes OOMScoreAdjMin, nor its open files above
// this process's hard limit, NOFILEMax.
func detectCapabilities(h *Host) error {
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		return fmt.Errorf("capabilities: cap_last_cap %q: %w", last, err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	var eff, bnd uint64
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			bnd, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	h.Capabilities = []string{}
	for i, c := range CapabilitiesUpTo(n) {
		if eff&bnd&(1<<i) != 0 {
			h.Capabilities = append(h.Capabilities, c)
		}
	}
	if eff&(1<<24) == 0 { // CAP_SYS_RESOURCE
		adj, err := os.ReadFile("/proc/self/oom_score_adj")
		if err != nil {
			return fmt.Errorf("oom_score_adj: %w", err)
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(adj)))
		if err != nil {
			return fmt.Errorf("oom_score_adj %q: %w", adj, err)
		}
		h.OOMScoreAdjMin = &v
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("RLIMIT_NOFILE: %w", err)
		}
		h.NOFILEMax = lim.Max
	}
	return nil
}

// ParseKernelVersion reads "major.minor" from a kernel release such as
// "6.1.0-18-amd64"; zero when it cannot.
func ParseKernelVersion(release string) KernelVersion {
	var k KernelVersion
	if _, err := fmt.Sscanf(release, "%d.%d", &k.Major, &k.Minor); err != nil {
		return KernelVersion{}
	}
	return k
}

// ownCgroupV2 is this process's cgroup in the unified hierarchy.
func ownCgroupV2() string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "/"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if p, ok := strings.CutPrefix(s.Text(), "0::"); ok {
			return p
		}
	}
	return "/"
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
