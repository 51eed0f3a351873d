package shim

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchMemoryEvents drives the cgroup v2 watch with a file of the
// memory.events format (this host's memory controller is on cgroup v1;
// the v1 eventfd path is tested with a real OOM kill in pkg/task).
func TestWatchMemoryEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "memory.events")
	write := func(oomKill int) {
		t.Helper()
		content := []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill " + string(rune('0'+oomKill)) + "\n")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	ooms := make(chan struct{}, 10)
	stop, err := watchMemoryEvents(path, func() { ooms <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	write(1) // modified, but no new kill
	write(2)
	select {
	case <-ooms:
	case <-time.After(5 * time.Second):
		t.Fatal("no OOM reported")
	}
	time.Sleep(50 * time.Millisecond)
	if len(ooms) != 0 {
		t.Errorf("%d extra OOM reports", len(ooms))
	}
	if oomKillCount(path) != 2 {
		t.Error(oomKillCount(path))
	}
}
