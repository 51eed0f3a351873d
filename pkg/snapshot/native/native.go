// Package native is the snapshotter that works on any filesystem: every
// active snapshot is a full copy of its parent's tree, mounted with a bind
// mount. It is the fallback where overlayfs is missing, and it cannot
// rebase a commit (its layers are copies that contain their parents).
//
// On disk, under its root: metadata.db (pkg/snapshot/storage) and
// snapshots/<id>/, one directory per snapshot.
//
// It knows nothing of namespaces, leases or GC, and imports only
// pkg/snapshot, its storage and leaves.
package native

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/storage"
)

// Snapshotter is the native snapshotter.
type Snapshotter struct {
	root string
	ms   *storage.MetaStore
}

var (
	_ snapshot.Snapshotter = (*Snapshotter)(nil)
	_ snapshot.Cleaner     = (*Snapshotter)(nil)
	_ snapshot.Rebaser     = (*Snapshotter)(nil)
)

// NewSnapshotter opens or creates the native snapshotter at root.
func NewSnapshotter(root string) (snapshot.Snapshotter, error) {
	if err := os.MkdirAll(filepath.Join(root, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("native snapshotter %q: %w", root, err)
	}
	if err := storage.RemoveTemps(filepath.Join(root, "snapshots")); err != nil {
		return nil, fmt.Errorf("native snapshotter %q: %w", root, err)
	}
	ms, err := storage.NewMetaStore(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, err
	}
	return &Snapshotter{root: root, ms: ms}, nil
}

// CanRebase is false: a native layer is a full copy of its parent.
func (s *Snapshotter) CanRebase() bool { return false }

// Stat returns the info of key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	return s.ms.Stat(ctx, key)
}

// Update changes the labels of info.Name.
func (s *Snapshotter) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	return s.ms.UpdateInfo(ctx, info, fieldpaths...)
}

// Usage returns the cached usage of a committed snapshot and walks the
// directory of an active one. A view owns no layer of its own.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	return s.ms.Usage(ctx, key, s.dir)
}

// Mounts returns the mounts of the active or view snapshot key.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	sn, err := s.ms.Mountable(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.mounts(sn), nil
}

// Prepare copies parent's tree into the new active snapshot key.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindActive, key, parent, opts)
}

// View makes the read-only snapshot key: a read-only bind of parent's
// tree, which committed snapshots never change, so nothing is copied.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindView, key, parent, opts)
}

// Commit records the active snapshot key as name with its usage. A rebase
// (snapshot.WithParent naming another parent) is NotImplemented.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	var want snapshot.Info
	for _, o := range opts {
		if err := o(&want); err != nil {
			return fmt.Errorf("commit of %q: %w", key, err)
		}
	}
	var (
		id   string
		info snapshot.Info
	)
	err := s.ms.View(ctx, func(tx *storage.Tx) (err error) {
		id, info, _, err = tx.GetInfo(key)
		return err
	})
	if err != nil {
		return err
	}
	if want.Parent != "" && want.Parent != info.Parent {
		return fmt.Errorf("commit of %q onto %q: native layers contain their parent, cannot rebase: %w", key, want.Parent, errdefs.ErrNotImplemented)
	}
	var usage snapshot.Usage
	if info.Kind == snapshot.KindActive {
		if usage, err = snapshot.DiskUsage(ctx, s.dir(id)); err != nil {
			return err
		}
	}
	return s.ms.Update(ctx, func(tx *storage.Tx) error {
		_, err := tx.CommitActive(key, name, usage, opts...)
		return err
	})
}

// Remove deletes the record of key, then its directory. A directory that
// cannot be deleted now is left to Cleanup.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	return s.ms.RemoveWithDir(ctx, filepath.Join(s.root, "snapshots"), key)
}

// Walk calls fn for every snapshot matching any of filters.
func (s *Snapshotter) Walk(ctx context.Context, fn snapshot.WalkFunc, filters ...string) error {
	return s.ms.Walk(ctx, fn, filters...)
}

// Cleanup removes snapshot directories that no record owns.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	return s.ms.CleanupDirs(ctx, filepath.Join(s.root, "snapshots"))
}

// Close closes the metadata database.
func (s *Snapshotter) Close() error {
	return s.ms.Close()
}

func (s *Snapshotter) dir(id string) string {
	return filepath.Join(s.root, "snapshots", id)
}

func (s *Snapshotter) mounts(sn storage.Snapshot) []snapshot.Mount {
	if sn.Kind == snapshot.KindView {
		src := s.dir(sn.ID)
		if len(sn.ParentIDs) > 0 {
			src = s.dir(sn.ParentIDs[0])
		}
		return []snapshot.Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}
	}
	return []snapshot.Mount{{Type: "bind", Source: s.dir(sn.ID), Options: []string{"rbind", "rw"}}}
}
