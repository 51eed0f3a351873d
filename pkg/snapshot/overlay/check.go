package overlay

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cri-runtime/cri-runtime/pkg/mount"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// features are what the kernel and the backing filesystem of root allow,
// probed once at start.
type features struct {
	// indexOff: the kernel knows the index option. Turning the inodes
	// index off keeps mounts of shared lower layers from failing with
	// "upperdir is in-use" and saves work we do not need (no NFS export).
	indexOff bool
	// userXattr: running in a user namespace, overlay must keep its
	// metadata in user.overlay.* xattrs, the trusted ones being out of
	// reach. Root in the initial namespace never needs it.
	userXattr bool
}

// probe tests that an overlay with two lower layers, an upper and a work
// directory mounts under dir, which must be on the filesystem of the
// snapshots, and finds the options to use. A FailedPrecondition error
// tells the daemon to fall back to the native snapshotter.
func probe(dir string) (features, error) {
	var f features
	if strings.ContainsAny(dir, ",:") {
		// lowerdir, upperdir and workdir are joined by ':' and ',' in the
		// mount data, and the kernel has no escape for either.
		return f, fmt.Errorf("overlayfs on %q: the path holds ',' or ':', which overlay mount options cannot carry: %w", dir, errdefs.ErrFailedPrecondition)
	}
	if _, err := os.Stat("/sys/module/overlay/parameters/index"); err == nil {
		f.indexOff = true
	}
	inUserNS, err := mount.InUserNS()
	if err != nil {
		return f, err
	}
	if inUserNS {
		// Without privileges over trusted.* xattrs the mount either needs
		// userxattr (kernel 5.11 and later) or is not possible at all.
		f.userXattr = testMount(dir, f.options()) != nil && testMount(dir, append(f.options(), "userxattr")) == nil
	}
	if err := testMount(dir, f.options()); err != nil {
		return f, fmt.Errorf("overlayfs on %q: %w: %w", dir, err, errdefs.ErrFailedPrecondition)
	}
	return f, nil
}

func (f features) options() []string {
	var opts []string
	if f.indexOff {
		opts = append(opts, "index=off")
	}
	if f.userXattr {
		opts = append(opts, "userxattr")
	}
	return opts
}

// testMount mounts a throwaway overlay under dir with options, writes a
// file through it and unmounts it.
func testMount(dir string, options []string) (retErr error) {
	td, err := os.MkdirTemp(dir, "overlay-check-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(td); err != nil && retErr == nil {
			retErr = err
		}
	}()
	for _, d := range []string{"lower1", "lower2", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(td, d), 0o755); err != nil {
			return err
		}
	}
	opts := append([]string{
		"lowerdir=" + filepath.Join(td, "lower2") + ":" + filepath.Join(td, "lower1"),
		"upperdir=" + filepath.Join(td, "upper"),
		"workdir=" + filepath.Join(td, "work"),
	}, options...)
	merged := filepath.Join(td, "merged")
	if err := unix.Mount("overlay", merged, "overlay", 0, strings.Join(opts, ",")); err != nil {
		return fmt.Errorf("test mount with %q: %w", opts, err)
	}
	werr := os.WriteFile(filepath.Join(merged, "probe"), nil, 0o644)
	if err := unix.Unmount(merged, 0); err != nil {
		return fmt.Errorf("unmount test mount: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("write through test mount: %w", werr)
	}
	return nil
}
