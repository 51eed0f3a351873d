package testsuite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// testPrepareCommitChain: files of a committed parent show through a
// child; a deletion in the child hides the parent's file from the child's
// descendants without touching the parent.
func testPrepareCommitChain(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	layer(ctx, t, sn, "base", "", map[string]string{"foo": "base", "dir/bar": "bar", "gone/x": "x"})
	info, err := sn.Stat(ctx, "base")
	if err != nil || info.Kind != snapshot.KindCommitted || info.Parent != "" || info.Name != "base" {
		t.Fatalf("stat base: %+v, %v", info, err)
	}
	if _, err := sn.Stat(ctx, "prepare-base"); !errdefs.IsNotFound(err) {
		t.Fatalf("active key after commit: want NotFound, got %v", err)
	}

	mounts, err := sn.Prepare(ctx, "child", "base")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := sn.Stat(ctx, "child"); err != nil || info.Kind != snapshot.KindActive || info.Parent != "base" {
		t.Fatalf("stat child: %+v, %v", info, err)
	}
	withMount(ctx, t, mounts, func(root string) error {
		if err := checkFiles(root, map[string]string{"foo": "base", "dir/bar": "bar"}); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(root, "foo")); err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(root, "gone")); err != nil {
			return err
		}
		return writeFiles(root, map[string]string{"new": "new", "dir/baz": "baz"})
	})
	// Mounts gives the same view again.
	mounts, err = sn.Mounts(ctx, "child")
	if err != nil {
		t.Fatal(err)
	}
	withMount(ctx, t, mounts, func(root string) error {
		return checkFiles(root, map[string]string{"new": "new"}, "foo", "gone")
	})
	if err := sn.Commit(ctx, "top", "child"); err != nil {
		t.Fatal(err)
	}
	_, err = sn.Mounts(ctx, "top")
	expect(t, "mounts of a committed snapshot", err, errdefs.IsFailedPrecondition, "FailedPrecondition")

	mounts, err = sn.View(ctx, "view", "top")
	if err != nil {
		t.Fatal(err)
	}
	withMount(ctx, t, mounts, func(root string) error {
		return checkFiles(root, map[string]string{"new": "new", "dir/bar": "bar", "dir/baz": "baz"}, "foo", "gone")
	})
	mounts, err = sn.View(ctx, "view-base", "base")
	if err != nil {
		t.Fatal(err)
	}
	withMount(ctx, t, mounts, func(root string) error {
		return checkFiles(root, map[string]string{"foo": "base", "gone/x": "x"}, "new", "dir/baz")
	})
}

func testViewIsReadOnly(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	layer(ctx, t, sn, "l1", "", map[string]string{"a": "1"})
	layer(ctx, t, sn, "l2", "l1", map[string]string{"b": "2"})
	for _, parent := range []string{"", "l1", "l2"} {
		key := "view-over-" + parent
		mounts, err := sn.View(ctx, key, parent)
		if err != nil {
			t.Fatalf("view over %q: %v", parent, err)
		}
		if info, err := sn.Stat(ctx, key); err != nil || info.Kind != snapshot.KindView || info.Parent != parent {
			t.Fatalf("stat %q: %+v, %v", key, info, err)
		}
		withMount(ctx, t, mounts, func(root string) error {
			err := os.WriteFile(filepath.Join(root, "w"), []byte("x"), 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("write into view over %q: want EROFS, got %v", parent, err)
			}
			return nil
		})
		if err := sn.Commit(ctx, "commit-"+key, key); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("commit of view %q: want FailedPrecondition, got %v", key, err)
		}
	}
}

func testPrepareErrors(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	layer(ctx, t, sn, "base", "", nil)
	if _, err := sn.Prepare(ctx, "active", "base"); err != nil {
		t.Fatal(err)
	}
	_, err := sn.Prepare(ctx, "active", "")
	expect(t, "prepare of an existing key", err, errdefs.IsAlreadyExists, "AlreadyExists")
	_, err = sn.View(ctx, "base", "")
	expect(t, "view named like a committed snapshot", err, errdefs.IsAlreadyExists, "AlreadyExists")
	_, err = sn.Prepare(ctx, "orphan", "missing")
	expect(t, "prepare over a missing parent", err, errdefs.IsNotFound, "NotFound")
	_, err = sn.Prepare(ctx, "over-active", "active")
	expect(t, "prepare over an active parent", err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	_, err = sn.Prepare(ctx, "", "base")
	expect(t, "prepare of an empty key", err, errdefs.IsInvalidArgument, "InvalidArgument")
	for _, key := range []string{"orphan", "over-active"} {
		if _, err := sn.Stat(ctx, key); !errdefs.IsNotFound(err) {
			t.Errorf("failed prepare left %q behind: %v", key, err)
		}
	}
}

func testCommitErrors(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	layer(ctx, t, sn, "base", "", map[string]string{"a": "1"})
	expect(t, "commit of a missing key", sn.Commit(ctx, "x", "missing"), errdefs.IsNotFound, "NotFound")
	if _, err := sn.Prepare(ctx, "active", "base"); err != nil {
		t.Fatal(err)
	}
	expect(t, "commit to an existing name", sn.Commit(ctx, "base", "active"), errdefs.IsAlreadyExists, "AlreadyExists")
	if info, err := sn.Stat(ctx, "active"); err != nil || info.Kind != snapshot.KindActive {
		t.Fatalf("active key after a failed commit: %+v, %v", info, err)
	}
	if err := sn.Commit(ctx, "second", "active"); err != nil {
		t.Fatalf("commit after a failed one: %v", err)
	}
	expect(t, "commit of a committed snapshot", sn.Commit(ctx, "third", "second"), errdefs.IsFailedPrecondition, "FailedPrecondition")
}

func testRemoveParentWithChildren(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	layer(ctx, t, sn, "parent", "", map[string]string{"a": "1"})
	layer(ctx, t, sn, "child", "parent", map[string]string{"b": "2"})
	if _, err := sn.View(ctx, "view", "child"); err != nil {
		t.Fatal(err)
	}
	expect(t, "remove of a parent", sn.Remove(ctx, "parent"), errdefs.IsFailedPrecondition, "FailedPrecondition")
	expect(t, "remove of a viewed parent", sn.Remove(ctx, "child"), errdefs.IsFailedPrecondition, "FailedPrecondition")
	for _, key := range []string{"view", "child", "parent"} {
		if err := sn.Remove(ctx, key); err != nil {
			t.Fatalf("remove %q: %v", key, err)
		}
		if _, err := sn.Stat(ctx, key); !errdefs.IsNotFound(err) {
			t.Fatalf("stat after remove of %q: want NotFound, got %v", key, err)
		}
	}
	expect(t, "remove of a missing key", sn.Remove(ctx, "parent"), errdefs.IsNotFound, "NotFound")
	// The names are free again.
	layer(ctx, t, sn, "parent", "", map[string]string{"c": "3"})
}
