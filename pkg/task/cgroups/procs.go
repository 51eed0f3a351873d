package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Processes are the figures of the processes in a cgroup (and the
// cgroups below it), counted from /proc.
type Processes struct {
	// Count is the number of processes (thread groups).
	Count uint64
	// FDs is the number of open file descriptors of those processes,
	// Sockets the number of them that are sockets.
	FDs     uint64
	Sockets uint64
}

// Processes counts the processes of the cgroup and its descendants and
// their open file descriptors. A process that exits meanwhile, or whose
// fd table cannot be read, counts without its descriptors.
func (c *Cgroup) Processes() (Processes, error) {
	var p Processes
	dir := c.procsDir()
	if dir == "" {
		return p, fmt.Errorf("cgroup has no directory to list processes in: %w", notFound(os.ErrNotExist))
	}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return notFound(err)
			}
			return nil // a child cgroup removed meanwhile
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			p.Count++
			fds, sockets := countFDs(pid)
			p.FDs += fds
			p.Sockets += sockets
		}
		return nil
	})
	return p, err
}

// procsDir is a directory of the cgroup whose cgroup.procs lists its
// processes: the unified one on v2, the pids (or memory) controller's on v1.
func (c *Cgroup) procsDir() string {
	if c.V2 {
		return c.Unified
	}
	if d, ok := c.Dirs["pids"]; ok {
		return d
	}
	return c.Dirs["memory"]
}

// countFDs counts the open file descriptors of pid and those of them
// that are sockets.
func countFDs(pid int) (fds, sockets uint64) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range entries {
		fds++
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			sockets++
		}
	}
	return fds, sockets
}

// Parent is the cgroup that holds this one: the parent directory on every
// hierarchy. The parent of a pod's pause container is the pod's cgroup
// when the pod has a cgroup parent of its own.
func (c *Cgroup) Parent() *Cgroup {
	p := &Cgroup{V2: c.V2, Dirs: make(map[string]string, len(c.Dirs)), roots: c.roots}
	if c.Unified != "" {
		p.Unified = filepath.Dir(c.Unified)
	}
	for k, d := range c.Dirs {
		p.Dirs[k] = filepath.Dir(d)
	}
	return p
}
