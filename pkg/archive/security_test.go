package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/archive/compression"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// refusedAndIntact applies ents into a fresh sandbox, wants an
// InvalidArgument naming the entry, and checks the host is untouched.
func refusedAndIntact(t *testing.T, s sandbox, entry string, ents ...ent) {
	t.Helper()
	_, err := apply(t, s.root, layer(t, ents...))
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("applied or wrong class: %v", err)
	}
	if !strings.Contains(err.Error(), entry) {
		t.Errorf("error %q does not name entry %q", err, entry)
	}
	s.intact(t)
}

func TestApplyRefusesDotDotEscape(t *testing.T) {
	for _, name := range []string{"../outside/sentinel", "../escape", "a/../../escape", "./../../../../escape", "/../escape"} {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			refusedAndIntact(t, s, name, reg(name, "pwned", 0o644))
		})
	}
	t.Run("directory", func(t *testing.T) {
		s := newSandbox(t)
		refusedAndIntact(t, s, "../newdir/", dir("../newdir/", 0o755))
	})
}

func TestApplyRefusesWriteThroughSymlink(t *testing.T) {
	s := newSandbox(t)
	for _, tc := range []struct {
		name, target, entry string
		e                   ent
	}{
		{"absolute", s.outside, "link/new", reg("link/new", "pwned", 0o644)},
		{"absolute to root", "/", "link/tmp/new", reg("link/tmp/new", "pwned", 0o644)},
		{"relative climbing out", "../outside", "link/new", reg("link/new", "pwned", 0o644)},
		{"relative deep climb", "../../../../../../..", "link/new", reg("link/new", "pwned", 0o644)},
		{"directory through link", s.outside, "link/newdir/", dir("link/newdir/", 0o755)},
		{"symlink through link", s.outside, "link/evil", symlink("link/evil", "x")},
		{"chained links", "link2/..", "link/x", reg("link/x", "pwned", 0o644)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			ents := []ent{symlink("link", tc.target)}
			if tc.name == "chained links" {
				ents = append(ents, symlink("link2", "../outside/.."))
			}
			refusedAndIntact(t, s, tc.entry, append(ents, tc.e)...)
		})
	}
	t.Run("existing symlink from a lower layer", func(t *testing.T) {
		s := newSandbox(t)
		mustApply(t, s.root, layer(t, symlink("etc", s.outside)))
		refusedAndIntact(t, s, "etc/new", reg("etc/new", "pwned", 0o644))
	})
	t.Run("file over a symlink replaces the link", func(t *testing.T) {
		s := newSandbox(t)
		// Not refused: tar semantics replace the link; the host file
		// must keep its content.
		mustApply(t, s.root, layer(t, symlink("f", s.sentinel), reg("f", "pwned", 0o644)))
		mustApply(t, s.root, layer(t, symlink("g", "../outside/sentinel")))
		mustApply(t, s.root, layer(t, reg("g", "pwned", 0o644)))
		s.intact(t)
		if st := lstat(t, filepath.Join(s.root, "f")); st.Mode&0o170000 != 0o100000 {
			t.Fatalf("f is not a regular file: %o", st.Mode)
		}
	})
	t.Run("hardlink over a symlink replaces the link", func(t *testing.T) {
		s := newSandbox(t)
		mustApply(t, s.root, layer(t, reg("data", "d", 0o644), symlink("f", s.sentinel), hardlink("f", "data")))
		s.intact(t)
	})
	t.Run("device over a symlink replaces the link", func(t *testing.T) {
		s := newSandbox(t)
		mustApply(t, s.root, layer(t, symlink("f", s.sentinel),
			ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "f", Mode: 0o600, ModTime: testTime()}}))
		s.intact(t)
	})
	t.Run("metadata never follows a symlink", func(t *testing.T) {
		s := newSandbox(t)
		l := symlink("l", s.sentinel)
		l.hdr.Uid, l.hdr.Gid, l.hdr.Mode = 4321, 4321, 0o7777
		mustApply(t, s.root, layer(t, l))
		s.intact(t)
	})
	t.Run("symlink inside the root is followed", func(t *testing.T) {
		// Merged-/usr images rely on writing through lib -> usr/lib, as
		// containerd and Docker allow; it stays inside the root.
		s := newSandbox(t)
		mustApply(t, s.root, layer(t, dir("usr/lib/", 0o755), symlink("lib", "usr/lib"), reg("lib/libc.so", "c", 0o644)))
		if !exists(filepath.Join(s.root, "usr/lib/libc.so")) {
			t.Fatal("write through an inside symlink did not land in its target")
		}
		s.intact(t)
	})
}

