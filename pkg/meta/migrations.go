package meta

import (
	"encoding/binary"
	"fmt"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	bolt "go.etcd.io/bbolt"
)

// migration takes the schema from version-1 to version.
type migration struct {
	version int64
	name    string
	migrate func(*bolt.Tx) error
}

// migrations are applied in order, each once, in the transaction that
// opens the database. Append; never reorder or edit a released one.
var migrations = []migration{
	{version: 1, name: "create the v1 bucket", migrate: func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketKeyV1)
		return err
	}},
	{version: 2, name: "one sequence for backend names", migrate: globalSequence},
}

// globalSequence starts the v1 bucket's sequence, which numbers backend
// snapshot keys and ingest refs from version 2 on, past every number the
// per-namespace sequences of version 1 gave. Those restarted when a
// namespace was deleted and created again, so a backend name could come
// back while the collector still had the old one to remove.
func globalSequence(tx *bolt.Tx) error {
	v1 := tx.Bucket(bucketKeyV1)
	top := v1.Sequence()
	_ = v1.ForEachBucket(func(ns []byte) error {
		nbkt := v1.Bucket(ns)
		if ibkt := nsBucket(tx, string(ns), bucketKeyContent, bucketKeyIngests); ibkt != nil {
			top = max(top, ibkt.Sequence())
		}
		if sbkt := nbkt.Bucket(bucketKeySnapshots); sbkt != nil {
			_ = sbkt.ForEachBucket(func(name []byte) error {
				top = max(top, sbkt.Bucket(name).Sequence())
				return nil
			})
		}
		return nil
	})
	return v1.SetSequence(top)
}

// nextBackendSeq returns the next number for a backend name: unique for
// the life of the file, whatever namespaces come and go.
func nextBackendSeq(tx *bolt.Tx) (uint64, error) {
	return tx.Bucket(bucketKeyV1).NextSequence()
}

// SchemaVersion is the schema version this code reads and writes.
func SchemaVersion() int64 { return migrations[len(migrations)-1].version }

// readVersion returns the stored schema version, 0 for a new file.
func readVersion(tx *bolt.Tx) (int64, error) {
	v1 := tx.Bucket(bucketKeyV1)
	if v1 == nil {
		return 0, nil
	}
	v := v1.Get(bucketKeyVersion)
	if v == nil {
		return 0, nil
	}
	n, size := binary.Varint(v)
	if size <= 0 {
		return 0, internalf("schema version %x is not a number", v)
	}
	return n, nil
}

// migrate brings the schema up to SchemaVersion. A file written by newer
// code is FailedPrecondition: this code cannot know what it holds.
func migrate(tx *bolt.Tx) error {
	current, err := readVersion(tx)
	if err != nil {
		return err
	}
	if want := SchemaVersion(); current > want {
		return fmt.Errorf("schema version %d is newer than %d, the newest this binary knows: %w", current, want, errdefs.ErrFailedPrecondition)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		if err := m.migrate(tx); err != nil {
			return fmt.Errorf("schema migration %d (%s): %w", m.version, m.name, err)
		}
		current = m.version
	}
	v1, err := tx.CreateBucketIfNotExists(bucketKeyV1)
	if err != nil {
		return err
	}
	if stored := v1.Get(bucketKeyVersion); stored != nil {
		if n, _ := binary.Varint(stored); n == current {
			return nil
		}
	}
	return v1.Put(bucketKeyVersion, binary.AppendVarint(nil, current))
}
