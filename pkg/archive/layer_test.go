package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/archive/compression"
	"github.com/cri-runtime/cri-runtime/pkg/archive/internal/layertest"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/klauspost/compress/zstd"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestApplyLayerDiffIDAndRoundTrips(t *testing.T) {
	var raw bytes.Buffer
	st, err := layertest.Write(&raw, layertest.Spec{Files: 100, Bytes: 1 << 20, Symlinks: 10, Hardlinks: 10, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// GNU tar pads the archive to a 10 KiB record after the end marker;
	// the DiffID covers that padding too.
	raw.Write(make([]byte, 10240-raw.Len()%10240))
	want := fmt.Sprintf("sha256:%x", sha256.Sum256(raw.Bytes()))
	for _, tc := range []struct {
		mt   string
		blob []byte
	}{
		{compression.MediaTypeOCILayer, raw.Bytes()},
		{compression.MediaTypeOCILayerGzip, gz(t, raw.Bytes())},
		{compression.MediaTypeDockerLayerGzip, gz(t, raw.Bytes())},
		{compression.MediaTypeOCILayerZstd, zst(t, raw.Bytes())},
	} {
		t.Run(tc.mt, func(t *testing.T) {
			root := t.TempDir()
			diffID, size, err := ApplyLayer(context.Background(), root, bytes.NewReader(tc.blob), tc.mt)
			if err != nil {
				t.Fatal(err)
			}
			if diffID.String() != want || size != int64(raw.Len()) {
				t.Fatalf("diffID %s size %d, want %s %d", diffID, size, want, raw.Len())
			}
			var files int
			var bytesOnDisk int64
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if d.Type().IsRegular() && filepath.Base(p)[:4] == "file" {
					info, _ := d.Info()
					files++
					bytesOnDisk += info.Size()
				}
				return nil
			})
			if files != st.Files || bytesOnDisk != st.ContentBytes {
				t.Fatalf("%d files, %d bytes on disk; layer has %d, %d", files, bytesOnDisk, st.Files, st.ContentBytes)
			}
		})
	}
}

func TestApplyLayerRefusesMagicMismatch(t *testing.T) {
	raw := layer(t, reg("f", "x", 0o644))
	for _, tc := range []struct {
		mt   string
		blob []byte
	}{
		{compression.MediaTypeOCILayerGzip, zst(t, raw)},
		{compression.MediaTypeOCILayerZstd, gz(t, raw)},
		{compression.MediaTypeOCILayer, gz(t, raw)},
		{compression.MediaTypeDockerLayerGzip, raw},
	} {
		root := t.TempDir()
		_, _, err := ApplyLayer(context.Background(), root, bytes.NewReader(tc.blob), tc.mt)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", tc.mt, err)
		}
		if exists(filepath.Join(root, "f")) {
			t.Errorf("%s: mismatched layer applied", tc.mt)
		}
	}
	if _, _, err := ApplyLayer(context.Background(), t.TempDir(), bytes.NewReader(gz(t, raw)), "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"); !errdefs.IsNotImplemented(err) {
		t.Errorf("foreign layer: %v", err)
	}
}

// cancelAfter cancels its context once n bytes have been read through it,
// standing for a pull cancelled while a layer is being applied.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestApplyStopsWhenCancelledMidStream(t *testing.T) {
	var raw bytes.Buffer
	st, err := layertest.Write(&raw, layertest.Spec{Files: 100, Bytes: 2 << 20, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := Apply(ctx, root, &cancelAfter{r: &raw, n: int64(raw.Len() / 3), cancel: cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled apply: %v", err)
	}
	if n == 0 || n >= st.ContentBytes*2/3 {
		t.Fatalf("wrote %d of %d bytes before stopping", n, st.ContentBytes)
	}
	// ApplyLayer reports the cancellation the same way.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, _, err := ApplyLayer(ctx2, t.TempDir(), bytes.NewReader(gz(t, raw.Bytes())), compression.MediaTypeOCILayerGzip); !errors.Is(err, context.Canceled) {
		t.Fatalf("ApplyLayer: %v", err)
	}
}

func TestApplyStopsInsideALargeFile(t *testing.T) {
	// One 64 MiB file: cancellation is seen between chunks, not only
	// between entries.
	big := bytes.Repeat([]byte("z"), 64<<20)
	tb := layer(t, reg("big", string(big), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := Apply(ctx, t.TempDir(), &cancelAfter{r: bytes.NewReader(tb), n: 4 << 20, cancel: cancel})
	if !errors.Is(err, context.Canceled) || n >= 32<<20 {
		t.Fatalf("wrote %d bytes: %v", n, err)
	}
}

func TestSyncFS(t *testing.T) {
	root := t.TempDir()
	mustApply(t, root, layer(t, reg("f", "x", 0o644)))
	if err := SyncFS(root); err != nil {
		t.Fatal(err)
	}
	if err := SyncFS(filepath.Join(root, "missing")); !errdefs.IsNotFound(err) {
		t.Fatalf("missing root: %v", err)
	}
}
