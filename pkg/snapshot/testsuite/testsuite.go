// Package testsuite is the behaviour every Snapshotter must show, run with
// real mounts and real files by each backend's tests (overlay, native) and
// by the namespaced view of pkg/meta.
//
// Tests need root (to mount); Run skips without it. It imports only
// pkg/snapshot, leaves and the standard library's testing.
package testsuite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// NewFunc makes a snapshotter under root, an empty directory of the test.
// It returns the context to call it with (a namespace for pkg/meta, say)
// and a function that closes it, called at the end of each test.
type NewFunc func(ctx context.Context, t *testing.T, root string) (context.Context, snapshot.Snapshotter, func() error)

// testTimeout bounds each test so that a hung mount fails instead of
// stalling the whole package.
const testTimeout = 2 * time.Minute

var cases = []struct {
	name string
	fn   func(context.Context, *testing.T, snapshot.Snapshotter)
}{
	{"PrepareCommitChain", testPrepareCommitChain},
	{"ViewIsReadOnly", testViewIsReadOnly},
	{"PrepareErrors", testPrepareErrors},
	{"CommitErrors", testCommitErrors},
	{"RemoveParentWithChildren", testRemoveParentWithChildren},
	{"StatUpdateLabels", testStatUpdateLabels},
	{"WalkFilters", testWalkFilters},
	{"Usage", testUsage},
	{"DeepChain", testDeepChain},
	{"Rebase", testRebase},
	{"ConcurrentPrepare", testConcurrentPrepare},
}

// Run runs the suite against the snapshotters made by newSnapshotter.
func Run(t *testing.T, name string, newSnapshotter NewFunc) {
	testenv.NeedRoot(t, "the snapshotter testsuite (it mounts filesystems)")
	for _, c := range cases {
		t.Run(name+"/"+c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			ctx, sn, closeFn := newSnapshotter(ctx, t, t.TempDir())
			defer func() {
				if err := closeFn(); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			c.fn(ctx, t, sn)
		})
	}
	t.Run(name+"/Reopen", func(t *testing.T) { testReopen(t, newSnapshotter) })
}

// withMount mounts mounts on a temporary directory of the test for fn.
func withMount(ctx context.Context, t *testing.T, mounts []snapshot.Mount, fn func(root string) error) {
	t.Helper()
	if err := mount.WithTempMountIn(ctx, t.TempDir(), mounts, fn); err != nil {
		t.Fatalf("with mount %+v: %v", mounts, err)
	}
}

// writeFiles writes name -> content into root; a content of "" with a
// name ending in '/' makes a directory.
func writeFiles(root string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkFiles checks that root holds files (name -> content) and none of
// absent.
func checkFiles(root string, files map[string]string, absent ...string) error {
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return err
		}
		if string(got) != want {
			return errors.New(name + ": content " + string(got) + ", want " + want)
		}
	}
	for _, name := range absent {
		if _, err := os.Lstat(filepath.Join(root, name)); !errors.Is(err, os.ErrNotExist) {
			return errors.New(name + " should not exist, lstat says: " + errString(err))
		}
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "exists"
	}
	return err.Error()
}

// layer prepares key over parent, writes files into it, deletes the
// paths in remove through the mount, and commits it as name.
func layer(ctx context.Context, t *testing.T, sn snapshot.Snapshotter, name, parent string, files map[string]string, remove ...string) {
	t.Helper()
	key := "prepare-" + name
	mounts, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("prepare %q over %q: %v", key, parent, err)
	}
	withMount(ctx, t, mounts, func(root string) error {
		for _, r := range remove {
			if err := os.RemoveAll(filepath.Join(root, r)); err != nil {
				return err
			}
		}
		return writeFiles(root, files)
	})
	if err := sn.Commit(ctx, name, key); err != nil {
		t.Fatalf("commit %q as %q: %v", key, name, err)
	}
}

// expect fails the test unless err is of the class that is tells.
func expect(t *testing.T, what string, err error, is func(error) bool, class string) {
	t.Helper()
	if !is(err) {
		t.Fatalf("%s: want %s, got %v", what, class, err)
	}
}

func testReopen(t *testing.T, newSnapshotter NewFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	root := t.TempDir()
	sctx, sn, closeFn := newSnapshotter(ctx, t, root)
	layer(sctx, t, sn, "base", "", map[string]string{"a": "1"})
	if err := closeFn(); err != nil {
		t.Fatalf("close: %v", err)
	}
	sctx, sn, closeFn = newSnapshotter(ctx, t, root)
	defer func() {
		if err := closeFn(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	info, err := sn.Stat(sctx, "base")
	if err != nil || info.Kind != snapshot.KindCommitted {
		t.Fatalf("stat after reopen: %+v, %v", info, err)
	}
	mounts, err := sn.View(sctx, "v", "base")
	if err != nil {
		t.Fatal(err)
	}
	withMount(sctx, t, mounts, func(root string) error {
		return checkFiles(root, map[string]string{"a": "1"})
	})
}
