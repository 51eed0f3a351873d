package local

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkIngest writes a blob through content.WriteBlob (OpenWriter,
// Copy, Commit with its fsync) and reports MB/s. The store lives on a real
// disk: $BENCH_DIR if set, else os.TempDir() unless that is tmpfs, else the
// package directory. Compare with dd using hack/bench/content/run.sh.
func BenchmarkIngest(b *testing.B) {
	for _, size := range []int64{64 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) { benchmarkIngest(b, size) })
	}
}

func benchmarkIngest(b *testing.B, size int64) {
	ctx := context.Background()
	cs, err := NewStore(benchDir(b))
	if err != nil {
		b.Fatal(err)
	}
	pattern := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{'b'}).Read(pattern)
	h := sha256.New()
	for n := int64(0); n < size; n += int64(len(pattern)) {
		h.Write(pattern[:min(int64(len(pattern)), size-n)])
	}
	desc := ocispec.Descriptor{Digest: digest.NewDigest(digest.SHA256, h), Size: size}

	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &patternReader{pattern: pattern, left: size}
		if err := content.WriteBlob(ctx, cs, "bench", r, desc); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := cs.Delete(ctx, desc.Digest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// patternReader repeats pattern for left bytes: a source that costs next to
// nothing, so the benchmark measures the store.
type patternReader struct {
	pattern []byte
	off     int
	left    int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	n := 0
	for n < len(p) {
		m := copy(p[n:], r.pattern[r.off:])
		n += m
		r.off = (r.off + m) % len(r.pattern)
	}
	r.left -= int64(n)
	return n, nil
}

func benchDir(b *testing.B) string {
	b.Helper()
	parent := os.Getenv("BENCH_DIR")
	if parent == "" && isTmpfs(os.TempDir()) {
		parent = "."
	}
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "bench-content-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