func TestApplyRefusesSymlinkLoop(t *testing.T) {
	s := newSandbox(t)
	refusedAndIntact(t, s, "a/f", symlink("a", "b"), symlink("b", "a"), reg("a/f", "x", 0o644))
}

func TestApplyRefusesHardlinkOutside(t *testing.T) {
	s := newSandbox(t)
	for _, tc := range []struct {
		name string
		ents []ent
	}{
		{"dot-dot", []ent{hardlink("h", "../outside/sentinel")}},
		{"deep dot-dot", []ent{hardlink("h", "a/../../../../outside/sentinel")}},
		{"through absolute symlink", []ent{symlink("l", s.outside), hardlink("h", "l/sentinel")}},
		{"through climbing symlink", []ent{symlink("l", "../outside"), hardlink("h", "l/sentinel")}},
		// An absolute target is inside the root, where there is no such file.
		{"absolute host path", []ent{hardlink("h", s.sentinel)}},
		{"etc shadow", []ent{hardlink("h", "/etc/shadow")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			refusedAndIntact(t, s, "h", tc.ents...)
			if exists(filepath.Join(s.root, "h")) {
				t.Fatal("link created")
			}
		})
	}
	t.Run("to a symlink links the symlink itself", func(t *testing.T) {
		s := newSandbox(t)
		mustApply(t, s.root, layer(t, symlink("l", s.sentinel), hardlink("h", "l")))
		if st := lstat(t, filepath.Join(s.root, "h")); st.Mode&0o170000 != 0o120000 {
			t.Fatalf("h: mode %o, want a symlink", st.Mode)
		}
		s.intact(t)
	})
}

func TestApplyRefusesWhiteoutOutside(t *testing.T) {
	s := newSandbox(t)
	for _, tc := range []struct {
		name  string
		entry string
		ents  []ent
	}{
		{"dot-dot", "../outside/.wh.sentinel", []ent{whiteout("../outside/.wh.sentinel")}},
		{"dot-dot opaque", "../outside/.wh..wh..opq", []ent{whiteout("../outside/.wh..wh..opq")}},
		{"through absolute symlink", "l/.wh.sentinel", []ent{symlink("l", s.outside), whiteout("l/.wh.sentinel")}},
		{"through climbing symlink", "l/.wh.sentinel", []ent{symlink("l", "../outside"), whiteout("l/.wh.sentinel")}},
		{"opaque through symlink", "l/.wh..wh..opq", []ent{symlink("l", s.outside), whiteout("l/.wh..wh..opq")}},
		// Stricter than writes: a diff names deletions by their real path.
		{"through inside symlink", "l/.wh.x", []ent{dir("d/", 0o755), reg("d/x", "x", 0o644), symlink("l", "d"), whiteout("l/.wh.x")}},
		{"of dot-dot", ".wh..", []ent{whiteout(".wh..")}},
	} {
		for _, mode := range []WhiteoutMode{WhiteoutDelete{}, WhiteoutOverlay{}} {
			t.Run(tc.name, func(t *testing.T) {
				s := newSandbox(t)
				_, err := apply(t, s.root, layer(t, tc.ents...), WithWhiteoutMode(mode))
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.entry) {
					t.Fatalf("%T: %v", mode, err)
				}
				s.intact(t)
			})
		}
	}
	t.Run("whiteout of a symlink removes the link only", func(t *testing.T) {
		s := newSandbox(t)
		mustApply(t, s.root, layer(t, symlink("l", s.outside)))
		mustApply(t, s.root, layer(t, whiteout(".wh.l")))
		if exists(filepath.Join(s.root, "l")) {
			t.Fatal("link kept")
		}
		s.intact(t)
	})
	t.Run("whiteout of a dot-dot name", func(t *testing.T) {
		s := newSandbox(t)
		_, err := apply(t, s.root, layer(t, whiteout("a/.wh..."))) // removes "a/.."
		if !errdefs.IsInvalidArgument(err) {
			t.Fatal(err)
		}
		s.intact(t)
	})
}

