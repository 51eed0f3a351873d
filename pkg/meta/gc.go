package meta

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// DeleteOpt configures the delete of an image or a lease.
type DeleteOpt func(*deleteOptions)

type deleteOptions struct{ synchronous bool }

// SynchronousDelete makes Delete return only after a collection that
// started after the delete: what the deleted object alone held is gone.
func SynchronousDelete() DeleteOpt {
	return func(o *deleteOptions) { o.synchronous = true }
}

func (db *DB) afterDelete(ctx context.Context, opts []DeleteOpt) error {
	var o deleteOptions
	for _, opt := range opts {
		opt(&o)
	}
	if !o.synchronous {
		return nil
	}
	_, err := db.scheduler.ScheduleAndWait(ctx)
	return err
}

// GarbageCollect runs one collection: it marks what the roots reach while
// writers run, deletes the other records while writers are held off
// (Stats.MetaD: zero when there is no garbage), then
// removes from the backends the blobs no namespace references any more
// (Stats.ContentD), the ingests no record names and the swept snapshots
// (Stats.SnapshotD). The first collection after Open also removes what a
// crash left in the backends without a record.
func (db *DB) GarbageCollect(ctx context.Context) (gc.Stats, error) {
	db.gcMu.Lock()
	defer db.gcMu.Unlock()
	stats := gc.Stats{Removed: map[gc.ResourceType]int{}}
	if err := errIfCanceled(ctx, "garbage collection"); err != nil {
		return stats, err
	}

	// Mark first with writers running, then hold them off only to sweep.
	garbage, txid, err := db.mark(&stats)
	if err != nil {
		return stats, err
	}
	sw := &swept{snapshots: map[string][]backendRemove{}}
	if len(garbage) > 0 {
		db.wlock.Lock()
		// The pause counts from here: waiting for writers to finish
		// is not time they are held off.
		start := time.Now()
		sw, err = db.sweep(garbage, txid, &stats)
		stats.MetaD = time.Since(start)
		db.wlock.Unlock()
		if err != nil {
			return stats, err
		}
	}

	start := time.Now()
	cerr := db.sweepContent(ctx, sw)
	stats.ContentD = time.Since(start)

	start = time.Now()
	serr := db.sweepSnapshots(ctx, sw)
	stats.SnapshotD = time.Since(start)

	if cerr != nil {
		return stats, cerr
	}
	if serr != nil {
		return stats, serr
	}
	db.reconciled = true
	return stats, nil
}

// expiresAt tells the scheduler that something expires at t, so that a
// collection runs then even on an idle node.
func (db *DB) expiresAt(t time.Time) {
	if !t.IsZero() {
		db.scheduler.ExpiresAt(t)
	}
}

// swept is what the metadata sweep left for the backends.
type swept struct {
	content   []digest.Digest            // blobs whose record was deleted somewhere
	ingests   []string                   // backend refs of deleted ingest records
	snapshots map[string][]backendRemove // by snapshotter
}

// backendRemove is a backend snapshot to remove, with its backend parent
// for ordering.
type backendRemove struct{ key, parent string }

// mark reads the whole graph in one read transaction, without holding off
// writers, and returns the garbage and the ID of the transaction it saw.
func (db *DB) mark(stats *gc.Stats) ([]gc.Node, int, error) {
	var garbage []gc.Node
	var txid int
	err := db.bdb.View(func(btx *bolt.Tx) error {
		garbage, txid = db.scanGarbage(btx, stats), btx.ID()
		return nil
	})
	return garbage, txid, err
}

// scanGarbage reads the graph in btx and returns its garbage; it sets the
// next expiry in stats.
func (db *DB) scanGarbage(btx *bolt.Tx, stats *gc.Stats) []gc.Node {
	// Pins are read inside the transaction: see pin.
	g := scanGraph(btx, time.Now(), db.gcHint, db.pinned())
	db.gcHint = graphHint{nodes: len(g.nodes), blobs: g.maxBlobs}
	stats.NextExpiry = g.nextExpiry
	return g.garbage()
}

