package archive

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/archive/compression"
	"github.com/cri-runtime/cri-runtime/pkg/archive/internal/layertest"
)

// BenchmarkApply measures the pull hot path on a realistic layer (~5,000
// source-like files, ~100 MB, directories, symlinks, hardlinks). MB/s are
// of uncompressed tar bytes in every case:
//
//	decompress: gzip blob to io.Discard, the floor for everything else
//	apply: the uncompressed tar onto an empty directory
//	layer-gzip, layer-zstd: ApplyLayer end to end (decompress, hash, apply)
//	layer-gzip+syncfs: the same plus the one SyncFS a caller does
func BenchmarkApply(b *testing.B) {
	var raw bytes.Buffer
	st, err := layertest.Write(&raw, layertest.Realistic())
	if err != nil {
		b.Fatal(err)
	}
	gzBlob, zstBlob := gz(b, raw.Bytes()), zst(b, raw.Bytes())
	b.Logf("layer: %d files, %d dirs, %d bytes tar, gzip %d (%.1fx), zstd %d",
		st.Files, st.Dirs, raw.Len(), len(gzBlob), float64(raw.Len())/float64(len(gzBlob)), len(zstBlob))
	base := b.TempDir()
	i := 0
	// fresh returns an empty root; the previous one is removed off the
	// clock so each run writes onto the same kind of empty directory.
	fresh := func(b *testing.B) string {
		b.StopTimer()
		os.RemoveAll(filepath.Join(base, strconv.Itoa(i)))
		i++
		root := filepath.Join(base, strconv.Itoa(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		return root
	}
	ctx := context.Background()

	b.Run("decompress", func(b *testing.B) {
		b.SetBytes(int64(raw.Len()))
		buf := make([]byte, copyBufferSize)
		for b.Loop() {
			rc, _, err := compression.DecompressStream(bytes.NewReader(gzBlob))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	})
	b.Run("apply", func(b *testing.B) {
		b.SetBytes(int64(raw.Len()))
		for b.Loop() {
			if _, err := Apply(ctx, fresh(b), bytes.NewReader(raw.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
	})
	layerBench := func(blob []byte, mt string, sync bool) func(*testing.B) {
		return func(b *testing.B) {
			b.SetBytes(int64(raw.Len()))
			for b.Loop() {
				root := fresh(b)
				if _, _, err := ApplyLayer(ctx, root, bytes.NewReader(blob), mt); err != nil {
					b.Fatal(err)
				}
				if sync {
					if err := SyncFS(root); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	b.Run("layer-gzip", layerBench(gzBlob, compression.MediaTypeOCILayerGzip, false))
	b.Run("layer-zstd", layerBench(zstBlob, compression.MediaTypeOCILayerZstd, false))
	b.Run("layer-gzip+syncfs", layerBench(gzBlob, compression.MediaTypeOCILayerGzip, true))
}
