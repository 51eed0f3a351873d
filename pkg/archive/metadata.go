package archive

import (
	"archive/tar"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// paxXattr is the PAX record prefix under which tar carries xattrs.
const paxXattr = "SCHILY.xattr."

// fdMetadata gives an open regular file or directory the owner, mode and
// xattrs of its entry. The order matters: chown clears setuid, setgid and
// file capabilities, so mode and xattrs come after it.
func (a *applier) fdMetadata(fd int, hdr *tar.Header) error {
	if !a.opts.noChown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return entryError(hdr.Name, "chown", err)
		}
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return entryError(hdr.Name, "chmod", err)
	}
	return a.xattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) })
}

// pathMetadata does the same for a symlink or device node, which cannot be
// opened for it, by name in its directory without following it.
func (a *applier) pathMetadata(dfd int, base string, hdr *tar.Header, chmod bool) error {
	if !a.opts.noChown {
		if err := unix.Fchownat(dfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return entryError(hdr.Name, "chown", err)
		}
	}
	if chmod {
		// mknod's mode went through the umask. The node was just made by
		// name in a directory we hold, so there is no link to follow.
		if err := unix.Fchmodat(dfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return entryError(hdr.Name, "chmod", err)
		}
	}
	if hasXattrs(hdr) {
		if a.procFd == "" {
			klog.FromContext(a.ctx).V(4).Info("xattrs of a symlink or device dropped: no /proc", "entry", hdr.Name)
		} else {
			p := a.procFd + strconv.Itoa(dfd) + "/" + base
			err := a.xattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) })
			if err != nil {
				return err
			}
		}
	}
	if err := setTimes(dfd, base, entryTimes(hdr)); err != nil {
		return entryError(hdr.Name, "set times", err)
	}
	return nil
}

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) {
			return true
		}
	}
	return false
}

// xattrs applies the entry's xattrs with set. Overlayfs' own xattrs are
// dropped: a layer must not smuggle in whiteouts, redirects or metacopy
// origins that the overlay would act on. Failures that say the filesystem
// or the security module will not have the attribute are dropped too, as
// containerd does; anything else fails the entry.
func (a *applier) xattrs(hdr *tar.Header, set func(string, []byte) error) error {
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if strings.HasPrefix(key, "trusted.overlay.") || strings.HasPrefix(key, "user.overlay.") {
			klog.FromContext(a.ctx).V(4).Info("overlay xattr in layer dropped", "entry", hdr.Name, "xattr", key)
			continue
		}
		if strings.HasPrefix(key, "user.") && hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir {
			// The kernel allows user.* only on files and directories.
			continue
		}
		err := set(key, []byte(v))
		if err == nil {
			continue
		}
		if err == unix.ENOTSUP || (strings.HasPrefix(key, "security.") && (err == unix.EPERM || err == unix.EACCES)) {
			klog.FromContext(a.ctx).V(4).Info("xattr not applied", "entry", hdr.Name, "xattr", key, "err", err)
			continue
		}
		return entryError(hdr.Name, "set xattr "+key, err)
	}
	return nil
}

// procFdPrefix returns the directory under which a descriptor can be named
// as a path, or "" when procfs is not mounted.
func procFdPrefix() string {
	const p = "/proc/self/fd/"
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
