package meta

import (
	"context"
	"fmt"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	bolt "go.etcd.io/bbolt"
)

// recordKind describes a kind of record kept as one bucket per record under
// a namespace's bucket: images, containers, sandboxes.
type recordKind[T any] struct {
	noun   string // for errors: "image", "container", "sandbox"
	bucket []byte
	read   func(key string, bkt *bolt.Bucket) T
	adapt  func(T) filters.Adaptor
}

// get returns the record key of the namespace in ctx; NotFound if there is
// none.
func (k recordKind[T]) get(ctx context.Context, db *DB, key string) (T, error) {
	var rec T
	ns, err := namespace(ctx)
	if err != nil {
		return rec, err
	}
	err = db.view(ctx, func(btx *bolt.Tx) error {
		bkt := nsBucket(btx, ns, k.bucket, []byte(key))
		if bkt == nil {
			return fmt.Errorf("%s %q: %w", k.noun, key, errdefs.ErrNotFound)
		}
		rec = k.read(key, bkt)
		return nil
	})
	return rec, err
}

// list returns the records of the namespace in ctx that match any of fs,
// in key order.
func (k recordKind[T]) list(ctx context.Context, db *DB, fs []string) ([]T, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	var filter filters.Filter
	if len(fs) > 0 { // none matches all: no adaptor to build per record
		if filter, err = filters.ParseAll(fs...); err != nil {
			return nil, err
		}
	}
	var list []T
	err = db.view(ctx, func(btx *bolt.Tx) error {
		bkt := nsBucket(btx, ns, k.bucket)
		if bkt == nil {
			return nil
		}
		return bkt.ForEachBucket(func(key []byte) error {
			rec := k.read(string(key), bkt.Bucket(key))
			if filter == nil || filter.Match(k.adapt(rec)) {
				list = append(list, rec)
			}
			return nil
		})
	})
	return list, err
}
