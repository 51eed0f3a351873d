package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Remove removes the cgroup's directories on every hierarchy, the
// cgroups below them first, once their processes have left; it retries
// until ctx ends. With kill, the processes still in them are sent SIGKILL
// each round: the caller owns the cgroup and is deleting what ran in it.
// A directory already gone counts as removed. It never removes a
// hierarchy's root.
//
// The OCI runtime removes a container's cgroup at delete. Remove is for
// what it left: runc removes its state even when removing the cgroup
// failed (processes killed with the container still exiting, on a busy
// host), and its next delete then knows no such container.
func (c *Cgroup) Remove(ctx context.Context, kill bool) error {
	dirs := c.dirs()
	delay := 5 * time.Millisecond
	for {
		var left []string
		var errs []error
		for _, d := range dirs {
			if kill {
				killProcs(d)
			}
			if err := removeTree(d); err != nil {
				left = append(left, d)
				if !errors.Is(err, syscall.EBUSY) {
					errs = append(errs, err)
				}
			}
		}
		if len(left) == 0 {
			return nil
		}
		if len(errs) > 0 {
			return fmt.Errorf("remove cgroup: %w", errors.Join(errs...))
		}
		dirs = left
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove cgroup %s: processes still in it: %w", strings.Join(left, ", "), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// removeBound is how long RemoveContainer waits for the processes of a
// container's cgroup to leave it.
const removeBound = 10 * time.Second

// RemoveContainer removes what a runtime's delete left of the cgroup of
// container id, as a delete of it does: Remove for up to removeBound,
// killing the processes still in it when the cgroup is the container's
// own (NamedFor), only waiting for them otherwise (a spec that put the
// container in a cgroup it shares).
func (c *Cgroup) RemoveContainer(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, removeBound)
	defer cancel()
	if err := c.Remove(ctx, c.NamedFor(id)); err != nil {
		return fmt.Errorf("container %q: %w", id, err)
	}
	return nil
}

// NamedFor says whether every directory of the cgroup is named for id
// (".../<id>", or a systemd unit "...-<id>.scope"): a container's own.
func (c *Cgroup) NamedFor(id string) bool {
	dirs := c.dirs()
	for _, d := range dirs {
		if b := filepath.Base(d); b != id && !strings.HasSuffix(b, "-"+id+".scope") {
			return false
		}
	}
	return len(dirs) > 0 && id != ""
}

// dirs are the cgroup's directories, each once (co-mounted controllers
// share one), without a hierarchy's root or anything outside the
// hierarchies.
func (c *Cgroup) dirs() []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		d = filepath.Clean(d)
		if d == "." || seen[d] || !c.below(d) {
			return
		}
		seen[d] = true
		out = append(out, d)
	}
	for _, d := range c.Dirs {
		add(d)
	}
	add(c.Unified)
	sort.Strings(out)
	return out
}

// below says whether d is strictly below a hierarchy's mount point.
func (c *Cgroup) below(d string) bool {
	for r := filepath.Dir(d); r != d; d, r = r, filepath.Dir(r) {
		if c.roots[r] {
			return true
		}
	}
	return false
}

// removeTree removes d and the cgroups below it, deepest first. A cgroup
// directory holds only control files, which rmdir removes with it.
func removeTree(d string) error {
	ents, err := os.ReadDir(d)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(d, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
		return &os.PathError{Op: "rmdir", Path: d, Err: err}
	}
	return nil
}

// killProcs sends SIGKILL to every process in d and the cgroups below it.
func killProcs(d string) {
	_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		return nil
	})
}
