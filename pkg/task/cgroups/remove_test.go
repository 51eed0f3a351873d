package cgroups

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRemoveNeverTouchesARoot: a cgroup whose directories are hierarchy
// roots, or outside every hierarchy, has nothing Remove may remove.
func TestRemoveNeverTouchesARoot(t *testing.T) {
	v1, unified, err := mountPoints(strings.NewReader(hybridMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	cg, err := parse(strings.NewReader("4:memory:/\n2:cpuacct:/../..\n0::/\n"), v1, unified)
	if err != nil {
		t.Fatal(err)
	}
	cg.Dirs["pids"] = "/etc"
	if d := cg.dirs(); len(d) != 0 {
		t.Fatalf("dirs of a root cgroup: %q", d)
	}
	cg, _ = parse(strings.NewReader("4:memory:/a/c1\n2:cpuacct:/a/c1\n0::/a/c1\n"), v1, unified)
	if d := cg.dirs(); len(d) != 3 {
		t.Fatalf("dirs: %q", d)
	}
}

// TestRemoveWaitsForOrKillsItsProcesses makes a cgroup in every hierarchy
// of this host with a process in it, as a container's that its runtime
// failed to remove: Remove without kill fails while the process is there
// and leaves everything; with kill it removes the cgroup, the cgroups
// below it included.
func TestRemoveWaitsForOrKillsItsProcesses(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to make cgroups")
	}
	rel := fmt.Sprintf("/cri-runtime-test-remove-%d", os.Getpid())
	self, err := Load(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, r := range rootsOf(self) {
		dirs = append(dirs, filepath.Join(r, rel))
	}
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleep.Wait() }()
	t.Cleanup(func() {
		_ = sleep.Process.Kill()
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
		}
		for _, d := range dirs {
			os.Remove(filepath.Join(d, "child"))
			os.Remove(d)
		}
	})
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(d, "child"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "child", "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0o644); err != nil {
			t.Fatalf("move the process into %s: %v", d, err)
		}
	}
	cg, err := Load(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cg = cg.Parent() // the cgroup with a child cgroup that holds the process

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := cg.Remove(ctx, false); err == nil {
		t.Fatal("Remove without kill succeeded with a process in the cgroup")
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "child")); err != nil {
			t.Fatalf("a failed Remove removed %s: %v", d, err)
		}
	}

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cg.Remove(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", d, err)
		}
	}
	select {
	case err := <-waited:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("the process in the cgroup: %v, want killed", err)
		}
		waited <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Errorf("the process in the cgroup still runs")
	}
	if err := cg.Remove(ctx, true); err != nil {
		t.Errorf("Remove of a removed cgroup: %v", err)
	}
}

// rootsOf lists the hierarchies' mount points of cg, but cpuset's (a new
// cpuset cgroup takes no process until its CPUs and nodes are set).
func rootsOf(cg *Cgroup) []string {
	var out []string
	for r := range cg.roots {
		if _, err := os.Stat(filepath.Join(r, "cgroup.procs")); err == nil && filepath.Base(r) != "cpuset" {
			out = append(out, r)
		}
	}
	return out
}
