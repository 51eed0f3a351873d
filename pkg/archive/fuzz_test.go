package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// A fuzzed layer is written as text, one entry a line, layers separated by
// a line "---", so that seeds read like the attacks they are and the
// mutator recombines names, types and targets:
//
//	<type> <name> [<link target> [<mode, octal> [<xattr key>=<value>]]]
//
// type: F file, D directory, L symlink, H hardlink, C char device, B
// block device, P fifo, W whiteout of name, O opaque whiteout of name.
// In names and targets $OUT is the directory beside the root, $SENT the
// sentinel file in it and $BASE the directory holding both: the host
// that must not change.
var fuzzApplySeeds = []string{
	"F a\nD d/\nF d/f\nL l d\nF l/g\nH h d/f",
	"F ../escape\nF a/../../escape\nD ../newdir/",
	"L link $OUT\nF link/new\nD link/newdir/",
	"L link ../outside\nF link/new",
	"L link ../../../../../..\nF link$OUT/x",
	"L link2 ../outside/..\nL link link2/..\nF link/x",
	"L etc $OUT\n---\nF etc/new\nH etc/h etc/new",
	"L f $SENT\nF f",
	"D data/\nF data/d\nL f $SENT\nH f data/d",
	"L f $SENT\nP f",
	"L l $SENT - 7777",
	"H h ../outside/sentinel\nH h2 $SENT\nH h3 /etc/shadow",
	"L l ../outside\nH h l/sentinel",
	"W ../outside/sentinel\nO ../outside\nL l $OUT\nW l/sentinel\nO l",
	"D d/\nF d/x\nL l d\nW l/x",
	"W ..\nW a/..\nW .",
	"L a b\nL b a\nF a/f",
	"F x\n---\nD x/\nF x/y\n---\nW x\nO .",
	"C null - 666\nB disk - 660\nP pipe - 600\nC null/x",
	"F f - 4755\nD d - 1777\nF g - 644 trusted.overlay.opaque=y\nD e - 755 user.overlay.redirect=/x",
	"F g - 644 security.capability=x\nD e - 755 trusted.overlay.origin=y\nL s t 777 user.x=y",
	"F /abs\nF $BASE/beside\nD /\nD ./\nF .",
	"D a/\nD a/b/\nF a/b/c\nL a/b/l ../../..\nF a/b/l/up",
}

// FuzzApply applies fuzzed layers, one after the other, into a fresh root
// with a sentinel file beside it, in both whiteout modes. Whatever the
// layers hold: nothing outside the root changes (the sentinel keeps its
// content, mode, owner and link count, nothing new appears beside it or
// the root); a refusal is InvalidArgument or FailedPrecondition, never
// another class; a layer applied in full reports the bytes of its
// regular files; and no overlay xattr that the layer did not ask for as
// an opaque whiteout in WhiteoutOverlay mode is found in the tree.
func FuzzApply(f *testing.F) {
	for _, s := range fuzzApplySeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, program string, overlay bool) {
		layers := parseFuzzLayers(program)
		if len(layers) == 0 {
			return
		}
		s := newSandbox(t)
		var mode WhiteoutMode = WhiteoutDelete{}
		if overlay {
			mode = WhiteoutOverlay{}
		}
		for _, l := range layers {
			ents := l.entries(s)
			tarball, ok := fuzzTar(ents)
			if !ok {
				return
			}
			n, err := apply(t, s.root, tarball, WithWhiteoutMode(mode))
			s.intact(t)
			if err != nil {
				if !errdefs.IsInvalidArgument(err) && !errdefs.IsFailedPrecondition(err) {
					t.Fatalf("layer %q: error of the wrong class: %v", l, err)
				}
				break
			}
			if want := regularBytes(ents); n != want {
				t.Fatalf("layer %q: %d bytes written, its regular files hold %d", l, n, want)
			}
		}
		checkOverlayXattrs(t, s.root, overlay)
	})
}

// FuzzApplyTar applies arbitrary bytes as a tar stream: the tar reader's
// own errors, PAX records and odd headers included. The host must not
// change and a refusal must have a class.
func FuzzApplyTar(f *testing.F) {
	for _, s := range fuzzApplySeeds[:8] {
		l := parseFuzzLayers(s)[0]
		tarball, _ := fuzzTar(l.entries(sandbox{outside: "/o", sentinel: "/o/s", base: "/"}))
		f.Add(tarball)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, tarball []byte) {
		s := newSandbox(t)
		_, err := apply(t, s.root, tarball)
		s.intact(t)
		if err != nil && !errdefs.IsInvalidArgument(err) && !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("error of the wrong class: %v", err)
		}
	})
}

