package content_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t *testing.T) content.Store {
	t.Helper()
	cs, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.SHA256.FromBytes(b), Size: int64(len(b))}
}

func blob(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// partialIngest leaves an ingest under ref holding b, with no writer.
func partialIngest(t *testing.T, cs content.Store, ref string, b []byte) {
	t.Helper()
	w, err := cs.Writer(context.Background(), content.WithRef(ref))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// countingReader counts the bytes read from it; it hides any Seek method.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadBlob(t *testing.T) {
	ctx := context.Background()
	cs := newStore(t)
	b := blob(3<<20 + 1)
	if err := content.WriteBlob(ctx, cs, "rb", bytes.NewReader(b), descOf(b)); err != nil {
		t.Fatal(err)
	}
	got, err := content.ReadBlob(ctx, cs, descOf(b))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("ReadBlob: %d bytes, %v", len(got), err)
	}
	if _, err := content.ReadBlob(ctx, cs, descOf([]byte("absent"))); !errdefs.IsNotFound(err) {
		t.Fatalf("ReadBlob of a missing blob: %v", err)
	}
}

func TestOpenWriterWaitsForTheRef(t *testing.T) {
	ctx := context.Background()
	cs := newStore(t)
	held, err := cs.Writer(ctx, content.WithRef("busy"))
	if err != nil {
		t.Fatal(err)
	}
	const hold = 60 * time.Millisecond
	start := time.Now()
	time.AfterFunc(hold, func() { held.Close() })
	w, err := content.OpenWriter(ctx, cs, content.WithRef("busy"))
	if err != nil {
		t.Fatalf("OpenWriter: %v", err)
	}
	defer w.Close()
	if waited := time.Since(start); waited < hold {
		t.Fatalf("OpenWriter returned after %v, before the ref was released", waited)
	}
}

