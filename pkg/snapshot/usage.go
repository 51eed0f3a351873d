package snapshot

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// DiskUsage returns the disk usage of the tree at root with the semantics
// of du: allocated blocks rather than apparent sizes, every inode counted
// once however many hard links point at it. The root itself is counted.
func DiskUsage(ctx context.Context, root string) (Usage, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]struct{}{}
	var u Usage
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("usage of %q: no stat data", path)
		}
		k := inode{dev: uint64(st.Dev), ino: st.Ino}
		if _, dup := seen[k]; dup {
			return nil
		}
		seen[k] = struct{}{}
		u.Inodes++
		u.Size += st.Blocks * 512 // st_blocks is in 512-byte units whatever the block size
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("usage of %q: %w", root, err)
	}
	return u, nil
}
