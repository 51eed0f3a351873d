package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"golang.org/x/sys/unix"
)

// copyBufferSize is the size of the one buffer a layer is copied through:
// large enough that big files take few write calls, small enough that many
// layers applied at once cost little.
const copyBufferSize = 1 << 20

// Apply applies the uncompressed tar stream r onto the directory root and
// returns the bytes of regular-file content written. Entries replace what
// is at their name, except that a directory over a directory keeps it and
// takes the new metadata. Nothing is synced: call SyncFS once done.
//
// An entry that would write, link or delete outside root is refused with
// InvalidArgument naming it; what the layer wrote before it stays.
func Apply(ctx context.Context, root string, r io.Reader, opts ...ApplyOpt) (int64, error) {
	rt, err := os.OpenRoot(root)
	if err != nil {
		return 0, rootError(root, "open", err)
	}
	defer rt.Close()
	d, err := newDirs(rt)
	if err != nil {
		return 0, rootError(root, "open", err)
	}
	a := &applier{
		ctx:      ctx,
		root:     rt,
		dirs:     d,
		opts:     newOptions(opts),
		buf:      make([]byte, copyBufferSize),
		dirTimes: map[string]times{},
		created:  map[string]struct{}{},
		procFd:   procFdPrefix(),
	}
	defer a.dirs.close()
	if err := a.run(tar.NewReader(r)); err != nil {
		a.behind.close()
		return a.written, err
	}
	if err := a.behind.flush(); err != nil {
		return a.written, err
	}
	return a.written, a.finishDirTimes()
}

// applier holds the state of one Apply. It is used by one goroutine.
type applier struct {
	ctx     context.Context
	root    *os.Root
	dirs    *dirs
	opts    applyOptions
	buf     []byte
	written int64
	// behind holds the large files written last, until their pages are
	// dropped (behind.go).
	behind behind

	// dirTimes are the times of the directories this layer lists, set at
	// the end because creating their children changes them.
	dirTimes map[string]times
	// created holds every name this layer created and their parents, so
	// that an opaque whiteout met after some of them keeps them.
	created map[string]struct{}
	// procFd is "/proc/self/fd/" when procfs is there: the way to set an
	// xattr on a symlink or device relative to a directory descriptor.
	procFd string
}

type times struct{ atime, mtime time.Time }

func (a *applier) run(tr *tar.Reader) error {
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		a.dirs.release()
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("layer tar after %d bytes: %w: %w", a.written, err, errdefs.ErrInvalidArgument)
		}
		if err := a.entry(hdr, tr); err != nil {
			return err
		}
	}
}

// cleanName maps an entry name to a clean name relative to the root, ""
// for the root itself. Absolute names are relative to the root, as tar
// does without -P; names that climb out of it are refused.
func cleanName(name string) (string, bool) {
	n := strings.TrimLeft(name, "/")
	if n == "" {
		return "", true
	}
	if !filepath.IsLocal(n) {
		return "", false
	}
	n = path.Clean(n)
	if n == "." {
		return "", true
	}
	return n, true
}

func (a *applier) entry(hdr *tar.Header, tr *tar.Reader) error {
	name, ok := cleanName(hdr.Name)
	if !ok {
		return refused(hdr.Name, "name leaves the root")
	}
	if name == "" {
		// The root belongs to the snapshotter; its metadata is not the
		// layer's to change.
		return nil
	}
	dir, base := split(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(hdr, dir, base)
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return refused(hdr.Name, fmt.Sprintf("tar entry type %q", hdr.Typeflag))
	}
	dfd, err := a.dirs.fd(dir, true)
	if err != nil {
		return entryError(hdr.Name, "resolve parent", err)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		err = a.file(dfd, name, base, hdr, tr)
	case tar.TypeDir:
		err = a.dir(dfd, name, base, hdr)
	case tar.TypeSymlink:
		err = a.symlink(dfd, name, base, hdr)
	case tar.TypeLink:
		err = a.hardlink(dfd, name, base, hdr)
	default:
		err = a.node(dfd, name, base, hdr)
	}
	if err != nil {
		return err
	}
	a.markCreated(name)
	return nil
}

// markCreated records name and its parents as this layer's, for opaque
// whiteouts in WhiteoutDelete mode.
func (a *applier) markCreated(name string) {
	if _, ok := a.opts.whiteouts.(WhiteoutDelete); !ok {
		return
	}
	for name != "" {
		if _, ok := a.created[name]; ok {
			return
		}
		a.created[name] = struct{}{}
		name, _ = split(name)
	}
}

// copyContent writes the entry's content to fd through the applier's
// buffer, checking for cancellation between chunks so that a huge file
// does not hold up a cancelled pull.
func (a *applier) copyContent(fd int, r io.Reader) (int64, error) {
	var n int64
	for {
		m, rerr := r.Read(a.buf)
		if m > 0 {
			if err := writeAll(fd, a.buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
		if err := a.ctx.Err(); err != nil {
			return n, err
		}
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// checkSize refuses a file that would take the layer over its bound,
// before any of it is written.
func (a *applier) checkSize(hdr *tar.Header) error {
	if a.opts.maxSize > 0 && hdr.Size > a.opts.maxSize-a.written {
		return fmt.Errorf("layer exceeds %d bytes at entry %q (%d bytes): %w",
			a.opts.maxSize, hdr.Name, hdr.Size, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// finishDirTimes sets the times of the layer's directories, now that
// nothing more is created in them.
func (a *applier) finishDirTimes() error {
	for name, t := range a.dirTimes {
		dir, base := split(name)
		dfd, err := a.dirs.fd(dir, false)
		if err == nil {
			err = setTimes(dfd, base, t)
		}
		// A directory removed after it was listed has no times to set.
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return entryError(name, "set times", err)
		}
		a.dirs.release()
	}
	return nil
}

// forgetDirTimes drops the pending times of name and what is beneath it,
// when it is removed or replaced.
func (a *applier) forgetDirTimes(name string) {
	prefix := name + "/"
	for k := range a.dirTimes {
		if k == name || strings.HasPrefix(k, prefix) {
			delete(a.dirTimes, k)
		}
	}
}

func setTimes(dfd int, base string, t times) error {
	ts := []unix.Timespec{timespec(t.atime), timespec(t.mtime)}
	return unix.UtimesNanoAt(dfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		// The epoch, not the year-1 zero time that utimensat cannot hold.
		return unix.Timespec{}
	}
	// Seconds and nanoseconds apart: UnixNano overflows outside 1678-2262,
	// and a layer may claim any time.
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

func entryTimes(hdr *tar.Header) times {
	t := times{atime: hdr.AccessTime, mtime: hdr.ModTime}
	if t.atime.IsZero() {
		t.atime = t.mtime
	}
	return t
}
