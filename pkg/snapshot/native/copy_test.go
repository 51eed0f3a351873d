package native

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"golang.org/x/sys/unix"
)

// TestCopyTreeKeepsMetadata guards what image layers rely on: modes with
// special bits, owners, xattrs, hard links, symlinks, devices, fifos and
// modification times.
func TestCopyTreeKeepsMetadata(t *testing.T) {
	testenv.NeedRoot(t, "chown and mknod")
	src, dst := t.TempDir(), t.TempDir()
	p := func(n string) string { return filepath.Join(src, n) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(p("dir"), 0o755))
	must(os.WriteFile(p("dir/suid"), []byte("s"), 0o644))
	must(os.Chown(p("dir/suid"), 1000, 1001))
	must(unix.Chmod(p("dir/suid"), 0o4755))
	must(os.Mkdir(p("sticky"), 0o755))
	must(unix.Chmod(p("sticky"), 0o1777))
	must(os.Link(p("dir/suid"), p("hard")))
	must(os.Symlink("dir/suid", p("link")))
	must(unix.Lchown(p("link"), 7, 8))
	must(unix.Mknod(p("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(p("fifo"), 0o600))
	must(unix.Lsetxattr(p("dir/suid"), "user.test", []byte("value"), 0))
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	must(os.Chtimes(p("dir/suid"), old, old))
	must(os.Chtimes(p("dir"), old, old))

	must(copyTree(context.Background(), src, dst))

	d := func(n string) string { return filepath.Join(dst, n) }
	st := func(path string) *syscall.Stat_t {
		t.Helper()
		var s syscall.Stat_t
		must(syscall.Lstat(path, &s))
		return &s
	}
	if s := st(d("dir/suid")); s.Mode&0o7777 != 0o4755 || s.Uid != 1000 || s.Gid != 1001 || s.Mtim.Sec != old.Unix() || s.Nlink != 2 {
		t.Errorf("file: mode %o uid %d gid %d mtime %d nlink %d", s.Mode&0o7777, s.Uid, s.Gid, s.Mtim.Sec, s.Nlink)
	}
	if st(d("hard")).Ino != st(d("dir/suid")).Ino {
		t.Error("hard link copied as two files")
	}
	if s := st(d("sticky")); s.Mode&0o7777 != 0o1777 {
		t.Errorf("sticky dir: mode %o", s.Mode&0o7777)
	}
	if s := st(d("dir")); s.Mtim.Sec != old.Unix() {
		t.Errorf("dir mtime %d, want %d", s.Mtim.Sec, old.Unix())
	}
	if l, err := os.Readlink(d("link")); err != nil || l != "dir/suid" {
		t.Errorf("symlink: %q, %v", l, err)
	}
	if s := st(d("link")); s.Uid != 7 || s.Gid != 8 {
		t.Errorf("symlink owner %d:%d", s.Uid, s.Gid)
	}
	if s := st(d("null")); s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device: mode %o rdev %d", s.Mode, s.Rdev)
	}
	if s := st(d("fifo")); s.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo: mode %o", s.Mode)
	}
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(d("dir/suid"), "user.test", buf); err != nil || string(buf[:n]) != "value" {
		t.Errorf("xattr: %q, %v", buf[:n], err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := copyTree(ctx, src, t.TempDir()); err != context.Canceled {
		t.Errorf("cancelled copy: %v", err)
	}
}
