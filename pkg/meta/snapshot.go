package meta

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/labels"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	bolt "go.etcd.io/bbolt"
	"k8s.io/klog/v2"
)

// snapshotter is the namespaced view of one backend snapshotter. A
// namespace's key or name maps to a backend key "<namespace>/<seq>/<key>";
// the labels, the parent (by the namespace's name) and the kind live in
// bolt. See doc.go.
type snapshotter struct {
	db   *DB
	name string
	sn   snapshot.Snapshotter
	// keys serialises the operations on one namespace's key or name, so
	// that the backend operation and the records that follow it in a
	// separate transaction cannot interleave with another's.
	keys keyMutex
	// sl guards the backend against the collector's reconcile: operations
	// that create backend snapshots hold RLock until their record is
	// written; the reconcile holds Lock.
	sl sync.RWMutex
	// orphans is set when the backend may hold snapshots no record names.
	orphans atomic.Bool
}

var (
	_ snapshot.Snapshotter = (*snapshotter)(nil)
	_ snapshot.Rebaser     = (*snapshotter)(nil)
)

func newSnapshotter(db *DB, name string, sn snapshot.Snapshotter) *snapshotter {
	return &snapshotter{db: db, name: name, sn: sn}
}

// CanRebase reports whether the backend honours snapshot.WithParent.
func (s *snapshotter) CanRebase() bool { return snapshot.CanRebase(s.sn) }

func (s *snapshotter) bucket(btx *bolt.Tx, ns string) *bolt.Bucket {
	return nsBucket(btx, ns, bucketKeySnapshots, []byte(s.name))
}

// record is a snapshot's record as read from bolt.
type record struct {
	info snapshot.Info
	bkey string // the backend's key or name
}

func readRecord(key string, bkt *bolt.Bucket) record {
	return record{
		info: snapshot.Info{
			Kind:    snapshot.ParseKind(string(bkt.Get(keyKind))),
			Name:    key,
			Parent:  string(bkt.Get(keyParent)),
			Labels:  readLabels(bkt),
			Created: readTime(bkt, keyCreatedAt),
			Updated: readTime(bkt, keyUpdatedAt),
		},
		bkey: string(bkt.Get(keyName)),
	}
}

func writeRecord(bkt *bolt.Bucket, r record) error {
	if err := bkt.Put(keyName, []byte(r.bkey)); err != nil {
		return err
	}
	if err := bkt.Put(keyKind, []byte(r.info.Kind.String())); err != nil {
		return err
	}
	if err := putString(bkt, keyParent, r.info.Parent); err != nil {
		return err
	}
	if err := writeTimes(bkt, r.info.Created, r.info.Updated); err != nil {
		return err
	}
	return writeLabels(bkt, r.info.Labels)
}

// get returns the record of key in the namespace of ctx.
func (s *snapshotter) get(ctx context.Context, key string) (record, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return record{}, err
	}
	var r record
	err = s.db.view(ctx, func(btx *bolt.Tx) error {
		bkt := s.bucket(btx, ns)
		if bkt == nil || bkt.Bucket([]byte(key)) == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
		}
		r = readRecord(key, bkt.Bucket([]byte(key)))
		return nil
	})
	return r, err
}

// Stat returns the snapshot's info, from bolt alone.
func (s *snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	r, err := s.get(ctx, key)
	return r.info, err
}

