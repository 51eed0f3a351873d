package meta

import (
	"context"
	"fmt"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	bolt "go.etcd.io/bbolt"
)

// RecordView is a container or sandbox record read in place, during the
// read transaction of a View: the byte slices it returns are the
// database's memory, valid only until the callback returns, and must not
// be written to. It is for the lists made every second (kubelet's
// relist), which compare what they find with what they decoded last time
// and copy only what changed: List copies every field of every record.
type RecordView struct {
	id, status, createdAt, sandboxID []byte
	labels, ext                      *bolt.Bucket
}

// viewRecord reads the record bkt in place with one cursor, each
// sub-bucket opened once: every Get is a search with its own cursor and,
// for a small bucket stored inline, an open is a copy.
func viewRecord(id []byte, bkt *bolt.Bucket) RecordView {
	v := RecordView{id: id}
	c := bkt.Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		switch string(k) {
		case string(keyStatus):
			v.status = val
		case string(keyCreatedAt):
			v.createdAt = val
		case string(keySandboxID):
			v.sandboxID = val
		case string(bucketKeyLabels):
			v.labels = bkt.Bucket(k)
		case string(bucketKeyExtensions):
			v.ext = bkt.Bucket(k)
		}
	}
	return v
}

// ID is the record's ID.
func (v RecordView) ID() []byte { return v.id }

// RawStatus is the stored status; DecodeStatus reads it.
func (v RecordView) RawStatus() []byte { return v.status }

// RawCreatedAt is the stored creation time; DecodeTime reads it.
func (v RecordView) RawCreatedAt() []byte { return v.createdAt }

// SandboxID is the sandbox of a container record, empty for a sandbox.
func (v RecordView) SandboxID() []byte { return v.sandboxID }

// Extension is the record's extension name, nil if it has none.
func (v RecordView) Extension(name string) []byte {
	if v.ext == nil {
		return nil
	}
	return v.ext.Get([]byte(name))
}

// ForEachExtension calls fn with the name and the value of each of the
// record's extensions, in name order.
func (v RecordView) ForEachExtension(fn func(name, value []byte)) {
	if v.ext == nil {
		return
	}
	_ = v.ext.ForEach(func(k, val []byte) error {
		fn(k, val)
		return nil
	})
}

// Labels returns a copy of the record's labels (nil if it has none).
func (v RecordView) Labels() map[string]string { return readStringMap(v.labels) }

// LabelsEqual reports whether the record's labels are exactly labels,
// without copying them.
func (v RecordView) LabelsEqual(labels map[string]string) bool {
	lbkt := v.labels
	if lbkt == nil {
		return len(labels) == 0
	}
	n := 0
	equal := true
	_ = lbkt.ForEach(func(k, val []byte) error {
		n++
		if got, ok := labels[string(k)]; !ok || got != string(val) {
			equal = false
		}
		return nil
	})
	return equal && n == len(labels)
}

// DecodeStatus is the Status stored as raw (a RawStatus).
func DecodeStatus(raw []byte) (Status, error) {
	return decodeStatus(raw)
}

// DecodeTime is the time stored as raw (a RawCreatedAt); zero for nil.
func DecodeTime(raw []byte) time.Time {
	var t time.Time
	if raw != nil {
		_ = t.UnmarshalBinary(raw)
	}
	return t
}

// A generation is the database as of a write: the ID of the last write
// transaction committed (bbolt's), which every commit moves on. A View
// given the generation it returned before reads nothing when no write
// came since: the lists made every second are most often of a database
// nobody wrote to meanwhile.

// View calls fn with each sandbox of the namespace in ctx, in ID order,
// in one read transaction, and stops at fn's first error. It returns the
// generation it read; when since is that generation (not 0), nothing was
// written since the View that returned it and fn is not called.
func (s *SandboxStore) View(ctx context.Context, since uint64, fn func(RecordView) error) (uint64, error) {
	return viewRecords(ctx, s.db, bucketKeySandboxes, since, fn)
}

// View is SandboxStore.View for the containers.
func (s *ContainerStore) View(ctx context.Context, since uint64, fn func(RecordView) error) (uint64, error) {
	return viewRecords(ctx, s.db, bucketKeyContainers, since, fn)
}

func viewRecords(ctx context.Context, db *DB, kind []byte, since uint64, fn func(RecordView) error) (gen uint64, err error) {
	ns, err := namespace(ctx)
	if err != nil {
		return 0, err
	}
	err = db.view(ctx, func(btx *bolt.Tx) error {
		gen = uint64(btx.ID())
		if since != 0 && gen == since {
			return nil
		}
		bkt := nsBucket(btx, ns, kind)
		if bkt == nil {
			return nil
		}
		return bkt.ForEachBucket(func(key []byte) error {
			return fn(viewRecord(key, bkt.Bucket(key)))
		})
	})
	if err != nil {
		return 0, err
	}
	return gen, nil
}

// ViewID calls fn with the sandbox id of the namespace in ctx, read in
// place; NotFound if there is none.
func (s *SandboxStore) ViewID(ctx context.Context, id string, fn func(RecordView) error) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	return s.db.view(ctx, func(btx *bolt.Tx) error {
		bkt := nsBucket(btx, ns, bucketKeySandboxes, []byte(id))
		if bkt == nil {
			return fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
		}
		return fn(viewRecord([]byte(id), bkt))
	})
}