func TestOpenWriterGivesUpWithTheContext(t *testing.T) {
	cs := newStore(t)
	held, err := cs.Writer(context.Background(), content.WithRef("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = content.OpenWriter(ctx, cs, content.WithRef("busy"))
	if !errdefs.IsDeadlineExceeded(err) {
		t.Fatalf("OpenWriter on a held ref past the deadline: %v, want DeadlineExceeded", err)
	}
	// Other errors are not retried.
	if _, err := content.OpenWriter(context.Background(), cs); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("OpenWriter without a ref: %v, want InvalidArgument", err)
	}
}

func TestCopyResumesFromSeeker(t *testing.T) {
	ctx := context.Background()
	cs := newStore(t)
	b := blob(2<<20 + 9)
	partialIngest(t, cs, "seek", b[:1<<20])
	w, err := cs.Writer(ctx, content.WithRef("seek"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := bytes.NewReader(b)
	if err := content.Copy(ctx, w, r, int64(len(b)), descOf(b).Digest); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	got, err := content.ReadBlob(ctx, cs, descOf(b))
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("ReadBlob: %d bytes, %v", len(got), err)
	}
}

// TestCopyRestartsWithoutSeeker guards the Truncate(0) path: the partial
// ingest holds wrong bytes, so only a restart can produce the right digest.
func TestCopyRestartsWithoutSeeker(t *testing.T) {
	ctx := context.Background()
	cs := newStore(t)
	b := blob(100_000)
	partialIngest(t, cs, "noseek", bytes.Repeat([]byte{0xee}, 5000))
	w, err := cs.Writer(ctx, content.WithRef("noseek"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := &countingReader{r: bytes.NewReader(b)}
	if err := content.Copy(ctx, w, r, int64(len(b)), descOf(b).Digest); err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if r.n != len(b) {
		t.Fatalf("read %d bytes, want all %d", r.n, len(b))
	}
}

// TestCopyRestartsPastSize guards a partial ingest longer than the blob:
// seeking there would commit too many bytes.
func TestCopyRestartsPastSize(t *testing.T) {
	ctx := context.Background()
	cs := newStore(t)
	b := blob(1000)
	partialIngest(t, cs, "long", blob(2000))
	w, err := cs.Writer(ctx, content.WithRef("long"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := content.Copy(ctx, w, bytes.NewReader(b), int64(len(b)), descOf(b).Digest); err != nil {
		t.Fatalf("Copy: %v", err)
	}
}

func TestCopyAlreadyExistsIsSuccess(t *testing.T) {
	ctx := context.Background()
	cs := newStore(t)
	b := blob(4096)
	if err := content.WriteBlob(ctx, cs, "first", bytes.NewReader(b), descOf(b)); err != nil {
		t.Fatal(err)
	}
	w, err := cs.Writer(ctx, content.WithRef("second"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := content.Copy(ctx, w, bytes.NewReader(b), int64(len(b)), descOf(b).Digest); err != nil {
		t.Fatalf("Copy of existing content: %v", err)
	}
	if _, err := cs.Status(ctx, "second"); !errdefs.IsNotFound(err) {
		t.Fatalf("ingest kept after an AlreadyExists commit: %v", err)
	}
}

func TestCopyHonoursCancellation(t *testing.T) {
	cs := newStore(t)
	b := blob(8 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cs.Writer(ctx, content.WithRef("cancel"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := &cancelAfter{r: bytes.NewReader(b), after: 2 << 20, cancel: cancel}
	err = content.Copy(ctx, w, r, int64(len(b)), descOf(b).Digest)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Copy with a cancelled ctx: %v, want Canceled", err)
	}
	if st, _ := w.Status(); st.Offset >= int64(len(b)) {
		t.Fatalf("Copy went on to offset %d after the cancel", st.Offset)
	}
	if _, err := cs.Info(context.Background(), descOf(b).Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("cancelled copy committed: %v", err)
	}
}

// cancelAfter cancels once `after` bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int
	after  int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n += n; c.n >= c.after {
		c.cancel()
	}
	return n, err
}

func TestWriteBlob(t *testing.T) {
	ctx := context.Background()
	cs := newStore(t)
	b := blob(70_000)
	desc := descOf(b)
	labels := map[string]string{"k": "v"}
	if err := content.WriteBlob(ctx, cs, "wb", bytes.NewReader(b), desc, content.WithLabels(labels)); err != nil {
		t.Fatal(err)
	}
	info, err := cs.Info(ctx, desc.Digest)
	if err != nil || info.Size != desc.Size || info.Labels["k"] != "v" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	// Committed already: success without reading the source.
	r := &countingReader{r: bytes.NewReader(b)}
	if err := content.WriteBlob(ctx, cs, "wb-again", r, desc); err != nil || r.n != 0 {
		t.Fatalf("WriteBlob of a committed blob: %v after reading %d bytes", err, r.n)
	}
	// Wrong bytes: FailedPrecondition, nothing committed, ingest kept.
	expected := descOf([]byte("expected"))
	err = content.WriteBlob(ctx, cs, "wb-bad", bytes.NewReader([]byte("mismatch")), expected)
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("WriteBlob of wrong bytes: %v, want FailedPrecondition", err)
	}
	if _, err := cs.Status(ctx, "wb-bad"); err != nil {
		t.Fatalf("ingest not kept after a failed commit: %v", err)
	}
}

func TestNewReaderSeeks(t *testing.T) {
	ctx := context.Background()
	cs := newStore(t)
	b := blob(10_000)
	if err := content.WriteBlob(ctx, cs, "nr", bytes.NewReader(b), descOf(b)); err != nil {
		t.Fatal(err)
	}
	ra, err := cs.ReaderAt(ctx, descOf(b))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	r := content.NewReader(ra)
	s, ok := r.(io.Seeker)
	if !ok {
		t.Fatal("NewReader is not an io.Seeker: Copy could not resume from it")
	}
	if _, err := s.Seek(9000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(rest, b[9000:]) {
		t.Fatalf("read after Seek: %d bytes, %v", len(rest), err)
	}
}
