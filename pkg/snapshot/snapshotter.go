// Package snapshot defines the Snapshotter: the store of filesystem layers
// and container root filesystems.
//
// Vocabulary (as in containerd):
//   - An active snapshot is a writable filesystem identified by a key. It is
//     made with Prepare (writable) or View (read-only) from an optional
//     parent, mounted with Mounts, and either committed or removed.
//   - A committed snapshot is an immutable filesystem identified by a name.
//     Commit turns the active snapshot key into the committed snapshot name.
//     Committed snapshots are the only valid parents.
//   - A parent cannot be removed while it has children (FailedPrecondition).
//
// Worked example: unpacking a two-layer image.
//
//	mounts, _ := sn.Prepare(ctx, "extract-1", "")         // empty, writable
//	mount mounts on /tmp/x; apply layer 1; unmount
//	sn.Commit(ctx, chainID1, "extract-1")                 // immutable layer 1
//	mounts, _ = sn.Prepare(ctx, "extract-2", chainID1)    // layer 1 below
//	apply layer 2 onto it; unmount
//	sn.Commit(ctx, chainID2, "extract-2")
//
// Worked example: a container root filesystem.
//
//	mounts, _ := sn.Prepare(ctx, containerID, chainID2)   // writable top
//	hand mounts to runc; on container removal:
//	sn.Remove(ctx, containerID)
//
// Backends: overlay/ (overlayfs) and native/ (copies). storage/ is the bolt
// metastore the backends use for their own records; pkg/meta adds the
// namespaced view, labels for GC and leases. testsuite/ runs against all.
//
// This package imports only leaves.
package snapshot

import (
	"context"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/mount"
)

// Kind is the kind of a snapshot.
type Kind uint8

// The kinds of snapshot.
const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

func (k Kind) String() string {
	switch k {
	case KindView:
		return "View"
	case KindActive:
		return "Active"
	case KindCommitted:
		return "Committed"
	}
	return "Unknown"
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) Kind {
	switch s {
	case "View", "view":
		return KindView
	case "Active", "active":
		return KindActive
	case "Committed", "committed":
		return KindCommitted
	}
	return KindUnknown
}

// Info describes a snapshot.
type Info struct {
	Kind    Kind
	Name    string // key of an active snapshot, name of a committed one
	Parent  string // name of the parent, "" for none
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// Usage is the disk usage of a snapshot's own layer (not its parents).
type Usage struct {
	Inodes int64
	Size   int64 // bytes
}

// Add accumulates u into the receiver.
func (u *Usage) Add(o Usage) {
	u.Inodes += o.Inodes
	u.Size += o.Size
}

// Mount is one mount to perform, in the form of mount(2); pkg/mount
// performs it.
type Mount = mount.Mount

// WalkFunc is called by Walk for each snapshot.
type WalkFunc func(context.Context, Info) error

// Snapshotter stores snapshots. Every method honours ctx.
type Snapshotter interface {
	// Stat returns the info of the snapshot key or name; NotFound if none.
	Stat(ctx context.Context, key string) (Info, error)
	// Update changes labels ("labels", "labels.<key>" field paths).
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	// Usage returns the disk usage of the snapshot's own layer.
	Usage(ctx context.Context, key string) (Usage, error)
	// Mounts returns the mounts of the active or view snapshot key.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Prepare creates the active snapshot key over parent ("" for none).
	// AlreadyExists if key exists; NotFound if parent does not.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// View creates a read-only snapshot key over parent.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// Commit makes the active snapshot key the committed snapshot name.
	// AlreadyExists if name exists (the active key is left intact).
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	// Remove removes the snapshot; FailedPrecondition if it has children.
	Remove(ctx context.Context, key string) error
	// Walk calls fn for snapshots matching any of filters (fields: kind,
	// name, parent, labels.<key>).
	Walk(ctx context.Context, fn WalkFunc, filters ...string) error
	// Close releases the snapshotter's resources.
	Close() error
}

// Cleaner is implemented by snapshotters that remove the on-disk remains
// of deleted snapshots asynchronously (called by GC after a sweep).
type Cleaner interface {
	Cleanup(ctx context.Context) error
}

// Opt sets snapshot Info fields at creation.
type Opt func(*Info) error

// WithLabels sets labels on a new snapshot.
func WithLabels(labels map[string]string) Opt {
	return func(info *Info) error {
		if info.Labels == nil {
			info.Labels = map[string]string{}
		}
		for k, v := range labels {
			info.Labels[k] = v
		}
		return nil
	}
}
