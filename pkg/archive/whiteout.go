package archive

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// whiteoutPrefix marks an entry that deletes the name it prefixes.
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes AUFS bookkeeping entries, which carry nothing.
	whiteoutMeta = ".wh..wh."
	// whiteoutOpaque hides everything lower layers put in its directory.
	whiteoutOpaque = ".wh..wh..opq"
)

// whiteout applies a whiteout entry. The directory it acts in must be
// reachable from the root without any symlink: a diff names what it
// deletes by its real path, so a symlink on the way is an attack.
func (a *applier) whiteout(hdr *tar.Header, dir, base string) error {
	if base == whiteoutOpaque {
		return a.opaque(hdr, dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return refused(hdr.Name, fmt.Sprintf("whiteout of %q", victim))
	}
	exists, err := a.dirs.noSymlinks(dir)
	if err != nil {
		return refused(hdr.Name, "whiteout through a symlink or file: "+err.Error())
	}
	name := path.Join(dir, victim)
	if _, ok := a.opts.whiteouts.(WhiteoutOverlay); ok {
		return a.whiteoutDevice(hdr, dir, name, victim)
	}
	if !exists {
		return nil
	}
	a.dirs.forget(name)
	a.forgetDirTimes(name)
	delete(a.created, name)
	if err := a.root.RemoveAll(name); err != nil {
		return entryError(hdr.Name, fmt.Sprintf("remove %q", name), err)
	}
	return nil
}

// whiteoutDevice stores a whiteout as overlayfs does: a character device
// 0/0 at the name it hides.
func (a *applier) whiteoutDevice(hdr *tar.Header, dir, name, victim string) error {
	dfd, err := a.dirs.fd(dir, true)
	if err != nil {
		return entryError(hdr.Name, "resolve parent", err)
	}
	err = a.create(dfd, name, victim, func() error { return unix.Mknodat(dfd, victim, unix.S_IFCHR, 0) })
	if err != nil {
		return entryError(hdr.Name, "mknod whiteout", err)
	}
	return nil
}

// opaque applies ".wh..wh..opq" to dir.
func (a *applier) opaque(hdr *tar.Header, dir string) error {
	exists, err := a.dirs.noSymlinks(dir)
	if err != nil {
		return refused(hdr.Name, "opaque whiteout through a symlink or file: "+err.Error())
	}
	if m, ok := a.opts.whiteouts.(WhiteoutOverlay); ok {
		dfd, err := a.dirs.fd(dir, true)
		if err != nil {
			return entryError(hdr.Name, "resolve directory", err)
		}
		key := "trusted.overlay.opaque"
		if m.UserXattr {
			key = "user.overlay.opaque"
		}
		if err := unix.Fsetxattr(dfd, key, []byte("y"), 0); err != nil {
			return entryError(hdr.Name, "set "+key, err)
		}
		return nil
	}
	if !exists {
		return nil
	}
	return a.removeLower(hdr, dir)
}

// removeLower empties dir of what lower layers put there: every child that
// this layer did not create.
func (a *applier) removeLower(hdr *tar.Header, dir string) error {
	f, err := a.root.Open(path.Join(".", dir))
	if err != nil {
		return entryError(hdr.Name, "open directory", err)
	}
	// Read every name before removing any: a directory changing under
	// getdents may skip entries.
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return entryError(hdr.Name, "read directory", err)
	}
	for _, n := range names {
		child := path.Join(dir, n)
		if _, ok := a.created[child]; ok {
			continue
		}
		a.dirs.forget(child)
		a.forgetDirTimes(child)
		if err := a.root.RemoveAll(child); err != nil {
			return entryError(hdr.Name, fmt.Sprintf("remove %q", child), err)
		}
	}
	return nil
}
