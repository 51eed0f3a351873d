package meta

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/native"
)

// gated is the real native snapshotter with a pause point in its Prepare
// and Commit: the backend work of a test's operation starts, then waits
// for the test, as a long copy or usage walk would.
type gated struct {
	snapshot.Snapshotter
	armed   atomic.Bool   // the next Prepare or Commit waits
	started chan struct{} // the armed operation has begun
	release chan struct{} // let it finish
}

func (g *gated) wait() {
	if g.armed.CompareAndSwap(true, false) {
		g.started <- struct{}{}
		<-g.release
	}
}

// arm makes the next backend Prepare or Commit wait, and returns once it
// has started.
func (g *gated) arm(t *testing.T, op func()) {
	t.Helper()
	g.armed.Store(true)
	go op()
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend operation did not start")
	}
}

func (g *gated) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	g.wait()
	return g.Snapshotter.Prepare(ctx, key, parent, opts...)
}

func (g *gated) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	g.wait()
	return g.Snapshotter.Commit(ctx, name, key, opts...)
}

func openGated(t *testing.T) (*DB, *gated, context.Context) {
	t.Helper()
	root := t.TempDir()
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := native.NewSnapshotter(filepath.Join(root, "native"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	g := &gated{Snapshotter: sn, started: make(chan struct{}), release: make(chan struct{})}
	p := gc.DefaultPolicy()
	p.StartupDelay, p.MutationThreshold, p.DeletionThreshold = gc.Duration(time.Hour), 0, 1<<30
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "ns"), time.Minute)
	t.Cleanup(cancel)
	db, err := Open(ctx, filepath.Join(root, "meta.db"), cs, map[string]snapshot.Snapshotter{"native": g}, WithGCPolicy(p))
	if err != nil {
		t.Fatal(err)
	}
	// The first collection reconciles the backend with the records, under
	// the snapshotter's own lock, which creates hold until they record:
	// get it done, as a running daemon has.
	if _, err := db.GarbageCollect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(context.Background()); err != nil {
			t.Errorf("check: %v", err)
		}
		db.Close()
	})
	return db, g, ctx
}

// collectWhileBlocked runs a collection while the armed backend operation
// waits, and fails the test if the collection waits for it: a writer's
// slow disk work must not hold the collector, and so every other writer,
// off.
func collectWhileBlocked(t *testing.T, db *DB, g *gated, ctx context.Context) gc.Stats {
	t.Helper()
	done := make(chan gc.Stats, 1)
	go func() {
		st, err := db.GarbageCollect(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	select {
	case st := <-done:
		close(g.release)
		return st
	case <-time.After(5 * time.Second):
		close(g.release)
		<-done
		t.Fatal("the collection waited for a backend Prepare or Commit to finish")
		return gc.Stats{}
	}
}

// makeParent makes a committed snapshot holding one file, under a
// lease it returns.
func makeParent(t *testing.T, db *DB, ctx context.Context) (lease Lease) {
	t.Helper()
	lm := db.Leases()
	l, err := lm.Create(ctx, WithRandomID())
	if err != nil {
		t.Fatal(err)
	}
	lctx := leases.WithLease(ctx, l.ID)
	sn := db.Snapshotter("native")
	mounts, err := sn.Prepare(lctx, "parent-active", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := mount.WithTempMount(ctx, mounts, func(root string) error {
		return os.WriteFile(filepath.Join(root, "from-parent"), []byte("x"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(lctx, "parent", "parent-active"); err != nil {
		t.Fatal(err)
	}
	return l
}

// Regression: a native Prepare held the writers' interlock across its full
// copy of the parent, so a collection, and every writer behind it, waited
// for the copy. Now the parent is pinned instead: the collection runs
// during the copy and keeps the parent, though its lease is gone.
func TestPrepareKeepsParentWithoutHoldingCollector(t *testing.T) {
	db, g, ctx := openGated(t)
	l := makeParent(t, db, ctx)
	sn := db.Snapshotter("native")
	child := leased(t, db, ctx)
	errc := make(chan error, 1)
	g.arm(t, func() {
		_, err := sn.Prepare(child, "child", "parent")
		errc <- err
	})
	if err := db.Leases().Delete(ctx, l); err != nil { // the parent is garbage now, but for the pin
		t.Fatal(err)
	}
	st := collectWhileBlocked(t, db, g, ctx)
	if err := <-errc; err != nil {
		t.Fatalf("prepare over a parent the collector ran against: %v", err)
	}
	if st.Removed[gc.ResourceSnapshot] != 0 {
		t.Fatalf("the collection removed %d snapshots during the prepare", st.Removed[gc.ResourceSnapshot])
	}
	mounts, err := sn.Mounts(ctx, "child")
	if err != nil {
		t.Fatal(err)
	}
	if err := mount.WithTempMount(ctx, mounts, func(root string) error {
		_, err := os.Stat(filepath.Join(root, "from-parent"))
		return err
	}); err != nil {
		t.Fatalf("child of the pinned parent: %v", err)
	}
	if _, err := sn.Stat(ctx, "parent"); err != nil {
		t.Fatalf("parent after the collection: %v", err)
	}
}

// The same for Commit: the active snapshot, whose lease is deleted while
// the backend commits it, is kept until its committed record exists.
func TestCommitKeepsActiveWithoutHoldingCollector(t *testing.T) {
	db, g, ctx := openGated(t)
	l, err := db.Leases().Create(ctx, WithRandomID())
	if err != nil {
		t.Fatal(err)
	}
	lctx := leases.WithLease(ctx, l.ID)
	sn := db.Snapshotter("native")
	if _, err := sn.Prepare(lctx, "active", ""); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	g.arm(t, func() { errc <- sn.Commit(lctx, "committed", "active") })
	// Delete the lease while the backend commits: the new committed
	// record is then garbage, as it would be with no lease, and goes at
	// the next collection, not during this one.
	if err := db.Leases().Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	st := collectWhileBlocked(t, db, g, ctx)
	if err := <-errc; err != nil {
		t.Fatalf("commit while the collector ran: %v", err)
	}
	if st.Removed[gc.ResourceSnapshot] != 0 {
		t.Fatalf("the collection removed %d snapshots during the commit", st.Removed[gc.ResourceSnapshot])
	}
	if _, err := sn.Stat(ctx, "committed"); err != nil {
		t.Fatal(err)
	}
	st2, err := db.GarbageCollect(ctx)
	if err != nil || st2.Removed[gc.ResourceSnapshot] != 1 {
		t.Fatalf("the unleased committed snapshot is garbage afterwards: %+v, %v", st2.Removed, err)
	}
}

func leased(t *testing.T, db *DB, ctx context.Context) context.Context {
	t.Helper()
	l, err := db.Leases().Create(ctx, WithRandomID())
	if err != nil {
		t.Fatal(err)
	}
	return leases.WithLease(ctx, l.ID)
}
