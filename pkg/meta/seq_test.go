package meta

import (
	"path/filepath"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	bolt "go.etcd.io/bbolt"
)

// backendName returns the backend key of snapshot key in ns.
func backendName(t *testing.T, db *DB, ns, key string) string {
	t.Helper()
	var bkey string
	if err := db.bdb.View(func(btx *bolt.Tx) error {
		bkey = string(nsBucket(btx, ns, bucketKeySnapshots, []byte("native"), []byte(key)).Get(keyName))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return bkey
}

// Regression: the sequences that number backend snapshot keys and ingest
// refs lived in the namespace's buckets and restarted with it, so a
// namespace deleted and created again reused the backend names of its
// previous life, which the collector might still be about to remove.
func TestBackendNamesOutliveNamespaces(t *testing.T) {
	db, _, ctx := openGated(t)
	ctx = leased(t, db, ctx)
	sn := db.Snapshotter("native")
	var names []string
	var refs []string
	for round := range 2 {
		if _, err := sn.Prepare(ctx, "k", ""); err != nil {
			t.Fatal(round, err)
		}
		names = append(names, backendName(t, db, "ns", "k"))
		w, err := db.ContentStore().Writer(ctx, content.WithRef("r"))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, w.(*namespacedWriter).bref)
		w.Close()
		if err := db.ContentStore().Abort(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		if err := sn.Remove(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		id, _ := leases.FromContext(ctx)
		if err := db.Leases().Delete(ctx, Lease{ID: id}); err != nil {
			t.Fatal(err)
		}
		if err := db.Namespaces().Delete(ctx, "ns"); err != nil {
			t.Fatal(err)
		}
		ctx = leased(t, db, ctx) // recreates the namespace
	}
	if names[0] == names[1] {
		t.Fatalf("backend snapshot key %q given twice", names[0])
	}
	if refs[0] == refs[1] {
		t.Fatalf("backend ingest ref %q given twice", refs[0])
	}
}

// A database of schema 1, numbered per namespace, numbers past every name
// it gave once migrated.
func TestGlobalSequenceMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, m := range migrations[:1] {
			if err := m.migrate(tx); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketKeyV1).Put(bucketKeyVersion, []byte{2}); err != nil { // varint 1
			return err
		}
		ibkt, err := createNSBucket(tx, "a", bucketKeyContent, bucketKeyIngests)
		if err != nil {
			return err
		}
		if err := ibkt.SetSequence(7); err != nil {
			return err
		}
		sbkt, err := createNSBucket(tx, "b", bucketKeySnapshots, []byte("overlayfs"))
		if err != nil {
			return err
		}
		return sbkt.SetSequence(42)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(migrate); err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		if v, _ := readVersion(tx); v != SchemaVersion() {
			t.Errorf("version %d after migration", v)
		}
		seq, err := nextBackendSeq(tx)
		if seq != 43 {
			t.Errorf("first number after migration %d, want 43", seq)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	bdb.Close()
}
