package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/image"
)

func TestLayerEntries(t *testing.T) {
	entries := []Entry{
		Dir("etc", 0o755),
		File("etc/hosts", "127.0.0.1 localhost\n", 0o644),
		Symlink("etc/link", "hosts"),
		Hardlink("etc/hard", "etc/hosts"),
		Whiteout("etc/gone"),
		Opaque("var/"),
		Dir("tmp", 0o777|os.ModeSticky),
		{Name: "suid", Type: tar.TypeReg, Mode: 0o755 | os.ModeSetuid, UID: 1000, GID: 1000, Xattrs: map[string]string{"user.k": "v"}},
	}
	want := []struct {
		name     string
		typ      byte
		mode     int64
		linkname string
	}{
		{"etc/", tar.TypeDir, 0o755, ""},
		{"etc/hosts", tar.TypeReg, 0o644, ""},
		{"etc/link", tar.TypeSymlink, 0o777, "hosts"},
		{"etc/hard", tar.TypeLink, 0o644, "etc/hosts"},
		{"etc/.wh.gone", tar.TypeReg, 0o644, ""},
		{"var/.wh..wh..opq", tar.TypeReg, 0o644, ""},
		{"tmp/", tar.TypeDir, 0o1777, ""},
		{"suid", tar.TypeReg, 0o4755, ""},
	}
	for _, c := range []image.Compression{image.CompressionNone, image.CompressionGzip, image.CompressionZstd} {
		l := NewLayer(t, c, entries...)
		if l.Desc.Digest != digest.FromBytes(l.Blob) || l.Desc.Size != int64(len(l.Blob)) || l.DiffID != digest.FromBytes(l.Tar) {
			t.Errorf("%v: descriptor or diff ID do not match the bytes", c)
		}
		if got, ok := image.LayerCompression(l.Desc.MediaType); !ok || got != c {
			t.Errorf("%v: media type %q", c, l.Desc.MediaType)
		}
		tr := tar.NewReader(bytes.NewReader(decompress(t, c, l.Blob)))
		for i, w := range want {
			hdr, err := tr.Next()
			if err != nil {
				t.Fatalf("%v: entry %d: %v", c, i, err)
			}
			if hdr.Name != w.name || hdr.Typeflag != w.typ || hdr.Mode != w.mode || hdr.Linkname != w.linkname {
				t.Errorf("%v: entry %d = %q %c %o %q, want %q %c %o %q", c, i, hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Linkname, w.name, w.typ, w.mode, w.linkname)
			}
		}
		if hdr, err := tr.Next(); err != io.EOF {
			t.Errorf("%v: extra entry %v, %v", c, hdr, err)
		}
	}
	// Same entries, same digest.
	if a, b := NewLayer(t, image.CompressionGzip, entries...), NewLayer(t, image.CompressionGzip, entries...); a.Desc.Digest != b.Desc.Digest {
		t.Errorf("layers of the same entries differ: %s, %s", a.Desc.Digest, b.Desc.Digest)
	}
}

func decompress(t *testing.T, c image.Compression, data []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(data)
	switch c {
	case image.CompressionGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case image.CompressionZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBusyboxLayer(t *testing.T) {
	l := BusyboxLayer(t, image.CompressionGzip)
	tr := tar.NewReader(bytes.NewReader(l.Tar))
	links := map[string]string{}
	var busybox *tar.Header
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case hdr.Name == "bin/busybox":
			busybox = hdr
		case hdr.Typeflag == tar.TypeSymlink:
			links[hdr.Name] = hdr.Linkname
		}
	}
	if busybox == nil || busybox.Size < 100<<10 || busybox.Mode != 0o755 {
		t.Fatalf("bin/busybox = %+v, want an executable of some size", busybox)
	}
	for _, a := range []string{"sh", "ls", "cat", "sleep"} {
		if links["bin/"+a] != "busybox" {
			t.Errorf("bin/%s → %q, want busybox", a, links["bin/"+a])
		}
	}
}

func TestIndexBuild(t *testing.T) {
	layer := NewLayer(t, image.CompressionGzip, File("a", "a", 0o644))
	b := Index{Images: []Image{
		{Layers: []Layer{layer}},
		{Layers: []Layer{layer}, Platform: ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
	}}.Build(t)
	// One shared layer, two configs, two manifests, one index.
	if len(b.Blobs) != 6 || b.Blobs[len(b.Blobs)-1].Desc.Digest != b.Target.Digest || b.Target.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index blobs: %d, target %+v", len(b.Blobs), b.Target)
	}
	store := NewStore(b)
	mf, err := image.Manifest(t.Context(), store, b.Target, image.Only(ocispec.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.ReadConfig(t.Context(), store, mf.Config)
	if err != nil || img.Architecture != "arm64" || len(img.RootFS.DiffIDs) != 1 || img.RootFS.DiffIDs[0] != layer.DiffID {
		t.Errorf("arm64 config = %+v, %v", img, err)
	}
}
