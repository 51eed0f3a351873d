package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyTree copies the tree at src into the existing empty directory dst,
// keeping what a container image needs: modes (with setuid, setgid and
// sticky bits), ownership, extended attributes, hard links, symlinks,
// device nodes, fifos and sockets, and times.
func copyTree(ctx context.Context, src, dst string) error {
	type inode struct{ dev, ino uint64 }
	type dirMeta struct {
		path string
		st   *syscall.Stat_t
	}
	links := map[inode]string{} // first copy of each inode with several links
	var dirs []dirMeta          // finished after the walk: children change mtimes
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
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
			return fmt.Errorf("%q: no stat data", path)
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			if rel != "." {
				if err := os.Mkdir(target, 0o700); err != nil {
					return err
				}
			}
			dirs = append(dirs, dirMeta{target, st})
			return copyOwnerAndXattrs(path, target, st)
		}
		if st.Nlink > 1 {
			k := inode{uint64(st.Dev), st.Ino}
			if first, ok := links[k]; ok {
				return os.Link(first, target)
			}
			links[k] = target
		}
		if err := copyEntry(path, target, fi, st); err != nil {
			return err
		}
		if err := copyOwnerAndXattrs(path, target, st); err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			// After chown, which clears the setuid and setgid bits.
			if err := unix.Chmod(target, st.Mode&0o7777); err != nil {
				return fmt.Errorf("chmod %q: %w", target, err)
			}
		}
		return copyTimes(target, st)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.Chmod(dirs[i].path, dirs[i].st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod %q: %w", dirs[i].path, err)
		}
		if err := copyTimes(dirs[i].path, dirs[i].st); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry creates target as a copy of the non-directory at path.
func copyEntry(path, target string, fi fs.FileInfo, st *syscall.Stat_t) error {
	switch m := fi.Mode(); {
	case m.IsRegular():
		return copyFile(path, target)
	case m&fs.ModeSymlink != 0:
		link, err := os.Readlink(path)
		if err != nil {
			return err
		}
		return os.Symlink(link, target)
	case m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
		if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod %q: %w", target, err)
		}
		return nil
	default:
		return fmt.Errorf("%q: cannot copy file of mode %v", path, m)
	}
}

func copyFile(path, target string) (retErr error) {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err := out.Close(); err != nil && retErr == nil {
			retErr = err
		}
	}()
	// io.Copy between *os.File uses copy_file_range, which shares extents
	// on filesystems that support reflinks.
	_, err = io.Copy(out, in)
	return err
}

func copyOwnerAndXattrs(path, target string, st *syscall.Stat_t) error {
	if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return copyXattrs(path, target)
}

func copyXattrs(path, target string) error {
	names, err := listXattrs(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for _, name := range names {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			if n, err = unix.Lgetxattr(path, name, nil); err == nil {
				buf = make([]byte, n)
				n, err = unix.Lgetxattr(path, name, buf)
			}
		}
		if err != nil {
			return fmt.Errorf("getxattr %q %s: %w", path, name, err)
		}
		if err := unix.Lsetxattr(target, name, buf[:n], 0); err != nil {
			return fmt.Errorf("setxattr %q %s: %w", target, name, err)
		}
	}
	return nil
}

func listXattrs(path string) ([]string, error) {
	n, err := unix.Llistxattr(path, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil || n == 0 {
		return nil, err
	}
	buf := make([]byte, n)
	if n, err = unix.Llistxattr(path, buf); err != nil {
		return nil, fmt.Errorf("listxattr %q: %w", path, err)
	}
	var names []string
	for start, i := 0, 0; i < n; i++ {
		if buf[i] == 0 {
			if i > start {
				names = append(names, string(buf[start:i]))
			}
			start = i + 1
		}
	}
	return names, nil
}

func copyTimes(target string, st *syscall.Stat_t) error {
	ts := []unix.Timespec{
		{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimes %q: %w", target, err)
	}
	return nil
}
