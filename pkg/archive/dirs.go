package archive

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// dirCacheSize bounds the directory descriptors kept open. Tar streams list
// a directory's entries together, so a few dozen cover the working set of
// a depth-first walk without straining the process's descriptor limit
// when several layers are applied at once.
const dirCacheSize = 64

// dirs resolves the directories that entries are written into. Every
// lookup that misses goes through os.Root, which refuses paths and
// symlinks that lead out of the root; a hit costs nothing. Keys are
// cleaned names relative to the root, "" for the root itself.
//
// Descriptors are never closed while an entry is being applied: forget
// and eviction only park them in closing, and release closes them
// between entries, so an fd in hand cannot be reused underneath.
type dirs struct {
	root    *os.Root
	open    map[string]*os.File
	closing []*os.File
}

func newDirs(root *os.Root) (*dirs, error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	return &dirs{root: root, open: map[string]*os.File{"": f}}, nil
}

// fd returns a descriptor of directory dir, creating it and its parents
// (0755, owned by the applier) when create is set and it is missing, the
// way tar does for entries listed before their directory.
func (d *dirs) fd(dir string, create bool) (int, error) {
	if f, ok := d.open[dir]; ok {
		return int(f.Fd()), nil
	}
	f, err := d.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if create && errors.Is(err, fs.ErrNotExist) {
		if err = d.root.MkdirAll(dir, 0o755); err != nil {
			return -1, err
		}
		f, err = d.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	}
	if err != nil {
		return -1, err
	}
	d.open[dir] = f
	return int(f.Fd()), nil
}

// adopt caches the descriptor of a directory the applier just created or
// opened itself (with O_NOFOLLOW), so its children need no lookup.
func (d *dirs) adopt(dir string, fd int) {
	if old, ok := d.open[dir]; ok {
		d.closing = append(d.closing, old)
	}
	d.open[dir] = os.NewFile(uintptr(fd), dir)
}

// forget drops name and everything beneath it, for when name is removed
// or replaced: a cached descriptor would still reach the old directory,
// or the directory a replaced symlink led to.
func (d *dirs) forget(name string) {
	prefix := name + "/"
	for k, f := range d.open {
		if k != "" && (k == name || strings.HasPrefix(k, prefix)) {
			d.closing = append(d.closing, f)
			delete(d.open, k)
		}
	}
}

// release closes forgotten descriptors and, when the cache is full,
// everything but the root. Call it only between entries.
func (d *dirs) release() {
	if len(d.open) > dirCacheSize {
		for k, f := range d.open {
			if k != "" {
				d.closing = append(d.closing, f)
				delete(d.open, k)
			}
		}
	}
	for _, f := range d.closing {
		f.Close()
	}
	d.closing = d.closing[:0]
}

func (d *dirs) close() {
	for k, f := range d.open {
		d.closing = append(d.closing, f)
		delete(d.open, k)
	}
	d.release()
}

// noSymlinks reports whether every component of dir exists and is a real
// directory, walking from the root without following anything. A missing
// component ends the walk with exists false; a symlink or a non-directory
// is an error.
func (d *dirs) noSymlinks(dir string) (exists bool, err error) {
	if dir == "" {
		return true, nil
	}
	fd, err := unix.Dup(int(d.open[""].Fd()))
	if err != nil {
		return false, err
	}
	defer func() { unix.Close(fd) }()
	for c := range strings.SplitSeq(dir, "/") {
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			return false, nil
		}
		if err != nil {
			// ENOTDIR is both a symlink (refused) and a file (which holds
			// nothing to delete); lstat tells them apart.
			var st unix.Stat_t
			if serr := unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil && st.Mode&unix.S_IFMT != unix.S_IFLNK {
				return false, nil
			}
			return false, &fs.PathError{Op: "walk", Path: dir, Err: err}
		}
		unix.Close(fd)
		fd = next
	}
	return true, nil
}

// split returns the parent directory key and the base of a cleaned name.
func split(name string) (dir, base string) {
	dir, base = path.Split(name)
	return strings.TrimSuffix(dir, "/"), base
}
