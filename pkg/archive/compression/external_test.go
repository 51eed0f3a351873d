package compression

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/klauspost/compress/gzip"
)

// eachExternal runs fn once with each external tool forced in turn (igzip,
// then unpigz), as a subtest named after it; a tool that is not installed
// is skipped, saying so.
func eachExternal(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	t.Setenv(DisableExternalGzipEnv, "")
	for _, name := range externalGzipTools {
		t.Run(name, func(t *testing.T) {
			path, err := exec.LookPath(name)
			if err != nil {
				testenv.Missing(t, "%s is not installed (hack/deps.sh installs isal and pigz)", name)
			}
			saved := lookupExternalGzip
			lookupExternalGzip = func() string { return path }
			defer func() { lookupExternalGzip = saved }()
			if got := ExternalGzip(); got != path {
				t.Fatalf("ExternalGzip() = %q, want %q", got, path)
			}
			fn(t)
		})
	}
}

func gzipOf(t *testing.T, members ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, m := range members {
		zw := gzip.NewWriter(&buf)
		zw.Write(m)
		zw.Close()
	}
	return buf.Bytes()
}

func randomText(n int) []byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefgh \n"[rnd.IntN(10)]
	}
	return b
}

func TestExternalGzipMatchesInProcess(t *testing.T) {
	eachExternal(t, func(t *testing.T) {
		a, b := randomText(3<<20), randomText(1<<20+7)
		blob := gzipOf(t, a, b)
		want := append(append([]byte{}, a...), b...)
		for _, disable := range []string{"", "1"} {
			t.Setenv(DisableExternalGzipEnv, disable)
			rc, c, err := DecompressStream(bytes.NewReader(blob))
			if err != nil || c != Gzip {
				t.Fatalf("disable=%q: %v %v", disable, c, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("disable=%q: %d bytes, err %v", disable, len(got), err)
			}
		}
	})
}

func TestExternalGzipCorruptStreamIsInvalidArgument(t *testing.T) {
	eachExternal(t, func(t *testing.T) {
		blob := gzipOf(t, randomText(1<<20))
		for i := 100; i < 400; i++ {
			blob[i] ^= 0x5a
		}
		rc, _, err := DecompressStream(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadAll(rc); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("corrupt stream: want InvalidArgument, got %v", err)
		}
	})
}

// failingReader serves a prefix, then fails like a stalled download.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestExternalGzipReportsInputError(t *testing.T) {
	eachExternal(t, func(t *testing.T) {
		blob := gzipOf(t, randomText(2<<20))
		stall := errors.New("blob stalled: unavailable")
		rc, _, err := DecompressStream(&failingReader{r: bytes.NewReader(blob[:len(blob)/2]), err: stall})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadAll(rc); !errors.Is(err, stall) {
			t.Fatalf("want the input's error, got %v", err)
		}
	})
}

func TestExternalGzipCloseEarlyDoesNotHang(t *testing.T) {
	eachExternal(t, func(t *testing.T) {
		blob := gzipOf(t, randomText(2<<20))
		rc, _, err := DecompressStream(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		if _, err := io.ReadFull(rc, buf); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { rc.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
	})
}

func TestNotGzipHeaderRefusedBeforeStart(t *testing.T) {
	eachExternal(t, func(t *testing.T) {
		// Gzip magic with a method other than deflate.
		_, _, err := DecompressStream(bytes.NewReader([]byte{0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0}))
		if !errdefs.IsInvalidArgument(err) {
			t.Fatalf("want InvalidArgument, got %v", err)
		}
	})
}
