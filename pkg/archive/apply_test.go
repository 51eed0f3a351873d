package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"golang.org/x/sys/unix"
)

func TestApplyEntryTypes(t *testing.T) {
	withX := func(e ent, kv ...string) ent {
		e.hdr.PAXRecords = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			e.hdr.PAXRecords[paxXattr+kv[i]] = kv[i+1]
		}
		return e
	}
	owned := func(e ent, uid, gid int) ent { e.hdr.Uid, e.hdr.Gid = uid, gid; return e }
	dev := func(typ byte, name string, major, minor int64, mode int64) ent {
		return ent{hdr: tar.Header{Typeflag: typ, Name: name, Mode: mode, Devmajor: major, Devminor: minor, ModTime: testTime()}}
	}
	for _, tc := range []struct {
		name string
		ents []ent
		path string
		want want
	}{
		{"file", []ent{reg("f", "hello\n", 0o640)}, "f",
			want{typ: unix.S_IFREG, perm: 0o640, content: "hello\n", checkMtime: true}},
		{"empty file", []ent{reg("empty", "", 0o600)}, "empty",
			want{typ: unix.S_IFREG, perm: 0o600, checkMtime: true}},
		{"owned file", []ent{owned(reg("o", "x", 0o644), 1000, 1001)}, "o",
			want{typ: unix.S_IFREG, perm: 0o644, uid: 1000, gid: 1001, content: "x"}},
		// chown clears setuid: the mode must be set after the owner.
		{"setuid file owned by a user", []ent{owned(reg("su", "x", 0o4755), 1000, 1000)}, "su",
			want{typ: unix.S_IFREG, perm: 0o4755, uid: 1000, gid: 1000, content: "x"}},
		{"setgid file", []ent{reg("sg", "x", 0o2755)}, "sg",
			want{typ: unix.S_IFREG, perm: 0o2755, content: "x"}},
		{"file xattrs", []ent{withX(reg("xf", "x", 0o644), "user.color", "blue", "trusted.t", "1")}, "xf",
			want{typ: unix.S_IFREG, perm: 0o644, content: "x", xattrs: map[string]string{"user.color": "blue", "trusted.t": "1"}}},
		{"sticky dir", []ent{dir("tmp/", 0o1777)}, "tmp",
			want{typ: unix.S_IFDIR, perm: 0o1777, checkMtime: true}},
		{"dir mtime survives its children", []ent{dir("d/", 0o750), reg("d/a", "a", 0o644), dir("d/sub/", 0o755), reg("d/sub/b", "b", 0o644)}, "d",
			want{typ: unix.S_IFDIR, perm: 0o750, checkMtime: true}},
		{"owned dir with xattr", []ent{withX(owned(dir("od/", 0o700), 5, 6), "user.k", "v")}, "od",
			want{typ: unix.S_IFDIR, perm: 0o700, uid: 5, gid: 6, xattrs: map[string]string{"user.k": "v"}}},
		{"symlink", []ent{owned(symlink("l", "../some/where"), 7, 8)}, "l",
			want{typ: unix.S_IFLNK, perm: 0o777, uid: 7, gid: 8, link: "../some/where", checkMtime: true}},
		{"absolute symlink kept as written", []ent{symlink("abs", "/etc/passwd")}, "abs",
			want{typ: unix.S_IFLNK, perm: 0o777, link: "/etc/passwd"}},
		{"hardlink", []ent{reg("orig", "same", 0o644), hardlink("hl", "orig")}, "hl",
			want{typ: unix.S_IFREG, perm: 0o644, content: "same"}},
		{"hardlink with absolute target", []ent{reg("a/orig", "same", 0o644), hardlink("hl", "/a/orig")}, "hl",
			want{typ: unix.S_IFREG, perm: 0o644, content: "same"}},
		{"char device", []ent{dev(tar.TypeChar, "null", 1, 3, 0o666)}, "null",
			want{typ: unix.S_IFCHR, perm: 0o666, rdev: unix.Mkdev(1, 3), checkMtime: true}},
		{"block device", []ent{owned(dev(tar.TypeBlock, "loop9", 7, 9, 0o660), 0, 6)}, "loop9",
			want{typ: unix.S_IFBLK, perm: 0o660, gid: 6, rdev: unix.Mkdev(7, 9)}},
		{"fifo", []ent{dev(tar.TypeFifo, "pipe", 0, 0, 0o620)}, "pipe",
			want{typ: unix.S_IFIFO, perm: 0o620}},
		{"absolute name is relative to root", []ent{reg("/etc/hostname", "h", 0o644)}, "etc/hostname",
			want{typ: unix.S_IFREG, perm: 0o644, content: "h"}},
		{"parents created on demand", []ent{reg("x/y/z/f", "deep", 0o644)}, "x/y",
			want{typ: unix.S_IFDIR, perm: 0o755}},
		{"dot-dot that stays inside", []ent{reg("a/../b", "b", 0o644)}, "b",
			want{typ: unix.S_IFREG, perm: 0o644, content: "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			mustApply(t, root, layer(t, tc.ents...))
			checkEntry(t, filepath.Join(root, tc.path), tc.want)
		})
	}
}

