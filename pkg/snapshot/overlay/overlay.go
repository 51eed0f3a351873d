// Package overlay is the snapshotter built on overlayfs: each snapshot
// owns one directory of its own files (the upper layer while active, a
// lower layer once committed), and a mount stacks it over its parents'.
// Since a layer's directory does not depend on its parents, a commit can
// record another parent than the one prepared with (snapshot.WithParent),
// which lets an unpacker apply an image's layers in parallel.
//
// On disk, under its root: metadata.db (pkg/snapshot/storage) and
// snapshots/<id>/{fs,work}.
//
// It knows nothing of namespaces, leases or GC, and imports only
// pkg/snapshot, its storage and leaves.
package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/storage"
)

// Opt configures the overlay snapshotter.
type Opt func(*config)

type config struct {
	mountOptions []string
}

// WithMountOptions adds options to every overlay mount (not to the bind
// mounts of snapshots without parents), after those found at start.
func WithMountOptions(options ...string) Opt {
	return func(c *config) { c.mountOptions = append(c.mountOptions, options...) }
}

// Snapshotter is the overlay snapshotter.
type Snapshotter struct {
	root    string
	ms      *storage.MetaStore
	options []string // for every overlay mount: probed, then WithMountOptions
}

var (
	_ snapshot.Snapshotter = (*Snapshotter)(nil)
	_ snapshot.Cleaner     = (*Snapshotter)(nil)
	_ snapshot.Rebaser     = (*Snapshotter)(nil)
)

// NewSnapshotter opens or creates the overlay snapshotter at root. It
// fails with FailedPrecondition when overlayfs cannot be mounted on root's
// filesystem, so that the caller can fall back to the native snapshotter.
func NewSnapshotter(root string, opts ...Opt) (snapshot.Snapshotter, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	dir := filepath.Join(root, "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("overlay snapshotter %q: %w", root, err)
	}
	if err := storage.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("overlay snapshotter %q: %w", root, err)
	}
	f, err := probe(root)
	if err != nil {
		return nil, err
	}
	ms, err := storage.NewMetaStore(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, err
	}
	return &Snapshotter{root: root, ms: ms, options: append(f.options(), c.mountOptions...)}, nil
}

// CanRebase is true: an overlay layer does not contain its parents.
func (s *Snapshotter) CanRebase() bool { return true }

// Stat returns the info of key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	return s.ms.Stat(ctx, key)
}

// Update changes the labels of info.Name.
func (s *Snapshotter) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	return s.ms.UpdateInfo(ctx, info, fieldpaths...)
}

// Usage returns the usage cached at commit for a committed snapshot, and
// walks the upper directory of an active one. A view owns no layer.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	return s.ms.Usage(ctx, key, s.fs)
}

// Mounts returns the mounts of the active or view snapshot key.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	sn, err := s.ms.Mountable(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.mounts(sn), nil
}

// Prepare makes the active snapshot key over parent.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindActive, key, parent, opts)
}

// View makes the read-only snapshot key over parent.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return s.create(ctx, snapshot.KindView, key, parent, opts)
}

// Commit records the active snapshot key as name with the usage of its
// layer. With snapshot.WithParent the layer is recorded over that parent,
// which must be committed; its files stay as they are.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
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
	var usage snapshot.Usage
	if info.Kind == snapshot.KindActive {
		if usage, err = snapshot.DiskUsage(ctx, s.fs(id)); err != nil {
			return err
		}
	}
	return s.ms.Update(ctx, func(tx *storage.Tx) error {
		_, err := tx.CommitActive(key, name, usage, opts...)
		return err
	})
}

// Remove deletes the record of key, then its directories. Directories
// that cannot be deleted now are left to Cleanup.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	return s.ms.RemoveWithDir(ctx, filepath.Join(s.root, "snapshots"), key)
}

// Walk calls fn for every snapshot matching any of filters, outside the
// transaction that lists them.
func (s *Snapshotter) Walk(ctx context.Context, fn snapshot.WalkFunc, filters ...string) error {
	return s.ms.Walk(ctx, fn, filters...)
}

// Cleanup removes snapshot directories that no record owns: those of
// removals that failed or that a crash interrupted.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	return s.ms.CleanupDirs(ctx, filepath.Join(s.root, "snapshots"))
}

// Close closes the metadata database.
func (s *Snapshotter) Close() error {
	return s.ms.Close()
}

func (s *Snapshotter) dir(id string) string  { return filepath.Join(s.root, "snapshots", id) }
func (s *Snapshotter) fs(id string) string   { return filepath.Join(s.dir(id), "fs") }
func (s *Snapshotter) work(id string) string { return filepath.Join(s.dir(id), "work") }

// mounts: a snapshot without parents is a bind of its own directory; a
// view of one parent a read-only bind of the parent's; anything else an
// overlay of the parents, nearest first, under the snapshot's upper
// directory unless it is a view.
func (s *Snapshotter) mounts(sn storage.Snapshot) []snapshot.Mount {
	if len(sn.ParentIDs) == 0 || sn.Kind == snapshot.KindView && len(sn.ParentIDs) == 1 {
		src, rw := s.fs(sn.ID), "rw"
		if sn.Kind != snapshot.KindActive {
			rw = "ro"
		}
		if len(sn.ParentIDs) == 1 {
			src = s.fs(sn.ParentIDs[0])
		}
		return []snapshot.Mount{{Type: "bind", Source: src, Options: []string{"rbind", rw}}}
	}
	lowers := make([]string, len(sn.ParentIDs))
	for i, id := range sn.ParentIDs {
		lowers[i] = s.fs(id)
	}
	options := append([]string(nil), s.options...)
	if sn.Kind == snapshot.KindActive {
		options = append(options, "upperdir="+s.fs(sn.ID), "workdir="+s.work(sn.ID))
	} else {
		options = append(options, "ro")
	}
	options = append(options, "lowerdir="+strings.Join(lowers, ":"))
	return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: options}}
}
