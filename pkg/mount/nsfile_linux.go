package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// A namespace is pinned by bind-mounting /proc/.../ns/<type> on a file of
// its own, so that it outlives every process in it: a pod's network
// namespace, and the IPC and UTS namespaces of a pod without a pause.

// CreateNSFile creates the empty file a namespace is pinned on, and its
// directory 0700 if needed. A file already there is AlreadyExists.
func CreateNSFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("namespace file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("namespace file %s: %w", path, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("namespace file %s: %w", path, err)
	}
	return f.Close()
}

// IsNSFile reports whether path holds a pinned namespace (a file on
// nsfs), as opposed to a missing file or an empty one left unmounted.
func IsNSFile(path string) bool {
	var st unix.Statfs_t
	return path != "" && unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// RemoveNSFile unpins the namespace at path and removes the file. It is
// idempotent: a missing file or one that is not a mount point is no error.
// The namespace itself goes away once no process is left in it.
func RemoveNSFile(path string) error {
	// Stacked mounts are possible (an interrupted create retried by hand):
	// unmount until the file is no mount point.
	for range 8 {
		err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if err == nil {
			continue
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			break
		}
		return fmt.Errorf("namespace file %s: unmount: %w: %w", path, err, errdefs.ErrInternal)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("namespace file %s: %w", path, err)
	}
	return nil
}
