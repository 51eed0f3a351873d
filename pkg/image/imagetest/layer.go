// Package imagetest builds images and runs registries for the tests of
// pkg/image and of the packages built on it.
//
// Layers are built from Entries (files, directories, symlinks, hard links,
// whiteouts, opaque directories) into tar blobs, compressed or not; an
// Image or an Index of per-platform images is built into blobs that Push
// writes to a registry and Store serves as a content.Provider.
// StartRegistry runs the distribution registry binary on loopback.
//
// Everything here is for tests: failures end the test (t.Fatal), missing
// tools skip it.
package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/image"
)

// epochUnix is the modification time of every entry, so that layers
// built from the same entries have the same digest.
const epochUnix = 1700000000

// Entry is one tar entry of a layer.
type Entry struct {
	Name         string      // path in the layer, "/"-separated, no leading "/"
	Type         byte        // tar.TypeReg, TypeDir, TypeSymlink, TypeLink, TypeChar, TypeBlock or TypeFifo
	Mode         os.FileMode // permission bits (and setuid/setgid/sticky)
	Content      []byte      // of a regular file
	Target       string      // of a symlink or hard link
	UID, GID     int
	Major, Minor int64             // of a device node
	Xattrs       map[string]string // PAX "SCHILY.xattr." records
}

// File is a regular file.
func File(name, content string, mode os.FileMode) Entry {
	return Entry{Name: name, Type: tar.TypeReg, Mode: mode, Content: []byte(content)}
}

// Dir is a directory.
func Dir(name string, mode os.FileMode) Entry {
	return Entry{Name: name, Type: tar.TypeDir, Mode: mode}
}

// Symlink is a symbolic link name → target.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Target: target}
}

// Hardlink is a hard link name → target (a path in the layer).
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Mode: 0o644, Target: target}
}

// Whiteout deletes name of the layers below: the entry "dir/.wh.base".
func Whiteout(name string) Entry {
	dir, base := path.Split(name)
	return Entry{Name: dir + ".wh." + base, Type: tar.TypeReg, Mode: 0o644}
}

// Opaque hides everything of the layers below in dir: the entry
// "dir/.wh..wh..opq".
func Opaque(dir string) Entry {
	return Entry{Name: strings.TrimSuffix(dir, "/") + "/.wh..wh..opq", Type: tar.TypeReg, Mode: 0o644}
}

// Device is a device node (tar.TypeChar or tar.TypeBlock) or, with
// tar.TypeFifo, a named pipe.
func Device(name string, typ byte, major, minor int64, mode os.FileMode) Entry {
	return Entry{Name: name, Type: typ, Mode: mode, Major: major, Minor: minor}
}

// Layer is a built layer blob.
type Layer struct {
	Desc   ocispec.Descriptor // media type, digest and size of Blob
	DiffID digest.Digest      // digest of the uncompressed tar
	Tar    []byte             // the uncompressed tar
	Blob   []byte             // the blob as stored: Tar compressed
}

// NewLayer builds a layer of entries, in their order, compressed with c,
// with the OCI layer media type of c.
func NewLayer(t testing.TB, c image.Compression, entries ...Entry) Layer {
	t.Helper()
	tarBytes := buildTar(t, entries)
	blob := compress(t, c, tarBytes)
	mt := map[image.Compression]string{
		image.CompressionNone: ocispec.MediaTypeImageLayer,
		image.CompressionGzip: ocispec.MediaTypeImageLayerGzip,
		image.CompressionZstd: ocispec.MediaTypeImageLayerZstd,
	}[c]
	return Layer{
		Desc:   ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))},
		DiffID: digest.FromBytes(tarBytes),
		Tar:    tarBytes,
		Blob:   blob,
	}
}

func buildTar(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:     e.Name,
			Typeflag: e.Type,
			Mode:     int64(e.Mode.Perm()) | modeBits(e.Mode),
			Linkname: e.Target,
			Uid:      e.UID,
			Gid:      e.GID,
			Devmajor: e.Major,
			Devminor: e.Minor,
			ModTime:  time.Unix(epochUnix, 0),
			Format:   tar.FormatPAX,
		}
		if e.Type == tar.TypeDir && !strings.HasSuffix(hdr.Name, "/") {
			hdr.Name += "/"
		}
		if e.Type == tar.TypeReg {
			hdr.Size = int64(len(e.Content))
		}
		for k, v := range e.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("layer entry %q: %v", e.Name, err)
		}
		if _, err := tw.Write(e.Content); err != nil {
			t.Fatalf("layer entry %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("layer: %v", err)
	}
	return buf.Bytes()
}

// modeBits maps the setuid, setgid and sticky bits of an os.FileMode to
// the tar (c_ISUID...) bits.
func modeBits(m os.FileMode) int64 {
	var bits int64
	if m&os.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}

func compress(t testing.TB, c image.Compression, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case image.CompressionNone:
		return bytes.Clone(data)
	case image.CompressionGzip:
		w = gzip.NewWriter(&buf)
	case image.CompressionZstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		w = zw
	default:
		t.Fatalf("compression %v not supported", c)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("%v: %v", c, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("%v: %v", c, err)
	}
	return buf.Bytes()
}
