package archive

import (
	"archive/tar"
	"fmt"
	"io"
	"path"

	"golang.org/x/sys/unix"
)

// create runs mk, which makes the leaf base in dfd and fails with EEXIST
// when the name is taken. Tar semantics are that a later entry replaces an
// earlier one, so the existing entry is removed (never followed) and mk
// runs once more.
func (a *applier) create(dfd int, name, base string, mk func() error) error {
	err := mk()
	if err != unix.EEXIST {
		return err
	}
	if err := a.remove(dfd, name, base); err != nil {
		return err
	}
	return mk()
}

// remove deletes whatever is at base in dfd, a directory with its
// contents, and drops what the applier cached about it.
func (a *applier) remove(dfd int, name, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		a.dirs.forget(name)
		a.forgetDirTimes(name)
		// os.Root re-resolves the parent the way dirs did; RemoveAll
		// never follows a symlink inside the tree it deletes.
		return a.root.RemoveAll(name)
	case unix.S_IFLNK:
		// Directories cached through this symlink must not outlive it.
		a.dirs.forget(name)
		a.forgetDirTimes(name)
	}
	return unix.Unlinkat(dfd, base, 0)
}

// writebackMin is the size from which a file's writeback starts as soon as
// it is written. Smaller files are left to the final syncfs, where the
// kernel batches them.
const writebackMin = 64 << 10

func (a *applier) file(dfd int, name, base string, hdr *tar.Header, r io.Reader) error {
	if err := a.checkSize(hdr); err != nil {
		return err
	}
	var fd int
	err := a.create(dfd, name, base, func() (err error) {
		// O_EXCL|O_NOFOLLOW: a symlink at the name is replaced, not
		// written through.
		fd, err = unix.Openat(dfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return entryError(hdr.Name, "create", err)
	}
	n, err := a.copyContent(fd, r)
	a.written += n
	if err != nil {
		unix.Close(fd)
		if a.ctx.Err() != nil {
			return err
		}
		return entryError(hdr.Name, "write", err)
	}
	if err := a.fdMetadata(fd, hdr); err != nil {
		unix.Close(fd)
		return err
	}
	if err := setTimes(dfd, base, entryTimes(hdr)); err != nil {
		unix.Close(fd)
		return entryError(hdr.Name, "set times", err)
	}
	if n < writebackMin {
		if err := unix.Close(fd); err != nil {
			return entryError(hdr.Name, "close", err)
		}
		return nil
	}
	// Start writing the file out now, without waiting: the disk works
	// while the rest of the layer is applied, and the one syncfs at the
	// end of the layer has little left to do. Its pages are dropped once
	// written (behind.go).
	_ = unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	return a.behind.add(behindFile{fd: fd, name: hdr.Name, size: n})
}

func (a *applier) dir(dfd int, name, base string, hdr *tar.Header) error {
	err := unix.Mkdirat(dfd, base, 0o700)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err = unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			// A file or symlink where the directory goes is replaced.
			if err = a.remove(dfd, name, base); err == nil {
				err = unix.Mkdirat(dfd, base, 0o700)
			}
		}
	}
	if err != nil {
		return entryError(hdr.Name, "mkdir", err)
	}
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return entryError(hdr.Name, "open", err)
	}
	// Children usually follow their directory: keep its descriptor.
	a.dirs.adopt(name, fd)
	if err := a.fdMetadata(fd, hdr); err != nil {
		return err
	}
	a.dirTimes[name] = entryTimes(hdr)
	return nil
}

func (a *applier) symlink(dfd int, name, base string, hdr *tar.Header) error {
	// The target is stored as written, wherever it points: it is only
	// ever followed through os.Root, which keeps it inside the root.
	err := a.create(dfd, name, base, func() error { return unix.Symlinkat(hdr.Linkname, dfd, base) })
	if err != nil {
		return entryError(hdr.Name, "symlink", err)
	}
	return a.pathMetadata(dfd, base, hdr, false)
}

func (a *applier) node(dfd int, name, base string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	err := a.create(dfd, name, base, func() error { return unix.Mknodat(dfd, base, mode, int(dev)) })
	if err != nil {
		return entryError(hdr.Name, "mknod", err)
	}
	return a.pathMetadata(dfd, base, hdr, true)
}

func (a *applier) hardlink(dfd int, name, base string, hdr *tar.Header) error {
	target, ok := cleanName(hdr.Linkname)
	if !ok {
		return refused(hdr.Name, fmt.Sprintf("hardlink target %q leaves the root", hdr.Linkname))
	}
	if target == "" || target == name {
		return refused(hdr.Name, fmt.Sprintf("hardlink to %q", path.Join("/", target)))
	}
	tdir, tbase := split(target)
	// The target's directory is resolved through os.Root like any other,
	// so a symlink on the way cannot lead to the host's files; linkat
	// without AT_SYMLINK_FOLLOW links a symlink itself, not its target.
	tfd, err := a.dirs.fd(tdir, false)
	if err != nil {
		return entryError(hdr.Name, fmt.Sprintf("resolve hardlink target %q", hdr.Linkname), err)
	}
	err = a.create(dfd, name, base, func() error { return unix.Linkat(tfd, tbase, dfd, base, 0) })
	if err != nil {
		return entryError(hdr.Name, fmt.Sprintf("link to %q", hdr.Linkname), err)
	}
	return nil
}
