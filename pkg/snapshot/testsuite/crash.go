package testsuite

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/testenv"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// RunCrashBetweenRenameAndRecord checks a backend that keeps snapshot
// directories at <root>/snapshots/<id>, numbered by its metastore: a
// crash after a create renamed its directory into place but before its
// record was committed leaves a directory under the next ID. The next
// create must succeed at the first try, with a directory of its own, and
// must not remove any directory it did not create.
func RunCrashBetweenRenameAndRecord(t *testing.T, newSnapshotter func(root string) (snapshot.Snapshotter, error)) {
	testenv.NeedRoot(t, "the snapshotter testsuite (it mounts filesystems)")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	root := t.TempDir()
	sn, err := newSnapshotter(root)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	if _, err := sn.Prepare(ctx, "first", ""); err != nil {
		t.Fatal(err)
	}
	// The crash's leftover: the directory of the ID the next create gets.
	var next int
	entries, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			next = max(next, n+1)
		}
	}
	leftover := filepath.Join(root, "snapshots", strconv.Itoa(next))
	if err := os.MkdirAll(filepath.Join(leftover, "fs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leftover, "fs", "stale"), []byte("from before the crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts, err := sn.Prepare(ctx, "second", "")
	if err != nil {
		t.Fatalf("first create after the crash: %v", err)
	}
	err = mount.WithTempMount(ctx, mounts, func(dir string) error {
		if _, err := os.Stat(filepath.Join(dir, "stale")); !os.IsNotExist(err) {
			t.Errorf("the new snapshot shows the crashed create's file: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The earlier snapshot is untouched.
	if _, err := sn.Mounts(ctx, "first"); err != nil {
		t.Fatalf("first snapshot after the crash recovery: %v", err)
	}
}