// fuzzLayer is the text of one layer.
type fuzzLayer string

func parseFuzzLayers(program string) []fuzzLayer {
	var out []fuzzLayer
	for l := range strings.SplitSeq(program, "\n---\n") {
		out = append(out, fuzzLayer(l))
	}
	// Bound the work of one input.
	if len(out) > 4 {
		out = out[:4]
	}
	return out
}

// entries turns the text of a layer into tar entries aimed at s.
func (l fuzzLayer) entries(s sandbox) []ent {
	expand := strings.NewReplacer("$OUT", s.outside, "$SENT", s.sentinel, "$BASE", s.base)
	var ents []ent
	for line := range strings.SplitSeq(string(l), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || len(ents) >= 64 {
			continue
		}
		name := expand.Replace(fields[1])
		target := ""
		if len(fields) > 2 && fields[2] != "-" {
			target = expand.Replace(fields[2])
		}
		e := ent{hdr: tar.Header{Name: name, Linkname: target, ModTime: testTime()}}
		switch fields[0][0] {
		case 'F':
			e = reg(name, "content of "+name, 0o644)
		case 'D':
			e = dir(name, 0o755)
		case 'L':
			e = symlink(name, target)
		case 'H':
			e = hardlink(name, target)
		case 'C':
			e.hdr.Typeflag, e.hdr.Mode, e.hdr.Devmajor, e.hdr.Devminor = tar.TypeChar, 0o666, 1, 3
		case 'B':
			e.hdr.Typeflag, e.hdr.Mode, e.hdr.Devmajor, e.hdr.Devminor = tar.TypeBlock, 0o660, 7, 200
		case 'P':
			e.hdr.Typeflag, e.hdr.Mode = tar.TypeFifo, 0o600
		case 'W':
			d, b := filepath.Split(name)
			e = whiteout(d + whiteoutPrefix + b)
		case 'O':
			e = whiteout(strings.TrimSuffix(name, "/") + "/" + whiteoutOpaque)
		default:
			e.hdr.Typeflag = fields[0][0]
		}
		if len(fields) > 3 {
			if m, err := strconv.ParseInt(fields[3], 8, 64); err == nil {
				e.hdr.Mode = m & 0o7777
			}
		}
		if len(fields) > 4 {
			if k, v, ok := strings.Cut(fields[4], "="); ok && k != "" {
				e.hdr.PAXRecords = map[string]string{paxXattr + k: v}
			}
		}
		ents = append(ents, e)
	}
	return ents
}

// fuzzTar is layer without failing the test: a name archive/tar cannot
// write is not an input.
func fuzzTar(ents []ent) ([]byte, bool) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := e.hdr
		h.Format = tar.FormatPAX
		if tw.WriteHeader(&h) != nil {
			return nil, false
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			return nil, false
		}
	}
	if tw.Close() != nil {
		return nil, false
	}
	return b.Bytes(), true
}

// regularBytes is what Apply must report for ents applied in full: the
// size of every regular file that names something in the root and is not
// a whiteout.
func regularBytes(ents []ent) int64 {
	var n int64
	for _, e := range ents {
		name, ok := cleanName(e.hdr.Name)
		if !ok || name == "" || e.hdr.Typeflag != tar.TypeReg {
			continue
		}
		if _, base := split(name); strings.HasPrefix(base, whiteoutPrefix) {
			continue
		}
		n += e.hdr.Size
	}
	return n
}

// checkOverlayXattrs fails when the tree under root holds an overlayfs
// xattr other than the opaque marker of WhiteoutOverlay on a directory: a
// layer must not smuggle in redirects, origins or metacopy.
func checkOverlayXattrs(t *testing.T, root string, overlay bool) {
	t.Helper()
	buf := make([]byte, 64<<10)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, k := range strings.Split(string(buf[:n]), "\x00") {
			if !strings.HasPrefix(k, "trusted.overlay.") && !strings.HasPrefix(k, "user.overlay.") {
				continue
			}
			if overlay && k == "trusted.overlay.opaque" && d.IsDir() {
				continue
			}
			t.Fatalf("%s: xattr %s", p, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("walk %s: %v", root, err)
	}
}
