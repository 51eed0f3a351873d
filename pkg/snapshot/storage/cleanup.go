package storage

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RemovingPrefix names a directory that Remove renamed away before
// deleting it; such a directory is always an orphan.
const RemovingPrefix = "rm-"

// Orphans returns the names of the entries of dir, a backend's directory
// of per-ID snapshot directories, that no record owns: numeric names not
// in the IDMap and names with RemovingPrefix. Other names are left alone,
// so a backend's temporary directories are never reported while in use.
//
// The listing runs inside a writable transaction: writers are serialised,
// so a create that renames its directory into dir within its transaction
// cannot slip between reading the IDMap and listing dir.
func (ms *MetaStore) Orphans(ctx context.Context, dir string) ([]string, error) {
	var orphans []string
	err := ms.Update(ctx, func(tx *Tx) error {
		ids, err := tx.IDMap()
		if err != nil {
			return err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("snapshot directory %q: %w", dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, RemovingPrefix) {
				orphans = append(orphans, name)
				continue
			}
			if _, err := strconv.ParseUint(name, 10, 64); err != nil {
				continue
			}
			if _, ok := ids[name]; !ok {
				orphans = append(orphans, name)
			}
		}
		return nil
	})
	return orphans, err
}
