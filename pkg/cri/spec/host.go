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
	if last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(last))); err == nil {
			h.Capabilities = CapabilitiesUpTo(n)
		}
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
