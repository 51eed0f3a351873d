package mount

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// mountFlags maps the options of mount(8) that are flags of mount(2).
// clear says the option removes the flag rather than setting it.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// propagationFlags are applied by a second mount(2) call once the mount
// exists.
var propagationFlags = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseMountOptions splits options into mount(2) flags, filesystem data
// options and propagation flags.
func parseMountOptions(options []string) (flags uintptr, data []string, propagation uintptr) {
	for _, o := range options {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if p, ok := propagationFlags[o]; ok {
			propagation |= p
			continue
		}
		data = append(data, o)
	}
	return flags, data, propagation
}

// compactOverlayOptions makes overlay data fit in the single page that
// mount(2) copies from user space. When the options are too long, every
// layer path is rewritten relative to the deepest directory common to all
// of them, and that directory is returned for the mount to run in. Paths
// containing an escaped ':' are not supported in that case.
func compactOverlayOptions(data []string) (dir string, out []string, err error) {
	limit := os.Getpagesize() - 1 // the kernel wants the NUL in the page too
	if len(strings.Join(data, ",")) <= limit {
		return "", data, nil
	}
	var paths []string
	for _, o := range data {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			paths = append(paths, strings.Split(v, ":")...)
		case "upperdir", "workdir":
			paths = append(paths, v)
		}
	}
	dir = commonDir(paths)
	if dir == "" || dir == "/" {
		return "", nil, fmt.Errorf("overlay options are %d bytes, more than %d, and the layers share no parent directory: %w",
			len(strings.Join(data, ",")), limit, errdefs.ErrInvalidArgument)
	}
	out = make([]string, 0, len(data))
	for _, o := range data {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "lowerdir":
			lowers := strings.Split(v, ":")
			for i, l := range lowers {
				lowers[i] = relTo(dir, l)
			}
			o = k + "=" + strings.Join(lowers, ":")
		case "upperdir", "workdir":
			o = k + "=" + relTo(dir, v)
		}
		out = append(out, o)
	}
	if n := len(strings.Join(out, ",")); n > limit {
		return "", nil, fmt.Errorf("overlay options are %d bytes even relative to %q, more than %d: %w",
			n, dir, limit, errdefs.ErrInvalidArgument)
	}
	return dir, out, nil
}

// commonDir returns the deepest directory that contains every path, all
// of which must be absolute; "" if one is not.
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	common := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return ""
		}
		p = filepath.Clean(p)
		for common != "/" && p != common && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

func relTo(dir, p string) string {
	r, err := filepath.Rel(dir, filepath.Clean(p))
	if err != nil {
		return p // cannot happen: both are absolute and dir contains p
	}
	return r
}