// sweep runs under wlock.Lock and deletes the garbage records in one write
// transaction. The mark is optimistic: it holds only if no write committed
// since the mark's read transaction txid, which bolt tells by numbering
// every write transaction one past the last committed one. Otherwise the
// graph is marked again inside the write transaction, writers held off.
// One read pass builds the graph and the mark runs in memory over node
// numbers, so even that pause is short.
func (db *DB) sweep(garbage []gc.Node, txid int, stats *gc.Stats) (*swept, error) {
	sw := &swept{snapshots: map[string][]backendRemove{}}
	// The sweep commits with bolt's fsync, inside the pause: bolt must
	// sync its data pages before it writes the meta page, or a power loss
	// could leave a valid meta page over unwritten pages.
	err := db.bdb.Update(func(btx *bolt.Tx) error {
		if btx.ID() != txid+1 {
			garbage = db.scanGarbage(btx, stats)
		}
		// Backend names first: a parent's record may be swept before
		// its child's.
		for _, n := range garbage {
			if n.Type == gc.ResourceSnapshot {
				db.planSnapshotRemoval(btx, n, sw)
			}
		}
		for _, n := range garbage {
			if err := db.sweepNode(btx, n, sw); err != nil {
				return fmt.Errorf("gc sweep: %v: %w", n, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, n := range garbage {
		stats.Removed[n.Type]++
	}
	return sw, nil
}

// sweepNode deletes the record of the garbage node n.
func (db *DB) sweepNode(btx *bolt.Tx, n gc.Node, sw *swept) error {
	switch n.Type {
	case gc.ResourceContent:
		sw.content = append(sw.content, digest.Digest(n.Key))
		return blobsBucket(btx, n.Namespace).Delete([]byte(n.Key))
	case gc.ResourceIngest:
		ibkt := nsBucket(btx, n.Namespace, bucketKeyContent, bucketKeyIngests)
		sw.ingests = append(sw.ingests, string(ibkt.Bucket([]byte(n.Key)).Get(keyRef)))
		return ibkt.DeleteBucket([]byte(n.Key))
	case gc.ResourceLease:
		return nsBucket(btx, n.Namespace, bucketKeyLeases).DeleteBucket([]byte(n.Key))
	case gc.ResourceSnapshot:
		name, key, _ := cutSnapshotNode(n.Key)
		bkt := nsBucket(btx, n.Namespace, bucketKeySnapshots, []byte(name))
		s := db.snapshotters[name]
		if s == nil {
			// Records of a snapshotter this daemon no longer has: drop
			// them; nothing can remove their backend snapshots.
			return bkt.DeleteBucket([]byte(key))
		}
		return s.deleteRecord(btx, n.Namespace, bkt, readRecord(key, bkt.Bucket([]byte(key))))
	}
	return fmt.Errorf("unexpected node type %v", n.Type)
}

// planSnapshotRemoval records the backend key and backend parent of the
// garbage snapshot n, to remove it from the backend after the sweep.
func (db *DB) planSnapshotRemoval(btx *bolt.Tx, n gc.Node, sw *swept) {
	name, key, _ := cutSnapshotNode(n.Key)
	if db.snapshotters[name] == nil {
		return
	}
	bkt := nsBucket(btx, n.Namespace, bucketKeySnapshots, []byte(name))
	r := readRecord(key, bkt.Bucket([]byte(key)))
	var bparent string
	if pbkt := bkt.Bucket([]byte(r.info.Parent)); r.info.Parent != "" && pbkt != nil {
		bparent = string(pbkt.Get(keyName))
	}
	sw.snapshots[name] = append(sw.snapshots[name], backendRemove{key: r.bkey, parent: bparent})
}

// snapshotNode is the node of the snapshot key of snapshotter name.
func snapshotNode(ns, name, key string) gc.Node {
	return gc.Node{Type: gc.ResourceSnapshot, Namespace: ns, Key: name + "/" + key}
}

// cutSnapshotNode splits a snapshot node's key into snapshotter and key.
func cutSnapshotNode(k string) (name, key string, ok bool) {
	return strings.Cut(k, "/")
}
