package overlay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/storage"
)

func needRoot(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t, "mounting overlay")
}

func commit(ctx context.Context, t *testing.T, s *Snapshotter, name, parent string, fn func(root string) error) {
	t.Helper()
	mounts, err := s.Prepare(ctx, "prep-"+name, parent)
	if err != nil {
		t.Fatal(err)
	}
	if err := mount.WithTempMountIn(ctx, t.TempDir(), mounts, fn); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, name, "prep-"+name); err != nil {
		t.Fatal(err)
	}
}

func idOf(ctx context.Context, t *testing.T, s *Snapshotter, key string) string {
	t.Helper()
	var sn storage.Snapshot
	err := s.ms.View(ctx, func(tx *storage.Tx) (err error) {
		sn, err = tx.GetSnapshot(key)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sn.ID
}

func noop(string) error { return nil }

func TestMountShapes(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s := newTestSnapshotter(t, t.TempDir())
	defer s.Close()
	commit(ctx, t, s, "a", "", noop)
	commit(ctx, t, s, "b", "a", noop)
	afs, bfs := s.fs(idOf(ctx, t, s, "a")), s.fs(idOf(ctx, t, s, "b"))

	m, err := s.Prepare(ctx, "top", "")
	if err != nil || len(m) != 1 || m[0].Type != "bind" || !slices.Contains(m[0].Options, "rw") || m[0].Source != s.fs(idOf(ctx, t, s, "top")) {
		t.Fatalf("prepare without parent: %+v, %v", m, err)
	}
	m, err = s.View(ctx, "v1", "a")
	if err != nil || len(m) != 1 || m[0].Type != "bind" || !slices.Contains(m[0].Options, "ro") || m[0].Source != afs {
		t.Fatalf("view of one parent: %+v, %v", m, err)
	}
	m, err = s.Prepare(ctx, "c", "b")
	if err != nil || len(m) != 1 || m[0].Type != "overlay" {
		t.Fatalf("prepare over a parent: %+v, %v", m, err)
	}
	id := idOf(ctx, t, s, "c")
	want := []string{"upperdir=" + s.fs(id), "workdir=" + s.work(id), "lowerdir=" + bfs + ":" + afs}
	for _, w := range want {
		if !slices.Contains(m[0].Options, w) {
			t.Fatalf("options %q lack %q", m[0].Options, w)
		}
	}
	if _, err := os.Stat("/sys/module/overlay/parameters/index"); err == nil && !slices.Contains(m[0].Options, "index=off") {
		t.Fatalf("the kernel knows index=, the mount should turn it off: %q", m[0].Options)
	}
	if inNS, _ := mount.InUserNS(); !inNS && slices.Contains(m[0].Options, "userxattr") {
		t.Fatalf("userxattr outside a user namespace: %q", m[0].Options)
	}
	m, err = s.View(ctx, "v2", "b")
	opts := strings.Join(m[0].Options, ",")
	if err != nil || m[0].Type != "overlay" || strings.Contains(opts, "upperdir") || !slices.Contains(m[0].Options, "ro") {
		t.Fatalf("view of two parents: %+v, %v", m, err)
	}
}

// TestDeletionIsAWhiteout: deleting a parent's file through the mount
// leaves an overlay whiteout (a 0/0 character device) in the upper layer
// and leaves the parent's layer intact.
func TestDeletionIsAWhiteout(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s := newTestSnapshotter(t, t.TempDir())
	defer s.Close()
	commit(ctx, t, s, "base", "", func(root string) error {
		return os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644)
	})
	commit(ctx, t, s, "del", "base", func(root string) error {
		return os.Remove(filepath.Join(root, "f"))
	})
	fi, err := os.Lstat(filepath.Join(s.fs(idOf(ctx, t, s, "del")), "f"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeCharDevice == 0 || st.Rdev != 0 {
		t.Fatalf("upper entry of a deleted file: mode %v rdev %d, want a 0/0 char device", fi.Mode(), st.Rdev)
	}
	if b, err := os.ReadFile(filepath.Join(s.fs(idOf(ctx, t, s, "base")), "f")); err != nil || string(b) != "x" {
		t.Fatalf("parent layer changed: %q, %v", b, err)
	}
}

// TestRebaseKeepsTheLayer: a rebased commit moves no files.
func TestRebaseKeepsTheLayer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s := newTestSnapshotter(t, t.TempDir())
	defer s.Close()
	commit(ctx, t, s, "p", "", noop)
	if _, err := s.Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	id := idOf(ctx, t, s, "k")
	if err := os.WriteFile(filepath.Join(s.fs(id), "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, "c", "k", snapshot.WithParent("p")); err != nil {
		t.Fatal(err)
	}
	if got := idOf(ctx, t, s, "c"); got != id {
		t.Fatalf("rebased snapshot has ID %s, was %s", got, id)
	}
	if _, err := os.Stat(filepath.Join(s.fs(id), "f")); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveAndCleanup(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	root := t.TempDir()
	s := newTestSnapshotter(t, root)
	defer s.Close()
	commit(ctx, t, s, "a", "", noop)
	dir := s.dir(idOf(ctx, t, s, "a"))
	if err := s.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory of a removed snapshot: %v", err)
	}

	// What a crash leaves: a directory of an ID without a record, one
	// renamed away for removal, and a temporary one.
	commit(ctx, t, s, "kept", "", noop)
	kept := s.dir(idOf(ctx, t, s, "kept"))
	snaps := filepath.Join(root, "snapshots")
	leftovers := []string{filepath.Join(snaps, "9999", "fs"), filepath.Join(snaps, storage.RemovingPrefix+"77", "fs")}
	for _, d := range leftovers {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	temp := filepath.Join(snaps, storage.TempPrefix+"123")
	if err := os.Mkdir(temp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range leftovers {
		if _, err := os.Stat(filepath.Dir(d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup left %s: %v", d, err)
		}
	}
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("cleanup removed a live snapshot: %v", err)
	}
	if _, err := os.Stat(temp); err != nil {
		t.Fatalf("cleanup removed a directory that may be in use: %v", err)
	}
	// A new start removes what a crash left of a create.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = newTestSnapshotter(t, root)
	if _, err := os.Stat(temp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("start left a temporary directory: %v", err)
	}
}

func TestProbeRejectsUnsupportedFilesystem(t *testing.T) {
	needRoot(t)
	// overlayfs cannot use an overlay mount as its upper layer.
	lower, upper, work, merged := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	m := snapshot.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work,
	}}
	if err := mount.MountAll([]snapshot.Mount{m}, merged); err != nil {
		t.Fatal(err)
	}
	defer mount.UnmountAll(merged)
	_, err := NewSnapshotter(filepath.Join(merged, "root"))
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "overlayfs") {
		t.Fatalf("overlay on overlay: want a FailedPrecondition naming overlayfs, got %v", err)
	}
}
