package mount

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// Unmount retries an unmount that fails with EBUSY (a process still
// leaving the tree, an fsnotify watch being torn down) this many times,
// unmountRetryDelay apart, before detaching the mount lazily.
const (
	unmountRetries    = 50
	unmountRetryDelay = 10 * time.Millisecond
	// maxStackedMounts bounds UnmountAll so that a target that never stops
	// being a mount point cannot loop forever.
	maxStackedMounts = 64
	// cleanupTimeout bounds the unmount and removal of a temporary mount.
	cleanupTimeout = 30 * time.Second
)

// MountAll performs mounts in order, each at target joined with its
// Target. If one fails, the mounts already made are undone.
func MountAll(mounts []Mount, target string) error {
	for i, m := range mounts {
		dst, err := mountTarget(target, m.Target)
		if err == nil {
			err = m.mount(dst)
		}
		if err != nil {
			for j := i - 1; j >= 0; j-- {
				prev, _ := mountTarget(target, mounts[j].Target)
				_ = unmountOne(context.Background(), prev)
			}
			return err
		}
	}
	return nil
}

// UnmountAll unmounts every mount stacked at target. A busy mount is
// retried briefly and then detached (MNT_DETACH), which also takes the
// mounts below it. A target that is not a mount point, or does not exist,
// is not an error.
func UnmountAll(target string) error {
	return unmountAll(context.Background(), target)
}

// CleanupTempMounts unmounts and removes every temporary mount point a
// previous process left in dir (WithTempMountIn's tempRoot). The daemon
// makes its temporary mounts in a directory of its state and calls this
// at start: a mount of a daemon killed while it held one would otherwise
// stay on the host for good. A directory whose unmount fails is kept,
// never removed with what is mounted on it.
func CleanupTempMounts(ctx context.Context, dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("temporary mounts: %w", err)
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if err := unmountAll(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("temporary mount point: %w", err))
		}
	}
	return errors.Join(errs...)
}

// WithTempMount mounts mounts on a fresh directory under os.TempDir(),
// calls fn with its path and always unmounts and removes it afterwards.
func WithTempMount(ctx context.Context, mounts []Mount, fn func(root string) error) error {
	return WithTempMountIn(ctx, "", mounts, fn)
}

// WithTempMountIn is WithTempMount with the temporary directory made under
// tempRoot ("" for os.TempDir()). The cleanup runs under its own bounded
// context so that it happens even when ctx was cancelled.
func WithTempMountIn(ctx context.Context, tempRoot string, mounts []Mount, fn func(root string) error) (retErr error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(tempRoot, "cri-runtime-mount-")
	if err != nil {
		return fmt.Errorf("temporary mount point: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		err := unmountAll(cctx, dir)
		if err == nil {
			// Remove, not RemoveAll: should the unmount have silently
			// failed, RemoveAll would delete the snapshot's files.
			err = os.Remove(dir)
		}
		if err != nil && retErr == nil {
			retErr = fmt.Errorf("temporary mount %q cleanup: %w", dir, err)
		}
	}()
	if err := MountAll(mounts, dir); err != nil {
		return err
	}
	return fn(dir)
}

func mountTarget(root, rel string) (string, error) {
	if rel == "" {
		return root, nil
	}
	dst := filepath.Join(root, rel)
	if dst != root && !strings.HasPrefix(dst, root+string(filepath.Separator)) {
		return "", fmt.Errorf("mount target %q escapes %q: %w", rel, root, errdefs.ErrInvalidArgument)
	}
	return dst, nil
}

func unmountAll(ctx context.Context, target string) error {
	for range maxStackedMounts {
		err := unmountOne(ctx, target)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // no longer a mount point
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("unmount %q: still mounted after %d unmounts: %w", target, maxStackedMounts, unix.EBUSY)
}

func unmountOne(ctx context.Context, target string) error {
	for range unmountRetries {
		err := unix.Unmount(target, 0)
		if !errors.Is(err, unix.EBUSY) {
			if err != nil {
				return fmt.Errorf("unmount %q: %w", target, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("unmount %q: %w", target, ctx.Err())
		case <-time.After(unmountRetryDelay):
		}
	}
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %q (detach): %w", target, err)
	}
	return nil
}

// mount performs m at target, an absolute path.
func (m Mount) mount(target string) error {
	flags, data, propagation := parseMountOptions(m.Options)
	if m.Type == "bind" {
		flags |= unix.MS_BIND
	}
	var chdir string
	if m.Type == "overlay" {
		var err error
		if chdir, data, err = compactOverlayOptions(data); err != nil {
			return fmt.Errorf("mount overlay on %q: %w", target, err)
		}
	}
	// A bind mount ignores MS_RDONLY and the other per-mount flags on
	// creation: they only take effect on a remount of the new mount.
	first := flags
	if flags&unix.MS_BIND != 0 {
		first = flags & (unix.MS_BIND | unix.MS_REC)
	}
	if err := mountIn(chdir, m.Source, target, m.Type, first, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s %q on %q: %w", m.Type, m.Source, target, err)
	}
	if flags&unix.MS_BIND != 0 && flags&^(unix.MS_BIND|unix.MS_REC) != 0 {
		remount := uintptr(unix.MS_REMOUNT|unix.MS_BIND) | flags&^(unix.MS_BIND|unix.MS_REC)
		if err := unix.Mount("", target, "", remount, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount bind %q on %q: %w", m.Source, target, err)
		}
	}
	if propagation != 0 {
		if err := unix.Mount("", target, "", propagation, ""); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("mount propagation of %q: %w", target, err)
		}
	}
	return nil
}

// mountIn calls mount(2) with the working directory set to dir when dir is
// not empty, so that relative paths in data resolve against it. The
// working directory is shared by all threads of a process; the call runs
// on a locked thread that first unshares its fs attributes. That thread is
// never unlocked, so the Go runtime discards it when the goroutine ends.
func mountIn(dir, source, target, fstype string, flags uintptr, data string) error {
	if dir == "" {
		return unix.Mount(source, target, fstype, flags, data)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %q: %w", dir, err)
			return
		}
		errc <- unix.Mount(source, target, fstype, flags, data)
	}()
	return <-errc
}
