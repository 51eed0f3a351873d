package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/storage"
)

// create makes the directories of the new snapshot key under a temporary
// name, then records the snapshot and renames them into place in one
// transaction, so that a record never lacks its directory.
func (s *Snapshotter) create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt) (_ []snapshot.Mount, retErr error) {
	if err := ctx.Err(); err != nil {
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
	if err := os.Mkdir(filepath.Join(tmp, "fs"), 0o755); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	if kind == snapshot.KindActive {
		if err := os.Mkdir(filepath.Join(tmp, "work"), 0o711); err != nil {
			return nil, fmt.Errorf("snapshot %q: %w", key, err)
		}
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
		if len(sn.ParentIDs) > 0 {
			// The upper root must look like the lower root (owner), or
			// the merged root would change owner on first write.
			if err := copyRootOwner(s.fs(sn.ParentIDs[0]), filepath.Join(tmp, "fs")); err != nil {
				return fmt.Errorf("snapshot %q: %w", key, err)
			}
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

func copyRootOwner(from, to string) error {
	fi, err := os.Stat(from)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%q: no stat data", from)
	}
	return os.Lchown(to, int(st.Uid), int(st.Gid))
}
