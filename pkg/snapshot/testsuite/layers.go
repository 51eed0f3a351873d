package testsuite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// testUsage: a layer's usage counts allocated bytes and inodes, a file
// with two links once, and is kept across the commit.
func testUsage(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	const big = 1 << 20
	mounts, err := sn.Prepare(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := sn.Usage(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	withMount(ctx, t, mounts, func(root string) error {
		data := make([]byte, big)
		for i := range data {
			data[i] = byte(i) | 1 // not zero, so that nothing is sparse
		}
		if err := os.WriteFile(filepath.Join(root, "big"), data, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, "small"), []byte("s"), 0o644); err != nil {
			return err
		}
		return os.Link(filepath.Join(root, "small"), filepath.Join(root, "small-link"))
	})
	active, err := sn.Usage(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if got := active.Inodes - empty.Inodes; got != 2 {
		t.Errorf("inodes: %d more than empty (%+v -> %+v), want 2: big and small, its link once", got, empty, active)
	}
	// Allow the blocks of a directory and the small file, not a second big.
	if got := active.Size - empty.Size; got < big || got > big+big/4 {
		t.Errorf("size: %d more than empty, want about %d", got, big)
	}
	if err := sn.Commit(ctx, "c", "u"); err != nil {
		t.Fatal(err)
	}
	committed, err := sn.Usage(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if committed != active {
		t.Errorf("usage after commit %+v, before %+v", committed, active)
	}
	_, err = sn.Usage(ctx, "missing")
	expect(t, "usage of a missing snapshot", err, errdefs.IsNotFound, "NotFound")
}

// deepChainLength is more layers than one page of absolute overlay
// lowerdir paths can hold.
const deepChainLength = 130

func testDeepChain(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	parent := ""
	for i := range deepChainLength {
		name := fmt.Sprintf("layer-%03d", i)
		layer(ctx, t, sn, name, parent, map[string]string{name: name, "top": strconv.Itoa(i)})
		parent = name
	}
	want := map[string]string{"top": strconv.Itoa(deepChainLength - 1)}
	for i := range deepChainLength {
		name := fmt.Sprintf("layer-%03d", i)
		want[name] = name
	}
	for _, kind := range []string{"view", "active"} {
		var (
			mounts []snapshot.Mount
			err    error
		)
		if kind == "view" {
			mounts, err = sn.View(ctx, "deep-"+kind, parent)
		} else {
			mounts, err = sn.Prepare(ctx, "deep-"+kind, parent)
		}
		if err != nil {
			t.Fatalf("%s over %d layers: %v", kind, deepChainLength, err)
		}
		withMount(ctx, t, mounts, func(root string) error { return checkFiles(root, want) })
	}
}

// testRebase: a snapshotter that can rebase commits a layer prepared
// without a parent under another one; one that cannot refuses with
// NotImplemented and keeps the active snapshot.
func testRebase(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	m1, err := sn.Prepare(ctx, "l1", "")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := sn.Prepare(ctx, "l2", "")
	if err != nil {
		t.Fatal(err)
	}
	withMount(ctx, t, m2, func(root string) error { return writeFiles(root, map[string]string{"b": "2", "shared": "l2"}) })
	withMount(ctx, t, m1, func(root string) error { return writeFiles(root, map[string]string{"a": "1", "shared": "l1"}) })
	if err := sn.Commit(ctx, "c1", "l1"); err != nil {
		t.Fatal(err)
	}

	if !snapshot.CanRebase(sn) {
		err := sn.Commit(ctx, "c2", "l2", snapshot.WithParent("c1"))
		expect(t, "rebase on a snapshotter that cannot", err, errdefs.IsNotImplemented, "NotImplemented")
		if info, err := sn.Stat(ctx, "l2"); err != nil || info.Kind != snapshot.KindActive {
			t.Fatalf("active key after a refused rebase: %+v, %v", info, err)
		}
		return
	}

	if _, err := sn.Prepare(ctx, "still-active", ""); err != nil {
		t.Fatal(err)
	}
	err = sn.Commit(ctx, "c2", "l2", snapshot.WithParent("missing"))
	expect(t, "rebase onto a missing parent", err, errdefs.IsNotFound, "NotFound")
	err = sn.Commit(ctx, "c2", "l2", snapshot.WithParent("still-active"))
	expect(t, "rebase onto an active parent", err, errdefs.IsFailedPrecondition, "FailedPrecondition")

	if err := sn.Commit(ctx, "c2", "l2", snapshot.WithParent("c1")); err != nil {
		t.Fatalf("rebase: %v", err)
	}
	if info, err := sn.Stat(ctx, "c2"); err != nil || info.Parent != "c1" {
		t.Fatalf("stat of the rebased layer: %+v, %v", info, err)
	}
	mounts, err := sn.View(ctx, "v", "c2")
	if err != nil {
		t.Fatal(err)
	}
	withMount(ctx, t, mounts, func(root string) error {
		return checkFiles(root, map[string]string{"a": "1", "b": "2", "shared": "l2"})
	})
	expect(t, "remove of the new parent", sn.Remove(ctx, "c1"), errdefs.IsFailedPrecondition, "FailedPrecondition")
	for _, key := range []string{"v", "c2", "c1"} {
		if err := sn.Remove(ctx, key); err != nil {
			t.Fatalf("remove %q: %v", key, err)
		}
	}
}

// testConcurrentPrepare: prepares, writes and commits of different keys
// over one parent at once do not interfere.
func testConcurrentPrepare(ctx context.Context, t *testing.T, sn snapshot.Snapshotter) {
	const n = 12
	layer(ctx, t, sn, "base", "", map[string]string{"base": "b"})
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			key, name := fmt.Sprintf("active-%d", i), fmt.Sprintf("committed-%d", i)
			mounts, err := sn.Prepare(ctx, key, "base")
			if err != nil {
				return err
			}
			err = mount.WithTempMountIn(ctx, t.TempDir(), mounts, func(root string) error {
				if err := checkFiles(root, map[string]string{"base": "b"}); err != nil {
					return err
				}
				return writeFiles(root, map[string]string{"own": name})
			})
			if err != nil {
				return err
			}
			return sn.Commit(ctx, name, key)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("committed-%d", i)
		mounts, err := sn.View(ctx, "view-"+name, name)
		if err != nil {
			t.Fatal(err)
		}
		withMount(ctx, t, mounts, func(root string) error {
			return checkFiles(root, map[string]string{"base": "b", "own": name})
		})
	}
}
