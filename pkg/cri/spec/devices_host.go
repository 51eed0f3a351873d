package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// HostDevices is the DeviceLookup of the host: the device node at p (its
// symlinks resolved), or every device node below the directory p, skipping
// what runc skips in /dev (pts, shm, fd, mqueue, console and the LXC/udev
// private directories).
func HostDevices(p string) ([]specs.LinuxDevice, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("device %q: no such file: %w", p, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("device %q: %w", p, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("device %q: %w", p, err)
	}
	if !st.IsDir() {
		d, ok, err := deviceAt(real)
		if err != nil {
			return nil, fmt.Errorf("device %q: %w", p, err)
		}
		if !ok {
			return nil, fmt.Errorf("device %q: not a device node: %w", p, errdefs.ErrInvalidArgument)
		}
		d.Path = filepath.Clean(p)
		return []specs.LinuxDevice{d}, nil
	}
	var out []specs.LinuxDevice
	err = filepath.WalkDir(real, func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			switch e.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				return filepath.SkipDir
			}
			return nil
		}
		if e.Name() == "console" || e.Type()&fs.ModeDevice == 0 {
			return nil
		}
		d, ok, err := deviceAt(name)
		if err != nil || !ok {
			return err
		}
		rel, _ := filepath.Rel(real, name)
		d.Path = filepath.Join(p, rel)
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("devices below %q: %w", p, err)
	}
	return out, nil
}

// deviceAt describes the node at name, false when it is not a device.
func deviceAt(name string) (specs.LinuxDevice, bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(name, &st); err != nil {
		return specs.LinuxDevice{}, false, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, false, nil
	}
	mode := fs.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: name, Type: typ,
		Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, true, nil
}