// Update changes the snapshot's labels ("labels", "labels.<key>"; none
// means "labels").
func (s *snapshotter) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return snapshot.Info{}, err
	}
	if info.Name == "" {
		return snapshot.Info{}, fmt.Errorf("snapshot name must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	var updated record
	err = s.db.update(ctx, func(t *tx) error {
		bkt := s.bucket(t.Tx, ns)
		if bkt == nil || bkt.Bucket([]byte(info.Name)) == nil {
			return fmt.Errorf("snapshot %q: %w", info.Name, errdefs.ErrNotFound)
		}
		sbkt := bkt.Bucket([]byte(info.Name))
		updated = readRecord(info.Name, sbkt)
		before := maps.Clone(updated.info.Labels)
		for _, p := range fieldpaths {
			if !labels.ApplyPath(&updated.info.Labels, info.Labels, "labels", p) {
				return fmt.Errorf("snapshot %q: cannot update field %q: %w", info.Name, p, errdefs.ErrInvalidArgument)
			}
		}
		if err := validateLabels(updated.info.Labels); err != nil {
			return fmt.Errorf("snapshot %q: %w", info.Name, err)
		}
		t.dirty = droppedRefs(before, updated.info.Labels)
		updated.info.Updated = time.Now().UTC()
		return writeRecord(sbkt, updated)
	})
	return updated.info, err
}

// Usage returns the backend's usage of the snapshot.
func (s *snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	r, err := s.get(ctx, key)
	if err != nil {
		return snapshot.Usage{}, err
	}
	u, err := s.sn.Usage(ctx, r.bkey)
	if err != nil {
		return snapshot.Usage{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return u, nil
}

// Mounts returns the backend's mounts of the snapshot.
func (s *snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	r, err := s.get(ctx, key)
	if err != nil {
		return nil, err
	}
	m, err := s.sn.Mounts(ctx, r.bkey)
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return m, nil
}

// Walk calls fn, outside any transaction, for the namespace's snapshots
// matching any of fs (fields: kind, name, parent, labels.<key>).
func (s *snapshotter) Walk(ctx context.Context, fn snapshot.WalkFunc, fs ...string) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return err
	}
	var infos []snapshot.Info
	err = s.db.view(ctx, func(btx *bolt.Tx) error {
		bkt := s.bucket(btx, ns)
		if bkt == nil {
			return nil
		}
		return bkt.ForEachBucket(func(k []byte) error {
			info := readRecord(string(k), bkt.Bucket(k)).info
			f := fields("kind", info.Kind.String(), "name", info.Name, "parent", info.Parent)
			if filter.Match(filters.Map(f, info.Labels)) {
				infos = append(infos, info)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := errIfCanceled(ctx, "snapshot walk"); err != nil {
			return err
		}
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Remove removes the snapshot's record and every lease's hold on it, then
// the backend's snapshot. FailedPrecondition if it has children.
func (s *snapshotter) Remove(ctx context.Context, key string) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	unlock, err := s.keys.lock(ctx, ns+"/"+key)
	if err != nil {
		return err
	}
	defer unlock()
	var bkey string
	err = s.db.update(ctx, func(t *tx) error {
		bkt := s.bucket(t.Tx, ns)
		if bkt == nil || bkt.Bucket([]byte(key)) == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
		}
		sbkt := bkt.Bucket([]byte(key))
		if !emptyTree(sbkt.Bucket(bucketKeyChildren)) {
			return fmt.Errorf("snapshot %q has children: %w", key, errdefs.ErrFailedPrecondition)
		}
		r := readRecord(key, sbkt)
		bkey = r.bkey
		if err := s.deleteRecord(t.Tx, ns, bkt, r); err != nil {
			return err
		}
		t.dirty = true
		t.publish(ns, "/snapshot/remove", &eventsv1.SnapshotRemove{Key: key, Snapshotter: s.name})
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.sn.Remove(ctx, bkey); err != nil && !errdefs.IsNotFound(err) {
		// The record is gone; the collector's reconcile retries.
		s.orphans.Store(true)
		klog.FromContext(ctx).Error(err, "remove snapshot from backend", "snapshotter", s.name, "key", bkey)
	}
	return nil
}

// deleteRecord removes the record r from the snapshotter bucket bkt, from
// its parent's children and from the leases of ns.
func (s *snapshotter) deleteRecord(btx *bolt.Tx, ns string, bkt *bolt.Bucket, r record) error {
	if pbkt := bkt.Bucket([]byte(r.info.Parent)); r.info.Parent != "" && pbkt != nil {
		if cbkt := pbkt.Bucket(bucketKeyChildren); cbkt != nil {
			if err := cbkt.Delete([]byte(r.info.Name)); err != nil {
				return err
			}
		}
	}
	if err := bkt.DeleteBucket([]byte(r.info.Name)); err != nil {
		return err
	}
	return unleaseEverywhere(btx, ns, bucketKeySnapshots, []byte(s.name), []byte(r.info.Name))
}

// Close does nothing: the backend belongs to whoever opened the DB.
func (s *snapshotter) Close() error { return nil }
