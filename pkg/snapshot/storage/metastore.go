// Package storage is the bolt metastore that snapshot backends (overlay,
// native) keep their own records in: which keys and names exist, their
// kind, parent, labels, times, cached usage, and the numeric ID that names
// each snapshot's directory on disk.
//
// Schema (one bolt file per backend):
//
//	v1/
//	  snapshots/
//	    <key or name>/        one bucket per snapshot
//	      id       uint64, big endian; never reused (bucket sequence)
//	      kind     one byte, snapshot.Kind
//	      parent   name of the parent; absent when none
//	      created  time.Time binary
//	      updated  time.Time binary
//	      inodes   varint, cached usage of a committed snapshot
//	      size     varint
//	      labels/  label key -> value
//	  parents/
//	    <parent id><child id> -> child key or name
//	                          (16 bytes, big endian; a prefix scan over the
//	                          parent's id finds its children)
//
// Transactions are explicit: MetaStore.View and MetaStore.Update pass a *Tx
// to a function, never through a context. Keep them short and do no I/O
// inside beyond what must be atomic with the record.
//
// This package knows nothing of namespaces, leases or GC (pkg/meta adds
// them). It imports only pkg/snapshot and leaves.
package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

var (
	bucketV1        = []byte("v1")
	bucketSnapshots = []byte("snapshots")
	bucketParents   = []byte("parents")
	bucketLabels    = []byte("labels")

	keyID      = []byte("id")
	keyKind    = []byte("kind")
	keyParent  = []byte("parent")
	keyCreated = []byte("created")
	keyUpdated = []byte("updated")
	keyInodes  = []byte("inodes")
	keySize    = []byte("size")
)

// openTimeout bounds the wait for the file lock of a database that another
// process (or a snapshotter not closed) holds open.
const openTimeout = 5 * time.Second

// MetaStore is a backend's bolt database of snapshot records.
type MetaStore struct {
	db *bolt.DB
}

// NewMetaStore opens or creates the database at path, creating its
// directory with mode 0700.
func NewMetaStore(path string) (*MetaStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("snapshot metastore %q: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("snapshot metastore %q: %w: %w", path, err, errdefs.ErrUnavailable)
	}
	return &MetaStore{db: db}, nil
}

// Close closes the database.
func (ms *MetaStore) Close() error {
	return ms.db.Close()
}

// Tx is a transaction on the metastore, valid only inside the function
// given to View or Update.
type Tx struct {
	tx *bolt.Tx
}

// View runs fn in a read-only transaction.
func (ms *MetaStore) View(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ms.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction, committed when fn returns
// nil and rolled back otherwise.
func (ms *MetaStore) Update(ctx context.Context, fn func(*Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ms.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// snapshots returns the snapshots bucket, creating the schema in a
// writable transaction; nil in a read-only one on an empty database.
func (t *Tx) snapshots() (*bolt.Bucket, error) {
	return t.bucket(bucketSnapshots)
}

func (t *Tx) parents() (*bolt.Bucket, error) {
	return t.bucket(bucketParents)
}

func (t *Tx) bucket(name []byte) (*bolt.Bucket, error) {
	if !t.tx.Writable() {
		v1 := t.tx.Bucket(bucketV1)
		if v1 == nil {
			return nil, nil
		}
		return v1.Bucket(name), nil
	}
	v1, err := t.tx.CreateBucketIfNotExists(bucketV1)
	if err != nil {
		return nil, err
	}
	return v1.CreateBucketIfNotExists(name)
}
