package meta_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/native"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// opened is a database opened by openAt with its snapshotter.
type opened struct {
	*meta.DB
	sn snapshot.Snapshotter
}

// Close closes the database and then its snapshotter.
func (o opened) Close() error {
	defer o.sn.Close()
	return o.DB.Close()
}

// openAt opens a database at dir with backends under it.
func openAt(t *testing.T, dir string) (opened, error) {
	t.Helper()
	cs, err := local.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := native.NewSnapshotter(filepath.Join(dir, "native"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := meta.Open(context.Background(), filepath.Join(dir, "meta.db"), cs, map[string]snapshot.Snapshotter{"native": sn}, manualGC())
	if err != nil {
		sn.Close()
	}
	return opened{DB: db, sn: sn}, err
}

// plant writes into the closed bolt file at dir with raw bolt.
func plant(t *testing.T, dir string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, tx *bolt.Tx, value string, path ...string) {
	t.Helper()
	bkt, err := tx.CreateBucketIfNotExists([]byte(path[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range path[1 : len(path)-1] {
		if bkt, err = bkt.CreateBucketIfNotExists([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bkt.Put([]byte(path[len(path)-1]), []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsPlantedProblems(t *testing.T) {
	dir := t.TempDir()
	db, err := openAt(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := nsCtx(t, "ns")
	lctx, _, err := meta.WithLease(ctx, db.Leases())
	if err != nil {
		t.Fatal(err)
	}
	img := pushImage(t, lctx, db.DB, "r/a:1", []byte("layer"))
	if _, err := db.Snapshotter("native").Prepare(lctx, "rootfs", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Containers().Create(ctx, meta.Container{ID: "c1", Runtime: meta.Runtime{Name: "runc"}, Snapshotter: "native", SnapshotKey: "rootfs"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("check of a sound database: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	missing := digest.FromString("missing").String()
	id, _ := leasesFrom(lctx)
	plant(t, dir, func(tx *bolt.Tx) error {
		put(t, tx, missing, "v1", "ns", "images", "r/b:1", "target", "digest")
		put(t, tx, "application/x", "v1", "ns", "images", "r/b:1", "target", "mediatype")
		put(t, tx, "gone", "v1", "ns", "containers", "c1", "snapshotkey")
		put(t, tx, "", "v1", "ns", "leases", id, "content", missing)
		// Weak references: not problems.
		put(t, tx, missing, "v1", "ns", "snapshots", "native", "rootfs", "labels", meta.LabelGCRefContent+".x")
		put(t, tx, "gone", "v1", "ns", "snapshots", "native", "rootfs", "labels", meta.GCRefSnapshotLabel("native", "x"))
		put(t, tx, "gone", "v1", "ns", "snapshots", "native", "rootfs", "parent")
		put(t, tx, "corrupt", "v1", "ns", "content", "blob", img.config.Digest.String())
		put(t, tx, "x", "v1", "ns", "stray", "k")
		put(t, tx, "x", "junk", "k")
		return nil
	})
	db, err = openAt(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Check(ctx)
	if !errdefs.IsInternal(err) {
		t.Fatalf("check: %v, want Internal", err)
	}
	for _, want := range []string{
		`image "r/b:1": target ` + missing + ` is not in the namespace's content`,
		`container "c1": snapshot "gone" of "native": not found`,
		`lease "` + id + `": holds missing content ` + `"` + missing + `"`,
		`snapshot "rootfs" of "native": missing parent "gone"`,
		`content "` + img.config.Digest.String() + `": corrupt record`,
		`stray entry "stray"`,
		`stray root bucket "junk"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("check does not report %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "label") {
		t.Errorf("check reports a dangling GC label reference:\n%v", err)
	}
}

// TestCheckAcceptsDanglingGCLabels: GC label references are weak, as in
// containerd. A pull leaves labels naming what it never fetched: an
// index names the manifests of every platform, a manifest the layers
// whose snapshots already exist, a failed pull the blobs it never
// reached. Check accepts them and the collector ignores them.
func TestCheckAcceptsDanglingGCLabels(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	ctx := leased(t, db, nsCtx(t, "ns"))
	missing := digest.FromString("another platform's manifest").String()
	dangling := map[string]string{
		meta.LabelGCRefContent + ".m.1":           missing,
		meta.LabelGCRefContent:                    digest.FromString("a skipped layer").String(),
		meta.GCRefSnapshotLabel("native", ""):     "sha256:never-unpacked",
		meta.GCRefSnapshotLabel("overlayfs", "0"): "never-prepared",
		meta.GCRefSnapshotLabel("nosuch", ""):     "of a snapshotter this daemon lacks",
	}
	index := blob(t, ctx, db.ContentStore(), []byte("index"), dangling)
	if _, err := db.Images().Create(ctx, meta.Image{Name: "r/a:1", Target: index, Labels: dangling}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Snapshotter("native").Prepare(ctx, "k", "", snapshot.WithLabels(dangling)); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("check with dangling GC labels: %v", err)
	}
	collect(t, db)
	if err := db.Check(ctx); err != nil {
		t.Fatalf("check after a collection: %v", err)
	}
}

func TestCheckFindsMissingBackendObjects(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	ctx := leased(t, db, nsCtx(t, "ns"))
	d := blob(t, ctx, db.ContentStore(), []byte("will vanish"), nil)
	if _, err := db.Snapshotter("native").Prepare(ctx, "k", ""); err != nil {
		t.Fatal(err)
	}
	if err := env.Content.Delete(ctx, d.Digest); err != nil {
		t.Fatal(err)
	}
	var bkey string
	_ = env.Snapshotters["native"].Walk(ctx, func(_ context.Context, i snapshot.Info) error { bkey = i.Name; return nil })
	if err := env.Snapshotters["native"].Remove(ctx, bkey); err != nil {
		t.Fatal(err)
	}
	err := db.Check(ctx)
	if !errdefs.IsInternal(err) || !strings.Contains(err.Error(), "content "+d.Digest.String()+": backend") ||
		!strings.Contains(err.Error(), `snapshot "k" of "native": backend`) {
		t.Fatalf("check: %v", err)
	}
	// Repair so that the cleanup's check passes.
	if err := db.ContentStore().Delete(ctx, d.Digest); err != nil {
		t.Fatal(err)
	}
	if err := db.Snapshotter("native").Remove(ctx, "k"); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationVersion(t *testing.T) {
	dir := t.TempDir()
	db, err := openAt(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	plant(t, dir, func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte("v1")).Get([]byte("version"))
		if n, _ := binary.Varint(v); n != meta.SchemaVersion() {
			t.Errorf("stored version %d, want %d", n, meta.SchemaVersion())
		}
		return nil
	})
	// Reopening a current file is fine.
	db, err = openAt(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	plant(t, dir, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("v1")).Put([]byte("version"), binary.AppendVarint(nil, meta.SchemaVersion()+1))
	})
	_, err = openAt(t, dir)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "newer than") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}
