// Package cgroups finds the cgroup of a process on cgroup v1, v2 and
// hybrid hosts and reads what the runtime needs from cgroupfs: the OOM
// kill counter (the shim, at exit), and for the daemon's stats and
// metrics CPU, memory, pids, IO, huge pages, pressure and the configured
// limits, and the processes of a cgroup with their open files. Creating
// and limiting cgroups is the OCI runtime's work, and so is removing them;
// Remove is the shim's fallback for what a runtime's delete left.
//
// It imports only the standard library and errdefs, so the shim can link it.
package cgroups

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Cgroup is where one process's cgroup is, per controller.
type Cgroup struct {
	// V2 says the memory controller (and so the statistics) are on the
	// unified hierarchy.
	V2 bool
	// Unified is the directory on the cgroup2 hierarchy, "" without one.
	Unified string
	// Dirs maps a v1 controller (memory, cpuacct, pids, blkio, ...) to
	// its directory. Empty on a pure v2 host.
	Dirs map[string]string

	// roots are the hierarchies' mount points, which Remove never removes.
	roots map[string]bool
}

// mountPoints reads the cgroup mounts: v1 controller → mount point, and
// the cgroup2 mount point.
func mountPoints(mountinfo io.Reader) (v1 map[string]string, unified string, err error) {
	v1 = make(map[string]string)
	s := bufio.NewScanner(mountinfo)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		// 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
		line := s.Text()
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		pre, post := strings.Fields(line[:sep]), strings.Fields(line[sep+3:])
		if len(pre) < 5 || len(post) < 3 || pre[3] != "/" {
			continue
		}
		mnt := unescapeMount(pre[4])
		switch post[0] {
		case "cgroup2":
			if unified == "" {
				unified = mnt
			}
		case "cgroup":
			for _, opt := range strings.Split(post[2], ",") {
				if opt == "rw" || opt == "ro" || strings.HasPrefix(opt, "release_agent=") {
					continue
				}
				if _, ok := v1[opt]; !ok {
					v1[opt] = mnt
				}
			}
		}
	}
	return v1, unified, s.Err()
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parse builds a Cgroup from /proc/<pid>/cgroup and the mount points.
func parse(procCgroup io.Reader, v1Mounts map[string]string, unifiedMount string) (*Cgroup, error) {
	cg := &Cgroup{Dirs: make(map[string]string), roots: map[string]bool{}}
	for _, m := range v1Mounts {
		cg.roots[filepath.Clean(m)] = true
	}
	if unifiedMount != "" {
		cg.roots[filepath.Clean(unifiedMount)] = true
	}
	s := bufio.NewScanner(procCgroup)
	for s.Scan() {
		// 4:memory:/kubepods/pod1/c1   or   0::/kubepods/pod1/c1
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			if unifiedMount != "" {
				cg.Unified = filepath.Join(unifiedMount, parts[2])
			}
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			if mnt, ok := v1Mounts[ctrl]; ok {
				cg.Dirs[strings.TrimPrefix(ctrl, "name=")] = filepath.Join(mnt, parts[2])
			}
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	_, hasMemoryV1 := cg.Dirs["memory"]
	cg.V2 = !hasMemoryV1 && cg.Unified != ""
	if !cg.V2 && cg.Unified == filepath.Clean(unifiedMount) {
		// A hybrid host whose runtime left the process at the root of
		// cgroup2: its files there (pressure) are the whole host's.
		cg.Unified = ""
	}
	if !cg.V2 && !hasMemoryV1 {
		return nil, fmt.Errorf("no memory cgroup: %w", errdefs.ErrNotFound)
	}
	return cg, nil
}

// mounts caches the cgroup mount points: they do not change while the
// process runs, and mountinfo is long on a host with many containers.
var mounts struct {
	once    sync.Once
	v1      map[string]string
	unified string
	err     error
}

// loadMounts reads the cgroup mount points once per process.
func loadMounts() (v1 map[string]string, unified string, err error) {
	mounts.once.Do(func() {
		mi, err := os.ReadFile("/proc/self/mountinfo")
		if err == nil {
			mounts.v1, mounts.unified, err = mountPoints(bytes.NewReader(mi))
		}
		mounts.err = err
	})
	if mounts.err != nil {
		return nil, "", fmt.Errorf("cgroup mounts: %w", mounts.err)
	}
	return mounts.v1, mounts.unified, nil
}

// Load finds the cgroup of process pid. A process that is gone is NotFound.
func Load(pid int) (*Cgroup, error) {
	v1, unified, err := loadMounts()
	if err != nil {
		return nil, err
	}
	pc, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		if os.IsNotExist(err) || os.IsPermission(err) {
			return nil, fmt.Errorf("cgroup of pid %d: %w", pid, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	cg, err := parse(bytes.NewReader(pc), v1, unified)
	if err != nil {
		return nil, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	return cg, nil
}

// ForPath is the cgroup at p on every hierarchy: p as the cgroupfs driver
// reads an OCI spec's linux.cgroupsPath, a clean absolute path under each
// hierarchy's root (InvalidArgument otherwise). It is for a container
// whose processes are gone, which Load cannot find; its directories need
// not exist.
func ForPath(p string) (*Cgroup, error) {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
		return nil, fmt.Errorf("cgroup path %q: not a clean absolute path below the root: %w", p, errdefs.ErrInvalidArgument)
	}
	v1, unified, err := loadMounts()
	if err != nil {
		return nil, err
	}
	var lines strings.Builder
	for ctrl := range v1 {
		fmt.Fprintf(&lines, "1:%s:%s\n", ctrl, p)
	}
	fmt.Fprintf(&lines, "0::%s\n", p)
	cg, err := parse(strings.NewReader(lines.String()), v1, unified)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	return cg, nil
}

// MemoryDir is the directory of the memory controller.
func (c *Cgroup) MemoryDir() string {
	if c.V2 {
		return c.Unified
	}
	return c.Dirs["memory"]
}

// OOMKills returns how many processes the kernel's OOM killer killed in
// this cgroup: oom_kill of memory.oom_control (v1) or memory.events (v2).
func (c *Cgroup) OOMKills() (uint64, error) {
	file := "memory.oom_control"
	if c.V2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(c.MemoryDir(), file))
	if err != nil {
		return 0, err
	}
	kv := keyValues(b)
	return kv["oom_kill"], nil
}

// keyValues parses "key value" lines (memory.stat, cpu.stat, ...).
func keyValues(b []byte) map[string]uint64 {
	m := make(map[string]uint64)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			m[f[0]] = v
		}
	}
	return m
}
