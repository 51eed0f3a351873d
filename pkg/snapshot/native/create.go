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

// create makes the snapshot key in three steps, so that the long copy
// holds no transaction: check key and parent, fill a temporary directory,
// then record the snapshot and rename the directory into place in one
// transaction.
func (s *Snapshotter) create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt) (_ []snapshot.Mount, retErr error) {
	var parentID string
	err := s.ms.View(ctx, func(tx *storage.Tx) error {
		if _, err := tx.GetSnapshot(key); err == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		if parent == "" {
			return nil
		}
		p, err := tx.GetSnapshot(parent)
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("parent snapshot %q: %w", parent, errdefs.ErrNotFound)
		} else if err != nil {
			return err
		}
		if p.Kind != snapshot.KindCommitted {
			return fmt.Errorf("parent snapshot %q is %v, not committed: %w", parent, p.Kind, errdefs.ErrFailedPrecondition)
		}
		parentID = p.ID
		return nil
	})
	if err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp(filepath.Join(s.root, "snapshots"), storage.TempPrefix)
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if kind == snapshot.KindActive && parentID != "" {
		if err := copyTree(ctx, s.dir(parentID), tmp); err != nil {
			return nil, fmt.Errorf("snapshot %q: copy of parent %q: %w", key, parent, err)
		}
	} else if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp made it 0700
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}

	var (
		sn      storage.Snapshot
		placed  bool
		renamed string
	)
	err = s.ms.Update(ctx, func(tx *storage.Tx) (err error) {
		if sn, err = tx.CreateSnapshot(kind, key, parent, opts...); err != nil {
			return err
		}
		renamed = s.dir(sn.ID)
		placed, err = storage.PlaceDir(tmp, renamed)
		return err
	})
	if err != nil {
		if placed {
			// Renamed, then the commit failed: the directory is ours.
			_ = os.RemoveAll(renamed)
		}
		return nil, err
	}
	return s.mounts(sn), nil
}
