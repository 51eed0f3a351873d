package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"k8s.io/klog/v2"
)

// The backends keep each snapshot in <dir>/<id>; these helpers are what
// they share around that layout.

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