// bomb is a gzip layer holding one file of size zeros: a few hundred KiB on
// the wire for a huge claim.
func bomb(t *testing.T, size int64) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, size); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	zw.Close()
	return out.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestApplyBoundsDecompressionBomb(t *testing.T) {
	const limit = 1 << 20
	blob := bomb(t, 16<<20)
	t.Logf("bomb: %d bytes compressed for 16 MiB", len(blob))
	root := t.TempDir()
	_, _, err := ApplyLayer(context.Background(), root, bytes.NewReader(blob), compression.MediaTypeOCILayerGzip, WithMaxSize(limit))
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "exceeds 1048576 bytes") {
		t.Fatalf("bomb: %v", err)
	}
	// The file is refused on its header: nothing of it is written.
	if exists(filepath.Join(root, "zeros")) {
		t.Fatal("bomb content written")
	}
	// A header claiming 1 TiB is refused on the claim, before any of the
	// (here truncated) body is inflated.
	var claim bytes.Buffer
	zw := gzip.NewWriter(&claim)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "huge", Mode: 0o644, Size: 1 << 40})
	tw.Write(make([]byte, 1<<20))
	zw.Close()
	_, _, err = ApplyLayer(context.Background(), root, &claim, compression.MediaTypeOCILayerGzip, WithMaxSize(1<<30))
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "exceeds 1073741824 bytes") {
		t.Fatalf("1 TiB claim: %v", err)
	}
	if exists(filepath.Join(root, "huge")) {
		t.Fatal("claimed file created")
	}
	// The same layer passes under a bound that admits it.
	if _, _, err := ApplyLayer(context.Background(), t.TempDir(), bytes.NewReader(blob), compression.MediaTypeOCILayerGzip, WithMaxSize(16<<20)); err != nil {
		t.Fatalf("within bound: %v", err)
	}
}

func TestApplyBoundsTotalAcrossFiles(t *testing.T) {
	root := t.TempDir()
	var ents []ent
	for i := range 10 {
		ents = append(ents, reg("f"+string(rune('a'+i)), strings.Repeat("x", 1000), 0o644))
	}
	n, err := apply(t, root, layer(t, ents...), WithMaxSize(4500))
	if !errdefs.IsFailedPrecondition(err) || n != 4000 {
		t.Fatalf("wrote %d: %v", n, err)
	}
	if exists(filepath.Join(root, "fe")) {
		t.Fatal("file past the bound written")
	}
}

func TestApplyLayerBoundsTrailingBomb(t *testing.T) {
	// Zeros after the end of the tar are hashed, not written; under a
	// bound they may not go on forever either.
	raw := layer(t, reg("f", "x", 0o644))
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(raw)
	io.CopyN(zw, zeroReader{}, 8<<20)
	zw.Close()
	_, _, err := ApplyLayer(context.Background(), t.TempDir(), &out, compression.MediaTypeOCILayerGzip, WithMaxSize(1<<20))
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("trailing bomb: %v", err)
	}
}

func TestApplyRootItselfIsNotChanged(t *testing.T) {
	root := t.TempDir()
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	mustApply(t, root, layer(t, dir("./", 0o777), dir("/", 0o777)))
	if st := lstat(t, root); st.Mode&0o777 != 0o711 {
		t.Fatalf("root mode changed to %o", st.Mode&0o777)
	}
}
