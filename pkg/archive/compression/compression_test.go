package compression

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/archive/internal/layertest"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func smallLayer(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := layertest.Write(&b, layertest.Spec{Files: 30, Bytes: 512 << 10, Symlinks: 3, Hardlinks: 3, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecompressStreamRoundTrips(t *testing.T) {
	raw := smallLayer(t)
	for _, tc := range []struct {
		name string
		blob []byte
		want Compression
	}{
		{"plain", raw, Uncompressed},
		{"gzip", gzipBytes(t, raw), Gzip},
		{"zstd", zstdBytes(t, raw), Zstd},
		// Layers written by several processes concatenate members/frames.
		{"gzip-multistream", append(gzipBytes(t, raw[:len(raw)/2]), gzipBytes(t, raw[len(raw)/2:])...), Gzip},
		{"zstd-multiframe", append(zstdBytes(t, raw[:len(raw)/2]), zstdBytes(t, raw[len(raw)/2:])...), Zstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, c, err := DecompressStream(bytes.NewReader(tc.blob))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if c != tc.want {
				t.Fatalf("detected %s, want %s", c, tc.want)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) {
				t.Fatalf("decompressed %d bytes differ from the %d raw bytes", len(got), len(raw))
			}
		})
	}
}

func TestDecompressStreamShortInputIsUncompressed(t *testing.T) {
	for _, in := range [][]byte{nil, {0x1f}, {0x28, 0xb5, 0x2f}} {
		rc, c, err := DecompressStream(bytes.NewReader(in))
		if err != nil || c != Uncompressed {
			t.Fatalf("%x: %s, %v", in, c, err)
		}
		got, _ := io.ReadAll(rc)
		if !bytes.Equal(got, in) {
			t.Fatalf("%x came back as %x", in, got)
		}
	}
}

func TestDecompressStreamCorruptGzip(t *testing.T) {
	blob := gzipBytes(t, smallLayer(t))
	blob[len(blob)/2] ^= 0xff
	rc, _, err := DecompressStream(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err == nil {
		t.Fatal("corrupt gzip decompressed without error")
	}
}

func TestZstdWindowIsBounded(t *testing.T) {
	// Frames built by hand, because encoders shrink the window to the
	// input: magic, a descriptor with no content size and not
	// single-segment, a window descriptor of exponent e (window 2^(10+e)),
	// then one last raw block of one byte.
	frame := func(e byte) []byte {
		return []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, e << 3, 0x09, 0x00, 0x00, 'x'}
	}
	decode := func(b []byte) error {
		rc, _, err := DecompressStream(bytes.NewReader(b))
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	}
	if err := decode(frame(17)); err != nil {
		t.Fatalf("a 128 MiB window (zstd --long=27) was refused: %v", err)
	}
	if err := decode(frame(18)); err == nil {
		t.Fatal("a 256 MiB window was accepted")
	}
}

func TestFromMediaType(t *testing.T) {
	for _, tc := range []struct {
		mt    string
		want  Compression
		class func(error) bool
	}{
		{"application/vnd.oci.image.layer.v1.tar", Uncompressed, nil},
		{"application/vnd.oci.image.layer.v1.tar+gzip", Gzip, nil},
		{"application/vnd.oci.image.layer.v1.tar+zstd", Zstd, nil},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", Gzip, nil},
		{"application/vnd.docker.image.rootfs.diff.tar", Uncompressed, nil},
		{"application/vnd.oci.image.layer.v1.tar+gzip; charset=binary", Gzip, nil},
		{"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", 0, errdefs.IsNotImplemented},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", 0, errdefs.IsNotImplemented},
		{"application/vnd.oci.image.layer.v1.tar+gzip+encrypted", 0, errdefs.IsNotImplemented},
		{"application/vnd.oci.image.config.v1+json", 0, errdefs.IsInvalidArgument},
		{"", 0, errdefs.IsInvalidArgument},
	} {
		got, err := FromMediaType(tc.mt)
		if tc.class != nil {
			if !tc.class(err) {
				t.Errorf("%q: error %v of the wrong class", tc.mt, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %s, %v; want %s", tc.mt, got, err, tc.want)
		}
	}
}

func TestDecompressLayerRefusesMagicMismatch(t *testing.T) {
	raw := smallLayer(t)
	for _, tc := range []struct {
		mt   string
		blob []byte
		ok   bool
	}{
		{MediaTypeOCILayerGzip, gzipBytes(t, raw), true},
		{MediaTypeOCILayerZstd, zstdBytes(t, raw), true},
		{MediaTypeOCILayer, raw, true},
		{MediaTypeOCILayerGzip, zstdBytes(t, raw), false},
		{MediaTypeOCILayerZstd, gzipBytes(t, raw), false},
		{MediaTypeDockerLayerGzip, raw, false},
		{MediaTypeOCILayer, gzipBytes(t, raw), false},
	} {
		rc, err := DecompressLayer(bytes.NewReader(tc.blob), tc.mt)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", tc.mt, err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, raw) {
				t.Errorf("%s: content differs (%v)", tc.mt, err)
			}
			continue
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s with %s content: %v, want InvalidArgument", tc.mt, Detect(tc.blob), err)
			continue
		}
		// The message names both sides so an operator can see who lied.
		want, _ := FromMediaType(tc.mt)
		for _, s := range []string{tc.mt, want.String(), Detect(tc.blob).String()} {
			if !bytes.Contains([]byte(err.Error()), []byte(s)) {
				t.Errorf("error %q does not name %q", err, s)
			}
		}
	}
}

// BenchmarkGzip compares the gzip readers on the realistic layer; the
// figures decided which one DecompressStream uses.
func BenchmarkGzip(b *testing.B) {
	var raw bytes.Buffer
	if _, err := layertest.Write(&raw, layertest.Realistic()); err != nil {
		b.Fatal(err)
	}
	blob := gzipBytes(b, raw.Bytes())
	b.Logf("layer %d bytes, gzip %d bytes (%.1fx)", raw.Len(), len(blob), float64(raw.Len())/float64(len(blob)))
	run := func(b *testing.B, open func(io.Reader) (io.ReadCloser, error)) {
		buf := make([]byte, 1<<20)
		b.SetBytes(int64(raw.Len()))
		for b.Loop() {
			rc, err := open(bytes.NewReader(blob))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	}
	b.Run("stdlib", func(b *testing.B) {
		run(b, func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) })
	})
	b.Run("klauspost-gzip", func(b *testing.B) {
		run(b, func(r io.Reader) (io.ReadCloser, error) { return kgzip.NewReader(r) })
	})
	b.Run("pgzip", func(b *testing.B) {
		run(b, func(r io.Reader) (io.ReadCloser, error) {
			rc, _, err := DecompressStream(r)
			return rc, err
		})
	})
}
