package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"k8s.io/klog/v2"
)

// removeBatch bounds how many backend removals run under one hold of cl,
// so that content writers wait for one batch at most.
const removeBatch = 256

// sweepContent removes from the backend the blobs that no namespace
// records and the ingests that no namespace records, except those a writer
// holds open. Each candidate is checked again under cl.Lock, which content
// writers hold shared from their backend operation to their record.
func (db *DB) sweepContent(ctx context.Context, sw *swept) error {
	db.mu.Lock()
	blobs := sw.content
	for d := range db.pendingContent {
		blobs = append(blobs, d)
	}
	clear(db.pendingContent)
	db.mu.Unlock()
	ingests := sw.ingests

	if !db.reconciled {
		err := db.content.Walk(ctx, func(info content.Info) error {
			blobs = append(blobs, info.Digest)
			return nil
		})
		if err != nil {
			db.keepPending(blobs)
			return fmt.Errorf("gc: walk backend content: %w", err)
		}
		sts, err := db.content.ListStatuses(ctx)
		if err != nil {
			db.keepPending(blobs)
			return fmt.Errorf("gc: list backend ingests: %w", err)
		}
		for _, st := range sts {
			ingests = append(ingests, st.Ref)
		}
	}
	slices.Sort(blobs)
	blobs = slices.Compact(blobs)

	var errs []error
	for len(blobs) > 0 {
		n := min(len(blobs), removeBatch)
		if err := db.removeBlobs(ctx, blobs[:n]); err != nil {
			db.keepPending(blobs)
			errs = append(errs, err)
			break
		}
		blobs = blobs[n:]
	}
	if err := db.abortIngests(ctx, ingests); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (db *DB) keepPending(blobs []digest.Digest) {
	db.mu.Lock()
	for _, d := range blobs {
		db.pendingContent[d] = struct{}{}
	}
	db.mu.Unlock()
}

// removeBlobs removes from the backend those of blobs that no namespace
// records.
func (db *DB) removeBlobs(ctx context.Context, blobs []digest.Digest) error {
	db.cl.Lock()
	defer db.cl.Unlock()
	var unreferenced []digest.Digest
	if err := db.bdb.View(func(btx *bolt.Tx) error {
		nss := namespaceNames(btx)
		for _, d := range blobs {
			if !slices.ContainsFunc(nss, func(ns string) bool { return hasBlob(btx, ns, d) }) {
				unreferenced = append(unreferenced, d)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	log := klog.FromContext(ctx)
	for _, d := range unreferenced {
		if err := errIfCanceled(ctx, "gc: remove blobs"); err != nil {
			return err
		}
		if err := db.content.Delete(ctx, d); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("gc: remove blob %s: %w", d, err)
		}
		log.V(4).Info("Removed blob", "digest", d)
	}
	return nil
}

// abortIngests aborts the backend ingests among brefs that no namespace
// records and no writer holds open.
func (db *DB) abortIngests(ctx context.Context, brefs []string) error {
	if len(brefs) == 0 {
		return nil
	}
	db.cl.Lock()
	defer db.cl.Unlock()
	recorded := map[string]struct{}{}
	if err := db.bdb.View(func(btx *bolt.Tx) error {
		for _, ns := range namespaceNames(btx) {
			ibkt := nsBucket(btx, ns, bucketKeyContent, bucketKeyIngests)
			if ibkt == nil {
				continue
			}
			_ = ibkt.ForEachBucket(func(k []byte) error {
				recorded[string(ibkt.Bucket(k).Get(keyRef))] = struct{}{}
				return nil
			})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, bref := range brefs {
		if _, ok := recorded[bref]; ok || db.ingestOpen(bref) {
			continue
		}
		if err := errIfCanceled(ctx, "gc: abort ingests"); err != nil {
			return err
		}
		if err := db.content.Abort(ctx, bref); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsUnavailable(err) {
			return fmt.Errorf("gc: abort ingest %q: %w", bref, err)
		}
	}
	return nil
}

// namespaceNames lists the namespaces.
func namespaceNames(btx *bolt.Tx) []string {
	var nss []string
	if v1 := btx.Bucket(bucketKeyV1); v1 != nil {
		_ = v1.ForEachBucket(func(k []byte) error {
			nss = append(nss, string(k))
			return nil
		})
	}
	return nss
}

// sweepSnapshots removes the swept snapshots from their backends, children
// first, reconciles the backends that may hold unrecorded snapshots, and
// lets Cleaners clean up.
func (db *DB) sweepSnapshots(ctx context.Context, sw *swept) error {
	var errs []error
	for _, name := range db.Snapshotters() {
		s := db.snapshotters[name]
		removals := sw.snapshots[name]
		if err := s.removeBackend(ctx, removals); err != nil {
			errs = append(errs, err)
		}
		if !db.reconciled || s.orphans.Swap(false) {
			n, err := s.reconcile(ctx)
			if err != nil {
				s.orphans.Store(true)
				errs = append(errs, err)
			}
			if n == 0 && len(removals) == 0 {
				continue
			}
		} else if len(removals) == 0 {
			continue
		}
		if c, ok := s.sn.(snapshot.Cleaner); ok {
			if err := c.Cleanup(ctx); err != nil {
				errs = append(errs, fmt.Errorf("gc: clean up snapshotter %q: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeBackend removes backend snapshots, children before parents.
func (s *snapshotter) removeBackend(ctx context.Context, removals []backendRemove) error {
	log := klog.FromContext(ctx)
	for _, r := range childrenFirst(removals) {
		if err := errIfCanceled(ctx, "gc: remove snapshots"); err != nil {
			return err
		}
		if err := s.sn.Remove(ctx, r.key); err != nil && !errdefs.IsNotFound(err) {
			// A child the records never knew of (a crash): the
			// reconcile removes both.
			s.orphans.Store(true)
			log.Error(err, "Remove snapshot from backend", "snapshotter", s.name, "key", r.key)
			continue
		}
		log.V(4).Info("Removed snapshot", "snapshotter", s.name, "key", r.key)
	}
	return nil
}

// childrenFirst orders removals so that a snapshot comes before its parent.
func childrenFirst(removals []backendRemove) []backendRemove {
	parentOf := make(map[string]string, len(removals))
	for _, r := range removals {
		parentOf[r.key] = r.parent
	}
	depth := func(k string) int {
		d := 0
		for p, ok := parentOf[k]; ok && p != ""; p, ok = parentOf[p] {
			d++
		}
		return d
	}
	out := slices.Clone(removals)
	slices.SortStableFunc(out, func(a, b backendRemove) int { return depth(b.key) - depth(a.key) })
	return out
}

// reconcile removes the backend snapshots that no record names, under
// sl.Lock, and returns how many it removed.
func (s *snapshotter) reconcile(ctx context.Context) (int, error) {
	s.sl.Lock()
	defer s.sl.Unlock()
	recorded := map[string]struct{}{}
	if err := s.db.bdb.View(func(btx *bolt.Tx) error {
		for _, ns := range namespaceNames(btx) {
			bkt := s.bucket(btx, ns)
			if bkt == nil {
				continue
			}
			_ = bkt.ForEachBucket(func(k []byte) error {
				recorded[string(bkt.Bucket(k).Get(keyName))] = struct{}{}
				return nil
			})
		}
		return nil
	}); err != nil {
		return 0, err
	}
	var orphans []backendRemove
	err := s.sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
		if _, ok := recorded[info.Name]; !ok {
			orphans = append(orphans, backendRemove{key: info.Name, parent: info.Parent})
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("gc: walk snapshotter %q: %w", s.name, err)
	}
	for _, r := range childrenFirst(orphans) {
		if err := errIfCanceled(ctx, "gc: reconcile snapshots"); err != nil {
			return 0, err
		}
		if err := s.sn.Remove(ctx, r.key); err != nil && !errdefs.IsNotFound(err) {
			return 0, fmt.Errorf("gc: remove unrecorded snapshot %q of %q: %w", r.key, s.name, err)
		}
	}
	return len(orphans), nil
}
