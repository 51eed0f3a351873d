// Package gc holds the garbage collector's vocabulary (resource nodes,
// Stats, the Collector interface) and the Scheduler that decides when a
// Collector runs, under a pause budget. The mark and sweep themselves are
// pkg/meta's (gc_scan.go, gc.go): they read bolt directly.
//
// This package imports only leaves and prometheus; it knows nothing of bbolt.
package gc

import (
	"context"
	"time"
)

// ResourceType is the type of a node in the reference graph.
type ResourceType uint8

// The resource types. Values are stable: they may be persisted.
const (
	ResourceUnknown ResourceType = iota
	ResourceContent
	ResourceSnapshot
	ResourceContainer
	ResourceSandbox
	ResourceImage
	ResourceLease
	ResourceIngest
)

// Node is one resource in the reference graph. Key is a digest, a snapshot
// "<snapshotter>/<key>", an ingest ref, an image name or an ID.
type Node struct {
	Type      ResourceType
	Namespace string
	Key       string
}

// Stats are the figures of one collection.
type Stats struct {
	// MetaD is the time writers were blocked: mark and metadata sweep.
	MetaD time.Duration
	// ContentD and SnapshotD are the times spent removing the swept
	// content and snapshots from their backends (writers not blocked).
	ContentD  time.Duration
	SnapshotD time.Duration
	// Removed counts the nodes swept, by type.
	Removed map[ResourceType]int
	// NextExpiry is the earliest expiry still to come that the
	// collection saw (a lease, an ingest opened without one); zero if
	// none. The Scheduler runs the next collection then.
	NextExpiry time.Time
}

// Elapsed is the whole time of the collection.
func (s Stats) Elapsed() time.Duration { return s.MetaD + s.ContentD + s.SnapshotD }

// Collector is what the Scheduler runs: pkg/meta's DB.
type Collector interface {
	// RegisterMutationCallback registers fn, called after every committed
	// write transaction; dirty is true when it deleted a reference.
	RegisterMutationCallback(fn func(dirty bool))
	// GarbageCollect runs one full collection.
	GarbageCollect(ctx context.Context) (Stats, error)
}