func TestApplyHardlinkSharesInode(t *testing.T) {
	root := t.TempDir()
	mustApply(t, root, layer(t, reg("a", "x", 0o644), hardlink("b", "a"), hardlink("sub/c", "a")))
	a, b, c := lstat(t, filepath.Join(root, "a")), lstat(t, filepath.Join(root, "b")), lstat(t, filepath.Join(root, "sub/c"))
	if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
		t.Fatalf("inodes %d %d %d, nlink %d", a.Ino, b.Ino, c.Ino, a.Nlink)
	}
}

func TestApplyReturnsContentBytes(t *testing.T) {
	root := t.TempDir()
	n, err := apply(t, root, layer(t, reg("a", "12345", 0o644), dir("d/", 0o755), reg("d/b", "678", 0o644), symlink("l", "a"), hardlink("h", "a")))
	if err != nil || n != 8 {
		t.Fatalf("wrote %d (%v), want 8", n, err)
	}
}

func TestApplyLargeFileSpansBuffers(t *testing.T) {
	root := t.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef"), 3*copyBufferSize/16+7)
	mustApply(t, root, layer(t, reg("big", string(body), 0o644)))
	got, err := os.ReadFile(filepath.Join(root, "big"))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("big file: %d bytes, %v; want %d", len(got), err, len(body))
	}
}

func TestApplyReplacesExistingEntries(t *testing.T) {
	root := t.TempDir()
	mustApply(t, root, layer(t,
		dir("dir2file/", 0o755), reg("dir2file/child", "c", 0o644),
		reg("file2dir", "f", 0o644),
		reg("file2file", "old", 0o644),
		dir("keep/", 0o700), reg("keep/old", "o", 0o644),
		reg("target", "t", 0o644), symlink("link2file", "target"),
		reg("file2link", "f", 0o644),
		dir("realdir/", 0o755), symlink("link2dir", "realdir"),
	))
	mustApply(t, root, layer(t,
		reg("dir2file", "now a file", 0o644),
		dir("file2dir/", 0o711),
		reg("file2file", "new", 0o600),
		dir("keep/", 0o755), reg("keep/new", "n", 0o644),
		reg("link2file", "replaced the link", 0o644),
		symlink("file2link", "target"),
		dir("link2dir/", 0o750), reg("link2dir/f", "in the new dir", 0o644),
	))
	for p, want := range map[string]string{"dir2file": "now a file", "file2file": "new", "keep/old": "o", "keep/new": "n",
		"link2file": "replaced the link", "target": "t", "link2dir/f": "in the new dir"} {
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q (%v), want %q", p, got, err, want)
		}
	}
	if st := lstat(t, filepath.Join(root, "file2dir")); st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o777 != 0o711 {
		t.Errorf("file2dir: mode %o", st.Mode)
	}
	if st := lstat(t, filepath.Join(root, "keep")); st.Mode&0o777 != 0o755 {
		t.Errorf("dir over dir did not take the new mode: %o", st.Mode&0o777)
	}
	if st := lstat(t, filepath.Join(root, "link2dir")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("dir over symlink: type %o", st.Mode&unix.S_IFMT)
	}
	if exists(filepath.Join(root, "realdir/f")) {
		t.Error("dir entry over a symlink wrote into the symlink's target")
	}
	if l, _ := os.Readlink(filepath.Join(root, "file2link")); l != "target" {
		t.Errorf("file2link: %q", l)
	}
}

