package meta_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/native"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/overlay"
	snapshottestsuite "github.com/cri-runtime/cri-runtime/pkg/snapshot/testsuite"
)

// suiteView opens, under root, a database whose snapshotter name is the
// backend newBackend makes, and returns its namespaced view under a lease.
// Reopening the same root finds the same snapshots.
func suiteView(name string, newBackend func(root string) (snapshot.Snapshotter, error)) snapshottestsuite.NewFunc {
	return func(ctx context.Context, t *testing.T, root string) (context.Context, snapshot.Snapshotter, func() error) {
		backend, err := newBackend(filepath.Join(root, name))
		if err != nil {
			t.Fatalf("backend: %v", err)
		}
		cs, err := local.NewStore(filepath.Join(root, "content"))
		if err != nil {
			t.Fatal(err)
		}
		db, err := meta.Open(ctx, filepath.Join(root, "meta.db"), cs, map[string]snapshot.Snapshotter{name: backend})
		if err != nil {
			t.Fatal(err)
		}
		ctx = namespaces.WithNamespace(ctx, "suite")
		// One lease per root, kept across reopens: the collector runs.
		if _, err := db.Leases().Create(ctx, meta.WithLeaseID("suite")); err != nil && !errdefs.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		ctx = withLeaseID(ctx, "suite")
		return ctx, db.Snapshotter(name), func() error {
			if err := db.Check(context.Background()); err != nil {
				t.Errorf("check: %v", err)
			}
			if err := db.Close(); err != nil {
				return err
			}
			return backend.Close()
		}
	}
}

func TestSnapshotSuiteNative(t *testing.T) {
	snapshottestsuite.Run(t, "meta-native", suiteView("native", native.NewSnapshotter))
}

func TestSnapshotSuiteOverlay(t *testing.T) {
	testenv.NeedRoot(t, "overlay")
	if _, err := overlay.NewSnapshotter(t.TempDir()); err != nil {
		testenv.Missing(t, "overlay is not available here: %v", err)
	}
	snapshottestsuite.Run(t, "meta-overlay", suiteView("overlayfs", func(root string) (snapshot.Snapshotter, error) {
		return overlay.NewSnapshotter(root)
	}))
}

func TestSnapshotKeysAreNamespaced(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	sn := db.Snapshotter("native")
	ns1, ns2 := leased(t, db, nsCtx(t, "ns1")), leased(t, db, nsCtx(t, "ns2"))
	for _, ctx := range []context.Context{ns1, ns2} {
		if _, err := sn.Prepare(ctx, "k", ""); err != nil {
			t.Fatal(err)
		}
		if err := sn.Commit(ctx, "layer", "k", snapshot.WithLabels(map[string]string{"l": "v"})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sn.Prepare(ns1, "child", "layer"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Stat(ns2, "child"); !errdefs.IsNotFound(err) {
		t.Fatalf("child of ns1 seen in ns2: %v", err)
	}
	// ns2's layer has no child: it can go.
	if err := sn.Remove(ns2, "layer"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ns1, "layer"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("remove of a parent: %v", err)
	}
	info, err := sn.Stat(ns1, "child")
	if err != nil || info.Parent != "layer" || info.Kind != snapshot.KindActive {
		t.Fatalf("stat: %+v, %v", info, err)
	}
	var backendKeys []string
	if err := env.Snapshotters["native"].Walk(ns1, func(_ context.Context, i snapshot.Info) error {
		backendKeys = append(backendKeys, i.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(backendKeys) != 2 {
		t.Fatalf("backend snapshots %q, want ns1's layer and child", backendKeys)
	}
}

// TestSnapshotCollection: unreferenced snapshots go, children before
// parents; a container's snapshot and its parents stay, and so does a
// snapshot a blob references by label.
func TestSnapshotCollection(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	sn := db.Snapshotter("native")
	ctx := nsCtx(t, "ns")
	lctx, done, err := meta.WithLease(ctx, db.Leases())
	if err != nil {
		t.Fatal(err)
	}
	chain := func(prefix string, n int) string {
		parent := ""
		for i := range n {
			name := prefix + string(rune('0'+i))
			if _, err := sn.Prepare(lctx, "tmp-"+name, parent); err != nil {
				t.Fatal(err)
			}
			if err := sn.Commit(lctx, name, "tmp-"+name); err != nil {
				t.Fatal(err)
			}
			parent = name
		}
		return parent
	}
	top := chain("a", 3)     // a0 <- a1 <- a2
	garbage := chain("b", 4) // b0 <- ... <- b3
	chain("c", 1)
	if _, err := sn.Prepare(lctx, "rootfs", top); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Containers().Create(lctx, meta.Container{ID: "c", Runtime: meta.Runtime{Name: "runc"}, Snapshotter: "native", SnapshotKey: "rootfs"}); err != nil {
		t.Fatal(err)
	}
	blob(t, lctx, db.ContentStore(), []byte("refs c0"), map[string]string{
		meta.LabelGCRoot:                         "1",
		meta.GCRefSnapshotLabel("native", "top"): "c0",
	})
	if err := done(ctx); err != nil {
		t.Fatal(err)
	}
	st := collect(t, db)
	if st.Removed[gc.ResourceSnapshot] != 4 {
		t.Errorf("removed %v, want the 4 snapshots of the b chain", st.Removed)
	}
	for _, k := range []string{"a0", "a1", "a2", "rootfs", "c0"} {
		if _, err := sn.Stat(ctx, k); err != nil {
			t.Errorf("referenced snapshot %q: %v", k, err)
		}
	}
	if _, err := sn.Stat(ctx, garbage); !errdefs.IsNotFound(err) {
		t.Errorf("garbage snapshot: %v", err)
	}
	n := 0
	if err := env.Snapshotters["native"].Walk(ctx, func(context.Context, snapshot.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("backend holds %d snapshots, want 5", n)
	}
	if err := db.Containers().Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	collect(t, db)
	if _, err := sn.Stat(ctx, "a0"); !errdefs.IsNotFound(err) {
		t.Errorf("parent of a deleted container's snapshot: %v", err)
	}
}
