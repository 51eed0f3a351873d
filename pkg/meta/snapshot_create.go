package meta

import (
	"context"
	"fmt"
	"strconv"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	bolt "go.etcd.io/bbolt"
	"k8s.io/klog/v2"
)

// Prepare creates the active snapshot key over parent.
func (s *snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindActive, key, parent, opts)
}

// View creates the read-only snapshot key over parent.
func (s *snapshotter) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindView, key, parent, opts)
}

// applyOpts returns the Info that opts describe, its labels checked.
func applyOpts(key string, opts []snapshot.Opt) (snapshot.Info, error) {
	var base snapshot.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			return snapshot.Info{}, err
		}
	}
	if err := validateLabels(base.Labels); err != nil {
		return snapshot.Info{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return base, nil
}

// backendKey is the backend's name of the namespace's key: the sequence
// keeps it unique for the life of the file, whatever was removed before.
func backendKey(ns string, seq uint64, key string) string {
	return ns + "/" + strconv.FormatUint(seq, 10) + "/" + key
}

// create is Prepare and View: a transaction checks the request, reserves
// a backend key and pins the parent, the backend creates the snapshot (a
// full copy, for native) without the interlock, and a second transaction
// records it (and leases it). The key is locked throughout, the pin keeps
// the collector off the parent, and sl keeps its reconcile off the new
// backend snapshot until its record exists.
func (s *snapshotter) create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt) ([]snapshot.Mount, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateKey("snapshot key", key); err != nil {
		return nil, err
	}
	base, err := applyOpts(key, opts)
	if err != nil {
		return nil, err
	}
	if base.Parent != "" {
		return nil, fmt.Errorf("snapshot %q: WithParent is for Commit only: %w", key, errdefs.ErrInvalidArgument)
	}
	unlock, err := s.keys.lock(ctx, ns+"/"+key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s.sl.RLock()
	defer s.sl.RUnlock()
	db := s.db
	var bkey, bparent string
	unpin, err := s.reserve(ns, func(t *tx) error {
		bkt, err := createNSBucket(t.Tx, ns, bucketKeySnapshots, []byte(s.name))
		if err != nil {
			return err
		}
		if bkt.Bucket([]byte(key)) != nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		if err := checkLease(ctx, t.Tx, ns); err != nil {
			return err
		}
		if bparent, err = committedParent(bkt, key, parent); err != nil {
			return err
		}
		seq, err := nextBackendSeq(t.Tx)
		bkey = backendKey(ns, seq, key)
		return err
	}, parent)
	if err != nil {
		return nil, err
	}
	defer unpin()
	var mounts []snapshot.Mount
	if kind == snapshot.KindView {
		mounts, err = s.sn.View(ctx, bkey, bparent)
	} else {
		mounts, err = s.sn.Prepare(ctx, bkey, bparent)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	now := time.Now().UTC()
	r := record{bkey: bkey, info: snapshot.Info{Kind: kind, Name: key, Parent: parent, Labels: base.Labels, Created: now, Updated: now}}
	err = db.update(ctx, func(t *tx) error {
		if err := s.putRecord(ctx, t.Tx, ns, r); err != nil {
			return err
		}
		if kind == snapshot.KindActive {
			t.publish(ns, "/snapshot/prepare", &eventsv1.SnapshotPrepare{Key: key, Parent: parent, Snapshotter: s.name})
		}
		return nil
	})
	if err != nil {
		s.undo(ctx, bkey)
		return nil, err
	}
	return mounts, nil
}

// reserve runs check in a write transaction under the writers' side of
// the interlock, with the snapshots keys of ns pinned (see DB.pin), and
// returns their unpin. On error nothing stays pinned.
func (s *snapshotter) reserve(ns string, check func(*tx) error, keys ...string) (unpin func(), err error) {
	var nodes []gc.Node
	for _, k := range keys {
		if k != "" {
			nodes = append(nodes, snapshotNode(ns, s.name, k))
		}
	}
	db := s.db
	db.wlock.RLock()
	defer db.wlock.RUnlock()
	unpin = db.pin(nodes...)
	if _, err := db.commit(check); err != nil {
		unpin()
		return nil, err
	}
	return unpin, nil
}

// committedParent checks that parent exists in bkt and is committed, and
// returns its backend name ("" for no parent).
func committedParent(bkt *bolt.Bucket, key, parent string) (string, error) {
	if parent == "" {
		return "", nil
	}
	pbkt := bkt.Bucket([]byte(parent))
	if pbkt == nil {
		return "", fmt.Errorf("snapshot %q: parent %q: %w", key, parent, errdefs.ErrNotFound)
	}
	if k := snapshot.ParseKind(string(pbkt.Get(keyKind))); k != snapshot.KindCommitted {
		return "", fmt.Errorf("snapshot %q: parent %q is %s, not committed: %w", key, parent, k, errdefs.ErrFailedPrecondition)
	}
	return string(pbkt.Get(keyName)), nil
}

// putRecord writes the new record r, links it to its parent and leases it.
func (s *snapshotter) putRecord(ctx context.Context, btx *bolt.Tx, ns string, r record) error {
	bkt, err := createNSBucket(btx, ns, bucketKeySnapshots, []byte(s.name))
	if err != nil {
		return err
	}
	sbkt, err := bkt.CreateBucket([]byte(r.info.Name))
	if err == bolt.ErrBucketExists {
		return fmt.Errorf("snapshot %q: %w", r.info.Name, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return err
	}
	if err := writeRecord(sbkt, r); err != nil {
		return err
	}
	if r.info.Parent != "" {
		pbkt := bkt.Bucket([]byte(r.info.Parent))
		if pbkt == nil {
			return fmt.Errorf("snapshot %q: parent %q: %w", r.info.Name, r.info.Parent, errdefs.ErrNotFound)
		}
		cbkt, err := pbkt.CreateBucketIfNotExists(bucketKeyChildren)
		if err != nil {
			return err
		}
		if err := cbkt.Put([]byte(r.info.Name), nil); err != nil {
			return err
		}
	}
	return leaseIfLive(ctx, btx, ns, bucketKeySnapshots, []byte(s.name), []byte(r.info.Name))
}

// undo removes a backend snapshot whose record could not be written.
func (s *snapshotter) undo(ctx context.Context, bkey string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := s.sn.Remove(ctx, bkey); err != nil && !errdefs.IsNotFound(err) {
		s.orphans.Store(true)
		klog.FromContext(ctx).Error(err, "remove unrecorded snapshot from backend", "snapshotter", s.name, "key", bkey)
	}
}

// Commit makes the active snapshot key the committed snapshot name, with
// the labels of opts, over the parent of key or the one snapshot.WithParent
// names (when the backend can rebase). AlreadyExists if name exists; key is
// then left intact.
func (s *snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	if err := validateKey("snapshot key", key); err != nil {
		return fmt.Errorf("snapshot commit: %w", err)
	}
	if err := validateKey("snapshot name", name); err != nil {
		return fmt.Errorf("snapshot commit of %q: %w", key, err)
	}
	base, err := applyOpts(name, opts)
	if err != nil {
		return err
	}
	if base.Parent != "" && !s.CanRebase() {
		return fmt.Errorf("snapshot %q: snapshotter %q cannot commit onto another parent: %w", key, s.name, errdefs.ErrNotImplemented)
	}
	unlock, err := s.keys.lock(ctx, ns+"/"+key, ns+"/"+name)
	if err != nil {
		return err
	}
	defer unlock()
	s.sl.RLock()
	defer s.sl.RUnlock()
	t, err := s.commit(ctx, ns, name, key, base)
	if err != nil {
		return err
	}
	s.db.committed(ctx, t)
	return nil
}

// commit is Commit with the keys locked: a transaction checks it,
// reserves the backend name and pins the active snapshot and the parent,
// the backend commits (a usage walk, for some) without the interlock, and
// a second transaction swaps the records.
func (s *snapshotter) commit(ctx context.Context, ns, name, key string, base snapshot.Info) (*tx, error) {
	db := s.db
	var (
		active         record
		bname, bparent string
		parent         string
		rebase         = base.Parent != ""
	)
	unpin, err := s.reserve(ns, func(t *tx) error {
		if err := checkLease(ctx, t.Tx, ns); err != nil {
			return err
		}
		bkt := s.bucket(t.Tx, ns)
		if bkt == nil || bkt.Bucket([]byte(key)) == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
		}
		if bkt.Bucket([]byte(name)) != nil {
			return fmt.Errorf("snapshot %q: %w", name, errdefs.ErrAlreadyExists)
		}
		active = readRecord(key, bkt.Bucket([]byte(key)))
		if active.info.Kind != snapshot.KindActive {
			return fmt.Errorf("snapshot %q is %s, not active: %w", key, active.info.Kind, errdefs.ErrFailedPrecondition)
		}
		parent = active.info.Parent
		if rebase {
			parent = base.Parent
		}
		var err error
		if bparent, err = committedParent(bkt, name, parent); err != nil {
			return err
		}
		seq, err := nextBackendSeq(t.Tx)
		bname = backendKey(ns, seq, name)
		return err
	}, key, base.Parent)
	if err != nil {
		return nil, err
	}
	defer unpin()
	var bopts []snapshot.Opt
	if rebase {
		bopts = append(bopts, snapshot.WithParent(bparent))
	}
	if err := s.sn.Commit(ctx, bname, active.bkey, bopts...); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	now := time.Now().UTC()
	committed := record{bkey: bname, info: snapshot.Info{Kind: snapshot.KindCommitted, Name: name, Parent: parent, Labels: base.Labels, Created: now, Updated: now}}
	db.wlock.RLock()
	defer db.wlock.RUnlock()
	t, err := db.commit(func(t *tx) error {
		bkt := s.bucket(t.Tx, ns)
		if bkt == nil || bkt.Bucket([]byte(key)) == nil {
			// Only a namespace deleted under a pinned key could do this.
			return internalf("snapshot %q: record gone during its commit", key)
		}
		if err := s.deleteRecord(t.Tx, ns, bkt, active); err != nil {
			return err
		}
		if err := s.putRecord(ctx, t.Tx, ns, committed); err != nil {
			return err
		}
		t.publish(ns, "/snapshot/commit", &eventsv1.SnapshotCommit{Key: key, Name: name, Snapshotter: s.name})
		return nil
	})
	if err != nil {
		// Only bolt itself can fail here; the backend's snapshot is left
		// to the collector's reconcile.
		s.orphans.Store(true)
		return nil, err
	}
	return t, nil
}