func TestApplyNoSameOwner(t *testing.T) {
	root := t.TempDir()
	e := reg("f", "x", 0o644)
	e.hdr.Uid, e.hdr.Gid = 1234, 1234
	mustApply(t, root, layer(t, e), WithNoSameOwner())
	if st := lstat(t, filepath.Join(root, "f")); st.Uid != uint32(os.Geteuid()) {
		t.Fatalf("owner %d with WithNoSameOwner", st.Uid)
	}
}

func TestApplyDropsOverlayXattrs(t *testing.T) {
	// A layer must not carry overlayfs' own metadata: written into an upper
	// directory it would act as a whiteout or a redirect.
	root := t.TempDir()
	d := dir("d/", 0o755)
	d.hdr.PAXRecords = map[string]string{paxXattr + "trusted.overlay.opaque": "y", paxXattr + "trusted.overlay.redirect": "/etc"}
	mustApply(t, root, layer(t, d))
	for _, k := range []string{"trusted.overlay.opaque", "trusted.overlay.redirect"} {
		if _, err := unix.Lgetxattr(filepath.Join(root, "d"), k, make([]byte, 16)); err != unix.ENODATA {
			t.Errorf("%s was applied (%v)", k, err)
		}
	}
}

func TestApplyRefusesUnknownEntryType(t *testing.T) {
	root := t.TempDir()
	_, err := apply(t, root, layer(t, ent{hdr: tar.Header{Typeflag: 'V', Name: "vol", ModTime: testTime()}}))
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("volume header: %v", err)
	}
}

func TestApplyTruncatedStream(t *testing.T) {
	root := t.TempDir()
	tb := layer(t, reg("f", string(bytes.Repeat([]byte("x"), 4096)), 0o644))
	// Cut in the middle of the content, before the end-of-archive blocks.
	_, err := apply(t, root, tb[:len(tb)-1024-2048])
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("truncated layer: %v", err)
	}
}

func TestApplyMissingRootIsNotFound(t *testing.T) {
	_, err := apply(t, filepath.Join(t.TempDir(), "nope"), layer(t, reg("f", "x", 0o644)))
	if !errdefs.IsNotFound(err) {
		t.Fatal(err)
	}
}

// want is what an applied entry must look like.
type want struct {
	typ        uint32 // S_IFMT bits
	perm       uint32 // including setuid, setgid, sticky
	uid, gid   uint32
	rdev       uint64
	content    string
	link       string
	xattrs     map[string]string
	checkMtime bool
}

func checkEntry(t *testing.T, p string, w want) {
	t.Helper()
	st := lstat(t, p)
	if st.Mode&unix.S_IFMT != w.typ {
		t.Fatalf("type %o, want %o", st.Mode&unix.S_IFMT, w.typ)
	}
	if st.Mode&0o7777 != w.perm {
		t.Errorf("mode %o, want %o", st.Mode&0o7777, w.perm)
	}
	if st.Uid != w.uid || st.Gid != w.gid {
		t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, w.uid, w.gid)
	}
	if w.rdev != 0 && st.Rdev != w.rdev {
		t.Errorf("rdev %x, want %x", st.Rdev, w.rdev)
	}
	if w.typ == unix.S_IFREG {
		got, err := os.ReadFile(p)
		if err != nil || string(got) != w.content {
			t.Errorf("content %q (%v), want %q", got, err, w.content)
		}
	}
	if w.link != "" {
		if got, _ := os.Readlink(p); got != w.link {
			t.Errorf("link %q, want %q", got, w.link)
		}
	}
	for k, v := range w.xattrs {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(p, k, buf)
		if err != nil || string(buf[:n]) != v {
			t.Errorf("xattr %s = %q (%v), want %q", k, buf[:max(n, 0)], err, v)
		}
	}
	if w.checkMtime {
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(testTime()) {
			t.Errorf("mtime %v, want %v", got, testTime())
		}
	}
}
