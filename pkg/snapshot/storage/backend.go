package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"k8s.io/klog/v2"
)

// What the backends (native, overlay) share: each keeps a snapshot in
// <dir>/<id> and its records here, so the methods that only read or change
// records, or remove a directory by ID, are written once.

// Stat returns the info of key.
func (ms *MetaStore) Stat(ctx context.Context, key string) (info snapshot.Info, err error) {
	err = ms.View(ctx, func(tx *Tx) error {
		_, info, _, err = tx.GetInfo(key)
		return err
	})
	return info, err
}

// UpdateInfo changes the labels of info.Name.
func (ms *MetaStore) UpdateInfo(ctx context.Context, info snapshot.Info, fieldpaths ...string) (out snapshot.Info, err error) {
	err = ms.Update(ctx, func(tx *Tx) error {
		out, err = tx.UpdateInfo(info, fieldpaths...)
		return err
	})
	return out, err
}

// Usage returns the usage cached at commit for a committed snapshot, and
// walks layer(id), the directory of an active one's own layer. A view owns
// no layer.
func (ms *MetaStore) Usage(ctx context.Context, key string, layer func(id string) string) (snapshot.Usage, error) {
	var (
		id    string
		info  snapshot.Info
		usage snapshot.Usage
	)
	err := ms.View(ctx, func(tx *Tx) (err error) {
		id, info, usage, err = tx.GetInfo(key)
		return err
	})
	if err != nil || info.Kind != snapshot.KindActive {
		return usage, err
	}
	return snapshot.DiskUsage(ctx, layer(id))
}

// Mountable returns the active or view snapshot key; a committed snapshot
// is FailedPrecondition: it is mounted through a view.
func (ms *MetaStore) Mountable(ctx context.Context, key string) (sn Snapshot, err error) {
	err = ms.View(ctx, func(tx *Tx) error {
		sn, err = tx.GetSnapshot(key)
		return err
	})
	if err == nil && sn.Kind == snapshot.KindCommitted {
		err = fmt.Errorf("mounts of %q: snapshot is committed, view it instead: %w", key, errdefs.ErrFailedPrecondition)
	}
	return sn, err
}

// RemoveWithDir deletes the record of key, then the snapshot's directory
// <dir>/<id>. A directory that cannot be deleted now is renamed away or left
// in place for CleanupDirs; the removal itself has succeeded.
func (ms *MetaStore) RemoveWithDir(ctx context.Context, dir, key string) error {
	var id string
	err := ms.Update(ctx, func(tx *Tx) (err error) {
		id, _, err = tx.Remove(key)
		return err
	})
	if err != nil {
		return err
	}
	gone := filepath.Join(dir, RemovingPrefix+id)
	if err := os.Rename(filepath.Join(dir, id), gone); err == nil {
		err = os.RemoveAll(gone)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		klog.FromContext(ctx).Error(err, "snapshot directory left for cleanup", "snapshot", key)
	}
	return nil
}

// Walk calls fn for every snapshot matching any of filters, outside the
// transaction that lists them, so fn may call back into the store.
func (ms *MetaStore) Walk(ctx context.Context, fn snapshot.WalkFunc, filters ...string) error {
	var infos []snapshot.Info
	err := ms.View(ctx, func(tx *Tx) error {
		return tx.WalkInfo(func(info snapshot.Info) error {
			infos = append(infos, info)
			return nil
		}, filters...)
	})
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// CleanupDirs removes the entries of dir that no record owns: those of
// removals that failed or that a crash interrupted.
func (ms *MetaStore) CleanupDirs(ctx context.Context, dir string) error {
	orphans, err := ms.Orphans(ctx, dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range orphans {
		if err := ctx.Err(); err != nil {
			return err
		}
		errs = append(errs, os.RemoveAll(filepath.Join(dir, name)))
	}
	return errors.Join(errs...)
}

// PlaceDir renames tmp, a new snapshot's prepared directory, to target,
// the directory of the ID that CreateSnapshot just numbered, and reports
// whether it did. A directory already at target was left by a crash
// between such a rename and the commit of its record: the sequence that
// numbered it was rolled back with the record, so no record names it. It
// is removed and the rename tried once more, so that the first create
// after such a crash succeeds.
func PlaceDir(tmp, target string) (placed bool, err error) {
	err = os.Rename(tmp, target)
	if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
		if rerr := os.RemoveAll(target); rerr != nil {
			return false, fmt.Errorf("remove %q, left by a crash: %w", target, rerr)
		}
		err = os.Rename(tmp, target)
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// TempPrefix names a snapshot directory being prepared, before its create
// renames it to its ID. Only RemoveTemps, at start, removes such
// directories: one present then was left by a crash.
const TempPrefix = "new-"

// RemoveTemps removes the directories of dir named with TempPrefix.
func RemoveTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
