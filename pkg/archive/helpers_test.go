package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ent is one tar entry of a test layer.
type ent struct {
	hdr  tar.Header
	body string
}

func reg(name, body string, mode int64) ent {
	return ent{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: testTime()}, body}
}

func dir(name string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: testTime()}}
}

func symlink(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, ModTime: testTime()}}
}

func hardlink(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: testTime()}}
}

func whiteout(name string) ent {
	return reg(name, "", 0)
}

func testTime() time.Time { return time.Unix(1600000000, 123456789) }

// layer builds a tar stream of entries with archive/tar.
func layer(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := e.hdr
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX // nanosecond times, xattrs
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func apply(t testing.TB, root string, tarball []byte, opts ...ApplyOpt) (int64, error) {
	t.Helper()
	return Apply(context.Background(), root, bytes.NewReader(tarball), opts...)
}

func mustApply(t testing.TB, root string, tarball []byte, opts ...ApplyOpt) {
	t.Helper()
	if _, err := apply(t, root, tarball, opts...); err != nil {
		t.Fatal(err)
	}
}

func lstat(t testing.TB, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return &st
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// sandbox is a root to apply into with a sentinel file and an empty
// directory beside it, outside the root, which attacks aim at.
type sandbox struct {
	base, root, outside, sentinel string
}

const sentinelContent = "host file, must not change"

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	base := t.TempDir()
	s := sandbox{
		base:     base,
		root:     filepath.Join(base, "root"),
		outside:  filepath.Join(base, "outside"),
		sentinel: filepath.Join(base, "outside", "sentinel"),
	}
	for _, d := range []string{s.root, s.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.sentinel, []byte(sentinelContent), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// intact fails the test if anything outside the root changed: the sentinel
// must keep its content, mode and link count, and nothing may appear
// beside it or beside the root.
func (s sandbox) intact(t *testing.T) {
	t.Helper()
	got, err := os.ReadFile(s.sentinel)
	if err != nil || string(got) != sentinelContent {
		t.Fatalf("sentinel changed: %q, %v", got, err)
	}
	st := lstat(t, s.sentinel)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != 0o644 || st.Nlink != 1 || st.Uid != uint32(os.Getuid()) {
		t.Fatalf("sentinel metadata changed: mode %o nlink %d uid %d", st.Mode, st.Nlink, st.Uid)
	}
	for dir, want := range map[string]int{s.outside: 1, s.base: 2} {
		names, err := os.ReadDir(dir)
		if err != nil || len(names) != want {
			t.Fatalf("%s now holds %v (%v)", dir, names, err)
		}
	}
}
